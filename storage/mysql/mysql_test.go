package mysql_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/storage/mysql"
	"github.com/quirelog/quire/storage/mysql/mysqltest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mysqltest.Stop()
	os.Exit(code)
}

func TestParseURL(t *testing.T) {
	const secret = "s3cr3t-pw"
	tests := []struct {
		name, in, want, wantErr string
	}{
		{name: "a URL with user, password, address and database gives the DSN", in: "mysql://quire:" + secret + "@tcp(127.0.0.1:3306)/log", want: "quire:" + secret + "@tcp(127.0.0.1:3306)/log"},
		{name: "parameters stay on the DSN", in: "mysql://quire:" + secret + "@tcp(db:3306)/log?timeout=5s", want: "quire:" + secret + "@tcp(db:3306)/log?timeout=5s"},
		{name: "another scheme is refused", in: "postgres://quire:" + secret + "@db/log", wantErr: "does not start with mysql://"},
		{name: "a URL without a database is refused", in: "mysql://quire:" + secret + "@tcp(127.0.0.1:3306)/", wantErr: "names no database"},
		{name: "a URL without the slash before the database is refused", in: "mysql://quire:" + secret + "@tcp(127.0.0.1:3306)", wantErr: "is not mysql://"},
		{name: "an unclosed address is refused", in: "mysql://quire:" + secret + "@tcp(127.0.0.1:3306/log", wantErr: "is not mysql://"},
		{name: "an unknown parameter value is refused", in: "mysql://quire:" + secret + "@tcp(127.0.0.1:3306)/log?timeout=soon", wantErr: "is not mysql://"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mysql.ParseURL(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseURL = %q, %v; want an error containing %q", got, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error repeats the password: %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseURL = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestRedactHidesThePasswordAndKeepsTheRest(t *testing.T) {
	got := mysql.Redact("quire:s3cr3t@tcp(127.0.0.1:3306)/log")
	if strings.Contains(got, "s3cr3t") || !strings.Contains(got, "quire:") || !strings.Contains(got, "tcp(127.0.0.1:3306)/log") {
		t.Errorf("Redact = %q", got)
	}
}

// frontEnd is one front end's connection to a test database.
func frontEnd(t testing.TB, dsn string) *mysql.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := mysql.Open(ctx, mysql.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

type logKey struct {
	signer note.Signer
	vkey   string
}

func newKey(t testing.TB, origin string) logKey {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return logKey{signer: s, vkey: vkey}
}

func (k logKey) checkpoint(t *testing.T, size uint64, root byte) []byte {
	t.Helper()
	text := flog.Checkpoint{Origin: k.signer.Name(), Size: size, Hash: bytes.Repeat([]byte{root}, 32)}.Marshal()
	raw, err := note.Sign(&note.Note{Text: string(text)}, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestOpenCreatesTheSchemaOnceForManyFrontEnds(t *testing.T) {
	dsn := mysqltest.Database(t)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Go(func() {
			db, err := mysql.Open(context.Background(), mysql.Config{DSN: dsn})
			if err == nil {
				_, err = db.Driver(context.Background())
				db.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a front end opening the database at the same time as two others: %v", err)
		}
	}
}

func TestOpenSaysWhereItCouldNotConnectWithoutThePassword(t *testing.T) {
	dsn := mysqltest.Database(t)
	i := strings.Index(dsn, ":")
	j := strings.Index(dsn, "@")
	bad := dsn[:i+1] + "wrong-pw-123" + dsn[j:]
	_, err := mysql.Open(context.Background(), mysql.Config{DSN: bad})
	if err == nil {
		t.Fatal("Open with a wrong password succeeded")
	}
	if strings.Contains(err.Error(), "wrong-pw-123") || !strings.Contains(err.Error(), "connecting to MySQL") {
		t.Errorf("error = %v; want one that names the server and hides the password", err)
	}
}

func TestCheckIdentity(t *testing.T) {
	a, b := newKey(t, "a.example"), newKey(t, "b.example")
	tests := []struct {
		name string
		// prepare runs on a new database before the checks.
		prepare func(t *testing.T, db *mysql.DB)
		keys    []string
		// wantStored is the IdentityError.Stored of the last check; "-" for no error.
		wantStored string
	}{
		{name: "the first front end records its key and the same key is let in again", keys: []string{a.vkey, a.vkey}, wantStored: "-"},
		{name: "a front end with another key is refused", keys: []string{a.vkey, b.vkey}, wantStored: a.vkey},
		{name: "a database with a checkpoint of another key and no identity is refused", prepare: func(t *testing.T, db *mysql.DB) {
			writeLatestCheckpoint(t, db, b.checkpoint(t, 3, 7))
		}, keys: []string{a.vkey}, wantStored: ""},
		{name: "a database with a checkpoint of the same key and no identity is taken", prepare: func(t *testing.T, db *mysql.DB) {
			writeLatestCheckpoint(t, db, a.checkpoint(t, 3, 7))
		}, keys: []string{a.vkey}, wantStored: "-"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dsn := mysqltest.Database(t)
			if tc.prepare != nil {
				tc.prepare(t, frontEnd(t, dsn))
			}
			var err error
			for _, k := range tc.keys {
				// Each key arrives on its own front end's connection pool.
				err = frontEnd(t, dsn).CheckIdentity(context.Background(), k)
			}
			var ie *mysql.IdentityError
			switch {
			case tc.wantStored == "-" && err != nil:
				t.Fatalf("CheckIdentity: %v", err)
			case tc.wantStored == "-":
			case !errors.As(err, &ie):
				t.Fatalf("CheckIdentity = %v, want an IdentityError", err)
			case ie.Stored != tc.wantStored:
				t.Fatalf("IdentityError.Stored = %q, want %q (%v)", ie.Stored, tc.wantStored, err)
			}
		})
	}
}

// writeLatestCheckpoint stores cp as the published checkpoint, as Tessera's driver would.
func writeLatestCheckpoint(t *testing.T, db *mysql.DB, cp []byte) {
	t.Helper()
	if err := mysql.ExecForTest(db, "REPLACE INTO `Checkpoint` (`id`, `note`, `published_at`) VALUES (0, ?, ?)", cp, time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
}

func TestHistory(t *testing.T) {
	ctx := context.Background()
	h := frontEnd(t, mysqltest.Database(t)).History()
	k := newKey(t, "h.example")
	first, second := k.checkpoint(t, 5, 1), k.checkpoint(t, 5, 2)
	for _, cp := range [][]byte{first, second} {
		if err := h.Record(ctx, 5, cp); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("a size keeps the first checkpoint recorded for it", func(t *testing.T) {
		got, err := h.CheckpointAt(ctx, 5)
		if err != nil || !bytes.Equal(got, first) {
			t.Fatalf("CheckpointAt(5) = %q, %v; want %q", got, err, first)
		}
	})
	t.Run("a size never recorded is not found", func(t *testing.T) {
		if _, err := h.CheckpointAt(ctx, 6); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("CheckpointAt(6) = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("the history lists largest first, a page at a time", func(t *testing.T) {
		cps := map[uint64][]byte{5: first}
		for _, size := range []uint64{1, 9, 7} {
			cps[size] = k.checkpoint(t, size, 3)
			if err := h.Record(ctx, size, cps[size]); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			before uint64
			n      int
			want   []uint64
		}{{0, 10, []uint64{9, 7, 5, 1}}, {0, 2, []uint64{9, 7}}, {7, 2, []uint64{5, 1}}, {1, 5, nil}} {
			got, err := h.Checkpoints(ctx, tc.before, tc.n)
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("Checkpoints(%d, %d) = %d checkpoints, %v; want %d", tc.before, tc.n, len(got), err, len(tc.want))
			}
			for i, size := range tc.want {
				if !bytes.Equal(got[i], cps[size]) {
					t.Fatalf("Checkpoints(%d, %d)[%d] is not the checkpoint of size %d", tc.before, tc.n, i, size)
				}
			}
		}
	})
}

func TestIndex(t *testing.T) {
	ctx := context.Background()
	dsn := mysqltest.Database(t)
	x, y := frontEnd(t, dsn).Index(), frontEnd(t, dsn).Index()
	long := bytes.Repeat([]byte("k"), 10_000)
	if err := x.Add(ctx, [][]byte{[]byte("sha256:aa"), long, []byte("sha256:aa"), []byte("leaf:x")}, []uint64{4, 2, 1, 3}, 5); err != nil {
		t.Fatal(err)
	}
	// The other front end's follower raced for the same entries with other keys: its batch is
	// behind the progress, so it writes nothing.
	if err := y.Add(ctx, [][]byte{[]byte("sha256:bb")}, []uint64{0}, 5); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		key   []byte
		from  uint64
		limit int
		want  []uint64
	}{
		{name: "a key's indices come smallest first", key: []byte("sha256:aa"), want: []uint64{1, 4}},
		{name: "the limit cuts the list", key: []byte("sha256:aa"), limit: 1, want: []uint64{1}},
		{name: "a page starts at its from index", key: []byte("sha256:aa"), from: 2, want: []uint64{4}},
		{name: "a page past the last index is empty", key: []byte("sha256:aa"), from: 5},
		{name: "a key of ten kilobytes is found", key: long, want: []uint64{2}},
		{name: "a key added by a batch behind the progress is not found", key: []byte("sha256:bb")},
		{name: "a key that is a prefix of another is its own key", key: []byte("sha256:a")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, ix := range []*mysql.Index{x, y} {
				got, err := ix.Lookup(ctx, tc.key, tc.from, tc.limit)
				if err != nil || !slices.Equal(got, tc.want) {
					t.Fatalf("Lookup = %v, %v; want %v", got, err, tc.want)
				}
			}
		})
	}
	t.Run("every front end sees the progress", func(t *testing.T) {
		for _, ix := range []*mysql.Index{x, y} {
			if n, err := ix.Progress(ctx); err != nil || n != 5 {
				t.Fatalf("Progress = %d, %v; want 5", n, err)
			}
		}
	})
	t.Run("mismatched keys and indices are refused", func(t *testing.T) {
		if err := x.Add(ctx, [][]byte{[]byte("k")}, nil, 9); err == nil {
			t.Fatal("Add with one key and no index succeeded")
		}
		if n, _ := x.Progress(ctx); n != 5 {
			t.Fatalf("progress moved to %d after a refused Add", n)
		}
	})
}

func TestIndexRestartIsDoneByOneFrontEnd(t *testing.T) {
	ctx := context.Background()
	dsn := mysqltest.Database(t)
	x, y := frontEnd(t, dsn).Index(), frontEnd(t, dsn).Index()
	if f, err := x.Format(ctx); err != nil || f != 0 {
		t.Fatalf("Format of a new index = %d, %v; want 0", f, err)
	}
	if err := x.Add(ctx, [][]byte{[]byte("a")}, []uint64{3}, 10); err != nil {
		t.Fatal(err)
	}
	t.Run("a restart records the format, moves progress to 0 and keeps the postings", func(t *testing.T) {
		if err := x.Restart(ctx, 2); err != nil {
			t.Fatal(err)
		}
		for _, ix := range []*mysql.Index{x, y} {
			f, err := ix.Format(ctx)
			p, err2 := ix.Progress(ctx)
			if err != nil || err2 != nil || f != 2 || p != 0 {
				t.Fatalf("after Restart(2): format %d (%v), progress %d (%v); want 2 and 0", f, err, p, err2)
			}
		}
		if got, _ := y.Lookup(ctx, []byte("a"), 0, 0); !slices.Equal(got, []uint64{3}) {
			t.Fatalf("Lookup after restart = %v, want [3]", got)
		}
	})
	t.Run("another front end restarting to the same format changes nothing", func(t *testing.T) {
		if err := x.Add(ctx, [][]byte{[]byte("a")}, []uint64{3}, 4); err != nil {
			t.Fatal(err)
		}
		for _, f := range []uint64{2, 1} {
			if err := y.Restart(ctx, f); err != nil {
				t.Fatal(err)
			}
			got, _ := y.Format(ctx)
			p, _ := y.Progress(ctx)
			if got != 2 || p != 4 {
				t.Fatalf("after Restart(%d): format %d, progress %d; want 2 and 4", f, got, p)
			}
		}
	})
}

func TestIndexFrontEndsRacingForOneBatchWriteItOnce(t *testing.T) {
	ctx := context.Background()
	dsn := mysqltest.Database(t)
	var keys [][]byte
	var idx []uint64
	for i := range 2500 {
		keys = append(keys, []byte("sha256:same"))
		idx = append(idx, uint64(i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		ix := frontEnd(t, dsn).Index()
		wg.Go(func() { errs <- ix.Add(ctx, keys, idx, 2500) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := frontEnd(t, dsn).Index().Lookup(ctx, []byte("sha256:same"), 0, 0)
	if err != nil || !slices.Equal(got, idx) {
		t.Fatalf("Lookup = %d indices, %v; want the 2500 written once", len(got), err)
	}
}

func TestWatcherRefusesACheckpointTheLogDidNotSign(t *testing.T) {
	h := frontEnd(t, mysqltest.Database(t)).History()
	mine, other := newKey(t, "w.example"), newKey(t, "w.example")
	forged := other.checkpoint(t, 9, 9)
	w, err := mysql.NewWatcher(mysql.WatcherConfig{
		ReadCheckpoint: func(context.Context) ([]byte, error) { return forged, nil },
		History:        h,
		VerifierKey:    mine.vkey,
	})
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := w.ReadCheckpoint(context.Background()); err == nil {
		t.Fatalf("ReadCheckpoint = %q, want an error", cp)
	}
	if _, err := h.CheckpointAt(context.Background(), 9); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the forged checkpoint was recorded: %v", err)
	}
}

func TestWatcherHoldsACheckpointBackUntilDedupHasIndexedIt(t *testing.T) {
	ctx := context.Background()
	h := frontEnd(t, mysqltest.Database(t)).History()
	k := newKey(t, "w.example")
	published := k.checkpoint(t, 10, 1)
	var indexed uint64
	w, err := mysql.NewWatcher(mysql.WatcherConfig{
		ReadCheckpoint: func(context.Context) ([]byte, error) { return published, nil },
		History:        h,
		VerifierKey:    k.vkey,
		DedupIndexed:   func(context.Context) (uint64, error) { return indexed, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name      string
		published []byte
		indexed   uint64
		want      []byte // nil: not yet
	}{
		{name: "a checkpoint beyond what dedup indexed is not yet given", published: k.checkpoint(t, 10, 1), indexed: 9},
		{name: "once dedup covers it, it is given", published: k.checkpoint(t, 10, 1), indexed: 10, want: k.checkpoint(t, 10, 1)},
		{name: "a newer one not covered leaves the older one given", published: k.checkpoint(t, 20, 2), indexed: 15, want: k.checkpoint(t, 10, 1)},
		{name: "an older one seen in between is given once covered", published: k.checkpoint(t, 30, 3), indexed: 25, want: k.checkpoint(t, 20, 2)},
		{name: "the newest is given once covered", published: k.checkpoint(t, 30, 3), indexed: 31, want: k.checkpoint(t, 30, 3)},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			published, indexed = s.published, s.indexed
			got, err := w.ReadCheckpoint(ctx)
			if s.want == nil {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("ReadCheckpoint = %q, %v; want fs.ErrNotExist", got, err)
				}
			} else if err != nil || !bytes.Equal(got, s.want) {
				t.Fatalf("ReadCheckpoint = %q, %v; want %q", got, err, s.want)
			}
			if rec, err := h.CheckpointAt(ctx, sizeOf(t, s.published)); err != nil || !bytes.Equal(rec, s.published) {
				t.Fatalf("history at the published size = %q, %v", rec, err)
			}
		})
	}
}

func sizeOf(t *testing.T, cp []byte) uint64 {
	t.Helper()
	text, _, _ := bytes.Cut(cp, []byte("\n\n"))
	var c flog.Checkpoint
	// A new slice: appending to text would write into cp, which others may be reading.
	if _, err := c.Unmarshal(append(bytes.Clone(text), '\n')); err != nil {
		t.Fatal(err)
	}
	return c.Size
}

// TestTwoFrontEndsShareOneLog runs Tessera's appender twice on one database, as two front ends
// do: an entry added on one is answered on the other with the first copy's index, and every
// answered checkpoint is in the history of both.
func TestTwoFrontEndsShareOneLog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dsn := mysqltest.Database(t)
	k := newKey(t, "two.example")
	type fe struct {
		db       *mysql.DB
		appender *tessera.Appender
		awaiter  *tessera.PublicationAwaiter
	}
	var fes []fe
	for range 2 {
		db := frontEnd(t, dsn)
		if err := db.CheckIdentity(ctx, k.vkey); err != nil {
			t.Fatal(err)
		}
		drv, err := db.Driver(ctx)
		if err != nil {
			t.Fatal(err)
		}
		dedup, err := db.Dedup(ctx, 4096)
		if err != nil {
			t.Fatal(err)
		}
		w, err := mysql.NewWatcher(mysql.WatcherConfig{ReadCheckpoint: drv.ReadCheckpoint, History: db.History(), VerifierKey: k.vkey, DedupIndexed: dedup.Indexed})
		if err != nil {
			t.Fatal(err)
		}
		actx, stop := context.WithCancel(ctx)
		appender, shutdown, _, err := tessera.NewAppender(actx, drv, tessera.NewAppendOptions().
			WithCheckpointSigner(k.signer).WithCheckpointInterval(time.Second).WithBatching(64, 20*time.Millisecond).
			WithAntispam(tessera.DefaultAntispamInMemorySize, dedup.Antispam))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := shutdown(sctx); err != nil {
				t.Errorf("shutting down an appender: %v", err)
			}
			stop()
		})
		fes = append(fes, fe{db: db, appender: appender, awaiter: tessera.NewPublicationAwaiter(actx, w.ReadCheckpoint, 50*time.Millisecond)})
	}
	add := func(f fe, data string) (tessera.Index, []byte) {
		t.Helper()
		i, cp, err := f.awaiter.Await(ctx, f.appender.Add(ctx, tessera.NewEntry([]byte(data))))
		if err != nil {
			t.Fatalf("adding %q: %v", data, err)
		}
		return i, cp
	}
	first, cp := add(fes[0], "entry one")
	add(fes[1], "entry two")
	again, _ := add(fes[1], "entry one")
	if !again.IsDup || again.Index != first.Index {
		t.Errorf("the copy sent to the second front end got %+v, want a duplicate of index %d", again, first.Index)
	}
	for i, f := range fes {
		got, err := f.db.History().CheckpointAt(ctx, sizeOf(t, cp))
		if err != nil || !bytes.Equal(got, cp) {
			t.Errorf("front end %d: history at the answered size = %q, %v; want %q", i, got, err, cp)
		}
	}
}
