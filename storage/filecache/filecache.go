// Package filecache keeps copies of immutable resources (full tiles, entry bundles, their gzip
// forms) in open files, bounded in bytes, so that a server can send them with sendfile(2): the kernel then
// moves the bytes from its page cache to the socket, as it does for nginx serving a static file,
// rather than the server copying them from its own memory into every answer.
//
// A file is written whole under a temporary name in the cache's directory, then unlinked at once
// and kept open: it has no name anyone could open, it is freed when the cache lets go of it (or
// the process ends), and a crash mid-write leaves at most the temporary file, which Open removes.
// Files stay open between requests because opening one costs about as much as sending it (5 µs
// here); an evicted file is closed only once the last request sending it is done. The page cache
// holding the files is the kernel's to reclaim, so it adds nothing to the server's own memory; the
// cache holds at most MaxFiles open files.
package filecache

import (
	"container/list"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// MaxFiles bounds how many files the cache holds open, whatever their sizes, so that its file
// descriptors (and its index, about 200 bytes a file) stay few beside a server's connections.
const MaxFiles = 4096

// Cache is a byte-bounded LRU of open files named by the caller. It is safe for concurrent use.
type Cache struct {
	dir   string
	limit int64

	mu     sync.Mutex // guards what follows
	used   int64
	order  *list.List // front = most recently used; elements hold *File
	items  map[string]*list.Element
	closed bool
	// seen holds the names Put was given once and declined, at most MaxFiles of them: a file is
	// written at its name's second Put, so that reads spread over far more resources than the
	// cache holds do not pay a file write at every miss for files evicted before a second read.
	seen map[string]struct{}
}

// File is an open file of the cache, held by whoever Get returned it to until Release.
type File struct {
	name string
	f    *os.File
	fd   uintptr
	size int64
	tag  string
	// refs counts the cache (while the file is in it) and each holder.
	refs atomic.Int32
}

// Fd is the file's descriptor, valid until Release; read it with pread or sendfile at explicit
// offsets, never through the shared file offset.
func (f *File) Fd() uintptr { return f.fd }

// Size is the file's length in bytes.
func (f *File) Size() int64 { return f.size }

// Tag is what the file was put with (say, the resource's ETag).
func (f *File) Tag() string { return f.tag }

// Release gives back what Get returned; the file is closed once neither the cache nor any holder
// has it.
func (f *File) Release() {
	if f.refs.Add(-1) == 0 {
		_ = f.f.Close()
	}
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
	return &Cache{dir: dir, limit: limit, order: list.New(), items: make(map[string]*list.Element), seen: make(map[string]struct{})}, nil
}

// Get returns the file named name, or nil if the cache does not hold it. The caller must Release
// it. Looking up by bytes lets a server find a file by a name it built in a buffer, without
// allocating.
func (c *Cache) Get(name []byte) *File {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[string(name)]
	if !ok {
		return nil
	}
	c.order.MoveToFront(el)
	f := el.Value.(*File)
	f.refs.Add(1)
	return f
}

// Put stores body as the file named name, with tag, unless the cache holds it already, it is
// larger than the whole cache, or this is the first Put of name (see Cache.seen). The caller
// promises that body is the only content name ever has.
func (c *Cache) Put(name string, body []byte, tag string) error {
	size := int64(len(body))
	if size > c.limit {
		return nil
	}
	c.mu.Lock()
	_, held := c.items[name]
	_, seen := c.seen[name]
	if !held && !seen {
		if len(c.seen) >= MaxFiles {
			clear(c.seen)
		}
		c.seen[name] = struct{}{}
	}
	closed := c.closed
	c.mu.Unlock()
	if held || !seen || closed {
		return nil
	}
	// Written outside the lock; two requests may write the same file, and the second is dropped.
	f, err := c.write(body)
	if err != nil {
		return err
	}
	file := &File{name: name, f: f, fd: f.Fd(), size: size, tag: tag}
	file.refs.Store(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[name]; ok || c.closed {
		file.Release()
		return nil
	}
	delete(c.seen, name)
	c.items[name] = c.order.PushFront(file)
	c.used += size
	for c.used > c.limit || len(c.items) > MaxFiles {
		c.evictLocked(c.order.Back())
	}
	return nil
}

func (c *Cache) evictLocked(el *list.Element) {
	f := c.order.Remove(el).(*File)
	delete(c.items, f.name)
	c.used -= f.size
	f.Release()
}

// write writes body to a new file in c.dir and unlinks it, returning it open.
func (c *Cache) write(body []byte) (*os.File, error) {
	f, err := os.CreateTemp(c.dir, ".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("file cache: %w", err)
	}
	_, werr := f.Write(body)
	if err := errors.Join(werr, os.Remove(f.Name())); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, fmt.Errorf("file cache: writing %s: %w", f.Name(), err)
	}
	return f, nil
}

// Used is the bytes of files the cache holds.
func (c *Cache) Used() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// Len is the number of files the cache holds.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

// Close lets go of every file (one being sent is closed when its holder releases it) and removes
// the cache's directory; Put then keeps nothing.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.order.Len() > 0 {
		c.evictLocked(c.order.Back())
	}
	c.closed = true
	return os.RemoveAll(c.dir)
}
