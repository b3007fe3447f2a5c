// Package filecache keeps copies of immutable resources (full tiles, entry bundles, their gzip
// forms) as files in one directory, bounded in bytes, so that a server can send them with
// sendfile(2): the kernel then moves the bytes from its page cache to the socket, as it does for
// nginx serving a static file, rather than the server copying them from its own memory into every
// answer.
//
// The cache never outlives its process: Open empties the directory, so a file is only ever one this
// process wrote whole (it is written under a temporary name and renamed once complete), and a crash
// mid-write can leave nothing that is later served. Files are removed (unlinked) when evicted,
// which is safe while another goroutine still sends one: an open file stays readable until closed.
// The page cache holding the files is the kernel's to reclaim, so it adds nothing to the server's
// own memory; the cache's index holds at most MaxFiles names.
package filecache

import (
	"container/list"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// MaxFiles bounds how many files the cache holds, whatever their sizes, so its index stays small
// (about 200 bytes a file) however small the resources are.
const MaxFiles = 1 << 16

// Cache is a byte-bounded LRU of files named by the caller. It is safe for concurrent use.
type Cache struct {
	path  string
	limit int64
	tmp   atomic.Uint64

	mu    sync.Mutex // guards what follows and every rename and removal in dir
	used  int64
	order *list.List // front = most recently used; elements hold *entry
	items map[string]*list.Element
}

type entry struct {
	name string
	path string // c.path/name, made once
	size int64
	tag  string
}

// Open makes dir (0700), removes anything an earlier process left in it, and returns a cache of
// at most limit bytes of files there.
func Open(dir string, limit int64) (*Cache, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("file cache %s: a limit of %d bytes holds nothing", dir, limit)
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("emptying file cache %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("making file cache %s: %w", dir, err)
	}
	return &Cache{path: dir, limit: limit, order: list.New(), items: make(map[string]*list.Element)}, nil
}

// Lookup returns the file named name, if the cache holds it: its path, its size and the tag it
// was put with. The file can still be evicted (or the cache closed) before the caller opens it;
// opening it then fails with os.ErrNotExist. Looking up by bytes lets a server find a file by
// a name it built in a buffer, without allocating.
func (c *Cache) Lookup(name []byte) (path string, size int64, tag string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[string(name)]
	if !ok {
		return "", 0, "", false
	}
	c.order.MoveToFront(el)
	e := el.Value.(*entry)
	return e.path, e.size, e.tag, true
}

// Put stores body as the file named name, with tag (say, the resource's ETag), unless the cache
// holds it already or it is larger than the whole cache. name must be a plain file name, not
// starting with a dot. The caller promises that body is the only content name ever has.
func (c *Cache) Put(name string, body []byte, tag string) error {
	if name == "" || strings.ContainsAny(name, `/\`) || name[0] == '.' {
		return fmt.Errorf("file cache: %q is not a plain file name", name)
	}
	size := int64(len(body))
	if size > c.limit {
		return nil
	}
	c.mu.Lock()
	_, ok := c.items[name]
	c.mu.Unlock()
	if ok {
		return nil
	}
	// Written outside the lock under a name of its own, renamed under it.
	tmp := ".tmp-" + strconv.FormatUint(c.tmp.Add(1), 10)
	if err := c.write(tmp, body); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[name]; ok {
		return c.remove(tmp)
	}
	if err := os.Rename(c.join(tmp), c.join(name)); err != nil {
		return errors.Join(fmt.Errorf("file cache: %w", err), c.remove(tmp))
	}
	c.items[name] = c.order.PushFront(&entry{name: name, path: c.join(name), size: size, tag: tag})
	c.used += size
	var err error
	for c.used > c.limit || len(c.items) > MaxFiles {
		e := c.order.Remove(c.order.Back()).(*entry)
		delete(c.items, e.name)
		c.used -= e.size
		err = errors.Join(err, c.remove(e.name))
	}
	return err
}

// Used is the bytes of files the cache holds.
func (c *Cache) Used() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// Close removes the cache's directory and everything in it; a file being sent stays readable
// until its sender closes it.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.items, c.used = map[string]*list.Element{}, 0
	c.order.Init()
	return os.RemoveAll(c.path)
}

func (c *Cache) write(tmp string, body []byte) error {
	f, err := os.OpenFile(c.join(tmp), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("file cache: %w", err)
	}
	_, werr := f.Write(body)
	if err := errors.Join(werr, f.Close()); err != nil {
		return errors.Join(fmt.Errorf("file cache: writing %s: %w", tmp, err), c.remove(tmp))
	}
	return nil
}

func (c *Cache) remove(name string) error {
	if err := os.Remove(c.join(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("file cache: %w", err)
	}
	return nil
}

func (c *Cache) join(name string) string { return c.path + string(os.PathSeparator) + name }
