package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// proc is one run of a server binary whose output goes to a log file, so that a crash's evidence
// (a panic, Pebble's complaint) survives the kill.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startProc(bin string, args []string, logPath string) (*proc, error) {
	return startProcEnv(bin, args, nil, logPath)
}

// startProcEnv is startProc with env added to this process's environment; env is not logged,
// since it may hold a password.
func startProcEnv(bin string, args, env []string, logPath string) (*proc, error) {
	out, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening process log %s: %w", logPath, err)
	}
	fmt.Fprintf(out, "=== %s start %s %q\n", time.Now().UTC().Format(time.RFC3339Nano), bin, args)
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		fmt.Fprintf(out, "=== %s exit: %v\n", time.Now().UTC().Format(time.RFC3339Nano), p.err)
		out.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended on its own.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL: no deferred function, no shutdown hook and no buffered write of the process
// gets to run, which is the crash this test is about.
func (p *proc) kill() error {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing pid %d: %w", p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("pid %d did not die within 30s of SIGKILL", p.cmd.Process.Pid)
	}
}

// stop asks for a clean shutdown (SIGTERM) and falls back to SIGKILL after timeout.
func (p *proc) stop(timeout time.Duration) error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stopping pid %d: %w", p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		return p.kill()
	}
}

// freePort asks the kernel for a port nobody listens on. The port is reused for every restart of a
// server so that clients keep one URL, as they would in production.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitHealthy polls url until it answers 200, the process exits or timeout passes.
func waitHealthy(ctx context.Context, hc *http.Client, url string, p *proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("process exited before becoming healthy: %v", p.err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("building health request: %w", err)
		}
		if resp, err := hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not healthy after %s", url, timeout)
}

// tail returns the last n bytes of a file, for error reports.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(cannot stat %s: %v)", path, err)
	}
	if off := fi.Size() - n; off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return fmt.Sprintf("(cannot seek %s: %v)", path, err)
		}
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// startHealthy starts bin and waits until healthURL answers, so every restart
// in a cycle is ready for load; on failure the process is killed and its log
// tail is part of the error.
func startHealthy(ctx context.Context, hc *http.Client, bin string, args []string, logPath, healthURL string) (*proc, error) {
	return startHealthyEnv(ctx, hc, bin, args, nil, logPath, healthURL)
}

// startHealthyEnv is startHealthy with env added to the environment (see startProcEnv).
func startHealthyEnv(ctx context.Context, hc *http.Client, bin string, args, env []string, logPath, healthURL string) (*proc, error) {
	p, err := startProcEnv(bin, args, env, logPath)
	if err != nil {
		return nil, err
	}
	if err := waitHealthy(ctx, hc, healthURL, p, 60*time.Second); err != nil {
		_ = p.kill()
		return nil, fmt.Errorf("%w; log tail:\n%s", err, tail(logPath, 4000))
	}
	return p, nil
}
