package mirror

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/quirelog/quire/api/client/testlog"
	"github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/fsck"
	"golang.org/x/mod/sumdb/note"
)

// benchLog returns a served log for the benchmarks: the one testlogd built in
// QUIRE_BENCH_WORK (as scripts/bench-mirror leaves it) if set, else QUIRE_BENCH_ENTRIES (default
// 100,000) entries built now.
func benchLog(b *testing.B) (url string, v note.Verifier, size int) {
	b.Helper()
	ctx := context.Background()
	var dir string
	var key testlog.Key
	if work := os.Getenv("QUIRE_BENCH_WORK"); work != "" {
		dir = filepath.Join(work, "log")
		skey, err1 := os.ReadFile(filepath.Join(work, "keys", "log.key"))
		vkey, err2 := os.ReadFile(filepath.Join(work, "keys", "log.pub"))
		if err1 != nil || err2 != nil {
			b.Fatalf("reading keys in %s: %v %v", work, err1, err2)
		}
		key = testlog.Key{SKey: strings.TrimSpace(string(skey)), VKey: strings.TrimSpace(string(vkey))}
	} else {
		size = 100000
		if s := os.Getenv("QUIRE_BENCH_ENTRIES"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				b.Fatal(err)
			}
			size = n
		}
		var err error
		if key, err = testlog.NewKey(origin); err != nil {
			b.Fatal(err)
		}
		dir = b.TempDir()
		lg, err := testlog.Open(ctx, dir, key)
		if err != nil {
			b.Fatal(err)
		}
		if err := lg.Add(ctx, testlog.Entries(0, size)); err != nil {
			b.Fatal(err)
		}
		if err := lg.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
	v, err := testlog.NewVerifier(key)
	if err != nil {
		b.Fatal(err)
	}
	srv := testlog.Serve(dir)
	b.Cleanup(srv.Close)
	f, err := client.NewHTTPFetcher(mustURL(b, srv.URL), nil)
	if err != nil {
		b.Fatal(err)
	}
	cp, _, _, err := client.FetchCheckpoint(ctx, f.ReadCheckpoint, v, v.Name())
	if err != nil {
		b.Fatal(err)
	}
	return srv.URL, v, int(cp.Size)
}

func BenchmarkMirror(b *testing.B) {
	url, v, size := benchLog(b)
	f, err := client.NewHTTPFetcher(mustURL(b, url), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		b.StartTimer()
		if _, err := Mirror(context.Background(), Config{Fetcher: f, LogVerifier: v, Dir: dir, Parallel: parallelForBench()}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

func BenchmarkTesseraFsck(b *testing.B) {
	url, v, size := benchLog(b)
	f, err := client.NewHTTPFetcher(mustURL(b, url), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if err := fsck.New(v.Name(), v, f, leafHashes, fsck.Opts{N: 8}).Check(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

func parallelForBench() uint {
	if n, err := strconv.Atoi(os.Getenv("QUIRE_BENCH_PARALLEL")); err == nil && n > 0 {
		return uint(n)
	}
	return 8
}
