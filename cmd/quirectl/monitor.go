package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/quirelog/quire/api/client/monitor"
	"github.com/quirelog/quire/api/rekor"
	"github.com/quirelog/quire/cmd/internal/cli"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
)

func init() {
	commands["monitor"] = cli.Command{Run: runMonitor, Args: "--url URL --log-key VKEY --state FILE [--watch-key FILE ...] [--watch-digest sha256:HEX ...] [--once]",
		Summary: "watch a log for split views (exit 3) and for entries by watched keys or digests"}
}

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// loadLogVerifier accepts a log's verifier key (Ed25519, or ECDSA P-256 as type 0x02) inline or
// as the path of a file holding it.
func loadLogVerifier(s string) (note.Verifier, error) {
	vkey := s
	if data, err := os.ReadFile(s); err == nil {
		vkey = strings.TrimSpace(string(data))
	}
	v, _, err := rekor.ParseVerifierKey(vkey)
	if err != nil {
		return nil, cli.Usagef("--log-key: not a verifier key or a file holding one: %w", err)
	}
	return v, nil
}

// tilesFetcher reads tlog-tiles from the log's base URL with hc.
func tilesFetcher(base string, hc *http.Client) (*client.HTTPFetcher, error) {
	u, err := url.Parse(strings.TrimSuffix(base, "/") + "/")
	if err != nil {
		return nil, cli.Usagef("--url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, cli.Usagef("--url %q: scheme must be http or https", base)
	}
	return client.NewHTTPFetcher(u, hc)
}

func runMonitor(ctx context.Context, inv *cli.Invocation, args []string) error {
	fs := inv.Flags()
	logURL := fs.String("url", "", "base `URL` of the log's tlog-tiles (where /checkpoint is served)")
	logKey := fs.String("log-key", "", "the log's checkpoint verifier key (`VKEY`), or a file holding it")
	state := fs.String("state", "", "`FILE` keeping the last verified checkpoint")
	var watchKeys, watchDigests multiFlag
	fs.Var(&watchKeys, "watch-key", "PEM public key `FILE` whose entries to report (repeatable)")
	fs.Var(&watchDigests, "watch-digest", "artifact `DIGEST` (sha256:HEX) whose entries to report (repeatable)")
	interval := fs.Duration("interval", time.Minute, "time between polls")
	once := fs.Bool("once", false, "poll once and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *logURL == "" || *logKey == "" || *state == "" {
		return cli.Usagef("--url, --log-key and --state are required")
	}
	v, err := loadLogVerifier(*logKey)
	if err != nil {
		return err
	}
	f, err := tilesFetcher(*logURL, httpClient(inv.Stderr))
	if err != nil {
		return err
	}
	cfg := monitor.Config{Fetcher: f, LogVerifier: v, StatePath: *state, Out: inv.Stdout}
	for _, p := range watchKeys {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		der, err := monitor.ParseWatchKey(data)
		if err != nil {
			return cli.Usagef("--watch-key %s: %w", p, err)
		}
		cfg.WatchKeys = append(cfg.WatchKeys, der)
	}
	for _, d := range watchDigests {
		b, err := monitor.ParseDigest(d)
		if err != nil {
			return cli.Usagef("--watch-digest: %w", err)
		}
		cfg.WatchDigests = append(cfg.WatchDigests, b)
	}
	m, err := monitor.New(cfg)
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(inv.Stderr, "monitor: "+format+"\n", args...)
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
		return &cli.ExitError{Code: 3, Err: err}
	case errors.Is(err, context.Canceled):
		return nil
	}
	return err
}
