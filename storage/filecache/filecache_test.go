//go:build unix

package filecache_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/quirelog/quire/storage/filecache"
)

func open(t *testing.T, limit int64) (*filecache.Cache, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "files")
	c, err := filecache.Open(dir, limit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, dir
}

// readAt reads f's bytes through its descriptor, as sendfile would, at an explicit offset.
func readAt(t *testing.T, f *filecache.File) []byte {
	t.Helper()
	b := make([]byte, f.Size()+1)
	n, err := syscall.Pread(int(f.Fd()), b, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b[:n]
}

// put puts name twice, as the cache writes a file at its second Put.
func put(t *testing.T, c *filecache.Cache, name string, body []byte, tag string) {
	t.Helper()
	for range 2 {
		if err := c.Put(name, body, tag); err != nil {
			t.Fatal(err)
		}
	}
}

// read returns the bytes and tag the cache holds under name, or ok false.
func read(t *testing.T, c *filecache.Cache, name string) (body []byte, tag string, ok bool) {
	t.Helper()
	f := c.Get([]byte(name))
	if f == nil {
		return nil, "", false
	}
	defer f.Release()
	return readAt(t, f), f.Tag(), true
}

func TestCacheKeepsWhatItWasGiven(t *testing.T) {
	c, dir := open(t, 1<<20)
	put(t, c, "bundle-1", []byte("one"), `"v1"`)
	body, tag, ok := read(t, c, "bundle-1")
	if !ok || string(body) != "one" || tag != `"v1"` {
		t.Fatalf("got %q, %q, %v; want one, \"v1\", true", body, tag, ok)
	}
	if _, _, ok := read(t, c, "bundle-2"); ok {
		t.Fatal("a name never put was found")
	}
	// A name already held keeps its first content: the caller promised it never changes.
	put(t, c, "bundle-1", []byte("other"), `"v2"`)
	if body, tag, _ := read(t, c, "bundle-1"); string(body) != "one" || tag != `"v1"` {
		t.Fatalf("after a second Put: %q, %q", body, tag)
	}
	if got := c.Used(); got != 3 {
		t.Fatalf("Used = %d, want 3", got)
	}
	// The files have no names: nothing in the directory can be opened, torn or stale.
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Fatalf("the directory holds %d entries (%v), want none", len(ents), err)
	}
}

func TestCacheWritesAFileAtItsSecondPut(t *testing.T) {
	c, _ := open(t, 1<<20)
	if err := c.Put("bundle-1", []byte("one"), ""); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := read(t, c, "bundle-1"); ok {
		t.Fatal("a file was written at its first Put")
	}
	if err := c.Put("bundle-1", []byte("one"), ""); err != nil {
		t.Fatal(err)
	}
	if body, _, ok := read(t, c, "bundle-1"); !ok || string(body) != "one" {
		t.Fatalf("after a second Put: %q, %v", body, ok)
	}
}

func TestCacheStaysWithinItsBytes(t *testing.T) {
	c, _ := open(t, 10)
	for i := range 5 {
		put(t, c, "f"+strconv.Itoa(i), []byte("abcd"), "")
	}
	if got, n := c.Used(), c.Len(); got != 8 || n != 2 {
		t.Fatalf("Used = %d, Len = %d; want two 4-byte files in 10 bytes", got, n)
	}
	for i, want := range []bool{false, false, false, true, true} {
		if _, _, ok := read(t, c, "f"+strconv.Itoa(i)); ok != want {
			t.Errorf("f%d held: %v, want %v (least recently used go first)", i, ok, want)
		}
	}
	put(t, c, "big", make([]byte, 11), "")
	if _, _, ok := read(t, c, "big"); ok {
		t.Error("a file larger than the cache was kept")
	}
}

func TestCacheHoldsAtMostMaxFiles(t *testing.T) {
	c, _ := open(t, 1<<30)
	for i := range filecache.MaxFiles + 10 {
		put(t, c, strconv.Itoa(i), []byte("x"), "")
	}
	if n := c.Len(); n != filecache.MaxFiles {
		t.Fatalf("Len = %d, want %d", n, filecache.MaxFiles)
	}
	if _, _, ok := read(t, c, "0"); ok {
		t.Error("the first file is still held")
	}
}

func TestOpenEmptiesWhatAnEarlierProcessLeft(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "files")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// What a crash mid-write left.
	if err := os.WriteFile(filepath.Join(dir, ".tmp-1"), []byte("torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := filecache.Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Fatalf("the directory holds %d entries (%v), want none", len(ents), err)
	}
}

func TestAFileBeingSentOutlivesItsEviction(t *testing.T) {
	c, dir := open(t, 4)
	put(t, c, "a", []byte("abcd"), "")
	held := c.Get([]byte("a"))
	if held == nil {
		t.Fatal("a is not held")
	}
	// Evicts a, which is still being read.
	put(t, c, "b", []byte("efgh"), "")
	if c.Get([]byte("a")) != nil {
		t.Fatal("a is still in the cache")
	}
	if got := readAt(t, held); string(got) != "abcd" {
		t.Fatalf("read %q from the evicted file, want abcd", got)
	}
	held.Release()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the directory is still there after Close: %v", err)
	}
	if err := c.Put("c", []byte("x"), ""); err != nil || c.Len() != 0 {
		t.Fatalf("Put after Close: %v, %d files held", err, c.Len())
	}
}

func TestConcurrentPutsOfOneNameKeepOneFile(t *testing.T) {
	c, _ := open(t, 1<<20)
	body := bytes.Repeat([]byte("entry "), 1000)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			// Twice, as a file is written at its name's second Put.
			if err := errors.Join(c.Put("bundle-7", body, "t"), c.Put("bundle-7", body, "t")); err != nil {
				t.Error(err)
			}
			if got, _, ok := read(t, c, "bundle-7"); !ok || !bytes.Equal(got, body) {
				t.Errorf("held %v, %d bytes; want %d", ok, len(got), len(body))
			}
		})
	}
	wg.Wait()
	if c.Len() != 1 || c.Used() != int64(len(body)) {
		t.Fatalf("%d files, %d bytes used; want one of %d", c.Len(), c.Used(), len(body))
	}
}
