package mysql

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/tessera"
)

// Strong deduplication across front ends.
//
// Tessera's MySQL antispam finds an entry only once its follower has read the entry back from
// the integrated log, a second or more after it was sequenced; two front ends given the same
// entry within that lag would both log it. So before appending, a front end claims the entry's
// identity hash (tessera.Entry.Identity, the key Tessera's antispam uses) by inserting it into
// QuireClaim, whose primary key is that hash; the claims of concurrent writes go in one INSERT
// IGNORE and one SELECT that says which rows are whose. The database lets one insert win:
//
//   - The winner appends through Tessera's antispam (which still finds entries logged without a
//     claim: imported, or written before claims existed) and the driver, and then records the
//     index it got in its claim. The records of many entries go in one statement.
//   - A loser polls the claim, with backoff and for as long as its request's context allows,
//     until the index is recorded, and answers it as a duplicate: the first copy's index.
//
// A claim holds a lease on the database's clock (so front ends' clocks may disagree), which its
// front end renews while the entry is on its way; a claim whose lease ran out belongs to a front
// end that died (or lost the database) between claiming and recording. A waiter takes such a
// claim over with one UPDATE that only one waiter can win (WHERE idx IS NULL AND lease_until <
// now). The dead claimer may have got the entry sequenced, so the new owner does not append at
// once: it reads the integrated tree size under a shared lock on the tree-state row, which waits
// for any batch transaction still running (a dead client's commit in progress finishes or rolls
// back first), waits until Tessera's antispam follower has indexed that many entries, and only
// then appends through Tessera's antispam, which answers with the dead claimer's index if it got
// that far. The interleavings, and why each ends with the entry logged once:
//
//   - Two front ends claim at once: the primary key admits one row; the other waits. Claims
//     written in one statement are in hash order, so two statements never deadlock.
//   - A request ends while its claim is being written: a claim won for it is deleted, as
//     nothing was appended for it.
//   - The claimer sequences, then records: waiters see the index on their next poll.
//   - The claimer's append fails with pushback: nothing was sequenced (Tessera's antispam and the
//     driver push back before queueing), so it deletes its claim, and the next copy claims
//     afresh. Only a first owner deletes: after a takeover no owner knows what its predecessor
//     did, so a claim that was ever taken over is never deleted.
//   - The append fails otherwise (a batch transaction error, whose commit may or may not have
//     happened): the claimer ends its lease at once, so the next copy takes over and checks the
//     log as after a crash.
//   - The claimer dies after claiming, before its batch commits: the batch never commits (a
//     transaction of a closed connection rolls back), the lease runs out, a waiter takes over,
//     finds nothing in the log and appends.
//   - The claimer dies after its batch committed, before recording: the takeover's locked read
//     sees the committed size, the follower reaches it, Tessera's antispam answers the index.
//   - The claimer dies while its commit is in flight: the locked read waits for the commit.
//   - The recording statement fails: the front end stops renewing those claims, which then lapse
//     and are taken over as after a crash.
//   - Two waiters find a lapsed claim: the UPDATE's rows-affected lets one of them own it.
//   - A front end frozen (not dead) for longer than the lease with an entry still in its
//     in-memory batch could commit it after another took over and appended: the one case that
//     logs twice, and why the lease (DefaultClaimLease) is many batch ages long and renewed every
//     third of it. A front end that lost the database for that long fails its batch transactions
//     as well.
//
// Every front end of a database must claim: one running without claims (an older Quire) still
// deduplicates only as Tessera's antispam does. The claim table keeps one row per entry of the
// log (64 bytes of columns, plus the engine's per-row overhead), as Tessera's antispam table
// does; neither is ever pruned, since a copy may come at any time.

// DefaultClaimLease is how long a claim outlives its front end's last renewal: how long copies
// of an entry wait for a front end that died holding its claim, before one takes over.
const DefaultClaimLease = 10 * time.Second

// MinClaimLease is the shortest lease allowed: a lease must outlast many batch ages, or a live
// front end's claims lapse while its entries wait for their batch.
const MinClaimLease = time.Second

// dbNowMillis is the database's clock in milliseconds since 1970, in any session time zone.
const dbNowMillis = "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)"

// A claim's owner is a token of 16 bytes, unique to one claiming or taking over: the front end's
// random ID and a counter. One attempt that failed is then never taken for a later one.
const (
	frontEndIDLen = 8
	claimOwnerLen = frontEndIDLen + 8
)

const (
	pollSQL   = "SELECT `idx`, `lease_until` < " + dbNowMillis + " FROM `QuireClaim` WHERE `h` = ?"
	takeSQL   = "UPDATE `QuireClaim` SET `owner` = ?, `lease_until` = " + dbNowMillis + " + ? WHERE `h` = ? AND `idx` IS NULL AND `lease_until` < " + dbNowMillis
	deleteSQL = "DELETE FROM `QuireClaim` WHERE `h` = ? AND `owner` = ? AND `idx` IS NULL"
	expireSQL = "UPDATE `QuireClaim` SET `lease_until` = 0 WHERE `h` = ? AND `owner` = ? AND `idx` IS NULL"
	// A shared lock: it waits for the batch transaction holding the row, if any.
	lockedSizeSQL = "SELECT `size` FROM `TreeState` WHERE `id` = 0 LOCK IN SHARE MODE"
)

// Polling bounds: a waiter's first poll comes about when a batch of the claimer commits, and the
// follower of Tessera's antispam looks for new entries once a second.
const (
	pollFirst         = 5 * time.Millisecond
	pollMax           = 250 * time.Millisecond
	followerPollFirst = 50 * time.Millisecond
	followerPollMax   = time.Second
	// maxRecordBatch bounds the rows of one recording or renewing statement.
	maxRecordBatch = 512
	// settleTimeout bounds each statement of the background work.
	settleTimeout = 30 * time.Second
)

// claims is a tessera.Antispam: Tessera's MySQL antispam with claims in front of it.
type claims struct {
	db      *sql.DB
	inner   tessera.Antispam
	indexed func(context.Context) (uint64, error)
	// frontEnd prefixes the tokens of this front end's claims; seq numbers them.
	frontEnd []byte
	seq      atomic.Uint64
	lease    time.Duration
	logger   *slog.Logger

	mu sync.Mutex
	// held are the claims this front end owns and has not settled, to renew.
	held map[string]struct{}

	claimReqs chan claimRequest
	claimDone chan struct{}
	records   chan claimRecord
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// claimRecord is the index an owned claim's entry got.
type claimRecord struct {
	h   []byte
	idx uint64
}

// claimRequest asks claimLoop to claim h for token.
type claimRequest struct {
	h, token []byte
	reply    chan claimReply // buffered: claimLoop never waits for the requester
}

// claimReply says whether the claim is the requester's, and if not, the index its owner
// recorded, if any.
type claimReply struct {
	mine bool
	idx  sql.NullInt64
	err  error
}

func newClaims(db *sql.DB, inner tessera.Antispam, indexed func(context.Context) (uint64, error), lease time.Duration, logger *slog.Logger) (*claims, error) {
	id := make([]byte, frontEndIDLen)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("drawing a claim owner ID: %w", err)
	}
	c := &claims{
		db: db, inner: inner, indexed: indexed, frontEnd: id, lease: lease, logger: logger,
		held:      map[string]struct{}{},
		claimReqs: make(chan claimRequest, maxRecordBatch),
		claimDone: make(chan struct{}),
		records:   make(chan claimRecord, 4*maxRecordBatch),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	go c.run()
	go c.claimLoop()
	return c, nil
}

// token returns a new claim owner token.
func (c *claims) token() []byte {
	return binary.BigEndian.AppendUint64(bytes.Clone(c.frontEnd), c.seq.Add(1))
}

// Follower is Tessera's antispam follower: the claims need nothing from the log.
func (c *claims) Follower(b func([]byte) ([][]byte, error)) tessera.Follower {
	return c.inner.Follower(b)
}

// Decorator claims each entry before Tessera's antispam decorator and the driver see it.
func (c *claims) Decorator() func(tessera.AddFn) tessera.AddFn {
	innerDecorator := c.inner.Decorator()
	return func(delegate tessera.AddFn) tessera.AddFn {
		add := innerDecorator(delegate)
		return func(ctx context.Context, e *tessera.Entry) tessera.IndexFuture {
			return c.add(ctx, e, add)
		}
	}
}

// claimState is what acquire found.
type claimState int

const (
	claimedFirst  claimState = iota // this front end inserted the claim
	tookOver                        // this front end took a lapsed claim over
	alreadyLogged                   // another owner recorded the entry's index
)

func (c *claims) add(ctx context.Context, e *tessera.Entry, add tessera.AddFn) tessera.IndexFuture {
	h := e.Identity()
	state, idx, token, err := c.acquire(ctx, h)
	if err != nil {
		return failed(err)
	}
	if state == alreadyLogged {
		return func() (tessera.Index, error) { return tessera.Index{Index: idx, IsDup: true}, nil }
	}
	if state == tookOver {
		if err := c.awaitFollower(ctx); err != nil {
			c.settle(h, token, false)
			return failed(err)
		}
	}
	f := sync.OnceValues(add(ctx, e))
	// The entry gets sequenced whether or not the request still waits for it: its index is
	// recorded all the same.
	go func() {
		i, err := f()
		if err != nil {
			// Pushback comes before anything is queued: nothing was sequenced.
			c.settle(h, token, state == claimedFirst && errors.Is(err, tessera.ErrPushback))
			return
		}
		select {
		case c.records <- claimRecord{h: h, idx: i.Index}:
		case <-c.stop:
			// Shutting down: the claim lapses and a later copy finds the entry as after a crash.
			c.unhold(h)
		}
	}()
	return f
}

func failed(err error) tessera.IndexFuture {
	return func() (tessera.Index, error) { return tessera.Index{}, err }
}

// acquire claims h, or waits until its owner records an index or lets the claim lapse. It
// returns the token of the claim it holds, which is held (renewed) until settled or recorded.
func (c *claims) acquire(ctx context.Context, h []byte) (claimState, uint64, []byte, error) {
	for {
		token := c.token()
		r := c.claim(ctx, h, token)
		switch {
		case r.err != nil:
			return 0, 0, nil, r.err
		case r.mine:
			return claimedFirst, 0, token, nil
		case r.idx.Valid:
			return alreadyLogged, uint64(r.idx.Int64), nil, nil
		}
		for wait := pollFirst; ; wait = min(2*wait, pollMax) {
			select {
			case <-ctx.Done():
				// As pushback: the entry is on its way, and a retry will find it.
				return 0, 0, nil, fmt.Errorf("waiting for the front end logging the same entry: %w (%w)", tessera.ErrPushback, ctx.Err())
			case <-time.After(wait):
			}
			var idx sql.NullInt64
			var lapsed bool
			err := c.db.QueryRowContext(ctx, pollSQL, h).Scan(&idx, &lapsed)
			if errors.Is(err, sql.ErrNoRows) {
				// Its first owner was pushed back and let it go: claim it anew.
				break
			}
			if err != nil {
				return 0, 0, nil, fmt.Errorf("reading the claim of entry %x: %w", h, err)
			}
			if idx.Valid {
				return alreadyLogged, uint64(idx.Int64), nil, nil
			}
			if lapsed {
				token := c.token()
				// Held before the takeover commits, so that its lease never goes unrenewed.
				c.hold(h)
				res, err := c.db.ExecContext(ctx, takeSQL, token, c.lease.Milliseconds(), h)
				if err != nil {
					c.unhold(h)
					return 0, 0, nil, fmt.Errorf("taking over the lapsed claim of entry %x: %w", h, err)
				}
				if n, err := res.RowsAffected(); err != nil {
					c.unhold(h)
					return 0, 0, nil, fmt.Errorf("taking over the lapsed claim of entry %x: %w", h, err)
				} else if n == 1 {
					return tookOver, 0, token, nil
				}
				// Another waiter took it over: wait for that one instead.
				c.unhold(h)
			}
		}
	}
}

// claim asks claimLoop to claim h for token. A claim won for a request that stopped waiting is
// deleted: nothing was appended for it.
func (c *claims) claim(ctx context.Context, h, token []byte) claimReply {
	req := claimRequest{h: h, token: token, reply: make(chan claimReply, 1)}
	gaveUp := func(err error) claimReply {
		return claimReply{err: fmt.Errorf("claiming entry %x: %w (%w)", h, tessera.ErrPushback, err)}
	}
	select {
	case c.claimReqs <- req:
	case <-ctx.Done():
		return gaveUp(ctx.Err())
	case <-c.claimDone:
		return claimReply{err: errors.New("claiming an entry: deduplication is closed")}
	}
	select {
	case r := <-req.reply:
		if r.mine {
			c.hold(h)
		}
		return r
	case <-ctx.Done():
		go func() {
			if r := <-req.reply; r.mine {
				c.hold(h)
				c.settle(h, token, true)
			}
		}()
		return gaveUp(ctx.Err())
	}
}

// claimLoop claims, in one INSERT and one SELECT, what the requests waiting together ask for.
func (c *claims) claimLoop() {
	defer close(c.claimDone)
	for {
		select {
		case <-c.stop:
			return
		case r := <-c.claimReqs:
			c.claimBatch(drain(c.claimReqs, r))
		}
	}
}

func (c *claims) claimBatch(batch []claimRequest) {
	// In hash order, as every statement that writes several claims, so that two front ends'
	// statements lock shared rows in the same order and never deadlock.
	slices.SortStableFunc(batch, func(a, b claimRequest) int { return bytes.Compare(a.h, b.h) })
	rows := make([]string, len(batch))
	args := make([]any, 0, 3*len(batch))
	hs := make([]any, len(batch))
	for i, r := range batch {
		rows[i] = "(?, ?, " + dbNowMillis + " + ?)"
		args = append(args, r.h, r.token, c.lease.Milliseconds())
		hs[i] = r.h
	}
	reply := func(f func(r claimRequest) claimReply) {
		for _, r := range batch {
			r.reply <- f(r)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	if _, err := c.db.ExecContext(ctx, "INSERT IGNORE INTO `QuireClaim` (`h`, `owner`, `lease_until`) VALUES "+strings.Join(rows, ", "), args...); err != nil {
		reply(func(claimRequest) claimReply {
			return claimReply{err: fmt.Errorf("claiming %d entries: %w", len(batch), err)}
		})
		return
	}
	type claimRow struct {
		owner []byte
		idx   sql.NullInt64
	}
	found := make(map[string]claimRow, len(batch))
	err := func() error {
		q := "SELECT `h`, `owner`, `idx` FROM `QuireClaim` WHERE `h` IN (?" + strings.Repeat(", ?", len(hs)-1) + ")"
		rs, err := c.db.QueryContext(ctx, q, hs...)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var h []byte
			var row claimRow
			if err := rs.Scan(&h, &row.owner, &row.idx); err != nil {
				return err
			}
			found[string(h)] = row
		}
		return rs.Err()
	}()
	if err != nil {
		// The claims won are not known: they lapse, and are taken over as after a crash.
		reply(func(claimRequest) claimReply {
			return claimReply{err: fmt.Errorf("reading %d claims: %w", len(batch), err)}
		})
		return
	}
	// A row missing now was deleted by a first owner pushed back since: the requester finds
	// it missing and claims again.
	reply(func(r claimRequest) claimReply {
		row := found[string(r.h)]
		return claimReply{mine: bytes.Equal(row.owner, r.token), idx: row.idx}
	})
}

// awaitFollower waits until Tessera's antispam has indexed every entry of the integrated tree,
// including any batch a dead front end was committing.
func (c *claims) awaitFollower(ctx context.Context) error {
	size, err := c.lockedSize(ctx)
	if err != nil {
		return err
	}
	wait := followerPollFirst
	for {
		n, err := c.indexed(ctx)
		if err != nil {
			return fmt.Errorf("reading antispam progress: %w", err)
		}
		if n >= size {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for antispam to index %d entries (at %d) before logging a lapsed claim's entry: %w (%w)", size, n, tessera.ErrPushback, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, followerPollMax)
	}
}

func (c *claims) lockedSize(ctx context.Context) (uint64, error) {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("reading tree size: %w", err)
	}
	var size uint64
	if err := tx.QueryRowContext(ctx, lockedSizeSQL).Scan(&size); err != nil {
		_ = tx.Rollback()
		return 0, fmt.Errorf("reading tree size: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("reading tree size: %w", err)
	}
	return size, nil
}

// settle ends an owned claim whose entry this front end did not log. It deletes the claim only
// when it is sure nothing was sequenced for it (del: a first owner, pushed back or never
// appending); otherwise it ends the lease, so that the next copy checks the log first.
func (c *claims) settle(h, token []byte, del bool) {
	defer c.unhold(h)
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	q := expireSQL
	if del {
		q = deleteSQL
	}
	if _, err := c.db.ExecContext(ctx, q, h, token); err != nil {
		// The lease runs out by itself.
		c.logger.Warn("releasing a claim", "entry_identity", fmt.Sprintf("%x", h), "err", err)
	}
}

func (c *claims) hold(h []byte) {
	c.mu.Lock()
	c.held[string(h)] = struct{}{}
	c.mu.Unlock()
}

func (c *claims) unhold(hs ...[]byte) {
	c.mu.Lock()
	for _, h := range hs {
		delete(c.held, string(h))
	}
	c.mu.Unlock()
}

// run records indices, many per statement, and renews the leases of held claims.
func (c *claims) run() {
	defer close(c.done)
	renew := time.NewTicker(c.lease / 3)
	defer renew.Stop()
	for {
		select {
		case r := <-c.records:
			c.record(drain(c.records, r))
		case <-renew.C:
			c.renew()
		case <-c.stop:
			for {
				select {
				case r := <-c.records:
					c.record(drain(c.records, r))
				default:
					return
				}
			}
		}
	}
}

// drain returns first and what already waits behind it in ch, up to a batch: under load the
// statements grow with what arrived while the last one ran, and alone an item waits for nothing.
func drain[T any](ch <-chan T, first T) []T {
	batch := []T{first}
	for len(batch) < maxRecordBatch {
		select {
		case r := <-ch:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// record writes the indices into their claims. A claim already holding an index keeps it: then
// another owner took the claim over while this one was frozen, and both copies are in the log.
func (c *claims) record(batch []claimRecord) {
	hs := make([][]byte, len(batch))
	args := make([]any, 0, 3*len(batch)+1)
	rows := make([]string, len(batch))
	slices.SortStableFunc(batch, func(a, b claimRecord) int { return bytes.Compare(a.h, b.h) })
	for i, r := range batch {
		hs[i] = r.h
		rows[i] = "(?, ?, 0, ?)"
		args = append(args, r.h, make([]byte, claimOwnerLen), r.idx)
	}
	defer c.unhold(hs...)
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	// VALUES() names the inserted row in MariaDB and MySQL alike (MySQL 8.0.20+ warns).
	q := "INSERT INTO `QuireClaim` (`h`, `owner`, `lease_until`, `idx`) VALUES " + strings.Join(rows, ", ") +
		" ON DUPLICATE KEY UPDATE `idx` = COALESCE(`idx`, VALUES(`idx`))"
	if _, err := c.db.ExecContext(ctx, q, args...); err != nil {
		// Unrenewed, the claims lapse, and copies find the entries as after a crash.
		c.logger.Warn("recording the indices of claimed entries", "entries", len(batch), "err", err)
	}
}

// renew extends the leases of the claims this front end holds.
func (c *claims) renew() {
	c.mu.Lock()
	hs := make([][]byte, 0, len(c.held))
	for h := range c.held {
		hs = append(hs, []byte(h))
	}
	c.mu.Unlock()
	slices.SortFunc(hs, bytes.Compare)
	ctx, cancel := context.WithTimeout(context.Background(), c.lease/3)
	defer cancel()
	for len(hs) > 0 {
		n := min(len(hs), maxRecordBatch)
		args := []any{c.lease.Milliseconds(), c.frontEnd}
		for _, h := range hs[:n] {
			args = append(args, h)
		}
		q := "UPDATE `QuireClaim` SET `lease_until` = " + dbNowMillis + " + ? WHERE LEFT(`owner`, " + strconv.Itoa(frontEndIDLen) + ") = ? AND `idx` IS NULL AND `h` IN (?" + strings.Repeat(", ?", n-1) + ")"
		if _, err := c.db.ExecContext(ctx, q, args...); err != nil {
			c.logger.Warn("renewing claims", "claims", n, "err", err)
			return
		}
		hs = hs[n:]
	}
}

// close records what is waiting and stops renewing; claims still held then lapse.
func (c *claims) close() {
	c.closeOnce.Do(func() { close(c.stop) })
	<-c.done
}
