package pebble

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
)

// failingSource serves src but fails every entry bundle from index failFrom on, as a source that
// goes away in the middle of an import.
type failingSource struct {
	ImportSource
	failFrom uint64
}

var errGone = errors.New("source went away")

func (f failingSource) ReadEntryBundle(ctx context.Context, i uint64, p uint8) ([]byte, error) {
	if i >= f.failFrom {
		return nil, errGone
	}
	return f.ImportSource.ReadEntryBundle(ctx, i, p)
}

// corruptTile serves src with one hash of level-0 tile 1 flipped.
type corruptTile struct{ ImportSource }

func (c corruptTile) ReadTile(ctx context.Context, l, i uint64, p uint8) ([]byte, error) {
	t, err := c.ImportSource.ReadTile(ctx, l, i, p)
	if err == nil && l == 0 && i == 1 {
		t = bytes.Clone(t)
		t[5] ^= 1
	}
	return t, err
}

func TestImport(t *testing.T) {
	signer, verifier := testKeys(t)
	// The source logs duplicates (no dedup), as Tessera's POSIX driver without antispam does; the
	// import must keep every index.
	src := openTestLog(t, Config{Path: filepath.Join(t.TempDir(), "src"), DisableDedup: true}, fastOptions(signer))
	entries := entryData("import", 0, 5*layout.EntryBundleWidth+17)
	entries = append(entries, entries[3], entries[700])
	src.appendAll(t, entries)
	cp := src.awaitSize(t, verifier, uint64(len(entries)))
	defer src.close(t)
	ctx := context.Background()

	t.Run("an interrupted import resumes and ends with the source's tree, bundle for bundle", func(t *testing.T) {
		dst := newEmpty(t)
		_, err := dst.Import(ctx, ImportConfig{Source: failingSource{src.s, 3}, Verifier: verifier, CommitBundles: 2, Parallel: 2})
		if !errors.Is(err, errGone) && (err == nil || !strings.Contains(err.Error(), errGone.Error())) {
			t.Fatalf("import from a failing source: %v", err)
		}
		if got, _ := dst.IntegratedSize(ctx); got != 2*layout.EntryBundleWidth {
			t.Fatalf("after the failure the database holds %d entries, want the %d of the committed bundles", got, 2*layout.EntryBundleWidth)
		}
		var progress []ImportProgress
		raw, err := dst.Import(ctx, ImportConfig{Source: src.s, Verifier: verifier, Progress: func(p ImportProgress) { progress = append(progress, p) }})
		if err != nil {
			t.Fatal(err)
		}
		if last := progress[len(progress)-1]; !last.Done || last.Entries != cp.Size || last.Start != 2*layout.EntryBundleWidth {
			t.Errorf("final progress %+v", last)
		}
		got := parseCheckpoint(t, verifier, raw)
		if got.Size != cp.Size || !bytes.Equal(got.Hash, cp.Hash) {
			t.Fatalf("imported checkpoint %d %x, source %d %x", got.Size, got.Hash, cp.Size, cp.Hash)
		}
		if latest, err := dst.ReadCheckpoint(ctx); err != nil || !bytes.Equal(latest, raw) {
			t.Fatalf("the database's latest checkpoint is not the source's: %v", err)
		}
		for i := uint64(0); i*layout.EntryBundleWidth < cp.Size; i++ {
			p := layout.PartialTileSize(0, i, cp.Size)
			want, err := src.s.ReadEntryBundle(ctx, i, p)
			if err != nil {
				t.Fatal(err)
			}
			have, err := dst.ReadEntryBundle(ctx, i, p)
			if err != nil || !bytes.Equal(have, want) {
				t.Fatalf("bundle %d differs from the source's (%v)", i, err)
			}
		}
		// The import's keys are in the dedup filter, which answers from here on.
		<-dst.filterDone
		if !dst.filter.usable() {
			t.Fatal("the dedup filter is not in use after the import")
		}
		ids := [][]byte{tessera.NewEntry(entries[3]).Identity(), tessera.NewEntry(entries[900]).Identity()}
		if idx, err := dst.DedupIndices(ctx, ids); err != nil || idx[0] != 3 || idx[1] != 900 {
			t.Errorf("dedup records of a logged-twice entry and another: %v %v, want the first copy's index 3 and 900", idx, err)
		}

		t.Run("and an appender continues it consistently", func(t *testing.T) {
			a, shutdown, _, err := tessera.NewAppender(ctx, dst, fastOptions(signer))
			if err != nil {
				t.Fatal(err)
			}
			idx, err := a.Add(ctx, tessera.NewEntry([]byte("after the import")))()
			if err != nil || idx.Index != cp.Size || idx.IsDup {
				t.Fatalf("new entry got %+v, %v; want index %d", idx, err, cp.Size)
			}
			if idx, err := a.Add(ctx, tessera.NewEntry(entries[9]))(); err != nil || !idx.IsDup || idx.Index != 9 {
				t.Fatalf("an imported entry resubmitted got %+v, %v; want a duplicate of 9", idx, err)
			}
			if err := shutdown(ctx); err != nil {
				t.Fatal(err)
			}
		})
	})

	t.Run("an import over many dedup generations finds every first copy", func(t *testing.T) {
		cfg := Config{Path: filepath.Join(t.TempDir(), "db"), dedupGenBits: 6}
		d, err := New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		dst := d.(*Storage)
		if _, err := dst.Import(ctx, ImportConfig{Source: src.s, Verifier: verifier, CommitBundles: 2}); err != nil {
			t.Fatal(err)
		}
		ids := make([][]byte, len(entries))
		for i, e := range entries {
			ids[i] = tessera.NewEntry(e).Identity()
		}
		got, err := dst.DedupIndices(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		for i, idx := range got {
			want := int64(i)
			switch i {
			case len(entries) - 2:
				want = 3
			case len(entries) - 1:
				want = 700
			}
			if idx != want {
				t.Fatalf("dedup record of entry %d names %d, want %d", i, idx, want)
			}
		}
		if err := dst.Close(); err != nil {
			t.Fatal(err)
		}
		checkLog(t, cfg, verifier, len(entries)-2)
	})

	t.Run("a source whose tile does not match its entries is refused", func(t *testing.T) {
		dst := newEmpty(t)
		if _, err := dst.Import(ctx, ImportConfig{Source: corruptTile{src.s}, Verifier: verifier}); err == nil || !strings.Contains(err.Error(), "level-0 tile") {
			t.Fatalf("import of a corrupt source: %v", err)
		}
	})

	t.Run("a source signed by another key is refused", func(t *testing.T) {
		dst := newEmpty(t)
		_, other := testKeys(t)
		if _, err := dst.Import(ctx, ImportConfig{Source: src.s, Verifier: other}); err == nil || !strings.Contains(err.Error(), "verifying the source checkpoint") {
			t.Fatalf("import under the wrong key: %v", err)
		}
		if size, _ := dst.IntegratedSize(ctx); size != 0 {
			t.Fatalf("a refused import wrote %d entries", size)
		}
	})
}

func TestFreezeAndReadOnly(t *testing.T) {
	signer, verifier := testKeys(t)
	dir := filepath.Join(t.TempDir(), "log")
	l := openTestLog(t, Config{Path: dir}, fastOptions(signer))
	l.appendAll(t, entryData("freeze", 0, 300))
	l.close(t)
	ctx := context.Background()

	d, err := New(ctx, Config{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	s := d.(*Storage)
	raw, err := s.Freeze(ctx, fastOptions(signer))
	if err != nil {
		t.Fatal(err)
	}
	if cp := parseCheckpoint(t, verifier, raw); cp.Size != 300 {
		t.Fatalf("final checkpoint for size %d, want 300", cp.Size)
	}
	if _, err := s.Freeze(ctx, fastOptions(signer)); !errors.Is(err, ErrFrozen) {
		t.Fatalf("freezing twice: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for _, ro := range []bool{false, true} {
		d, err := New(ctx, Config{Path: dir, ReadOnly: ro})
		if err != nil {
			t.Fatal(err)
		}
		s := d.(*Storage)
		if size, frozen, err := s.Frozen(); err != nil || !frozen || size != 300 {
			t.Errorf("read-only %t: Frozen() = %d, %t, %v", ro, size, frozen, err)
		}
		if _, _, _, err := tessera.NewAppender(ctx, d, fastOptions(signer)); err == nil {
			t.Errorf("read-only %t: an appender started on a frozen log", ro)
		}
		if got, err := s.ReadCheckpoint(ctx); err != nil || !bytes.Equal(got, raw) {
			t.Errorf("read-only %t: latest checkpoint is not the final one: %v", ro, err)
		}
		if _, err := s.ReadEntryBundle(ctx, 0, 0); err != nil {
			t.Errorf("read-only %t: reading bundle 0: %v", ro, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBackupWhileAppending(t *testing.T) {
	signer, verifier := testKeys(t)
	l := openTestLog(t, Config{Path: filepath.Join(t.TempDir(), "log")}, fastOptions(signer))
	first := l.appendAll(t, entryData("backup", 0, 500))
	l.awaitSize(t, verifier, uint64(len(first)))
	out := filepath.Join(t.TempDir(), "copy")
	done := make(chan error)
	go func() {
		var err error
		for _, e := range entryData("backup", 500, 500) {
			if _, ferr := l.add(context.Background(), tessera.NewEntry(e))(); ferr != nil && err == nil {
				err = ferr
			}
		}
		done <- err
	}()
	if err := l.s.Backup(out); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("appending during the backup: %v", err)
	}
	l.close(t)

	ctx := context.Background()
	d, err := New(ctx, Config{Path: out, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	c := d.(*Storage)
	defer c.Close()
	size, _ := c.IntegratedSize(ctx)
	if size < uint64(len(first)) || size > 1000 {
		t.Fatalf("backup holds %d entries, want between %d and 1000", size, len(first))
	}
	raw, err := c.ReadCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp := parseCheckpoint(t, verifier, raw); cp.Size < uint64(len(first)) {
		t.Fatalf("backed-up checkpoint covers %d entries, fewer than the %d appended before", cp.Size, len(first))
	}
}

// newEmpty opens a new database, closed when the test ends.
func newEmpty(t *testing.T) *Storage {
	t.Helper()
	d, err := New(context.Background(), Config{Path: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.(*Storage).Close() })
	return d.(*Storage)
}
