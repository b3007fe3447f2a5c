package server_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/quirelog/quire/api/server"
)

// TestConnectionsAreBounded: beyond MaxHTTPConnections and MaxGRPCConnections a new connection is
// not served until one of those served closes, so the memory connections hold has a bound
// whatever clients open; the waiting one is then served.
func TestConnectionsAreBounded(t *testing.T) {
	l := startLog(t, withServerConfig(func(c *server.Config) {
		c.MaxHTTPConnections = 1
		c.MaxGRPCConnections = 1
	}))
	// notServed is how long a connection over the bound is watched for an answer that must not
	// come; an answer within it fails the test, a slow machine can only make it pass late.
	const notServed = 500 * time.Millisecond

	t.Run("an HTTP connection over the bound waits for one to close", func(t *testing.T) {
		addr := strings.TrimPrefix(l.baseURL, "http://")
		first, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer first.Close()
		if got := rawGet(t, first, 30*time.Second); !strings.HasPrefix(got, "HTTP/1.1 200") {
			t.Fatalf("first connection: got %q, want 200", got)
		}
		second, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer second.Close()
		if got := rawGet(t, second, notServed); got != "" {
			t.Fatalf("second connection answered %q while the first was open", got)
		}
		first.Close()
		if got := readAnswer(t, second, 30*time.Second); !strings.HasPrefix(got, "HTTP/1.1 200") {
			t.Fatalf("second connection after the first closed: got %q, want 200", got)
		}
	})

	t.Run("a gRPC connection over the bound waits for one to close", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		first := dialGRPC(t, l)
		if _, err := healthpb.NewHealthClient(first).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("first connection: %v", err)
		}
		second := healthpb.NewHealthClient(dialGRPC(t, l))
		short, cancelShort := context.WithTimeout(ctx, notServed)
		defer cancelShort()
		_, err := second.Check(short, &healthpb.HealthCheckRequest{})
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("second connection while the first was open: got %v, want DeadlineExceeded", err)
		}
		first.Close()
		if _, err := second.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true)); err != nil {
			t.Fatalf("second connection after the first closed: %v", err)
		}
	})
}

// rawGet sends GET /healthz on c and returns the start of what arrives within d ("" if nothing).
func rawGet(t *testing.T, c net.Conn, d time.Duration) string {
	t.Helper()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: quire.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return readAnswer(t, c, d)
}

// readAnswer returns the start of what c sends within d, or "" if nothing arrives.
func readAnswer(t *testing.T, c net.Conn, d time.Duration) string {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(d)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	var ne net.Error
	if n == 0 && errors.As(err, &ne) && ne.Timeout() {
		return ""
	}
	if n == 0 {
		t.Fatalf("reading the answer: %v", err)
	}
	return string(buf[:n])
}
