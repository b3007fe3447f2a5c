package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/cmd/internal/cli"
	"github.com/quirelog/quire/cmd/internal/clitest"
)

// run runs quirectl in-process and returns what the command returned, as main reports it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return program().Run(ctx, args, stdout, stderr)
}

// exitCode is the status main exits with for err.
func exitCode(err error) int { return cli.ExitCode(err) }

func TestExitStatuses(t *testing.T) {
	clitest.ClearEnv(t, envPrefix)
	dir := t.TempDir()
	_, witnessVKey := witnessKey(t)
	_, logVKey, err := note.GenerateKey(rand.Reader, "log.example")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		code   int
		stdout string
		stderr string
	}{
		{name: "no command is a usage error", code: 2, stderr: "quirectl: missing command"},
		{name: "an unknown command is a usage error", args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{name: "help succeeds and prints the usage on stdout", args: []string{"help"}, stdout: "monitor exits 3"},
		{name: "submit -h succeeds and lists each flag with its variable", args: []string{"submit", "-h"}, stdout: "env QUIRE_LOG_KEY"},
		{name: "an unknown flag is a usage error", args: []string{"verify", "--bundel", "b.json"}, code: 2, stderr: "flag provided but not defined: -bundel"},
		{name: "a bad flag value is a usage error", args: []string{"mirror", "--parallel", "many"}, code: 2, stderr: "-parallel"},
		{name: "a bad value in the environment is a usage error naming the variable", args: []string{"mirror"}, env: map[string]string{"QUIRE_PARALLEL": "many"}, code: 2, stderr: "QUIRE_PARALLEL"},
		{name: "a missing required flag is a usage error", args: []string{"mirror", "--url", "http://127.0.0.1:1"}, code: 2, stderr: "--log-key"},
		{name: "a URL that is not http is a usage error", args: []string{"monitor", "--url", "ftp://log.example", "--log-key", logVKey, "--state", filepath.Join(dir, "s")}, code: 2, stderr: "--url"},
		{name: "a log key that is no key is a usage error", args: []string{"mirror", "--url", "http://127.0.0.1:1", "--log-key", "not a key", "--out", dir}, code: 2, stderr: "--log-key"},
		{name: "a key type it does not know is a usage error", args: []string{"keygen", "--out", dir, "--type", "dsa"}, code: 2, stderr: "--type"},
		{name: "a command that fails exits 1", args: []string{"verify", "--bundle", filepath.Join(dir, "missing.json"), "--artifact", "a", "--trusted-root", "r", "--key", "k.pub"}, code: 1, stderr: "missing.json"},
		{name: "a witness key is no log key", args: []string{"mirror", "--url", "http://127.0.0.1:1", "--log-key", witnessVKey, "--out", dir}, code: 2, stderr: "--log-key"},
		{name: "version succeeds and names the Go version", args: []string{"version"}, stdout: "go " + runtime.Version()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := program().Main(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.stderr) {
				t.Fatalf("want stdout with %q and stderr with %q\nstdout: %s\nstderr: %s", tc.stdout, tc.stderr, stdout.String(), stderr.String())
			}
		})
	}
}

// TestURLFromTheEnvironment points bench at one of two servers by QUIRE_URL and --url: the
// environment applies when the flag is not given, and the flag wins over it. quirectl's commands
// are one-shot and take no config file.
func TestURLFromTheEnvironment(t *testing.T) {
	clitest.ClearEnv(t, envPrefix)
	var fromEnv, fromFlag atomic.Int64
	server := func(n *atomic.Int64) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			n.Add(1)
			w.WriteHeader(http.StatusBadRequest)
		}))
	}
	envSrv, flagSrv := server(&fromEnv), server(&fromFlag)
	defer envSrv.Close()
	defer flagSrv.Close()
	t.Setenv("QUIRE_URL", envSrv.URL)
	bench := []string{"bench", "--workers", "1", "--duration", "100ms", "--pool", "20"}

	t.Run("the environment sets a flag not given", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := program().Main(context.Background(), bench, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		if fromEnv.Load() == 0 || fromFlag.Load() != 0 {
			t.Fatalf("requests: %d to QUIRE_URL's server, %d to the other; want all to QUIRE_URL's", fromEnv.Load(), fromFlag.Load())
		}
	})
	t.Run("the command line wins over the environment", func(t *testing.T) {
		before := fromEnv.Load()
		var stdout, stderr bytes.Buffer
		if code := program().Main(context.Background(), append(bench, "--url", flagSrv.URL), &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		if fromFlag.Load() == 0 || fromEnv.Load() != before {
			t.Fatalf("requests: %d more to QUIRE_URL's server, %d to --url's; want all to --url's", fromEnv.Load()-before, fromFlag.Load())
		}
	})
}
