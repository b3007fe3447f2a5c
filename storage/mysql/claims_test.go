package mysql_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api"
	tclient "github.com/transparency-dev/tessera/client"
	tmysql "github.com/transparency-dev/tessera/storage/mysql"

	"github.com/quirelog/quire/storage/mysql"
	"github.com/quirelog/quire/storage/mysql/mysqltest"
)

// claimFrontEnd is one front end's appender on a test database, as `quire serve` wires it.
type claimFrontEnd struct {
	db       *mysql.DB
	drv      *tmysql.Storage
	appender *tessera.Appender
	dedup    *mysql.Dedup // nil for a front end without deduplication
}

// startClaimFrontEnd starts an appender on its own connection pool; without dedup it stands for
// a front end that logs without claims (an older Quire, or an import).
func startClaimFrontEnd(t *testing.T, dsn string, k logKey, lease time.Duration, dedup bool) *claimFrontEnd {
	t.Helper()
	ctx := context.Background()
	db, err := mysql.Open(ctx, mysql.Config{DSN: dsn, ClaimLease: lease})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CheckIdentity(ctx, k.vkey); err != nil {
		t.Fatal(err)
	}
	fe := &claimFrontEnd{db: db}
	if fe.drv, err = db.Driver(ctx); err != nil {
		t.Fatal(err)
	}
	opts := tessera.NewAppendOptions().WithCheckpointSigner(k.signer).WithCheckpointInterval(time.Second).WithBatching(64, 20*time.Millisecond)
	if dedup {
		if fe.dedup, err = db.Dedup(ctx, 4096); err != nil {
			t.Fatal(err)
		}
		opts = opts.WithAntispam(tessera.DefaultAntispamInMemorySize, fe.dedup.Antispam)
	}
	actx, stop := context.WithCancel(ctx)
	appender, shutdown, _, err := tessera.NewAppender(actx, fe.drv, opts)
	if err != nil {
		t.Fatal(err)
	}
	fe.appender = appender
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := shutdown(sctx); err != nil {
			t.Errorf("shutting down an appender: %v", err)
		}
		if fe.dedup != nil {
			fe.dedup.Close()
		}
		stop()
		db.Close()
	})
	return fe
}

func (fe *claimFrontEnd) add(ctx context.Context, data string) (tessera.Index, error) {
	return fe.appender.Add(ctx, tessera.NewEntry([]byte(data)))()
}

// logged reads the whole log through fe and returns the indices of each entry.
func (fe *claimFrontEnd) logged(t *testing.T) map[string][]uint64 {
	t.Helper()
	ctx := context.Background()
	size, err := fe.drv.IntegratedSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	unbundle := func(b []byte) ([][]byte, error) {
		var eb api.EntryBundle
		if err := eb.UnmarshalText(b); err != nil {
			return nil, err
		}
		return eb.Entries, nil
	}
	got := map[string][]uint64{}
	for e, err := range tclient.Entries(tclient.EntryBundles(ctx, 2, fe.drv.IntegratedSize, fe.drv.ReadEntryBundle, 0, size), unbundle) {
		if err != nil {
			t.Fatalf("reading the log: %v", err)
		}
		got[string(e.Entry)] = append(got[string(e.Entry)], e.Index)
	}
	return got
}

// waitIndexed waits until Tessera's antispam follower has indexed the whole integrated tree.
func (fe *claimFrontEnd) waitIndexed(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	size, err := fe.drv.IntegratedSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for {
		n, err := fe.dedup.Indexed(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n >= size {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("antispam indexed %d of %d entries in a minute", n, size)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// checkAnswers says whether every answer names the same index, exactly one of them as the new
// entry, and that index holds the entry, once, in the log.
func checkAnswers(data string, answers []tessera.Index, log map[string][]uint64) error {
	firsts := 0
	for _, a := range answers {
		if !a.IsDup {
			firsts++
		}
		if a.Index != answers[0].Index {
			return fmt.Errorf("%q was answered with different indices: %+v", data, answers)
		}
	}
	if firsts != 1 {
		return fmt.Errorf("%q was answered as new %d times: %+v", data, firsts, answers)
	}
	if got := log[data]; !slices.Equal(got, []uint64{answers[0].Index}) {
		return fmt.Errorf("%q is in the log at %v; answered %d", data, got, answers[0].Index)
	}
	return nil
}

// TestClaimsThreeFrontEndsRacingLogEachEntryOnce sends each entry to three front ends at the
// same moment: each entry is logged once and every answer carries its index. Without claims
// (Tessera's antispam alone) most of these entries are logged two or three times.
func TestClaimsThreeFrontEndsRacingLogEachEntryOnce(t *testing.T) {
	dsn := mysqltest.Database(t)
	k := newKey(t, "claims.example")
	var fes []*claimFrontEnd
	for range 3 {
		fes = append(fes, startClaimFrontEnd(t, dsn, k, 0, true))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const entries = 60
	answers := make([][3]tessera.Index, entries)
	errs := make([][3]error, entries)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := range entries {
		for j, fe := range fes {
			wg.Go(func() {
				<-release
				answers[i][j], errs[i][j] = fe.add(ctx, fmt.Sprintf("raced entry %d", i))
			})
		}
	}
	close(release)
	wg.Wait()
	log := fes[0].logged(t)
	for i := range entries {
		if err := errors.Join(errs[i][:]...); err != nil {
			t.Errorf("entry %d: %v", i, err)
			continue
		}
		if err := checkAnswers(fmt.Sprintf("raced entry %d", i), answers[i][:], log); err != nil {
			t.Error(err)
		}
	}
	if len(log) != entries {
		t.Errorf("the log holds %d distinct entries, want %d", len(log), entries)
	}
}

// TestClaimsALapsedClaimIsTakenOver: a front end that claimed an entry and died blocks its copies
// only until its lease runs out; then one of them logs the entry, once, whether or not the dead
// front end got it into the log, and the others answer its index.
func TestClaimsALapsedClaimIsTakenOver(t *testing.T) {
	const lease = time.Second
	tests := []struct {
		name string
		// claimLease is the dead claimer's lease.
		claimLease time.Duration
		// sequenced: the dead claimer got the entry into the log before dying, just now, so
		// that Tessera's antispam has not indexed it yet when the copies arrive.
		sequenced bool
	}{
		{name: "a claimer that died before appending leaves the entry to the next copy", claimLease: lease},
		{name: "a claimer that died after its entry was sequenced has it found, not logged again", claimLease: time.Millisecond, sequenced: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dsn := mysqltest.Database(t)
			k := newKey(t, "lapse.example")
			fes := []*claimFrontEnd{startClaimFrontEnd(t, dsn, k, lease, true), startClaimFrontEnd(t, dsn, k, lease, true)}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			const data = "entry of a dead claimer"
			if err := mysql.ClaimForTest(fes[0].db, tessera.NewEntry([]byte(data)).Identity(), tc.claimLease); err != nil {
				t.Fatal(err)
			}
			var want []tessera.Index
			if tc.sequenced {
				// The dead claimer's appender: Tessera's driver with no deduplication of its own.
				i, err := startClaimFrontEnd(t, dsn, k, lease, false).add(ctx, data)
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, i)
			}
			start := time.Now()
			answers := make([]tessera.Index, len(fes))
			errs := make([]error, len(fes))
			var wg sync.WaitGroup
			for j, fe := range fes {
				wg.Go(func() { answers[j], errs[j] = fe.add(ctx, data) })
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			if waited := time.Since(start); waited < tc.claimLease/2 {
				t.Errorf("answered after %s, before the dead claimer's lease of %s could run out", waited, tc.claimLease)
			}
			if err := checkAnswers(data, append(want, answers...), fes[0].logged(t)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestClaimsFindEntriesLoggedWithoutClaims: an entry logged by a front end that did not claim
// (an older Quire, an import) is answered with its index once Tessera's antispam has indexed
// it, and its claim then records that index.
func TestClaimsFindEntriesLoggedWithoutClaims(t *testing.T) {
	dsn := mysqltest.Database(t)
	k := newKey(t, "old.example")
	old := startClaimFrontEnd(t, dsn, k, 0, false)
	fe := startClaimFrontEnd(t, dsn, k, 0, true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const data = "entry logged before claims"
	first, err := old.add(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	fe.waitIndexed(t)
	var answers []tessera.Index
	for range 2 {
		i, err := fe.add(ctx, data)
		if err != nil {
			t.Fatal(err)
		}
		answers = append(answers, i)
	}
	for _, a := range answers {
		if !a.IsDup || a.Index != first.Index {
			t.Errorf("copy answered %+v, want a duplicate of %d", a, first.Index)
		}
	}
	if got := fe.logged(t)[data]; !slices.Equal(got, []uint64{first.Index}) {
		t.Errorf("the entry is in the log at %v, want only %d", got, first.Index)
	}
}

// TestClaimsAWaiterGivesUpAsPushback: a copy whose request ends while another front end holds
// the entry's claim gets pushback (a retry will find the entry), not a storage error.
func TestClaimsAWaiterGivesUpAsPushback(t *testing.T) {
	dsn := mysqltest.Database(t)
	fe := startClaimFrontEnd(t, dsn, newKey(t, "wait.example"), time.Minute, true)
	const data = "entry claimed elsewhere"
	if err := mysql.ClaimForTest(fe.db, tessera.NewEntry([]byte(data)).Identity(), time.Minute); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	i, err := fe.add(ctx, data)
	if !errors.Is(err, tessera.ErrPushback) {
		t.Fatalf("add = %+v, %v; want an error wrapping tessera.ErrPushback", i, err)
	}
	if got := fe.logged(t)[data]; len(got) != 0 {
		t.Fatalf("the entry was logged at %v while another front end held its claim", got)
	}
}

func TestOpenRefusesALeaseShorterThanTheMinimum(t *testing.T) {
	_, err := mysql.Open(context.Background(), mysql.Config{DSN: "quire:pw@tcp(127.0.0.1:1)/log", ClaimLease: 10 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "shorter than") {
		t.Fatalf("Open with a 10ms claim lease = %v, want an error saying it is too short", err)
	}
}
