package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/quirelog/quire/cmd/internal/clitest"
)

// runEnv runs a short quire-witness command with env added to an environment stripped of the
// caller's QUIRE_WITNESS_ variables, and returns its exit code, stdout and stderr.
func runEnv(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	return clitest.Run(t, binary(t), "", envPrefix, env, args...)
}

func TestExitStatuses(t *testing.T) {
	dir, _ := keyDir(t)
	key := filepath.Join(dir, "witness.key")
	l := newTestLog(t, "example.com/log")
	tests := []struct {
		name   string
		args   []string
		env    []string
		code   int
		stdout string
		stderr string
	}{
		{name: "no command is a usage error", code: 2, stderr: "missing command"},
		{name: "an unknown command is a usage error", args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{name: "help succeeds and prints the usage on stdout", args: []string{"help"}, stdout: "QUIRE_WITNESS_DATA_DIR"},
		{name: "serve -h succeeds and lists each flag with its variable", args: []string{"serve", "-h"}, stdout: "env QUIRE_WITNESS_LOG_LIST"},
		{name: "an unknown flag is a usage error", args: []string{"serve", "--http-listen", "127.0.0.1:0"}, code: 2, stderr: "flag provided but not defined: -http-listen"},
		{name: "a bad flag value is a usage error", args: []string{"serve", "--rate-limit", "fast"}, code: 2, stderr: "-rate-limit"},
		{name: "a bad value in the environment is a usage error naming the variable", args: []string{"serve"}, env: []string{"QUIRE_WITNESS_RATE_BURST=lots"}, code: 2, stderr: "QUIRE_WITNESS_RATE_BURST"},
		{name: "quire's own variables are not the witness's", args: []string{"serve"}, env: []string{"QUIRE_DATA_DIR=" + t.TempDir(), "QUIRE_KEY=" + key}, code: 2, stderr: "--data-dir and --key are required"},
		{name: "a missing required flag is a usage error", args: []string{"keygen", "--out", t.TempDir()}, code: 2, stderr: "--name"},
		{name: "a command that fails exits 1", args: []string{"serve", "--data-dir", t.TempDir(), "--key", filepath.Join(dir, "missing.key"), "--log", l.vkey}, code: 1, stderr: "missing.key"},
		{name: "version succeeds and names the Go version", args: []string{"version"}, stdout: "go " + runtime.Version()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runEnv(t, tc.env, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("want stdout with %q and stderr with %q\nstdout: %s\nstderr: %s", tc.stdout, tc.stderr, stdout, stderr)
			}
		})
	}
}

// TestSettingsPrecedence shows on serve's --key, whose file serve names when it is missing, which
// of the command line, the environment and the config file wins.
func TestSettingsPrecedence(t *testing.T) {
	l := newTestLog(t, "example.com/log")
	config := filepath.Join(t.TempDir(), "witness.conf")
	if err := os.WriteFile(config, []byte("data-dir "+t.TempDir()+"\nkey from-file.key\nlog "+l.vkey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{name: "the config file applies when nothing else sets the flag", want: "from-file.key"},
		{name: "the environment wins over the config file", env: []string{"QUIRE_WITNESS_KEY=from-env.key"}, want: "from-env.key"},
		{name: "the command line wins over both", args: []string{"--key", "from-flag.key"}, env: []string{"QUIRE_WITNESS_KEY=from-env.key"}, want: "from-flag.key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runEnv(t, tc.env, append([]string{"serve", "--config", config}, tc.args...)...)
			if code != 1 || !strings.Contains(stderr, "reading key file") {
				t.Fatalf("exit %d, want 1 for the missing key file: %s", code, stderr)
			}
			clitest.CheckWinner(t, stderr, tc.want, "from-file.key", "from-env.key", "from-flag.key")
		})
	}
}

// TestServeWitnessesTheLogsOfItsConfigFile runs a witness set up by a config file alone: its
// data directory, its key and two logs as "log" lines.
func TestServeWitnessesTheLogsOfItsConfigFile(t *testing.T) {
	dir, _ := keyDir(t)
	a := newTestLog(t, "example.com/a")
	b := newTestLog(t, "example.com/b")
	config := filepath.Join(t.TempDir(), "witness.conf")
	text := "# a witness for two logs\n" +
		"data-dir " + t.TempDir() + "\n" +
		"key " + filepath.Join(dir, "witness.key") + "\n" +
		"log " + a.vkey + "\n" +
		"log " + b.origin + " " + b.vkey + " # with its origin\n"
	if err := os.WriteFile(config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--config", config)
	for _, l := range []*testLog{a, b} {
		body, _ := l.request(t, 0, 4)
		if r := do(t, "POST", s.url+"/add-checkpoint", body); r.status != 200 {
			t.Errorf("%s: got %d %q, want its checkpoint cosigned", l.origin, r.status, r.body)
		}
	}
	other := newTestLog(t, "example.com/other")
	body, _ := other.request(t, 0, 4)
	if r := do(t, "POST", s.url+"/add-checkpoint", body); r.status != 404 {
		t.Errorf("a log not in the config file got %d, want 404", r.status)
	}
	h := sha256.Sum256([]byte(b.origin))
	if r := do(t, "GET", s.url+"/"+hex.EncodeToString(h[:])+"/checkpoint", nil); r.status != 200 {
		t.Errorf("the latest cosigned checkpoint of %s: got %d", b.origin, r.status)
	}
	s.stop(t)
}
