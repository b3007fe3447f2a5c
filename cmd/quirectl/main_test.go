package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/quirelog/quire/api/client"
	"github.com/quirelog/quire/api/client/loadgen"
)

func TestDispatch(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantErr  string
		wantHelp bool
	}{
		{"no subcommand is an error with usage", nil, "missing command", false},
		{"an unknown subcommand is named", []string{"frobnicate"}, `unknown command "frobnicate"`, false},
		{"help prints usage", []string{"help"}, "", true},
		{"bench refuses an unknown key type", []string{"bench", "--key-type", "dsa"}, `unknown key type "dsa"`, false},
		{"bench refuses stray arguments", []string{"bench", "extra"}, "unexpected arguments", false},
		{"bench refuses a dup fraction of 2", []string{"bench", "--dup-fraction", "2", "--url", "http://127.0.0.1:1"}, "dup fraction", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, &stdout, &stderr)
			if tc.wantHelp {
				if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stdout.String(), "bench") {
					t.Fatalf("err %v, usage %q", err, stdout.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestBenchPrintsAJSONReport(t *testing.T) {
	// The handler runs on the server's goroutines while the test reads the count.
	var created atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path != client.EntriesPath {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		created.Add(1)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"logIndex":"1"}`))
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"bench", "--url", srv.URL, "--workers", "1", "--duration", "200ms", "--pool", "200", "--json", "--strict"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v; stderr %s", err, stderr.String())
	}
	var rep loadgen.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("output is not a JSON report: %v\n%s", err, stdout.String())
	}
	if rep.Mode != "closed" || rep.Workers != 1 || rep.Created == 0 || rep.Created+rep.CreatedAfterEnd != created.Load() {
		t.Fatalf("report %+v, server created %d", rep, created.Load())
	}
}

func TestBenchStrictFailsWhenNothingIsCreated(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"code":3,"message":"invalid hashedrekord request","details":[]}`))
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"bench", "--url", srv.URL, "--workers", "1", "--duration", "100ms", "--pool", "50", "--strict"}, &stdout, &stderr)
	if exitCode(err) != 1 {
		t.Fatalf("exit code %d (err %v), want 1", exitCode(err), err)
	}
	if !strings.Contains(stdout.String(), "400=") {
		t.Errorf("text report does not count the 400s:\n%s", stdout.String())
	}
}

// TestBenchAgainstQuireServe runs a short bench with duplicates against a real `quire serve`
// (quireServer, shared with the submit/verify tests): every fresh request must be created and every
// deliberate duplicate must get 409. No speed is asserted.
func TestBenchAgainstQuireServe(t *testing.T) {
	base, _ := quireServer(t)
	receipts := filepath.Join(t.TempDir(), "receipts.jsonl")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"bench", "--url", base, "--workers", "16", "--duration", "3s", "--dup-fraction", "0.1", "--pool", "3000", "--json", "--strict", "--record", receipts}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	var rep loadgen.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("quire serve: %.0f entries/s, p50 %.1f ms, p99 %.1f ms, errors %v", rep.EntriesPerSecond, rep.Latency.P50, rep.Latency.P99, rep.Errors)
	if rep.Created == 0 {
		t.Fatal("no entry created")
	}
	if rep.UnexpectedErrors() != 0 {
		t.Fatalf("unexpected errors: %v", rep.Errors)
	}
	if rep.Errors["409"] != rep.DuplicatesSent {
		t.Errorf("%d deliberate duplicates but %d answered 409", rep.DuplicatesSent, rep.Errors["409"])
	}

	data, err := os.ReadFile(receipts)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if int64(len(lines)) != rep.Created+rep.CreatedAfterEnd {
		t.Fatalf("%d receipts for %d entries created", len(lines), rep.Created+rep.CreatedAfterEnd)
	}
	indices := map[int64]bool{}
	for _, line := range lines {
		var r loadgen.Receipt
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("receipt %q: %v", line, err)
		}
		if indices[r.LogIndex] {
			t.Fatalf("index %d acknowledged twice", r.LogIndex)
		}
		indices[r.LogIndex] = true
		if r.LogIndex >= r.TreeSize || len(r.RootHash) != 32 || !strings.Contains(string(r.CanonicalizedBody), `"kind":"hashedrekord"`) {
			t.Fatalf("receipt %+v does not hold a proof for its entry", r)
		}
	}
}

func TestBenchRecordRefusesAnswersThatAreNotEntries(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`<html>created</html>`))
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"bench", "--url", srv.URL, "--workers", "1", "--duration", "100ms", "--pool", "50", "--record", filepath.Join(t.TempDir(), "r.jsonl")}, &stdout, &stderr)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "not a TransparencyLogEntry") {
		t.Fatalf("err = %v (exit %d), want malformed answers reported", err, exitCode(err))
	}
}
