// Package clitest runs the Quire binaries as their tests need: with an environment chosen by the
// test and free of the settings (QUIRE_..., QUIRE_WITNESS_...) of whoever runs the tests.
package clitest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// timeout bounds one short command, so a hung binary fails its test instead of the whole run.
const timeout = 60 * time.Second

// ClearEnv unsets, for the rest of the test, every environment variable that starts with
// prefix + "_". It uses t.Setenv, so the test must not be parallel.
func ClearEnv(t testing.TB, prefix string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, prefix+"_") {
			t.Setenv(name, "")
		}
	}
}

// Run runs the binary bin with args in dir ("" for the test's own directory) and returns its exit
// status, stdout and stderr. Its environment is the test's without the variables starting with
// prefix + "_", plus env ("NAME=value" each).
func Run(t testing.TB, bin, dir, prefix string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix+"_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s %v: %v", bin, args, err)
	}
	return code, out.String(), errOut.String()
}

// CheckWinner fails the test unless output names want and no other of candidates: how a test
// sees which of several settings (flag, environment, config file) a command acted on, when each
// sets the same flag to a value of its own that the command names.
func CheckWinner(t testing.TB, output, want string, candidates ...string) {
	t.Helper()
	for _, c := range candidates {
		if got := strings.Contains(output, c); got != (c == want) {
			t.Errorf("output mentions %s: %t, want %t\n%s", c, got, c == want, output)
		}
	}
}
