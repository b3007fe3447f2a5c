package filecache_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
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

// read returns the bytes and tag the cache holds under name, or ok false.
func read(t *testing.T, c *filecache.Cache, name string) (body []byte, tag string, ok bool) {
	t.Helper()
	path, size, tag, ok := c.Lookup([]byte(name))
	if !ok {
		return nil, "", false
	}
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	if int64(len(body)) != size {
		t.Fatalf("%s has %d bytes, the cache says %d", name, len(body), size)
	}
	return body, tag, true
}

func TestCacheKeepsWhatItWasGiven(t *testing.T) {
	c, _ := open(t, 1<<20)
	if err := c.Put("bundle-1", []byte("one"), `"v1"`); err != nil {
		t.Fatal(err)
	}
	body, tag, ok := read(t, c, "bundle-1")
	if !ok || string(body) != "one" || tag != `"v1"` {
		t.Fatalf("got %q, %q, %v; want one, \"v1\", true", body, tag, ok)
	}
	if _, _, ok := read(t, c, "bundle-2"); ok {
		t.Fatal("a name never put was found")
	}
	// A name already held keeps its first content: the caller promised it never changes.
	if err := c.Put("bundle-1", []byte("other"), `"v2"`); err != nil {
		t.Fatal(err)
	}
	if body, tag, _ := read(t, c, "bundle-1"); string(body) != "one" || tag != `"v1"` {
		t.Fatalf("after a second Put: %q, %q", body, tag)
	}
	if got := c.Used(); got != 3 {
		t.Fatalf("Used = %d, want 3", got)
	}
}

func TestCacheStaysWithinItsBytes(t *testing.T) {
	c, dir := open(t, 10)
	for i := range 5 {
		if err := c.Put("f"+strconv.Itoa(i), []byte("abcd"), ""); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Used(); got != 8 {
		t.Fatalf("Used = %d, want 8 (two 4-byte files in 10 bytes)", got)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 {
		t.Fatalf("the directory holds %d files, want the 2 the cache holds", len(ents))
	}
	for i, want := range []bool{false, false, false, true, true} {
		if _, _, ok := read(t, c, "f"+strconv.Itoa(i)); ok != want {
			t.Errorf("f%d held: %v, want %v (least recently used go first)", i, ok, want)
		}
	}
	if err := c.Put("big", make([]byte, 11), ""); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := read(t, c, "big"); ok {
		t.Error("a file larger than the cache was kept")
	}
}

func TestCacheRefusesNamesThatAreNotPlain(t *testing.T) {
	c, _ := open(t, 1<<20)
	for _, name := range []string{"", "../x", "a/b", `a\b`, ".tmp-1", "."} {
		t.Run(strconv.Quote(name)+" is refused", func(t *testing.T) {
			if err := c.Put(name, []byte("x"), ""); err == nil {
				t.Fatalf("Put(%q) succeeded", name)
			}
		})
	}
}

func TestOpenEmptiesWhatAnEarlierProcessLeft(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "files")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// A torn file left by a crash must never be served.
	if err := os.WriteFile(filepath.Join(dir, "bundle-1"), []byte("torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := filecache.Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, _, ok := c.Lookup([]byte("bundle-1")); ok {
		t.Fatal("a file from before Open is held")
	}
	if _, err := os.Stat(filepath.Join(dir, "bundle-1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the earlier file is still there: %v", err)
	}
}

func TestCloseRemovesTheFilesButNotOneBeingRead(t *testing.T) {
	c, dir := open(t, 1<<20)
	if err := c.Put("bundle-1", []byte("one"), ""); err != nil {
		t.Fatal(err)
	}
	path, _, _, _ := c.Lookup([]byte("bundle-1"))
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the directory is still there: %v", err)
	}
	var b [8]byte
	if n, _ := f.ReadAt(b[:], 0); string(b[:n]) != "one" {
		t.Fatalf("an open file read %q after Close, want one", b[:n])
	}
}

func TestConcurrentPutsOfOneNameKeepOneFile(t *testing.T) {
	c, dir := open(t, 1<<20)
	body := bytes.Repeat([]byte("entry "), 1000)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := c.Put("bundle-7", body, "t"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got, _, ok := read(t, c, "bundle-7"); !ok || !bytes.Equal(got, body) {
		t.Fatalf("held %v, %d bytes; want %d", ok, len(got), len(body))
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || c.Used() != int64(len(body)) {
		t.Fatalf("%d files, %d bytes used; want one of %d", len(ents), c.Used(), len(body))
	}
}
