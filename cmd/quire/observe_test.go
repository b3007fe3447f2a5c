package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/quirelog/quire/log/status"
)

// scrape reads a Prometheus text exposition into series → value, the series written as the
// server prints it: `name{label="value",...}`, or the bare name.
func scrape(t *testing.T, metricsURL string) map[string]float64 {
	t.Helper()
	status, body := get(t, metricsURL+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET %s/metrics: status %d: %s", metricsURL, status, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// series returns the value of one series, failing the test if the scrape lacks it.
func series(t *testing.T, m map[string]float64, name string) float64 {
	t.Helper()
	v, ok := m[name]
	if !ok {
		prefix, _, _ := strings.Cut(name, "{")
		prefix = prefix[:strings.LastIndexByte(prefix, '_')+1]
		var near []string
		for k := range m {
			if strings.HasPrefix(k, prefix) {
				near = append(near, k)
			}
		}
		t.Fatalf("/metrics has no series %s; series starting %s: %q", name, prefix, near)
	}
	return v
}

// family says whether the scrape has any series of the named metric family.
func family(m map[string]float64, name string) bool {
	for k := range m {
		if k == name || strings.HasPrefix(k, name+"{") || strings.HasPrefix(k, name+"_bucket{") || k == name+"_count" {
			return true
		}
	}
	return false
}

func TestMetricsDescribeTheLog(t *testing.T) {
	l := startWitnessedLog(t)
	k := newECDSA(t)
	const writes, duplicates = 7, 3
	var first []byte
	for i := range writes {
		body := hashedRekord(t, k, fmt.Appendf(nil, "metrics %d", i))
		if i == 0 {
			first = body
		}
		if status, _ := l.write(t, body); status != http.StatusCreated {
			t.Fatalf("write %d: status %d", i, status)
		}
	}
	for i := range duplicates {
		if status, _ := l.post(first); status != http.StatusConflict {
			t.Fatalf("duplicate %d: status %d, want 409", i, status)
		}
	}
	l.get("/quire/v1/entries/0")
	l.get("/quire/v1/proof/inclusion?index=0")
	l.get("/quire/v1/checkpoints?size=1")
	grpcHealth(t, l.grpcAddr, "")

	// Search catches up with the log shortly after publication; wait for it, boundedly.
	var m map[string]float64
	deadline := time.Now().Add(20 * time.Second)
	for {
		m = scrape(t, l.metricsURL)
		if m["quire_search_indexed_entries"] == writes || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	exact := []struct {
		series string
		want   float64
	}{
		{"quire_tree_size", writes},
		{"quire_published_tree_size", writes},
		{"quire_integrated_tree_size", writes},
		{`quire_entries_total{kind="hashedrekord"}`, writes},
		{`quire_entries_total{kind="dsse"}`, 0},
		{`quire_entries_duplicate_total{kind="hashedrekord"}`, duplicates},
		{`quire_pushback_total{reason="integration"}`, 0},
		{"quire_search_indexed_entries", writes},
		{"quire_search_lag_entries", 0},
		{`quire_sequencer_batch_entries_sum{entries="new"}`, writes},
		{`quire_sequencer_batch_entries_sum{entries="duplicate"}`, duplicates},
		{`quire_http_requests_total{code="201",method="POST",route="create_entry"}`, writes},
		{`quire_http_requests_total{code="409",method="POST",route="create_entry"}`, duplicates},
		{`quire_http_requests_total{code="200",method="GET",route="quire_v1_entry"}`, 1},
		{`quire_http_requests_total{code="200",method="GET",route="quire_v1_inclusion_proof"}`, 1},
		{`quire_http_requests_total{code="200",method="GET",route="quire_v1_checkpoint"}`, 1},
		{`quire_witness_quorum_total{result="missed"}`, 0},
		{"tessera_appender_integrated_size", writes},
	}
	for _, e := range exact {
		t.Run(e.series+" is exact", func(t *testing.T) {
			if got := series(t, m, e.series); got != e.want {
				t.Fatalf("%s = %v, want %v", e.series, got, e.want)
			}
		})
	}
	t.Run("the build is described", func(t *testing.T) {
		for k, v := range m {
			if strings.HasPrefix(k, "quire_build_info{") && strings.Contains(k, `goversion="go1.`) && v == 1 {
				return
			}
		}
		t.Fatal("no quire_build_info{goversion=...} 1")
	})
	t.Run("plausible values", func(t *testing.T) {
		if age := series(t, m, "quire_checkpoint_age_seconds"); age < 0 || age > 120 {
			t.Errorf("quire_checkpoint_age_seconds = %v, want a recent publication", age)
		}
		if free := series(t, m, "quire_storage_disk_free_bytes"); free <= 0 {
			t.Errorf("quire_storage_disk_free_bytes = %v", free)
		}
		if n := series(t, m, `quire_sequencer_batch_entries_count{entries="new"}`); n < 1 || n > writes+duplicates {
			t.Errorf("%v commits for %d writes", n, writes+duplicates)
		}
		for _, h := range []string{"quire_sequencer_commit_duration_seconds_count", "quire_sequencing_latency_seconds_count"} {
			if n := series(t, m, h); n < 1 {
				t.Errorf("%s = %v, want at least one commit", h, n)
			}
		}
		if n := series(t, m, `quire_checkpoint_publications_total{result="ok"}`); n < 2 {
			t.Errorf("%v checkpoints published, want the first and at least one with entries", n)
		}
		if n := series(t, m, `quire_witness_quorum_total{result="met"}`); n < 2 {
			t.Errorf("quorum met %v times, want at least every publication with entries", n)
		}
		// Tessera's own counts, bridged from OpenTelemetry, agree with Quire's.
		if n := series(t, m, `tessera_appender_add_calls_total{tessera_duplicate="false"}`); n != writes {
			t.Errorf("Tessera counted %v new adds, want %d", n, writes)
		}
		if n := series(t, m, `tessera_appender_add_calls_total{tessera_duplicate="true"}`); n != duplicates {
			t.Errorf("Tessera counted %v duplicate adds, want %d", n, duplicates)
		}
	})
	t.Run("every witness has its requests and latency", func(t *testing.T) {
		cosigned := 0
		for _, w := range l.witnesses {
			name := w.Name + ".witness.test"
			n := series(t, m, fmt.Sprintf(`quire_witness_requests_total{outcome="cosigned",witness="%s"}`, name))
			if n > 0 {
				cosigned++
			}
			if got := m[fmt.Sprintf(`quire_witness_request_duration_seconds_count{outcome="cosigned",witness="%s"}`, name)]; got != n {
				t.Errorf("witness %s: %v cosigned requests but %v timed", name, n, got)
			}
			series(t, m, fmt.Sprintf(`quire_witness_requests_total{outcome="unreachable",witness="%s"}`, name))
		}
		if cosigned < 2 {
			t.Fatalf("%d witnesses cosigned, want at least the quorum of 2", cosigned)
		}
	})
	t.Run("families exist for every operational concern", func(t *testing.T) {
		series(t, m, `quire_grpc_requests_total{code="OK",method="/grpc.health.v1.Health/Check"}`)
		for _, f := range []string{"quire_http_request_duration_seconds", "quire_grpc_request_duration_seconds", "go_goroutines", "process_resident_memory_bytes", "tessera_appender_integrate_latency_milliseconds"} {
			if !family(m, f) {
				t.Errorf("no %s", f)
			}
		}
	})
	t.Run("a first start is not logged as a failure", func(t *testing.T) {
		logged := l.stderr.String()
		for _, bad := range []string{"Failed to fetch old checkpoint", "level=ERROR"} {
			if strings.Contains(logged, bad) {
				t.Errorf("the log of a normal first start has %q:\n%s", bad, logged)
			}
		}
	})
	t.Run("the public port does not serve metrics", func(t *testing.T) {
		if status, _ := l.get("/metrics"); status != http.StatusNotFound {
			t.Fatalf("public /metrics: status %d, want 404", status)
		}
	})
	l.stop()
}

// ready reads /readyz.
func ready(t *testing.T, baseURL string) (int, string) {
	t.Helper()
	status, body := get(t, baseURL+"/readyz")
	return status, string(body)
}

// awaitReady polls /readyz until its status is want, for at most within; it returns the body.
func awaitReady(t *testing.T, baseURL string, want int, within time.Duration) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		status, body := ready(t, baseURL)
		if status == want {
			return body, time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("/readyz stayed %d (want %d) for %v:\n%s", status, want, within, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// grpcHealth asks the log's gRPC health service about service.
func grpcHealth(t *testing.T, addr, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatalf("gRPC health check of %q: %v", service, err)
	}
	return resp.GetStatus()
}

// awaitGRPCHealth polls gRPC health until service reports want, for at most within.
func awaitGRPCHealth(t *testing.T, addr, service string, want healthpb.HealthCheckResponse_ServingStatus, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := grpcHealth(t, addr, service)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gRPC health of %q is %v after %v, want %v", service, got, within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func statusJSON(t *testing.T, baseURL string) *status.Model {
	t.Helper()
	code, body := get(t, baseURL+"/quire/v1/status")
	if code != http.StatusOK {
		t.Fatalf("GET /quire/v1/status: %d %s", code, body)
	}
	m := &status.Model{}
	if err := json.Unmarshal(body, m); err != nil {
		t.Fatalf("status JSON %s: %v", body, err)
	}
	return m
}

func TestReadinessFollowsTheWitnessQuorum(t *testing.T) {
	// An idle log republishes every second, so the publisher asks the witnesses even when
	// nobody writes; a checkpoint older than 6s makes the log unready on its own account.
	const maxAge = 6 * time.Second
	l := startWitnessedLog(t, "--checkpoint-republish-interval", "1s", "--ready-max-checkpoint-age", maxAge.String())
	// The bound within which readiness must follow the witnesses: a republication, the
	// witnesses' 2s timeout, the publisher's retry pause, and the 1s gRPC health refresh.
	const bound = 10 * time.Second

	ok := t.Run("with the quorum up the log is ready over REST and gRPC", func(t *testing.T) {
		body, _ := awaitReady(t, l.baseURL, http.StatusOK, bound)
		for _, c := range []string{"ok storage", "ok checkpoint", "ok witnesses", "ready"} {
			if !strings.Contains(body, c) {
				t.Errorf("/readyz lacks %q:\n%s", c, body)
			}
		}
		awaitGRPCHealth(t, l.grpcAddr, "", healthpb.HealthCheckResponse_SERVING, bound)
		awaitGRPCHealth(t, l.grpcAddr, "dev.sigstore.rekor.v2.Rekor", healthpb.HealthCheckResponse_SERVING, bound)
		if code, body := get(t, l.baseURL+"/healthz"); code != http.StatusOK || string(body) != "ok\n" {
			t.Fatalf("/healthz: %d %q", code, body)
		}
	})
	if !ok {
		return
	}
	missedBefore := series(t, scrape(t, l.metricsURL), `quire_witness_quorum_total{result="missed"}`)

	ok = t.Run("with two of three witnesses down /readyz fails within the bound and names them", func(t *testing.T) {
		l.witnesses[0].kill()
		l.witnesses[1].kill()
		body, took := awaitReady(t, l.baseURL, http.StatusServiceUnavailable, bound)
		t.Logf("/readyz failed %v after the witnesses went down:\n%s", took.Round(time.Millisecond), body)
		if !strings.Contains(body, "FAILED witnesses: witness quorum not met") {
			t.Errorf("/readyz does not name the witness quorum:\n%s", body)
		}
		for _, w := range l.witnesses[:2] {
			if !strings.Contains(body, w.Name+".witness.test (unreachable") {
				t.Errorf("/readyz does not name %s as unreachable:\n%s", w.Name, body)
			}
		}
		if strings.Contains(body, l.witnesses[2].Name+".witness.test (") {
			t.Errorf("/readyz blames the live witness %s:\n%s", l.witnesses[2].Name, body)
		}
		if !strings.Contains(body, "ok storage") {
			t.Errorf("/readyz blames storage:\n%s", body)
		}
		awaitGRPCHealth(t, l.grpcAddr, "", healthpb.HealthCheckResponse_NOT_SERVING, bound)
		// Reads go on: the read service stays healthy, and so does the process.
		if got := grpcHealth(t, l.grpcAddr, "quire.v1.Log"); got != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("gRPC health of quire.v1.Log is %v while reads work", got)
		}
		if code, _ := get(t, l.baseURL+"/healthz"); code != http.StatusOK {
			t.Errorf("/healthz: %d, want 200: the process is alive", code)
		}
		if missed := series(t, scrape(t, l.metricsURL), `quire_witness_quorum_total{result="missed"}`); missed <= missedBefore {
			t.Errorf("quire_witness_quorum_total{result=\"missed\"} stayed at %v", missed)
		}
		m := statusJSON(t, l.baseURL)
		if m.Ready || len(m.Problems) == 0 || !strings.Contains(strings.Join(m.Problems, "\n"), "witness quorum not met") {
			t.Errorf("the status says ready=%v problems=%q", m.Ready, m.Problems)
		}
		down := 0
		for _, w := range m.Witnesses {
			if w.LastOutcome == "unreachable" && w.LastError != "" {
				down++
			}
		}
		if len(m.Witnesses) != 3 || down != 2 {
			t.Errorf("the status shows %d witnesses, %d unreachable; want 3 and 2: %+v", len(m.Witnesses), down, m.Witnesses)
		}
	})
	ok = ok && t.Run("past the age bound the stale checkpoint is named too", func(t *testing.T) {
		deadline := time.Now().Add(maxAge + bound)
		for {
			_, body := ready(t, l.baseURL)
			if strings.Contains(body, "FAILED checkpoint: the latest checkpoint") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz does not name the stale checkpoint %v after the quorum was lost:\n%s", maxAge+bound, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	ok = ok && t.Run("restarting one witness brings readiness and the quorum back", func(t *testing.T) {
		metBefore := series(t, scrape(t, l.metricsURL), `quire_witness_quorum_total{result="met"}`)
		l.witnesses[0].start()
		body, took := awaitReady(t, l.baseURL, http.StatusOK, bound)
		t.Logf("/readyz recovered %v after the witness restarted:\n%s", took.Round(time.Millisecond), body)
		awaitGRPCHealth(t, l.grpcAddr, "", healthpb.HealthCheckResponse_SERVING, bound)
		if met := series(t, scrape(t, l.metricsURL), `quire_witness_quorum_total{result="met"}`); met <= metBefore {
			t.Errorf("quire_witness_quorum_total{result=\"met\"} stayed at %v", met)
		}
		m := statusJSON(t, l.baseURL)
		in := 0
		for _, w := range m.Witnesses {
			if w.InCheckpoint && w.Cosigned != nil {
				in++
			}
		}
		if !m.Ready || in < 2 {
			t.Errorf("status: ready=%v, %d witnesses in the latest checkpoint; want ready and 2", m.Ready, in)
		}
	})
	if ok {
		l.stop()
	}
}
