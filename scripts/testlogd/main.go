// Command testlogd builds a tlog-tiles log of a given size with Tessera's POSIX driver (once; a
// rerun reuses it) and serves it statically on 127.0.0.1, for scripts/bench-mirror. The signing key
// lives in --key-dir, outside the served directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/quirelog/quire/api/client/testlog"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

func main() {
	dir := flag.String("dir", "", "log directory (built if it has no checkpoint)")
	keyDir := flag.String("key-dir", "", "directory for log.key (0600) and log.pub")
	entries := flag.Int("entries", 1000000, "log size to build")
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	origin := flag.String("origin", "bench.quire.test", "log origin")
	flag.Parse()
	if err := run(*dir, *keyDir, *origin, *listen, *entries); err != nil {
		fmt.Fprintf(os.Stderr, "testlogd: %v\n", err)
		os.Exit(1)
	}
}

func run(dir, keyDir, origin, listen string, entries int) error {
	if dir == "" || keyDir == "" {
		return errors.New("--dir and --key-dir are required")
	}
	key, err := loadOrMakeKey(keyDir, origin)
	if err != nil {
		return err
	}
	ctx := context.Background()
	size, err := logSize(dir, key)
	if err != nil {
		return err
	}
	if size < uint64(entries) {
		start := time.Now()
		lg, err := testlog.Open(ctx, dir, key)
		if err != nil {
			return err
		}
		const chunk = 100000
		for next := int(size); next < entries; next += chunk {
			n := min(chunk, entries-next)
			if err := lg.Add(ctx, testlog.Entries(next, n)); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "testlogd: built %d/%d entries (%s)\n", next+n, entries, time.Since(start).Round(time.Second))
		}
		if err := lg.Close(ctx); err != nil {
			return err
		}
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	fmt.Printf("http://%s/\n", l.Addr())
	return http.Serve(l, http.FileServer(http.Dir(dir)))
}

func loadOrMakeKey(keyDir, origin string) (testlog.Key, error) {
	skeyPath, vkeyPath := filepath.Join(keyDir, "log.key"), filepath.Join(keyDir, "log.pub")
	skey, err1 := os.ReadFile(skeyPath)
	vkey, err2 := os.ReadFile(vkeyPath)
	if err1 == nil && err2 == nil {
		return testlog.Key{SKey: strings.TrimSpace(string(skey)), VKey: strings.TrimSpace(string(vkey))}, nil
	}
	key, err := testlog.NewKey(origin)
	if err != nil {
		return testlog.Key{}, err
	}
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		return testlog.Key{}, fmt.Errorf("creating key dir: %w", err)
	}
	if err := os.WriteFile(skeyPath, []byte(key.SKey+"\n"), 0o600); err != nil {
		return testlog.Key{}, fmt.Errorf("writing key: %w", err)
	}
	if err := os.WriteFile(vkeyPath, []byte(key.VKey+"\n"), 0o644); err != nil {
		return testlog.Key{}, fmt.Errorf("writing verifier key: %w", err)
	}
	return key, nil
}

func logSize(dir string, key testlog.Key) (uint64, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading checkpoint: %w", err)
	}
	v, err := note.NewVerifier(key.VKey)
	if err != nil {
		return 0, fmt.Errorf("loading verifier: %w", err)
	}
	cp, _, _, err := log.ParseCheckpoint(raw, v.Name(), v)
	if err != nil {
		return 0, fmt.Errorf("verifying checkpoint: %w", err)
	}
	return cp.Size, nil
}
