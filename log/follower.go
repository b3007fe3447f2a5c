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
)

// follower tails the log and fills the Index. It owns nothing but its loop;
// the Index holds its progress, written atomically with the keys, so after a
// restart it resumes where the last write ended.
type follower struct {
	l        *Log
	interval time.Duration
	bundles  int
	logger   *slog.Logger
	// formatChecked is set once checkFormat has succeeded.
	formatChecked bool
}

// checkFormat restarts an index built with an earlier IndexFormat (having
// indexed progress entries) from entry 0, so that every entry gets the keys
// searches now ask for. Searches by digest keep working meanwhile: the old
// postings stay.
func (f *follower) checkFormat(ctx context.Context, progress uint64) error {
	format, err := f.l.index.Format(ctx)
	if err != nil {
		return fmt.Errorf("reading index format: %w", err)
	}
	if format >= IndexFormat {
		f.formatChecked = true
		return nil
	}
	if err := f.l.index.Restart(ctx, IndexFormat); err != nil {
		return fmt.Errorf("restarting index for format %d: %w", IndexFormat, err)
	}
	if progress > 0 {
		f.logger.InfoContext(ctx, "search index: rebuilding from entry 0 for search by key and identity",
			"format", format, "newFormat", IndexFormat, "indexedBefore", progress)
	}
	f.formatChecked = true
	return nil
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
		// was restored from an older backup. Indexing on would mix them up,
		// and so would restarting it for a new format.
		return false, fmt.Errorf("index covers %d entries but the log has %d: is the index directory this log's?", from, cp.size)
	}
	if !f.formatChecked {
		if err := f.checkFormat(ctx, from); err != nil {
			return false, err
		}
		if from, err = l.index.Progress(ctx); err != nil {
			return false, fmt.Errorf("reading index progress: %w", err)
		}
	}
	if from == cp.size {
		return true, nil
	}
	n := min(cp.size-from, uint64(f.bundles)*layout.EntryBundleWidth)
	// A hashedrekord with a public key has three keys (leaf, digest, signer).
	keys := make([][]byte, 0, 3*n)
	idx := make([]uint64, 0, 3*n)
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
			body := b.Entries[i]
			leaf := rfc6962.DefaultHasher.HashLeaf(body)
			ek := l.handoff.take(li, leaf)
			if ek == nil {
				if ek, err = EntryKeys(body, leaf); err != nil {
					// A leaf this log did not write (another personality shares
					// the tree) is still findable by leaf hash.
					f.logger.DebugContext(ctx, "search index: entry with a leaf hash key only", "index", li, "error", err)
				}
			}
			keys = append(keys, ek...)
			for range ek {
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
