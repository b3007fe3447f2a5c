package index

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

func TestIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a new index has progress zero and no postings", func(t *testing.T) {
		p, err := d.Progress(ctx)
		if err != nil || p != 0 {
			t.Fatalf("Progress() = %d, %v; want 0, nil", p, err)
		}
		got, err := d.Lookup(ctx, []byte("a"), 0, 0)
		if err != nil || len(got) != 0 {
			t.Fatalf("Lookup() = %v, %v; want none", got, err)
		}
	})
	keys := [][]byte{[]byte("a"), []byte("ab"), []byte("a"), []byte("b"), []byte("a"), {}, {0xff, 0xff}}
	idx := []uint64{7, 3, 2, 9, 1 << 40, 5, 6}
	if err := d.Add(ctx, keys, idx, 10); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		key   []byte
		from  uint64
		limit int
		want  []uint64
	}{
		{"a key returns its indices in increasing order", []byte("a"), 0, 0, []uint64{2, 7, 1 << 40}},
		{"a key that prefixes another does not see the other's postings", []byte("ab"), 0, 0, []uint64{3}},
		{"the limit caps the answer to the smallest indices", []byte("a"), 0, 2, []uint64{2, 7}},
		{"a start index skips the smaller indices", []byte("a"), 3, 0, []uint64{7, 1 << 40}},
		{"a start index that is an index includes it", []byte("a"), 7, 1, []uint64{7}},
		{"a start index past every index finds none", []byte("a"), 1<<40 + 1, 0, nil},
		{"a start index does not reach into the next key", []byte{}, 6, 0, nil},
		{"an empty key is a key like any other", []byte{}, 0, 0, []uint64{5}},
		{"an all-0xff key is found", []byte{0xff, 0xff}, 0, 0, []uint64{6}},
		{"an unknown key has no postings", []byte("c"), 0, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.Lookup(ctx, tc.key, tc.from, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Lookup(%q) = %v, want %v", tc.key, got, tc.want)
			}
		})
	}
	t.Run("Has finds exactly the postings added", func(t *testing.T) {
		for i, k := range keys {
			if ok, err := d.Has(k, idx[i]); err != nil || !ok {
				t.Errorf("Has(%q, %d) = %t, %v; want true", k, idx[i], ok, err)
			}
		}
		if ok, err := d.Has([]byte("a"), 3); err != nil || ok {
			t.Errorf("Has(a, 3) = %t, %v; want false", ok, err)
		}
	})
	t.Run("Postings walks every posting once", func(t *testing.T) {
		var got []string
		err := d.Postings(ctx, func(k []byte, i uint64) error {
			got = append(got, fmt.Sprintf("%q@%d", k, i))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for i, k := range keys {
			want = append(want, fmt.Sprintf("%q@%d", k, idx[i]))
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("Postings walked %v, want %v", got, want)
		}
	})
	t.Run("progress cannot move backwards and a refused add writes nothing", func(t *testing.T) {
		if err := d.Add(ctx, [][]byte{[]byte("z")}, []uint64{1}, 9); err == nil {
			t.Fatal("Add with smaller progress succeeded")
		}
		if got, _ := d.Lookup(ctx, []byte("z"), 0, 0); len(got) != 0 {
			t.Fatalf("refused Add left postings %v", got)
		}
	})
	t.Run("mismatched keys and indices are refused", func(t *testing.T) {
		if err := d.Add(ctx, [][]byte{[]byte("z")}, nil, 11); err == nil {
			t.Fatal("Add with mismatched slices succeeded")
		}
	})
	t.Run("postings and progress survive reopening", func(t *testing.T) {
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		d2, err := Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d2.Close()
		p, err := d2.Progress(ctx)
		if err != nil || p != 10 {
			t.Fatalf("Progress() = %d, %v; want 10", p, err)
		}
		got, err := d2.Lookup(ctx, []byte("a"), 0, 0)
		if err != nil || !slices.Equal(got, []uint64{2, 7, 1 << 40}) {
			t.Fatalf("Lookup after reopen = %v, %v", got, err)
		}
	})
}

func TestRestart(t *testing.T) {
	ctx := context.Background()
	d, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if f, err := d.Format(ctx); err != nil || f != 0 {
		t.Fatalf("Format() of a new index = %d, %v; want 0", f, err)
	}
	if err := d.Add(ctx, [][]byte{[]byte("a")}, []uint64{3}, 10); err != nil {
		t.Fatal(err)
	}
	t.Run("a restart records the format, moves progress to 0 and keeps the postings", func(t *testing.T) {
		if err := d.Restart(ctx, 2); err != nil {
			t.Fatal(err)
		}
		f, err := d.Format(ctx)
		p, err2 := d.Progress(ctx)
		if err != nil || err2 != nil || f != 2 || p != 0 {
			t.Fatalf("after Restart(2): format %d (%v), progress %d (%v); want 2 and 0", f, err, p, err2)
		}
		if got, _ := d.Lookup(ctx, []byte("a"), 0, 0); !slices.Equal(got, []uint64{3}) {
			t.Fatalf("Lookup after restart = %v, want [3]", got)
		}
	})
	t.Run("a restart to the recorded format or an earlier one changes nothing", func(t *testing.T) {
		if err := d.Add(ctx, [][]byte{[]byte("a")}, []uint64{3}, 4); err != nil {
			t.Fatal(err)
		}
		for _, f := range []uint64{2, 1} {
			if err := d.Restart(ctx, f); err != nil {
				t.Fatal(err)
			}
			got, _ := d.Format(ctx)
			p, _ := d.Progress(ctx)
			if got != 2 || p != 4 {
				t.Fatalf("after Restart(%d): format %d, progress %d; want 2 and 4", f, got, p)
			}
		}
	})
}

// BenchmarkAdd adds batches of postings as the search follower does: keys that are hashes, so in
// no order, and ascending indices.
func BenchmarkAdd(b *testing.B) {
	ctx := context.Background()
	d, err := Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	const batch = 4096
	keys := make([][]byte, batch)
	idx := make([]uint64, batch)
	next := uint64(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := range keys {
			sum := sha256.Sum256(binary.BigEndian.AppendUint64(nil, next+uint64(j)))
			keys[j] = fmt.Appendf(keys[j][:0], "sha256:%x", sum)
			idx[j] = next + uint64(j)
		}
		next += batch
		b.StartTimer()
		if err := d.Add(ctx, keys, idx, next); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "postings/s")
}

// tablesIn opens the index in dir read-only and counts its sstables: what Close flushed, as
// opposed to what is only in the WAL.
func tablesIn(t *testing.T, dir string) int64 {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return db.Metrics().Total().TablesCount
}

func TestClose(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name         string
		commitFailed bool
		wantTables   bool
	}{
		{"a clean close flushes the postings, so the next open replays no WAL", false, true},
		{"after a failed commit close leaves the postings in the WAL for the next open", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d, err := Open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Add(ctx, [][]byte{[]byte("k")}, []uint64{4}, 5); err != nil {
				t.Fatal(err)
			}
			d.commitFailed.Store(tc.commitFailed)
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			if got := tablesIn(t, dir) > 0; got != tc.wantTables {
				t.Fatalf("tables after Close: %v, want %v", got, tc.wantTables)
			}
			d, err = Open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if p, err := d.Progress(ctx); err != nil || p != 5 {
				t.Fatalf("Progress() after reopening = %d, %v; want 5", p, err)
			}
			if ok, err := d.Has([]byte("k"), 4); err != nil || !ok {
				t.Fatalf("Has(k, 4) after reopening = %v, %v; want true", ok, err)
			}
		})
	}
}
