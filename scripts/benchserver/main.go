// Command benchserver is the helper of scripts/bench-server, so that the script needs nothing but
// Go on a fresh machine (no openssl, curl or jq):
//
//	benchserver keygen -out FILE      Ed25519 PKCS#8 PEM key (mode 0600) for rekor-tiles' --signer-filepath
//	benchserver ports -n N            N free TCP ports on 127.0.0.1, one a line
//	benchserver wait -url URL [-pid P] polls URL until it answers 200 (bounded by -timeout; gives up
//	                                  at once if process P has exited)
//	benchserver sink -listen ADDR     answers every POST /api/v2/log/entries with 201 at once, to
//	                                  measure how fast quirectl bench itself can go
//	benchserver sink -verify -listen ADDR
//	                                  the same, but first decodes each hashedrekord request and
//	                                  verifies its ECDSA signature (400 if it does not verify),
//	                                  storing nothing: what a plain verifying server costs
//	benchserver table [-ratio A/B] NAME=FILE ...
//	                                  reads quirectl bench --json reports, prints one row each and,
//	                                  for each load both A and B ran, A's figures over B's
//	benchserver cpu -pid P            prints the CPU seconds (user + system) process P has used
//	benchserver verifycost [-n 20000] prints the CPU µs one ECDSA P-256 signature verification
//	                                  costs, two verifying at once (both cores busy, as in a log)
//	benchserver cpuperwrite NAME=BEFORE:AFTER:FILE ... -verify US
//	                                  prints each server's CPU per accepted write (from the CPU
//	                                  seconds before and after a run and its quirectl bench report)
//	                                  beside one verification's cost
package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quirelog/quire/api/client/loadgen"
	"github.com/quirelog/quire/scripts/internal/loopback"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "benchserver: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: benchserver keygen|ports|wait|sink|table ...")
	}
	rest := args[1:]
	switch args[0] {
	case "keygen":
		fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
		out := fs.String("out", "", "file to write the private key to")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		return keygen(*out)
	case "ports":
		fs := flag.NewFlagSet("ports", flag.ContinueOnError)
		n := fs.Int("n", 1, "how many ports")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		return ports(*n, stdout)
	case "wait":
		fs := flag.NewFlagSet("wait", flag.ContinueOnError)
		u := fs.String("url", "", "URL that answers 200 when the server is ready")
		timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
		pid := fs.Int("pid", 0, "the server's process ID: stop waiting if it exits")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		return wait(*u, *pid, *timeout)
	case "sink":
		fs := flag.NewFlagSet("sink", flag.ContinueOnError)
		listen := fs.String("listen", "127.0.0.1:0", "loopback address to listen on")
		verify := fs.Bool("verify", false, "verify each request's signature before answering")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		return sink(*listen, *verify, stdout)
	case "cpu":
		fs := flag.NewFlagSet("cpu", flag.ContinueOnError)
		pid := fs.Int("pid", 0, "process ID")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		secs, err := cpuSeconds(*pid)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%.2f\n", secs)
		return nil
	case "verifycost":
		fs := flag.NewFlagSet("verifycost", flag.ContinueOnError)
		n := fs.Int("n", 20000, "verifications to time")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		us, err := verifyCost(*n)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%.1f\n", us)
		return nil
	case "cpuperwrite":
		fs := flag.NewFlagSet("cpuperwrite", flag.ContinueOnError)
		verify := fs.Float64("verify", 0, "CPU µs of one verification, from verifycost")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		return cpuPerWrite(fs.Args(), *verify, stdout)
	case "table":
		fs := flag.NewFlagSet("table", flag.ContinueOnError)
		r := fs.String("ratio", "", "A/B: print A's figures over B's for each load both ran")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		return table(fs.Args(), *r, stdout)
	}
	return fmt.Errorf("unknown subcommand %q", args[0])
}

func keygen(out string) error {
	if out == "" {
		return errors.New("keygen: -out is required")
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("keygen: generating Ed25519 key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("keygen: encoding key: %w", err)
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return fmt.Errorf("keygen: writing %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keygen: closing %s: %w", out, err)
	}
	return nil
}

// ports holds all listeners open until every port is chosen, so the N ports are distinct.
func ports(n int, stdout io.Writer) error {
	if n < 1 || n > 100 {
		return fmt.Errorf("ports: -n %d: want 1 to 100", n)
	}
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("ports: %w", err)
		}
		ls = append(ls, l)
		fmt.Fprintln(stdout, l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

func wait(u string, pid int, timeout time.Duration) error {
	if u == "" {
		return errors.New("wait: -url is required")
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if pid > 0 && syscall.Kill(pid, 0) != nil {
			return fmt.Errorf("wait: process %d exited before %s answered", pid, u)
		}
		resp, err := hc.Get(u)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("wait: %s not ready after %s: %w", u, timeout, last)
}

// sinkAnswer is a small but well-formed TransparencyLogEntry, so a client that decodes answers
// pays for it too.
const sinkAnswer = `{"logIndex":"0","logId":{"keyId":"AAAA"},"kindVersion":{"kind":"hashedrekord","version":"0.0.2"},` +
	`"inclusionProof":{"logIndex":"0","rootHash":"AAAA","treeSize":"1","hashes":[],"checkpoint":{"envelope":"sink\n1\nAAAA\n"}},"canonicalizedBody":"e30="}`

func sink(listen string, verify bool, stdout io.Writer) error {
	return loopback.Serve("sink", listen, sinkHandler(verify), stdout)
}

func sinkHandler(verify bool) http.Handler {
	keys := &sinkKeys{m: map[string]*ecdsa.PublicKey{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("POST /api/v2/log/entries", func(w http.ResponseWriter, r *http.Request) {
		body := http.MaxBytesReader(w, r.Body, 4<<20)
		if verify {
			data, err := io.ReadAll(body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
				return
			}
			if err := keys.verify(data); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		} else if _, err := io.Copy(io.Discard, body); err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, sinkAnswer)
	})
	return mux
}

// sinkRequest is the part of a hashedrekord CreateEntryRequest (protojson) that verifying needs.
type sinkRequest struct {
	HashedRekordRequestV002 struct {
		Digest    []byte `json:"digest"`
		Signature struct {
			Content  []byte `json:"content"`
			Verifier struct {
				PublicKey struct {
					RawBytes []byte `json:"rawBytes"`
				} `json:"publicKey"`
			} `json:"verifier"`
		} `json:"signature"`
	} `json:"hashedRekordRequestV002"`
}

// sinkKeys keeps the parsed keys the generator signs with, so the verifying sink pays for a
// key's parsing once rather than per request, as a log that caches its signers' keys would. The
// generator uses a handful of keys; past maxSinkKeys they are parsed each time.
type sinkKeys struct {
	mu sync.Mutex
	m  map[string]*ecdsa.PublicKey
}

const maxSinkKeys = 64

func (k *sinkKeys) verify(body []byte) error {
	var req sinkRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return fmt.Errorf("decoding request: %w", err)
	}
	hr := req.HashedRekordRequestV002
	raw := string(hr.Signature.Verifier.PublicKey.RawBytes)
	k.mu.Lock()
	pub, ok := k.m[raw]
	k.mu.Unlock()
	if !ok {
		parsed, err := x509.ParsePKIXPublicKey(hr.Signature.Verifier.PublicKey.RawBytes)
		if err != nil {
			return fmt.Errorf("parsing public key: %w", err)
		}
		if pub, ok = parsed.(*ecdsa.PublicKey); !ok {
			return fmt.Errorf("public key is %T, want ECDSA", parsed)
		}
		k.mu.Lock()
		if len(k.m) < maxSinkKeys {
			k.m[raw] = pub
		}
		k.mu.Unlock()
	}
	if !ecdsa.VerifyASN1(pub, hr.Digest, hr.Signature.Content) {
		return errors.New("signature does not verify")
	}
	return nil
}

type namedReport struct {
	name string
	rep  loadgen.Report
}

func table(args []string, ratioOf string, stdout io.Writer) error {
	first, second, ok := strings.Cut(ratioOf, "/")
	if ratioOf != "" && (!ok || first == "" || second == "") {
		return fmt.Errorf("table: -ratio %q: want A/B", ratioOf)
	}
	var reps []namedReport
	for _, a := range args {
		name, file, ok := strings.Cut(a, "=")
		if !ok {
			return fmt.Errorf("table: argument %q: want NAME=FILE", a)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("table: %w", err)
		}
		var r loadgen.Report
		if err := json.Unmarshal(data, &r); err != nil {
			return fmt.Errorf("table: decoding %s: %w", file, err)
		}
		reps = append(reps, namedReport{name, r})
	}
	fmt.Fprintf(stdout, "%-12s %-6s %7s %9s %10s %9s %9s %9s  %s\n", "server", "mode", "workers", "offered/s", "entries/s", "p50 ms", "p90 ms", "p99 ms", "errors")
	for _, nr := range reps {
		r := nr.rep
		offered := "-"
		if r.Mode == "open" {
			offered = fmt.Sprintf("%.0f", r.OfferedRate)
		}
		fmt.Fprintf(stdout, "%-12s %-6s %7d %9s %10.1f %9.1f %9.1f %9.1f  %s\n", nr.name, r.Mode, r.Workers, offered, r.EntriesPerSecond, r.Latency.P50, r.Latency.P90, r.Latency.P99, errorsText(r))
	}
	if ratioOf == "" {
		return nil
	}
	header := false
	for _, a := range reps {
		if a.name != first {
			continue
		}
		for _, b := range reps {
			if b.name != second || b.rep.Mode != a.rep.Mode || b.rep.Workers != a.rep.Workers || b.rep.OfferedRate != a.rep.OfferedRate {
				continue
			}
			if !header {
				fmt.Fprintf(stdout, "\nratio %s/%s:\n", first, second)
				header = true
			}
			label := fmt.Sprintf("%s loop, %d workers", a.rep.Mode, a.rep.Workers)
			if a.rep.Mode == "open" {
				label = fmt.Sprintf("open loop, %.0f/s offered", a.rep.OfferedRate)
			}
			fmt.Fprintf(stdout, "  %-30s entries/s %s   p50 %s   p99 %s\n", label,
				ratio(a.rep.EntriesPerSecond, b.rep.EntriesPerSecond),
				ratio(a.rep.Latency.P50, b.rep.Latency.P50),
				ratio(a.rep.Latency.P99, b.rep.Latency.P99))
		}
	}
	return nil
}

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func errorsText(r loadgen.Report) string {
	if len(r.Errors) == 0 && r.Unsent == 0 {
		return "none"
	}
	var parts []string
	for _, k := range sortedKeys(r.Errors) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, r.Errors[k]))
	}
	if r.Unsent > 0 {
		parts = append(parts, fmt.Sprintf("unsent=%d", r.Unsent))
	}
	return strings.Join(parts, " ")
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// cpuSeconds is the CPU time (user and system) pid has used, from /proc.
func cpuSeconds(pid int) (float64, error) {
	if pid <= 0 {
		return 0, errors.New("cpu: -pid is required")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu: %w", err)
	}
	// Fields after the command name, which is in parentheses and may contain spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu: /proc/%d/stat has too few fields", pid)
	}
	var ticks float64
	for _, s := range f[11:13] {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu: /proc/%d/stat: %w", pid, err)
		}
		ticks += v
	}
	// USER_HZ is 100 on every Linux architecture Go supports.
	return ticks / 100, nil
}

// verifyCost times n ECDSA P-256 verifications of a SHA-256 digest, split over two goroutines so
// both cores are busy as they are in a loaded log, and returns the CPU µs per verification.
func verifyCost(n int) (float64, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return 0, err
	}
	digest := sha256.Sum256([]byte("an artifact"))
	sig, err := ecdsa.SignASN1(rand.Reader, k, digest[:])
	if err != nil {
		return 0, err
	}
	before, err := selfCPU()
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	var bad atomic.Int64
	for w := range 2 {
		wg.Go(func() {
			for i := w; i < n; i += 2 {
				if !ecdsa.VerifyASN1(&k.PublicKey, digest[:], sig) {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	after, err := selfCPU()
	if err != nil {
		return 0, err
	}
	if bad.Load() > 0 {
		return 0, fmt.Errorf("verifycost: %d verifications failed", bad.Load())
	}
	return (after - before).Seconds() * 1e6 / float64(n), nil
}

func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// cpuPerWrite prints, for each NAME=BEFORE:AFTER:FILE, the server's CPU seconds over the run
// divided by the writes its report counts as created (in time or after the end), in µs and as a
// multiple of one verification.
func cpuPerWrite(args []string, verify float64, stdout io.Writer) error {
	if verify <= 0 {
		return errors.New("cpuperwrite: -verify is required")
	}
	fmt.Fprintf(stdout, "%-12s %-6s %7s %9s %12s %14s %12s\n", "server", "mode", "workers", "created", "server CPU s", "µs per write", "÷ verify")
	for _, a := range args {
		name, spec, ok := strings.Cut(a, "=")
		parts := strings.SplitN(spec, ":", 3)
		if !ok || len(parts) != 3 {
			return fmt.Errorf("cpuperwrite: argument %q: want NAME=BEFORE:AFTER:FILE", a)
		}
		before, err1 := strconv.ParseFloat(parts[0], 64)
		after, err2 := strconv.ParseFloat(parts[1], 64)
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("cpuperwrite: argument %q: %w", a, err)
		}
		data, err := os.ReadFile(parts[2])
		if err != nil {
			return fmt.Errorf("cpuperwrite: %w", err)
		}
		var r loadgen.Report
		if err := json.Unmarshal(data, &r); err != nil {
			return fmt.Errorf("cpuperwrite: decoding %s: %w", parts[2], err)
		}
		created := r.Created + r.CreatedAfterEnd
		if created == 0 {
			fmt.Fprintf(stdout, "%-12s %-6s %7d %9d %12.1f %14s %12s\n", name, r.Mode, r.Workers, created, after-before, "-", "-")
			continue
		}
		us := (after - before) * 1e6 / float64(created)
		fmt.Fprintf(stdout, "%-12s %-6s %7d %9d %12.1f %14.0f %11.2fx\n", name, r.Mode, r.Workers, created, after-before, us, us/verify)
	}
	return nil
}
