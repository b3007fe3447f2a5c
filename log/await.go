package log

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/tessera"
)

// Writes wait for a published checkpoint that covers their entry. Each used to ask the Awaiter
// with a context of its own bounded by the write timeout: a timer, a context and its registration
// with the request's context, made and torn down for every write. Instead one goroutine (the
// watch) asks the Awaiter for each next checkpoint and hands it, opened and verified, to every
// write waiting, which all wake on one channel close; and the write timeout is a channel shared
// by the writes that start within the same slot of time.

// publication is what waiting writes know of the log's checkpoints: the latest one the watch saw
// (nil before the first) and a channel closed when a later one, or the watch's end, replaces it.
// err is set when the watch ended on an error: the writes waiting then fail with it.
type publication struct {
	cp   *checkpoint
	err  error
	next chan struct{}
}

// publications is the watch's state.
type publications struct {
	cur atomic.Pointer[publication]
	// mu serialises starting and ending the watch; watching says it runs.
	mu       sync.Mutex
	watching atomic.Bool
	// ctx bounds the watch: the log's.
	ctx context.Context
}

// deadlineSlots is how many slots a write timeout spans: the writes that start within one
// slot share the slot's deadline, so a write waits between the timeout and 1/deadlineSlots more.
const deadlineSlots = 64

// deadlines hands out the shared write-timeout channels. Most writes find the current slot's
// deadline late enough and take it without a lock.
type deadlines struct {
	cur atomic.Pointer[deadline]
	// mu serialises making a slot.
	mu sync.Mutex
}

type deadline struct {
	at   time.Time
	done chan struct{}
}

// after returns a channel closed at least wait from now, and at most wait/deadlineSlots later.
func (d *deadlines) after(wait time.Duration) <-chan struct{} {
	earliest := time.Now().Add(wait)
	if dl := d.cur.Load(); dl != nil && !dl.at.Before(earliest) {
		return dl.done
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if dl := d.cur.Load(); dl != nil && !dl.at.Before(earliest) {
		return dl.done
	}
	in := wait + wait/deadlineSlots
	dl := &deadline{at: time.Now().Add(in), done: make(chan struct{})}
	time.AfterFunc(in, func() { close(dl.done) })
	d.cur.Store(dl)
	return dl.done
}

// awaitCheckpoint waits until a published checkpoint covers index and returns it, verified. It
// fails with a *PendingError when ctx ends or the write timeout passes first, and with the
// Awaiter's error when the watch ends on one while it waits.
func (l *Log) awaitCheckpoint(ctx context.Context, index uint64) (*checkpoint, error) {
	timeout := l.timeouts.after(l.writeWait)
	p := l.pubs.cur.Load()
	if p.err != nil || !l.pubs.watching.Load() {
		// The first write, or the last watch ended on an error before this write began
		// waiting: start one.
		l.watch(p)
		p = l.pubs.cur.Load()
	}
	for {
		if p.cp != nil && p.cp.size > index {
			return p.cp, nil
		}
		if p.err != nil {
			return nil, l.storageFault(fmt.Errorf("awaiting a checkpoint covering entry %d: %w", index, p.err))
		}
		select {
		case <-p.next:
			p = l.pubs.cur.Load()
		case <-ctx.Done():
			return nil, &PendingError{Index: index, Err: context.Cause(ctx)}
		case <-timeout:
			return nil, &PendingError{Index: index, Err: ErrWriteTimeout}
		}
	}
}

// watch starts the watch unless it runs. from is the publication the caller saw: one that ended
// a watch on an error is replaced, keeping its checkpoint, so that later writes wait anew.
func (l *Log) watch(from *publication) {
	ps := &l.pubs
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.watching.Load() {
		return
	}
	if from.err != nil && ps.cur.Load() == from {
		ps.cur.Store(&publication{cp: from.cp, next: make(chan struct{})})
	}
	ps.watching.Store(true)
	go l.watchCheckpoints()
}

// watchCheckpoints asks the Awaiter for each checkpoint larger than the last it saw, until that
// fails (the storage closed, the log's context ended), and publishes each to the waiting writes.
func (l *Log) watchCheckpoints() {
	ps := &l.pubs
	for {
		p := ps.cur.Load()
		var size uint64
		if p.cp != nil {
			size = p.cp.size
		}
		cp, err := l.nextCheckpoint(size)
		next := &publication{cp: cp, next: make(chan struct{})}
		if err != nil {
			next = &publication{cp: p.cp, err: err, next: make(chan struct{})}
			ps.mu.Lock()
			ps.watching.Store(false)
			ps.cur.Store(next)
			ps.mu.Unlock()
			close(p.next)
			return
		}
		ps.cur.Store(next)
		close(p.next)
	}
}

// nextCheckpoint waits for a published checkpoint larger than size and returns it, verified.
func (l *Log) nextCheckpoint(size uint64) (*checkpoint, error) {
	_, raw, err := l.awaiter.Await(l.pubs.ctx, func() (tessera.Index, error) { return tessera.Index{Index: size}, nil })
	if err != nil {
		return nil, err
	}
	cp, err := l.openCheckpoint(raw)
	if err != nil {
		return nil, fmt.Errorf("checkpoint covering entry %d: %w", size, err)
	}
	if cp.size <= size {
		return nil, fmt.Errorf("awaiting a checkpoint covering entry %d: the awaiter returned one of size %d", size, cp.size)
	}
	return cp, nil
}
