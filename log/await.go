package log

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/tessera"

	ckpt "github.com/quirelog/quire/api/checkpoint"
)

// Writes wait for a published checkpoint that covers their entry. Each used to ask the Awaiter
// with a context of its own bounded by the write timeout: a timer, a context and its registration
// with the request's context, made and torn down for every write. Instead one goroutine (the
// watch) asks the Awaiter for each next checkpoint and hands it, opened and verified, to every
// write waiting, which all wake on one channel close; and the write timeout is a channel shared
// by the writes that start within the same slot of time.

// publication is what waiting writes know of the log's checkpoints: the latest one the watch saw
// (nil before the first) and a channel closed when a later one, or the watch's end, replaces it.
// err is set when the watch ended on an error: the writes waiting then fail with it. bad is set
// when a checkpoint of size badSize was published after cp but failed verification: the writes
// it covers fail as pending (their entries are sequenced), and the watch goes on to the next.
type publication struct {
	cp      *checkpoint
	err     error
	bad     error
	badSize uint64
	next    chan struct{}
}

// publications is the watch's state.
type publications struct {
	cur atomic.Pointer[publication]
	// mu serialises starting and ending the watch; watching says it runs, and closed that
	// Log.Close ran, after which none starts.
	mu       sync.Mutex
	watching atomic.Bool
	closed   bool
	// ctx bounds the watch: the log's, until Close calls stop; running counts the watch, so
	// Close can wait for it.
	ctx     context.Context
	stop    context.CancelFunc
	running sync.WaitGroup
}

// errLogClosed ends the wait of writes that reach a closed log.
var errLogClosed = errors.New("the log is closed")

// close stops the watch and waits for it to end; writes still waiting fail with errLogClosed.
func (ps *publications) close() {
	ps.mu.Lock()
	ps.closed = true
	ps.mu.Unlock()
	ps.stop()
	ps.running.Wait()
	p := ps.cur.Load()
	if p.err == nil {
		ps.cur.Store(&publication{cp: p.cp, err: errLogClosed, next: make(chan struct{})})
		close(p.next)
	}
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
		if p.bad != nil && p.badSize > index {
			return nil, &PendingError{Index: index, Err: p.bad}
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
	if ps.watching.Load() || ps.closed {
		return
	}
	if from.err != nil && ps.cur.Load() == from {
		ps.cur.Store(&publication{cp: from.cp, next: make(chan struct{})})
	}
	ps.watching.Store(true)
	ps.running.Add(1)
	go l.watchCheckpoints()
}

// watchCheckpoints asks the Awaiter for each checkpoint larger than the last it saw, until that
// fails (the storage closed, the log's context ended), and publishes each to the waiting writes.
func (l *Log) watchCheckpoints() {
	ps := &l.pubs
	defer ps.running.Done()
	p := ps.cur.Load()
	// after is the size the next checkpoint must exceed: the last one seen, verified or not, so
	// that an unverifiable checkpoint is reported once, not fetched again and again.
	var after uint64
	if p.cp != nil {
		after = p.cp.size
	}
	for {
		cp, err := l.nextCheckpoint(after)
		var bad *badCheckpointError
		var next *publication
		switch {
		case errors.As(err, &bad) && bad.size > after:
			next = &publication{cp: p.cp, bad: err, badSize: bad.size, next: make(chan struct{})}
			after = bad.size
		case err != nil:
			next = &publication{cp: p.cp, err: err, next: make(chan struct{})}
			ps.mu.Lock()
			ps.watching.Store(false)
			ps.cur.Store(next)
			ps.mu.Unlock()
			close(p.next)
			return
		default:
			next = &publication{cp: cp, next: make(chan struct{})}
			after = cp.size
		}
		ps.cur.Store(next)
		close(p.next)
		p = next
	}
}

// badCheckpointError is a published checkpoint that failed verification; size is what its
// unverified text claims, which is what the Awaiter compared.
type badCheckpointError struct {
	size uint64
	err  error
}

func (e *badCheckpointError) Error() string {
	return fmt.Sprintf("the published checkpoint of size %d failed verification: %v", e.size, e.err)
}

func (e *badCheckpointError) Unwrap() error { return e.err }

// nextCheckpoint waits for a published checkpoint larger than size and returns it, verified.
// One that fails verification is a *badCheckpointError if its size can be read.
func (l *Log) nextCheckpoint(size uint64) (*checkpoint, error) {
	_, raw, err := l.awaiter.Await(l.pubs.ctx, func() (tessera.Index, error) { return tessera.Index{Index: size}, nil })
	if err != nil {
		return nil, err
	}
	cp, err := l.openCheckpoint(raw)
	if err != nil {
		if claimed, perr := ckpt.Unverified(raw); perr == nil {
			return nil, &badCheckpointError{size: claimed.Size, err: err}
		}
		return nil, fmt.Errorf("checkpoint covering entry %d: %w", size, err)
	}
	if cp.size <= size {
		return nil, fmt.Errorf("awaiting a checkpoint covering entry %d: the awaiter returned one of size %d", size, cp.size)
	}
	return cp, nil
}
