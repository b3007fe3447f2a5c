// Command crashtest kills Quire's servers with SIGKILL under load and checks that nothing they
// promised was lost: every acknowledged entry survives kill -9 at any moment, and no two
// checkpoints for the same log are inconsistent, ever.
//
// The log: `quire serve` runs under write load from many goroutines submitting really signed
// hashedrekord entries, and a poller reading /checkpoint. After each SIGKILL and restart, and at
// the end, every 201 answer must be at its index in the entry bundles with the same bytes
// (canonicalizedBody), and every checkpoint any client saw (201 envelopes, polls) must be a prefix
// of the current tree by an RFC 6962 consistency proof built from the tiles. At the end Tessera's
// fsck rebuilds the tree from the bundles. It prints
//
//	cycles=N acknowledged=M lost=0 inconsistent=0
//
// The witness: a Tessera POSIX log and a fork of it signed with the same key push checkpoints to
// `quire-witness serve`, which is SIGKILLed at random moments. Every cosignature it returns is
// verified with its vkey; after each restart it must still hold the largest size it cosigned; at
// the end no two cosigned checkpoints may be inconsistent (C2SP tlog-witness, "add-checkpoint").
// It prints
//
//	witness cycles=N cosigned=M inconsistent=0
//
// With -scaleout N, the log instead runs as N `quire serve` front ends on one MySQL database
// under load spread over them: copies of acknowledged entries go to other front ends and must get
// the first copy's index, entries sent to two front ends at once must get true answers, one front
// end is SIGKILLed mid-load and brought back, every acknowledged entry is re-read through two front
// ends, every checkpoint seen on any of them is proven a prefix of the final tree, every answered
// checkpoint must be in each front end's history, and Tessera's fsck command must print its
// success line. It prints
//
//	scaleout frontends=N killed=1 acknowledged=M lost=0 inconsistent=0 duplicates=D dup_wrong=0 ...
//
// and exits 1 on any loss or inconsistency. scripts/crashtest/run builds the binaries and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/klog/v2"
)

type options struct {
	quireBin      string
	witnessBin    string
	fsckBin       string
	workDir       string
	cycles        int
	witnessCycles int
	writers       int
	maxUp         time.Duration
	sample        int
	quick         bool
	verbose       bool
	scaleout      int
}

// scaleoutDSNEnv names the environment variable with the DSN of the database -scaleout uses.
const scaleoutDSNEnv = "QUIRE_CRASHTEST_MYSQL_DSN"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintf(stderr, "crashtest: %v\n", err)
		return 2
	}
	if !o.verbose {
		// Tessera's POSIX driver and fsck log progress through klog; only -v wants it.
		klog.LogToStderr(false)
		klog.SetOutput(io.Discard)
	}
	logf := func(format string, a ...any) {
		if o.verbose {
			fmt.Fprintf(stderr, "crashtest: "+format+"\n", a...)
		}
	}
	failed := false
	if o.quireBin != "" && o.scaleout > 0 {
		if !runScaleoutCmd(ctx, o, stdout, stderr, logf) {
			failed = true
		}
	} else if o.quireBin != "" {
		dir, err := os.MkdirTemp(o.workDir, "quire-")
		if err != nil {
			fmt.Fprintf(stderr, "crashtest: %v\n", err)
			return 1
		}
		res, err := runServerCrash(ctx, serverConfig{
			QuireBin: o.quireBin, FsckBin: o.fsckBin, WorkDir: dir, Cycles: o.cycles,
			Writers: o.writers, MaxUp: o.maxUp, Sample: o.sample, Logf: logf,
		})
		if err != nil {
			fmt.Fprintf(stderr, "crashtest: quire serve: %v (files in %s)\n", err, dir)
			return 1
		}
		fmt.Fprintf(stdout, "cycles=%d acknowledged=%d lost=%d inconsistent=%d\n", res.Cycles, res.Acknowledged, res.Lost, res.Inconsistent)
		logf("final tree size %d, distinct checkpoints checked %d", res.TreeSize, res.Checkpoints)
		if res.Lost != 0 || res.Inconsistent != 0 || res.Acknowledged == 0 {
			failed = true
			fmt.Fprintf(stderr, "crashtest: quire serve FAILED (files kept in %s)\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}
	if o.witnessBin != "" {
		dir, err := os.MkdirTemp(o.workDir, "witness-")
		if err != nil {
			fmt.Fprintf(stderr, "crashtest: %v\n", err)
			return 1
		}
		res, err := runWitnessCrash(ctx, witnessConfig{
			WitnessBin: o.witnessBin, WorkDir: dir, Cycles: o.witnessCycles, MaxUp: o.maxUp, Logf: logf,
		})
		if err != nil {
			fmt.Fprintf(stderr, "crashtest: quire-witness: %v (files in %s)\n", err, dir)
			return 1
		}
		fmt.Fprintf(stdout, "witness cycles=%d cosigned=%d inconsistent=%d\n", res.Cycles, res.Cosigned, res.Inconsistent)
		logf("fork checkpoints refused with 422: %d", res.ForkRefused)
		if res.Inconsistent != 0 || res.ForkRefused == 0 {
			failed = true
			fmt.Fprintf(stderr, "crashtest: quire-witness FAILED (files kept in %s)\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}
	if failed {
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("crashtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.quireBin, "quire", "", "quire binary; the log test runs when set")
	fs.StringVar(&o.witnessBin, "quire-witness", "", "quire-witness binary; the witness test runs when set")
	fs.StringVar(&o.fsckBin, "fsck", "", "Tessera cmd/fsck binary to run against the log at the end (the fsck package always runs)")
	fs.StringVar(&o.workDir, "workdir", os.TempDir(), "where data directories are made; kept on failure")
	fs.IntVar(&o.cycles, "cycles", 100, "SIGKILL cycles of quire serve")
	fs.IntVar(&o.witnessCycles, "witness-cycles", 0, "SIGKILL cycles of quire-witness (default: -cycles)")
	fs.IntVar(&o.writers, "writers", 48, "concurrent writers")
	fs.DurationVar(&o.maxUp, "max-up", 1500*time.Millisecond, "longest a server runs before it is killed")
	fs.IntVar(&o.sample, "sample", 300, "older acknowledged entries re-read after each restart")
	fs.BoolVar(&o.quick, "quick", false, "a short run: 5 cycles each, 16 writers, kills within 600ms")
	fs.BoolVar(&o.verbose, "v", false, "log each cycle")
	fs.IntVar(&o.scaleout, "scaleout", 0, "instead of the log test, run `N` quire serve front ends on the MySQL database of $"+scaleoutDSNEnv+" under load and SIGKILL one of them, -max-up into the load")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		if !set["cycles"] {
			o.cycles = 5
		}
		if !set["writers"] {
			o.writers = 16
		}
		if !set["max-up"] {
			o.maxUp = 600 * time.Millisecond
		}
	}
	if o.scaleout == 1 || o.scaleout < 0 {
		return nil, fmt.Errorf("-scaleout takes at least 2 front ends")
	}
	if o.witnessCycles == 0 {
		o.witnessCycles = o.cycles
	}
	if o.cycles <= 0 || o.writers <= 0 || o.maxUp <= 0 || o.sample < 0 {
		return nil, fmt.Errorf("-cycles, -writers and -max-up must be positive")
	}
	if o.quireBin == "" && o.witnessBin == "" {
		return nil, fmt.Errorf("nothing to test: give -quire and/or -quire-witness")
	}
	return o, nil
}

// runScaleoutCmd runs the scale-out test and prints its line; it reports whether it passed.
func runScaleoutCmd(ctx context.Context, o *options, stdout, stderr io.Writer, logf func(string, ...any)) bool {
	dsn := os.Getenv(scaleoutDSNEnv)
	if dsn == "" {
		fmt.Fprintf(stderr, "crashtest: -scaleout needs $%s, the DSN of a MySQL database (scripts/mariadb start DIR prints one)\n", scaleoutDSNEnv)
		return false
	}
	dir, err := os.MkdirTemp(o.workDir, "scaleout-")
	if err != nil {
		fmt.Fprintf(stderr, "crashtest: %v\n", err)
		return false
	}
	res, err := runScaleout(ctx, scaleoutConfig{
		QuireBin: o.quireBin, FsckBin: o.fsckBin, WorkDir: dir, DSN: dsn, FrontEnds: o.scaleout,
		Writers: o.writers, Load: o.maxUp, Logf: logf,
	})
	if err != nil {
		fmt.Fprintf(stderr, "crashtest: scale-out: %v (files in %s)\n", err, dir)
		return false
	}
	fmt.Fprintf(stdout, "scaleout frontends=%d killed=1 acknowledged=%d lost=%d inconsistent=%d duplicates=%d dup_wrong=%d raced=%d raced_wrong=%d history_wrong=%d fsck_size=%d\n",
		res.FrontEnds, res.Acknowledged, res.Lost, res.Inconsistent, res.Duplicates, res.DupWrong, res.RacedPairs, res.RacedWrong, res.HistoryWrong, res.FsckSize)
	logf("final tree size %d, distinct checkpoints checked %d, raced entries logged once %d and twice %d, history lookups %d",
		res.TreeSize, res.Checkpoints, res.RacedOnce, res.RacedTwice, res.HistoryChecked)
	if res.Lost != 0 || res.Inconsistent != 0 || res.DupWrong != 0 || res.RacedWrong != 0 || res.HistoryWrong != 0 ||
		res.Acknowledged == 0 || res.Duplicates == 0 || res.FsckSize < res.TreeSize {
		fmt.Fprintf(stderr, "crashtest: scale-out FAILED (files kept in %s)\n", dir)
		return false
	}
	os.RemoveAll(dir)
	return true
}
