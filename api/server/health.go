package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Check is one condition of readiness for writes. Check returns nil while the condition holds,
// else an error saying what is wrong, which /readyz shows after Name.
type Check struct {
	// Name is a short word naming the condition ("storage", "checkpoint", "witnesses").
	Name  string
	Check func(context.Context) error
}

// Problem is a failed Check as /readyz and the status page report it.
type Problem struct {
	Name string
	Err  error
}

func (p Problem) String() string { return p.Name + ": " + p.Err.Error() }

// checkTimeout bounds one round of readiness checks; they read memory and statfs, so this is
// only a guard against a wedged one.
const checkTimeout = 5 * time.Second

// readyInterval is how often gRPC health is brought up to date with the checks.
const readyInterval = time.Second

// Write services: the gRPC health status of these (and of the whole server, "") follows
// readiness; the read service stays SERVING while the process runs.
var writeServices = []string{"", "dev.sigstore.rekor.v2.Rekor"}

// readService is the gRPC service of the reads, healthy while the server serves.
const readService = "quire.v1.Log"

// writable is the readiness check every log has: its storage takes writes (log.Writable). The
// answer names a full disk, whose cure is the operator's, but not the storage's own error, which
// may name files: that goes to the server's log.
func (s *Server) writable(ctx context.Context) error {
	err := s.cfg.Log.Writable(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ENOSPC):
		return errors.New("the disk is full: writes resume once there is room")
	default:
		s.cfg.Logger.WarnContext(ctx, "not ready for writes", "error", err)
		return errors.New("the log's storage is failing writes; the server's log says why")
	}
}

// problems runs every readiness check and returns the failed ones, in Config order.
func (s *Server) problems(ctx context.Context) []Problem {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	var out []Problem
	for _, c := range s.cfg.Ready {
		if err := c.Check(ctx); err != nil {
			out = append(out, Problem{Name: c.Name, Err: err})
		}
	}
	return out
}

// serveHealth answers /healthz: the process is alive and serving HTTP. It checks nothing else on
// purpose: a liveness probe that failed on a down witness or a full disk would get the process
// restarted for a condition a restart does not cure. /readyz says whether writes can succeed.
func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// serveReady answers /readyz: 200 when every readiness check holds, else 503; the body lists
// each check as "ok NAME" or "FAILED NAME: what is wrong".
func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	failed := map[string]error{}
	for _, p := range s.problems(r.Context()) {
		failed[p.Name] = p.Err
	}
	var b strings.Builder
	for _, c := range s.cfg.Ready {
		if err := failed[c.Name]; err != nil {
			fmt.Fprintf(&b, "FAILED %s: %v\n", c.Name, err)
		} else {
			fmt.Fprintf(&b, "ok %s\n", c.Name)
		}
	}
	status := http.StatusOK
	if len(failed) > 0 {
		status = http.StatusServiceUnavailable
	} else {
		b.WriteString("ready\n")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// followReadiness keeps gRPC health (grpc.health.v1) in step with the readiness checks until
// stop is closed: the write services are NOT_SERVING while any check fails.
func (s *Server) followReadiness(stop <-chan struct{}) {
	t := time.NewTicker(readyInterval)
	defer t.Stop()
	last := healthpb.HealthCheckResponse_UNKNOWN
	for {
		st := healthpb.HealthCheckResponse_SERVING
		if len(s.problems(context.Background())) > 0 {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		if st != last {
			for _, svc := range writeServices {
				s.health.SetServingStatus(svc, st)
			}
			last = st
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}
