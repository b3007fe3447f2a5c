package pebble

import (
	"context"
	"errors"
	"fmt"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/tessera"
)

// publishRetryMin is the shortest pause before retrying a failed publication.
const publishRetryMin = 500 * time.Millisecond

// publishFn signs (and witnesses) a checkpoint for a tree; it is AppendOptions.CheckpointPublisher.
type publishFn func(ctx context.Context, size uint64, root []byte) ([]byte, error)

// Appender starts the appender lifecycle: a queue flushing by opts.BatchMaxSize/BatchMaxAge into
// one sequencing goroutine, and a checkpoint publisher running every opts.CheckpointInterval.
// The returned LogReader is s. Only one appender may run per Storage.
func (s *Storage) Appender(ctx context.Context, opts *tessera.AppendOptions) (*tessera.Appender, tessera.LogReader, error) {
	if opts == nil {
		return nil, nil, errors.New("pebble storage: nil AppendOptions")
	}
	if opts.BatchMaxSize() == 0 {
		return nil, nil, errors.New("pebble storage: BatchMaxSize must be positive")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return nil, nil, errors.New("pebble storage is closed")
	case s.started:
		return nil, nil, errors.New("pebble storage: an appender is already running")
	case s.importing:
		return nil, nil, errors.New("pebble storage: an import is running")
	case s.cfg.ReadOnly:
		return nil, nil, errors.New("pebble storage: opened read-only")
	}
	if size, frozen, err := s.Frozen(); err != nil {
		return nil, nil, err
	} else if frozen {
		return nil, nil, fmt.Errorf("the log was frozen at size %d: %w", size, ErrFrozen)
	}

	seq, err := newSequencer(s)
	if err != nil {
		return nil, nil, fmt.Errorf("starting sequencer: %w", err)
	}
	publish := publishFn(opts.CheckpointPublisher(s, s.cfg.HTTPClient))
	// Like Tessera's POSIX driver, a log always has a checkpoint once an appender has run, so
	// readers and Tessera's shutdown never see os.ErrNotExist from a live log.
	if s.pub.Load().cp == nil {
		if err := s.publish(ctx, publish); err != nil {
			return nil, nil, fmt.Errorf("publishing first checkpoint: %w", err)
		}
	}

	actx, cancel := context.WithCancel(ctx)
	s.appendCtx, s.cancel = actx, cancel
	s.maxOutstanding = int64(opts.PushbackMaxOutstanding())
	depth := 2
	if s.maxOutstanding > 0 {
		depth += int(s.maxOutstanding / int64(opts.BatchMaxSize()))
	}
	s.q = newQueue(opts.BatchMaxSize(), opts.BatchMaxAge(), depth)
	s.seqDone, s.pubStop, s.pubDone = make(chan struct{}), make(chan struct{}), make(chan struct{})
	s.nudgePub = make(chan struct{}, 1)
	s.started = true

	go seq.run(actx, s.q.out)
	go s.publishLoop(actx, publish, opts.CheckpointInterval(), opts.CheckpointRepublishInterval())
	return &tessera.Appender{Add: s.add}, s, nil
}

// publishLoop publishes a checkpoint soon after each integration, at most once per interval, and
// republishes an unchanged tree every repub (if repub > 0). It is the only writer of checkpoints,
// so published sizes never go backwards.
func (s *Storage) publishLoop(ctx context.Context, publish publishFn, interval, repub time.Duration) {
	defer close(s.pubDone)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if wait, due := s.publishDue(interval, repub); !due {
			if wait > 0 {
				timer.Reset(wait)
			} else {
				timer.Stop()
			}
		} else if err := s.publish(ctx, publish); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.cfg.Logger.Warn("pebble storage: publishing checkpoint", "error", err)
			// Integration goes on while publication fails (say, witnesses short of quorum with
			// fail-closed), so waking on every integration would retry once per batch, asking
			// every witness each time and logging each failure. Retry on the timer alone.
			timer.Reset(max(interval, publishRetryMin))
			select {
			case <-ctx.Done():
				return
			case <-s.pubStop:
				return
			case <-timer.C:
			}
			continue
		} else {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-s.pubStop:
			return
		case <-s.nudgePub:
		case <-timer.C:
		}
	}
}

// publishDue says whether a checkpoint should be published now, or else how long until one might
// be (0 = not until the tree grows).
func (s *Storage) publishDue(interval, repub time.Duration) (time.Duration, bool) {
	head, pub := s.tree.Load(), s.pub.Load()
	if pub.cp == nil {
		return 0, true
	}
	age := time.Since(time.Unix(0, pub.atNano))
	switch {
	case head.size > pub.size && age >= interval:
		return 0, true
	case head.size > pub.size:
		return interval - age, false
	case repub <= 0:
		return 0, false
	case age >= repub:
		return 0, true
	default:
		return repub - age, false
	}
}

// publish signs a checkpoint for the current integrated tree, stores it (latest and history) in
// one synced batch, and only then makes it visible and wakes Await callers. Config.OnPublish and
// the publications metric hear of every attempt.
func (s *Storage) publish(ctx context.Context, publish publishFn) error {
	size, cp, err := s.publishOnce(ctx, publish)
	result := publishOK
	if err != nil {
		result = publishFailed
	}
	s.metrics.publications.WithLabelValues(result).Inc()
	if s.cfg.OnPublish != nil {
		s.cfg.OnPublish(size, cp, err)
	}
	return err
}

func (s *Storage) publishOnce(ctx context.Context, publish publishFn) (uint64, []byte, error) {
	head, prev := s.tree.Load(), s.pub.Load()
	if prev.cp != nil && head.size < prev.size {
		return head.size, nil, fmt.Errorf("integrated size %d is below published size %d", head.size, prev.size)
	}
	cp, err := publish(ctx, head.size, head.root)
	if err != nil {
		return head.size, nil, fmt.Errorf("signing checkpoint for size %d: %w", head.size, err)
	}
	now := time.Now().UnixNano()
	wb := s.db.NewBatch()
	defer wb.Close()
	if err := wb.Set([]byte{keyCheckpoint}, encodePublished(now, head.size, cp), nil); err != nil {
		return head.size, nil, fmt.Errorf("batching checkpoint for size %d: %w", head.size, err)
	}
	if err := wb.Set(historyKey(head.size), cp, nil); err != nil {
		return head.size, nil, fmt.Errorf("batching checkpoint history for size %d: %w", head.size, err)
	}
	if err := wb.Commit(pdb.Sync); err != nil {
		return head.size, nil, fmt.Errorf("committing checkpoint for size %d: %w", head.size, err)
	}
	s.pub.Store(&published{size: head.size, atNano: now, cp: cp, next: make(chan struct{})})
	close(prev.next)
	return head.size, cp, nil
}

// Await resolves f and then blocks until a published checkpoint covers its index, returning the
// index and that checkpoint: the contract of tessera.PublicationAwaiter.Await, but woken by the
// publisher instead of polling, so waiters cost one channel receive each.
func (s *Storage) Await(ctx context.Context, f tessera.IndexFuture) (tessera.Index, []byte, error) {
	idx, err := f()
	if err != nil {
		return idx, nil, err
	}
	for {
		p := s.pub.Load()
		if p.cp != nil && p.size > idx.Index {
			return idx, p.cp, nil
		}
		if p.closed {
			return idx, nil, fmt.Errorf("awaiting checkpoint covering index %d: storage closed", idx.Index)
		}
		select {
		case <-p.next:
		case <-ctx.Done():
			return idx, nil, fmt.Errorf("awaiting checkpoint covering index %d: %w", idx.Index, ctx.Err())
		}
	}
}
