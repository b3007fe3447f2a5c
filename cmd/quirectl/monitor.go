package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/quirelog/quire/api/client/monitor"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
)

func init() {
	commands["monitor"] = command{summary: "watch a log for split views and for entries by watched keys or digests", run: runMonitor}
}

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// loadLogVerifier accepts a log's verifier key inline or as the path of a file holding it.
func loadLogVerifier(s string) (note.Verifier, error) {
	vkey := s
	if data, err := os.ReadFile(s); err == nil {
		vkey = strings.TrimSpace(string(data))
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("--log-key: not a verifier key or a file holding one: %w", err)
	}
	return v, nil
}

// tilesFetcher reads tlog-tiles from the log's base URL.
func tilesFetcher(base string) (*client.HTTPFetcher, error) {
	u, err := url.Parse(strings.TrimSuffix(base, "/") + "/")
	if err != nil {
		return nil, fmt.Errorf("--url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("--url %q: scheme must be http or https", base)
	}
	return client.NewHTTPFetcher(u, nil)
}

func runMonitor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("monitor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logURL := fs.String("url", "", "base URL of the log's tlog-tiles (where /checkpoint is served)")
	logKey := fs.String("log-key", "", "the log's checkpoint verifier key, or a file holding it")
	state := fs.String("state", "", "file keeping the last verified checkpoint")
	var watchKeys, watchDigests multiFlag
	fs.Var(&watchKeys, "watch-key", "PEM public key file whose entries to report (repeatable)")
	fs.Var(&watchDigests, "watch-digest", "artifact digest (sha256:HEX) whose entries to report (repeatable)")
	interval := fs.Duration("interval", time.Minute, "time between polls")
	once := fs.Bool("once", false, "poll once and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *logURL == "" || *logKey == "" || *state == "" || fs.NArg() > 0 {
		return errors.New("monitor: --url, --log-key and --state are required")
	}
	v, err := loadLogVerifier(*logKey)
	if err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	f, err := tilesFetcher(*logURL)
	if err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	cfg := monitor.Config{Fetcher: f, LogVerifier: v, StatePath: *state, Out: stdout}
	for _, p := range watchKeys {
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("monitor: %w", err)
		}
		der, err := monitor.ParseWatchKey(data)
		if err != nil {
			return fmt.Errorf("monitor: --watch-key %s: %w", p, err)
		}
		cfg.WatchKeys = append(cfg.WatchKeys, der)
	}
	for _, d := range watchDigests {
		b, err := monitor.ParseDigest(d)
		if err != nil {
			return fmt.Errorf("monitor: --watch-digest: %w", err)
		}
		cfg.WatchDigests = append(cfg.WatchDigests, b)
	}
	m, err := monitor.New(cfg)
	if err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "monitor: "+format+"\n", args...)
	}
	if *once {
		rep, err := m.Poll(ctx)
		if err == nil {
			logf("verified tree size %d → %d, %d matching entries", rep.OldSize, rep.NewSize, rep.Matches)
		}
		return monitorExit(err)
	}
	return monitorExit(m.Run(ctx, *interval, logf))
}

// monitorExit makes a fork exit with status 3, so scripts can tell it from an outage.
func monitorExit(err error) error {
	var fe *monitor.ForkError
	switch {
	case errors.As(err, &fe):
		return &exitStatus{code: 3, err: fmt.Errorf("monitor: %w", err)}
	case errors.Is(err, context.Canceled):
		return nil
	case err != nil:
		return &exitStatus{code: 1, err: fmt.Errorf("monitor: %w", err)}
	}
	return nil
}
