package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/quirelog/quire/cmd/internal/cli"
	"github.com/quirelog/quire/cmd/internal/clitest"
	"github.com/quirelog/quire/storage/pebble"
)

// usageError is the type a usage error of this command has (witness_test.go checks for it).
type usageError = cli.UsageError

// runQuireEnv runs a short quire command in dir with env added to an environment stripped of the
// caller's QUIRE_ variables, and returns its exit code, stdout and stderr.
func runQuireEnv(t *testing.T, dir string, env []string, args ...string) (int, string, string) {
	t.Helper()
	return clitest.Run(t, quireBinary(t), dir, envPrefix, env, args...)
}

func TestExitStatuses(t *testing.T) {
	dir := t.TempDir()
	unknownSetting := filepath.Join(dir, "unknown.conf")
	if err := os.WriteFile(unknownSetting, []byte("http-listen 127.0.0.1:0\nlisten 127.0.0.1:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	random := []string{"--http-listen", "127.0.0.1:0"}
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
		{name: "help succeeds and prints the usage on stdout", args: []string{"help"}, stdout: "--http-listen: QUIRE_HTTP_LISTEN"},
		{name: "serve -h succeeds and lists each flag with its variable", args: []string{"serve", "-h"}, stdout: "env QUIRE_HTTP_LISTEN"},
		{name: "help keygen is keygen -h", args: []string{"help", "keygen"}, stdout: "env QUIRE_ORIGIN"},
		{name: "an unknown flag is a usage error", args: []string{"serve", "--listen", "127.0.0.1:0"}, code: 2, stderr: "flag provided but not defined: -listen"},
		{name: "a bad flag value is a usage error", args: []string{"serve", "--batch-max-age", "soon"}, code: 2, stderr: "-batch-max-age"},
		{name: "a bad value in the environment is a usage error naming the variable", args: append([]string{"serve"}, random...), env: []string{"QUIRE_BATCH_MAX_AGE=soon"}, code: 2, stderr: "QUIRE_BATCH_MAX_AGE"},
		{name: "a dedup filter of no bytes is a usage error", args: append([]string{"serve", "--dedup-filter-bytes", "0"}, random...), code: 2, stderr: "--dedup-filter-bytes"},
		{name: "a missing required flag is a usage error", args: []string{"keygen", "--out", "k"}, code: 2, stderr: "--origin"},
		{name: "a missing config file is a usage error", args: append([]string{"serve", "--config", filepath.Join(dir, "missing.conf")}, random...), code: 2, stderr: "missing.conf"},
		{name: "an unknown setting in the config file is a usage error", args: []string{"serve", "--config", unknownSetting}, code: 2, stderr: `"listen"`},
		{name: "a public URL that is not http is a usage error", args: append([]string{"serve", "--public-url", "ftp://log.example"}, random...), code: 2, stderr: "--public-url"},
		{name: "a command that fails exits 1", args: []string{"trust-root", "--url", "https://log.example", "--key", filepath.Join(dir, "missing.key")}, code: 1, stderr: "missing.key"},
		{name: "version succeeds and names the Go version", args: []string{"version"}, stdout: "go " + runtime.Version()},
		{name: "--version is version", args: []string{"--version"}, stdout: "quire version "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runQuireEnv(t, t.TempDir(), tc.env, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("want stdout with %q and stderr with %q\nstdout: %s\nstderr: %s", tc.stdout, tc.stderr, stdout, stderr)
			}
		})
	}
}

// TestSettingsPrecedence shows on serve's --witness-policy, whose file serve reads at start and
// names when it is missing, which of the command line, the environment and the config file wins.
func TestSettingsPrecedence(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "quire.conf")
	if err := os.WriteFile(config, []byte("# quire serve settings\nhttp-listen 127.0.0.1:0\nwitness-policy from-file.policy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		args        []string
		env         []string
		configByEnv bool
		want        string
	}{
		{name: "the config file applies when nothing else sets the flag", want: "from-file.policy"},
		{name: "the environment wins over the config file", env: []string{"QUIRE_WITNESS_POLICY=from-env.policy"}, want: "from-env.policy"},
		{name: "the command line wins over both", args: []string{"--witness-policy", "from-flag.policy"}, env: []string{"QUIRE_WITNESS_POLICY=from-env.policy"}, want: "from-flag.policy"},
		{name: "the config file may be named by the environment", env: []string{"QUIRE_CONFIG=" + config}, configByEnv: true, want: "from-file.policy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--grpc-listen", "127.0.0.1:0"}, tc.args...)
			if !tc.configByEnv {
				args = append(args, "--config", config)
			}
			code, _, stderr := runQuireEnv(t, t.TempDir(), tc.env, args...)
			if code != 1 || !strings.Contains(stderr, "reading witness policy") {
				t.Fatalf("exit %d, want 1 for the missing policy file: %s", code, stderr)
			}
			clitest.CheckWinner(t, stderr, tc.want, "from-file.policy", "from-env.policy", "from-flag.policy")
		})
	}
}

// TestServeRunsOnSettingsFromEveryLayer starts a real log whose settings come from all three
// layers and checks each took effect: dedup from the environment over the file, the body limit
// from the command line over the file.
func TestServeRunsOnSettingsFromEveryLayer(t *testing.T) {
	clitest.ClearEnv(t, envPrefix)
	work := t.TempDir()
	config := filepath.Join(work, "quire.conf")
	if err := os.WriteFile(config, []byte("dedup true\nmax-request-body 300 # too small for a signed entry\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("QUIRE_DEDUP", "false")
	s := startServe(t, work, "--config", config, "--max-request-body", "4096")
	k := newECDSA(t)
	body := hashedRekord(t, k, []byte("twice, as dedup is off"))
	if len(body) <= 300 {
		t.Fatalf("a signed entry of %d bytes would pass the file's limit too; the test shows nothing", len(body))
	}
	var indices []int64
	for range 2 {
		status, answer := s.post(body)
		if status != http.StatusCreated {
			t.Fatalf("status %d, want 201 (the flag's body limit over the file's): %s", status, answer)
		}
		tle := &rekorv1.TransparencyLogEntry{}
		if err := protojson.Unmarshal(answer, tle); err != nil {
			t.Fatal(err)
		}
		indices = append(indices, tle.GetLogIndex())
	}
	if indices[0] == indices[1] {
		t.Errorf("both copies got index %d: QUIRE_DEDUP=false did not win over the file's dedup", indices[0])
	}
	if status, _ := s.post(bytes.Repeat([]byte(" "), 5000)); status != http.StatusRequestEntityTooLarge {
		t.Errorf("a 5000-byte body got %d, want 413 under --max-request-body 4096", status)
	}
	s.stop()
}

func TestDefaultsFollowHTTPListen(t *testing.T) {
	clitest.ClearEnv(t, envPrefix)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	host = strings.ToLower(host)
	tests := []struct {
		name                      string
		args                      []string
		grpc, publicURL, origin   string
		metrics                   string // checked when set
		originSet, wantUsageError bool
	}{
		{name: "no flags give a log on 127.0.0.1 named 127.0.0.1",
			grpc: "127.0.0.1:3001", publicURL: "http://127.0.0.1:3000", origin: "127.0.0.1", metrics: "127.0.0.1:3002"},
		{name: "metrics stay on the loopback interface when the log serves the world", args: []string{"--http-listen", "0.0.0.0:8080"},
			grpc: "0.0.0.0:8081", publicURL: "http://" + host + ":8080", origin: host, metrics: "127.0.0.1:8082"},
		{name: "a given metrics address stays", args: []string{"--metrics-listen", "10.0.0.1:9464"},
			grpc: "127.0.0.1:3001", publicURL: "http://127.0.0.1:3000", origin: "127.0.0.1", metrics: "10.0.0.1:9464"},
		{name: "metrics can be turned off", args: []string{"--metrics-listen", "off"},
			grpc: "127.0.0.1:3001", publicURL: "http://127.0.0.1:3000", origin: "127.0.0.1", metrics: "off"},
		{name: "a port two below the last leaves metrics no port to follow", args: []string{"--http-listen", "127.0.0.1:65534"}, wantUsageError: true},
		{name: "an unknown log format is a usage error", args: []string{"--log-format", "xml"}, wantUsageError: true},
		{name: "an unknown log level is a usage error", args: []string{"--log-level", "loud"}, wantUsageError: true},
		{name: "a republish interval below the checkpoint interval is a usage error", args: []string{"--checkpoint-republish-interval", "1ms"}, wantUsageError: true},
		{name: "gRPC and the public URL follow another port", args: []string{"--http-listen", "127.0.0.1:8080"},
			grpc: "127.0.0.1:8081", publicURL: "http://127.0.0.1:8080", origin: "127.0.0.1"},
		{name: "a wildcard address is reached at this machine's name", args: []string{"--http-listen", "0.0.0.0:8080"},
			grpc: "0.0.0.0:8081", publicURL: "http://" + host + ":8080", origin: host},
		{name: "an address without a host is a wildcard too", args: []string{"--http-listen", ":8080"},
			grpc: ":8081", publicURL: "http://" + host + ":8080", origin: host},
		{name: "the IPv6 wildcard is a wildcard too", args: []string{"--http-listen", "[::]:8080"},
			grpc: "[::]:8081", publicURL: "http://" + host + ":8080", origin: host},
		{name: "a specific address is its own public host", args: []string{"--http-listen", "192.0.2.7:443"},
			grpc: "192.0.2.7:444", publicURL: "http://192.0.2.7:443", origin: "192.0.2.7"},
		{name: "any free port for HTTP means any free port for gRPC", args: []string{"--http-listen", "127.0.0.1:0"},
			grpc: "127.0.0.1:0", publicURL: "http://127.0.0.1:0", origin: "127.0.0.1", metrics: "127.0.0.1:0"},
		{name: "TLS makes the public URL https", args: []string{"--tls-cert", "c.pem", "--tls-key", "k.pem"},
			grpc: "127.0.0.1:3001", publicURL: "https://127.0.0.1:3000", origin: "127.0.0.1"},
		{name: "a given public URL names the origin", args: []string{"--public-url", "https://log.example.org"},
			grpc: "127.0.0.1:3001", publicURL: "https://log.example.org", origin: "log.example.org", originSet: true},
		{name: "a given origin wins over the public URL's host", args: []string{"--public-url", "https://log.example.org", "--origin", "example.org/log"},
			grpc: "127.0.0.1:3001", publicURL: "https://log.example.org", origin: "example.org/log", originSet: true},
		{name: "a given gRPC address stays", args: []string{"--http-listen", "127.0.0.1:8080", "--grpc-listen", "127.0.0.1:9090"},
			grpc: "127.0.0.1:9090", publicURL: "http://127.0.0.1:8080", origin: "127.0.0.1"},
		{name: "the last port leaves gRPC no port to follow", args: []string{"--http-listen", "127.0.0.1:65535"}, wantUsageError: true},
		{name: "a listen address without a port is a usage error", args: []string{"--http-listen", "127.0.0.1"}, wantUsageError: true},
		{name: "a public URL without a host is a usage error", args: []string{"--public-url", "http://"}, wantUsageError: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parseServeFlags(program().Invocation("serve", io.Discard, io.Discard), tc.args)
			if tc.wantUsageError {
				if cli.ExitCode(err) != cli.ExitUsage {
					t.Fatalf("err = %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.metrics != "" && f.metricsListen != tc.metrics {
				t.Fatalf("metrics on %q, want %q", f.metricsListen, tc.metrics)
			}
			if f.grpcListen != tc.grpc || f.publicURL != tc.publicURL || f.origin != tc.origin || f.originSet != tc.originSet {
				t.Fatalf("grpc %q, public URL %q, origin %q (set %t); want %q, %q, %q (set %t)",
					f.grpcListen, f.publicURL, f.origin, f.originSet, tc.grpc, tc.publicURL, tc.origin, tc.originSet)
			}
		})
	}
}

// TestAKeyServeMadeFollowsTheOriginOfAnEmptyLog opens data directories set up in each way a key
// can get there, and checks which keys follow a new origin.
func TestAKeyServeMadeFollowsTheOriginOfAnEmptyLog(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	byServe := func(t *testing.T, dir, origin string) {
		if err := createAutoKey(dir, origin, logger); err != nil {
			t.Fatal(err)
		}
	}
	byKeygen := func(t *testing.T, dir, origin string) {
		if _, _, err := writeNewKey(dir, origin); err != nil {
			t.Fatal(err)
		}
	}
	replacedByHand := func(t *testing.T, dir, origin string) {
		byServe(t, dir, origin)
		for _, name := range []string{keyFileName, pubFileName} {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
		byKeygen(t, dir, origin)
	}
	tests := []struct {
		name      string
		setup     func(t *testing.T, dir, origin string)
		keyOrigin string
		origin    string
		originSet bool
		want      string // "new key", "kept" or "refused"
	}{
		{name: "serve's key for 127.0.0.1 follows a given origin", setup: byServe, keyOrigin: "127.0.0.1", origin: "log.example.org", originSet: true, want: "new key"},
		{name: "serve's key for 127.0.0.1 follows a defaulted origin off loopback", setup: byServe, keyOrigin: "127.0.0.1", origin: "build-host", want: "new key"},
		{name: "serve's key for a real name follows a given origin", setup: byServe, keyOrigin: "log.example.org", origin: "log.example.com", originSet: true, want: "new key"},
		{name: "serve's key for a real name does not fall back to a defaulted 127.0.0.1", setup: byServe, keyOrigin: "log.example.org", origin: "127.0.0.1", want: "kept"},
		{name: "a key made by keygen never follows a given origin", setup: byKeygen, keyOrigin: "127.0.0.1", origin: "log.example.org", originSet: true, want: "refused"},
		{name: "a key made by keygen yields to no defaulted origin", setup: byKeygen, keyOrigin: "127.0.0.1", origin: "build-host", want: "kept"},
		{name: "a key put in place of serve's is not taken for it", setup: replacedByHand, keyOrigin: "127.0.0.1", origin: "log.example.org", originSet: true, want: "refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir, tc.keyOrigin)
			// An empty log database, as a first start leaves it.
			drv, err := pebble.New(context.Background(), pebble.Config{Path: filepath.Join(dir, logDBDir)})
			if err != nil {
				t.Fatal(err)
			}
			if err := drv.(*pebble.Storage).Close(); err != nil {
				t.Fatal(err)
			}
			oldVKey := strings.TrimSpace(mustRead(t, filepath.Join(dir, pubFileName)))
			f := &serveFlags{dataDir: dir, origin: tc.origin, originSet: tc.originSet}
			key, err := openOrCreateKey(context.Background(), f, logger)
			got := "kept"
			switch {
			case err != nil && strings.Contains(err.Error(), "key's origin is"):
				got = "refused"
			case err != nil:
				t.Fatal(err)
			case key.origin == tc.origin && key.vkey != oldVKey:
				got = "new key"
			case key.origin != tc.keyOrigin || key.vkey != oldVKey:
				t.Fatalf("key for %q (%s), neither the old one for %q nor a new one", key.origin, key.vkey, tc.keyOrigin)
			}
			if got != tc.want {
				t.Fatalf("%s, want %s (err %v)", got, tc.want, err)
			}
			_, statErr := os.Stat(filepath.Join(dir, logDBDir))
			if (got == "new key") != os.IsNotExist(statErr) {
				t.Errorf("log database removed: %t; want it removed only with a new key", os.IsNotExist(statErr))
			}
			if got == "new key" && strings.TrimSpace(mustRead(t, filepath.Join(dir, pubFileName))) != key.vkey {
				t.Errorf("%s does not hold the new verifier key", pubFileName)
			}
		})
	}
}

// TestAKeyServeMadeStaysOnceTheLogHasEntries runs the README's plain start, then moves the log to
// its real name before its first entry, and shows the name can no longer change after it.
func TestAKeyServeMadeStaysOnceTheLogHasEntries(t *testing.T) {
	clitest.ClearEnv(t, envPrefix)
	work := t.TempDir()
	dataDir := filepath.Join(work, defaultDataDir)
	startServe(t, work).stop()
	oldVKey, _ := readVerifier(t, dataDir)

	s := startServe(t, work, "--public-url", "https://log.example.org")
	vkey, v := readVerifier(t, dataDir)
	if vkey == oldVKey || v.Name() != "log.example.org" {
		t.Fatalf("verifier key %s, want a new one for log.example.org", vkey)
	}
	if !strings.Contains(s.stderr.String(), "starting it anew") || !strings.Contains(s.stderr.String(), oldVKey) {
		t.Errorf("the replacement of the key was not logged with the old key:\n%s", s.stderr)
	}
	_, raw := s.get("/checkpoint")
	if cp := openCheckpoint(t, v, raw); cp.Origin != "log.example.org" || cp.Size != 0 {
		t.Fatalf("checkpoint for %q size %d, want an empty log.example.org", cp.Origin, cp.Size)
	}
	if status, body := s.post(hashedRekord(t, newECDSA(t), []byte("the first entry"))); status != http.StatusCreated {
		t.Fatalf("status %d: %s", status, body)
	}
	s.stop()

	code, _, stderr := runQuire(t, work, "serve", "--public-url", "https://other.example.org", "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0")
	if code != 1 || !strings.Contains(stderr, "key's origin is") {
		t.Fatalf("a log with an entry took a new origin: exit %d\n%s", code, stderr)
	}
	if got, _ := readVerifier(t, dataDir); got != vkey {
		t.Fatalf("the refused start changed the key")
	}

	s = startServe(t, work)
	_, raw = s.get("/checkpoint")
	if cp := openCheckpoint(t, v, raw); cp.Origin != "log.example.org" || cp.Size != 1 {
		t.Fatalf("checkpoint for %q size %d after a plain restart, want log.example.org with its entry", cp.Origin, cp.Size)
	}
	if !strings.Contains(s.stderr.String(), "not the host of its public URL") {
		t.Errorf("no warning that the defaulted public URL does not match the origin:\n%s", s.stderr)
	}
	s.stop()
}

// TestTheREADMEConfigFileIsValid parses the README's example config file with serve's flags, so
// the documentation cannot name a setting serve does not have.
func TestTheREADMEConfigFileIsValid(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const start = "```\n# /etc/quire/quire.conf\n"
	_, rest, found := strings.Cut(string(readme), start)
	example, _, closed := strings.Cut(rest, "```")
	if !found || !closed {
		t.Fatalf("README.md has no config file example starting %q", start)
	}
	config := filepath.Join(t.TempDir(), "quire.conf")
	if err := os.WriteFile(config, []byte(example), 0o644); err != nil {
		t.Fatal(err)
	}
	clitest.ClearEnv(t, envPrefix)
	f, err := parseServeFlags(program().Invocation("serve", io.Discard, io.Discard), []string{"--config", config})
	if err != nil {
		t.Fatalf("the README's config file: %v", err)
	}
	if f.dataDir != "/var/lib/quire" || f.origin != "log.example.org" || f.grpcListen != "0.0.0.0:3001" {
		t.Fatalf("data dir %q, origin %q, gRPC %q: the README's settings did not all apply", f.dataDir, f.origin, f.grpcListen)
	}
}
