package server_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/quirelog/quire/api/server"
)

// TestTheInFlightBudgetRefusesTheExcess fills a front end's in-flight budget with one request
// whose body is slow to come, and checks that others, over REST and gRPC, are refused in time with
// Retry-After (REST ones without losing the answer to a reset), and that the budget is whole again
// once it is answered.
func TestTheInFlightBudgetRefusesTheExcess(t *testing.T) {
	l := startLog(t)
	const limit = 8 << 10
	fe := l.frontEnd(t, server.Config{MaxRequestBody: limit, MaxInFlightBytes: limit})
	k := newSigner(t)

	// A client that declares a body as large as the whole budget and waits to be asked for it
	// holds the budget: the server asks ("100 Continue") only once the body has its room.
	slow, err := net.DialTimeout("tcp", strings.TrimPrefix(fe.url, "http://"), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	body := signArtifact(t, k, []byte("the slow one")).json()
	padded := append(body, bytes.Repeat([]byte(" "), limit-len(body))...)
	if _, err := fmt.Fprintf(slow, "POST /api/v2/log/entries HTTP/1.1\r\nHost: quire\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", limit); err != nil {
		t.Fatal(err)
	}
	_ = slow.SetReadDeadline(time.Now().Add(30 * time.Second))
	answers := bufio.NewReader(slow)
	if line, err := answers.ReadString('\n'); err != nil || !strings.Contains(line, "100 Continue") {
		t.Fatalf("the slow request was not asked for its body: %q %v", line, err)
	}
	if _, err := answers.ReadString('\n'); err != nil {
		t.Fatal(err)
	}

	t.Run("a REST write finds no room and gets 503 with Retry-After, not a reset", func(t *testing.T) {
		resp, err := http.Post(fe.url+"/api/v2/log/entries", "application/json", bytes.NewReader(signArtifact(t, k, []byte("no room")).json()))
		if err != nil {
			t.Fatalf("the refusal was lost: %v", err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503: %s", resp.StatusCode, answer)
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s <= 0 {
			t.Errorf("Retry-After %q, want seconds", resp.Header.Get("Retry-After"))
		}
		if e, err := decodeErrorBody(answer); err != nil || !strings.Contains(*e.Message, "retry") {
			t.Errorf("error body %s (%v) does not say to retry", answer, err)
		}
	})
	t.Run("a gRPC write finds no room and gets RESOURCE_EXHAUSTED with retry-after", func(t *testing.T) {
		cc, err := grpc.NewClient(fe.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var header metadata.MD
		_, err = rekorpb.NewRekorClient(cc).CreateEntry(ctx, signArtifact(t, k, []byte("no room either")).proto(), grpc.Header(&header))
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("CreateEntry = %v, want RESOURCE_EXHAUSTED", err)
		}
		if v := header.Get("retry-after"); len(v) != 1 || v[0] == "" {
			t.Errorf("retry-after metadata %q, want seconds", v)
		}
	})
	t.Run("once the slow request is answered the budget takes writes again", func(t *testing.T) {
		if _, err := slow.Write(padded); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(answers, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("the slow request got %d, want 201", resp.StatusCode)
		}
		a, err := http.Post(fe.url+"/api/v2/log/entries", "application/json", bytes.NewReader(signArtifact(t, k, []byte("room again")).json()))
		if err != nil {
			t.Fatal(err)
		}
		a.Body.Close()
		if a.StatusCode != http.StatusCreated {
			t.Fatalf("status %d, want 201", a.StatusCode)
		}
	})
}
