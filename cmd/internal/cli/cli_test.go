package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/quirelog/quire/cmd/internal/clitest"
)

// testProgram has one command with a config file, "run", whose flags say back what they were set
// to, and one without, "fail", which fails as its --how flag says.
func testProgram() *Program {
	return &Program{
		Name:        "qtest",
		Title:       "a program to test the shared command line",
		EnvPrefix:   "QTEST",
		ExampleFlag: "data-dir",
		Commands: []Command{
			{Name: "run", Config: true, Summary: "print the settings", Run: func(_ context.Context, inv *Invocation, args []string) error {
				fs := inv.Flags()
				listen := fs.String("listen", "127.0.0.1:1", "listen on `ADDR`")
				wait := fs.Duration("wait", time.Second, "how long to wait")
				verbose := fs.Bool("verbose", false, "say more")
				if err := fs.Parse(args); err != nil {
					return err
				}
				fmt.Fprintf(inv.Stdout, "listen=%s wait=%s verbose=%t given=%t", *listen, *wait, *verbose, fs.Given("listen"))
				return nil
			}},
			{Name: "fail", Args: "--how HOW", Summary: "fail as asked", Run: func(_ context.Context, inv *Invocation, args []string) error {
				fs := inv.Flags()
				how := fs.String("how", "", "usage, failure or exit3")
				if err := fs.Parse(args); err != nil {
					return err
				}
				switch *how {
				case "usage":
					return Usagef("--how usage was asked for")
				case "exit3":
					return &ExitError{Code: 3, Err: errors.New("status three")}
				}
				return errors.New("it failed")
			}},
		},
		ExitNote: "; fail exits 3 when asked",
	}
}

func TestSettingsLayerFlagsOverEnvironmentOverConfigFile(t *testing.T) {
	clitest.ClearEnv(t, "QTEST")
	config := filepath.Join(t.TempDir(), "qtest.conf")
	if err := os.WriteFile(config, []byte("# settings\nlisten 127.0.0.1:3 # from the file\nwait 3s\nverbose\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{name: "with nothing set every flag has its default", want: "listen=127.0.0.1:1 wait=1s verbose=false given=false"},
		{name: "the config file sets what neither flag nor environment does", args: []string{"--config", config},
			want: "listen=127.0.0.1:3 wait=3s verbose=true given=true"},
		{name: "the environment wins over the config file", args: []string{"--config", config},
			env:  map[string]string{"QTEST_LISTEN": "127.0.0.1:2"},
			want: "listen=127.0.0.1:2 wait=3s verbose=true given=true"},
		{name: "a flag wins over the environment and the config file", args: []string{"--config", config, "--listen", "127.0.0.1:4"},
			env:  map[string]string{"QTEST_LISTEN": "127.0.0.1:2", "QTEST_WAIT": "2s"},
			want: "listen=127.0.0.1:4 wait=2s verbose=true given=true"},
		{name: "the config file can be named by the environment", env: map[string]string{"QTEST_CONFIG": config},
			want: "listen=127.0.0.1:3 wait=3s verbose=true given=true"},
		{name: "a flag set to its default value still wins", args: []string{"--config", config, "--listen", "127.0.0.1:1"},
			want: "listen=127.0.0.1:1 wait=3s verbose=true given=true"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			if code := testProgram().Main(context.Background(), append([]string{"run"}, tc.args...), &stdout, &stderr); code != ExitOK {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			if stdout.String() != tc.want {
				t.Fatalf("got  %s\nwant %s", stdout.String(), tc.want)
			}
		})
	}
}

func TestExitStatuses(t *testing.T) {
	clitest.ClearEnv(t, "QTEST")
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.conf")
	if err := os.WriteFile(unknown, []byte("listen 127.0.0.1:3\nlisten-on 127.0.0.1:4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badValue := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(badValue, []byte("wait soon\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		code       int
		stdout     []string
		stderr     []string
		quietError bool
	}{
		{name: "no command is a usage error followed by the usage", code: 2, stderr: []string{"qtest: missing command", "Commands:"}},
		{name: "an unknown command is a usage error followed by the usage", args: []string{"frobnicate"}, code: 2, stderr: []string{`unknown command "frobnicate"`, "Commands:"}},
		{name: "help prints the usage on stdout", args: []string{"help"}, stdout: []string{"Usage:\n  qtest COMMAND [flags]", "  run ", "  fail ", "  version ", "QTEST_DATA_DIR", `"qtest run" also reads --config FILE`, "2 usage error", "fail exits 3 when asked"}},
		{name: "-h is help", args: []string{"-h"}, stdout: []string{"Commands:"}},
		{name: "a command's -h prints its flags, defaults and variables on stdout", args: []string{"run", "-h"},
			stdout: []string{"qtest run: print the settings", "  --listen ADDR\n        listen on ADDR\n        default 127.0.0.1:1, env QTEST_LISTEN", "  --verbose\n", "env QTEST_CONFIG", "then from the --config file"}},
		{name: "help COMMAND is COMMAND -h", args: []string{"help", "fail"}, stdout: []string{"Usage:\n  qtest fail --how HOW", "env QTEST_HOW", "the command line wins:"}},
		{name: "help for an unknown command is a usage error", args: []string{"help", "frobnicate"}, code: 2, stderr: []string{`unknown command "frobnicate"`}},
		{name: "an unknown flag is a usage error pointing at the help", args: []string{"run", "--listen-on", "x"}, code: 2,
			stderr: []string{"qtest run: flag provided but not defined: -listen-on", `Run "qtest run -h" for its flags.`}},
		{name: "a bad flag value is a usage error", args: []string{"run", "--wait", "soon"}, code: 2, stderr: []string{`invalid value "soon" for flag -wait`}},
		{name: "a positional argument is a usage error", args: []string{"run", "extra"}, code: 2, stderr: []string{`unexpected arguments ["extra"]`}},
		{name: "a bad value in the environment is a usage error naming the variable", args: []string{"run"}, env: map[string]string{"QTEST_WAIT": "soon"}, code: 2, stderr: []string{"QTEST_WAIT"}},
		{name: "a missing config file is a usage error", args: []string{"run", "--config", filepath.Join(dir, "missing.conf")}, code: 2, stderr: []string{"missing.conf"}},
		{name: "an unknown setting in the config file is a usage error", args: []string{"run", "--config", unknown}, code: 2, stderr: []string{`"listen-on"`}},
		{name: "a bad value in the config file is a usage error", args: []string{"run", "--config", badValue}, code: 2, stderr: []string{`"wait"`}},
		{name: "a command without a config file has no --config", args: []string{"fail", "--config", badValue}, code: 2, stderr: []string{"-config"}},
		{name: "a usage error of a command exits 2", args: []string{"fail", "--how", "usage"}, code: 2, stderr: []string{"qtest fail: --how usage was asked for", `Run "qtest fail -h"`}},
		{name: "a failure exits 1 and says what failed", args: []string{"fail", "--how", "failure"}, code: 1, stderr: []string{"qtest fail: it failed"}, quietError: true},
		{name: "a command may choose its own status", args: []string{"fail", "--how", "exit3"}, code: 3, stderr: []string{"qtest fail: status three"}, quietError: true},
		{name: "version exits 0 with the Go version", args: []string{"version"}, stdout: []string{"qtest version ", "go " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}},
		{name: "--version is version", args: []string{"--version"}, stdout: []string{"qtest version "}},
		{name: "version takes no arguments", args: []string{"version", "now"}, code: 2, stderr: []string{"unexpected arguments"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := testProgram().Main(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout.String(), stderr.String())
			}
			for _, want := range tc.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
			for _, want := range tc.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			if code == 0 && stderr.Len() != 0 {
				t.Errorf("success wrote to stderr: %s", stderr.String())
			}
			if code != 0 && stdout.Len() != 0 {
				t.Errorf("an error wrote to stdout: %s", stdout.String())
			}
			if tc.quietError && strings.Contains(stderr.String(), "-h") {
				t.Errorf("a failure, not a usage error, pointed at the help: %s", stderr.String())
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"no error is success", nil, ExitOK},
		{"help asked for is success", fmt.Errorf("parsing: %w", flag.ErrHelp), ExitOK},
		{"a usage error, however wrapped, is 2", fmt.Errorf("serve: %w", Usagef("bad")), ExitUsage},
		{"any other error is 1", errors.New("disk full"), ExitFailure},
		{"an exit error chooses its status", &ExitError{Code: 3, Err: errors.New("fork")}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ExitCode(tc.err); got != tc.want {
				t.Fatalf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

func TestEnvVar(t *testing.T) {
	for _, tc := range []struct{ prefix, flag, want string }{
		{"QUIRE", "http-listen", "QUIRE_HTTP_LISTEN"},
		{"QUIRE_WITNESS", "data-dir", "QUIRE_WITNESS_DATA_DIR"},
		{"quire", "log.level", "QUIRE_LOG_LEVEL"},
	} {
		if got := EnvVar(tc.prefix, tc.flag); got != tc.want {
			t.Errorf("EnvVar(%q, %q) = %q, want %q", tc.prefix, tc.flag, got, tc.want)
		}
	}
}

func TestWriteVersion(t *testing.T) {
	build := func(version string, settings ...debug.BuildSetting) *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/quirelog/quire", Version: version}, Settings: settings}
	}
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "548a20b7357a3ef9d4f4847406b5e298cdc73cbc"}
	tests := []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"a tagged build names its version and commit", build("v1.2.3", rev, debug.BuildSetting{Key: "vcs.modified", Value: "false"}),
			"quire version v1.2.3\nmodule github.com/quirelog/quire\ncommit 548a20b7357a3ef9d4f4847406b5e298cdc73cbc\ngo go1.26.8 linux/amd64\n"},
		{"a build from a changed checkout says so", build("v0.0.0-20260101000000-548a20b7357a+dirty", rev, debug.BuildSetting{Key: "vcs.modified", Value: "true"}),
			"quire version v0.0.0-20260101000000-548a20b7357a+dirty\nmodule github.com/quirelog/quire\ncommit 548a20b7357a3ef9d4f4847406b5e298cdc73cbc (modified)\ngo go1.26.8 linux/amd64\n"},
		{"a build without VCS stamps says the commit is unknown", build("(devel)"),
			"quire version (devel)\nmodule github.com/quirelog/quire\ncommit unknown (built without VCS information)\ngo go1.26.8 linux/amd64\n"},
		{"a binary without build information still names its Go version", nil,
			"quire version unknown (no build information)\ngo " + runtime.Version() + " linux/amd64\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			writeVersion(&b, "quire", tc.info, "linux/amd64")
			if b.String() != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", b.String(), tc.want)
			}
		})
	}
}

func TestWrapKeepsLinesWithinTheWidth(t *testing.T) {
	text := strings.Repeat("word ", 40) + "a-very-long-word-that-cannot-be-broken-anywhere-at-all " + strings.Repeat("x ", 10)
	out := wrap(text, "    ", 30)
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "    ") {
			t.Errorf("line %q lacks the indent", line)
		}
		if len(line) > 30 && strings.Contains(strings.TrimSpace(line), " ") {
			t.Errorf("line %q is over 30 columns yet could have been broken", line)
		}
	}
	if strings.Join(strings.Fields(out), " ") != strings.Join(strings.Fields(text), " ") {
		t.Errorf("wrapping changed the words:\n%s", out)
	}
}
