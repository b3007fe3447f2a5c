package pebble

import (
	"container/list"
	"sync"
)

// cacheKey names a tile (kind keyTile), an entry bundle (kind keyBundle, level 0) or a full
// bundle's gzip form (kind keyGzip, level 0).
type cacheKey struct {
	kind  byte
	level uint64
	index uint64
}

// edgeCache is a byte-bounded LRU of stored values (same format as in Pebble). The sequencer puts
// every tile and bundle it commits, so the hot right edge of the tree is served from memory;
// readers add full tiles and gzip forms (Storage.view).
// Values are never mutated once put: readers copy what they hand out.
type edgeCache struct {
	mu    sync.Mutex
	limit int64
	used  int64
	order *list.List // front = most recently used; elements hold *cacheEntry
	items map[cacheKey]*list.Element
}

type cacheEntry struct {
	key cacheKey
	val []byte
}

func newEdgeCache(limit int64) *edgeCache {
	return &edgeCache{limit: limit, order: list.New(), items: make(map[cacheKey]*list.Element)}
}

func (c *edgeCache) get(k cacheKey) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*cacheEntry).val, true
}

// put stores val under k, taking ownership of val; values larger than the whole budget are skipped.
func (c *edgeCache) put(k cacheKey, val []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(k, val)
}

// putIfLonger is put for a reader: tiles and bundles only grow, so a value read from Pebble may
// already be older than the one the sequencer put since, and then it is dropped.
func (c *edgeCache) putIfLonger(k cacheKey, val []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok && len(el.Value.(*cacheEntry).val) >= len(val) {
		return
	}
	c.putLocked(k, val)
}

func (c *edgeCache) putLocked(k cacheKey, val []byte) {
	size := int64(len(val))
	if el, ok := c.items[k]; ok {
		e := el.Value.(*cacheEntry)
		c.used -= int64(len(e.val))
		c.order.Remove(el)
		delete(c.items, k)
	}
	if size > c.limit {
		return
	}
	c.items[k] = c.order.PushFront(&cacheEntry{key: k, val: val})
	c.used += size
	for c.used > c.limit {
		el := c.order.Back()
		e := el.Value.(*cacheEntry)
		c.order.Remove(el)
		delete(c.items, e.key)
		c.used -= int64(len(e.val))
	}
}
