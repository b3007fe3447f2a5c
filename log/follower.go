package log

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/quirelog/quire/api/rekor"
)

// leafKey is the index key of an RFC 6962 leaf hash: "leaf:" and the 32 raw
// bytes. It cannot collide with a digest key, which starts "sha".
func leafKey(h []byte) []byte {
	return append([]byte("leaf:"), h...)
}

// searchKeys returns every index key the follower files an entry under: its
// leaf hash, and its artifact digest when it has one (the error says why it
// has not). quire verify checks an index against the same function.
func searchKeys(data []byte) ([][]byte, error) {
	keys := [][]byte{leafKey(rfc6962.DefaultHasher.HashLeaf(data))}
	info, err := rekor.ParseEntry(data)
	if err != nil {
		return keys, err
	}
	dk, err := rekor.FormatDigest(info.DigestAlgorithm, info.Digest)
	if err != nil {
		return keys, err
	}
	return append(keys, []byte(dk)), nil
}

// follower tails the log and fills the Index. It owns nothing but its loop;
// the Index holds its progress, written atomically with the keys, so after a
// restart it resumes where the last write ended.
type follower struct {
	l        *Log
	interval time.Duration
	bundles  int
	logger   *slog.Logger
}

func (f *follower) run(ctx context.Context) {
	for ctx.Err() == nil {
		caughtUp, err := f.step(ctx)
		if err != nil && ctx.Err() == nil {
			f.logger.WarnContext(ctx, "search index follower", "error", err)
		}
		if caughtUp || err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(f.interval):
			}
		}
	}
}

// step indexes up to f.bundles entry bundles past the index's progress,
// within the latest checkpoint, and reports whether it has caught up.
func (f *follower) step(ctx context.Context) (bool, error) {
	l := f.l
	from, err := l.index.Progress(ctx)
	if err != nil {
		return false, fmt.Errorf("reading index progress: %w", err)
	}
	cp, err := l.latest(ctx)
	if errors.Is(err, ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if from > cp.size {
		// The index outran the log: it belongs to another log, or the log
		// was restored from an older backup. Indexing on would mix them up.
		return false, fmt.Errorf("index covers %d entries but the log has %d: is the index directory this log's?", from, cp.size)
	}
	if from == cp.size {
		return true, nil
	}
	n := min(cp.size-from, uint64(f.bundles)*layout.EntryBundleWidth)
	var keys [][]byte
	var idx []uint64
	for r := range layout.Range(from, n, cp.size) {
		raw, err := l.readBundle(ctx, r.Index, r.Partial)
		if err != nil {
			return false, err
		}
		var b api.EntryBundle
		if err := b.UnmarshalText(raw); err != nil {
			return false, fmt.Errorf("parsing entry bundle %d: %w", r.Index, err)
		}
		if uint(len(b.Entries)) < r.First+r.N {
			return false, fmt.Errorf("entry bundle %d has %d entries, want %d", r.Index, len(b.Entries), r.First+r.N)
		}
		for i := r.First; i < r.First+r.N; i++ {
			li := r.Index*layout.EntryBundleWidth + uint64(i)
			ks, err := searchKeys(b.Entries[i])
			if err != nil {
				// A leaf this log did not write (another personality shares
				// the tree) is still findable by leaf hash; it has no digest.
				f.logger.DebugContext(ctx, "search index: entry without a digest", "index", li, "error", err)
			}
			for _, k := range ks {
				keys = append(keys, k)
				idx = append(idx, li)
			}
		}
	}
	if err := l.index.Add(ctx, keys, idx, from+n); err != nil {
		return false, fmt.Errorf("indexing entries [%d, %d): %w", from, from+n, err)
	}
	return from+n >= cp.size, nil
}

// IndexedSize returns how many leading entries the search index covers
// (ErrUnsupported without an Index).
func (l *Log) IndexedSize(ctx context.Context) (uint64, error) {
	if l.index == nil {
		return 0, fmt.Errorf("indexed size: %w", ErrUnsupported)
	}
	return l.index.Progress(ctx)
}
