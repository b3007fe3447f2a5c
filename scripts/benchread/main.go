// Command benchread is the helper of scripts/bench-read: one load generator for every server the
// script compares, so that the servers differ and nothing else does.
//
//	benchread files -dir D -listen ADDR   serves D with Go's http.FileServer (what Tessera's POSIX
//	                                      server does with its storage directory)
//	benchread prime -url URL -size N      asks once for every full entry bundle of a log of N
//	                                      entries with Accept-Encoding: gzip, so a server that
//	                                      compresses a bundle on its first request has done so
//	benchread run -size N -target NAME=URL ... [-pids NAME=PID,...] [-workers 64] [-duration 10s]
//	                                      [-rounds 1] [-slices 10] reads random resources of a log of N entries
//	                                      from each target and prints the rates, their ratios and
//	                                      the CPU time per read of each target and of itself
//
// What run reads, each from a fresh random index per request, over keep-alive connections with
// -workers requests in flight:
//
//	tile         a full level-0 hash tile, /tile/0/<N> (8 KiB)
//	bundle       a full entry bundle, /tile/entries/<N>
//	bundle-gzip  the same with Accept-Encoding: gzip (the body is read, not decompressed)
//	proof        /quire/v1/proof/inclusion?index=I&tree_size=N (only targets named quire or quire-*)
//	entry        /quire/v1/entries/I (only targets named quire or quire-*)
//
// Before the clock starts run checks that every target serves the same bytes for a sample of
// tiles and bundles (gzip ones decompressed), so the comparison is of one log. Within a round every
// cell (a kind from a target) runs -slices times for -duration/-slices each, the cells taking turns
// slice by slice, so that a neighbour on the shared machine that gets busy for a while slows every
// cell alike rather than the one that happened to run then; each cell's warm-up runs before its
// first slice. With -rounds above 1 the table shows each cell's median and each ratio's median over
// the rounds. Every answer must be 200 with the expected shape, or it counts as an error, not a read.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/transparency-dev/tessera/api/layout"

	"github.com/quirelog/quire/scripts/internal/loopback"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "benchread: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: benchread files|run ...")
	}
	rest := args[1:]
	switch args[0] {
	case "files":
		fs := flag.NewFlagSet("files", flag.ContinueOnError)
		dir := fs.String("dir", "", "directory to serve")
		listen := fs.String("listen", "127.0.0.1:0", "loopback address to listen on")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		return serveFiles(*dir, *listen, stdout)
	case "prime":
		fs := flag.NewFlagSet("prime", flag.ContinueOnError)
		u := fs.String("url", "", "base URL of the server")
		size := fs.Uint64("size", 0, "tree size of the log it serves")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		return prime(*u, *size, stdout)
	case "run":
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		var cfg runConfig
		fs.Uint64Var(&cfg.size, "size", 0, "tree size of the log the targets serve")
		fs.IntVar(&cfg.workers, "workers", 64, "requests in flight per cell")
		fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long each cell runs")
		fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "unmeasured reads before each cell")
		fs.IntVar(&cfg.rounds, "rounds", 1, "how many times every cell runs")
		fs.IntVar(&cfg.slices, "slices", 10, "how many turns the cells of a round take, each of -duration/-slices")
		kinds := fs.String("kinds", strings.Join(allKinds, ","), "comma-separated kinds to read")
		jsonOut := fs.String("json", "", "also write every cell's figures as JSON to `FILE`")
		fs.Func("target", "`NAME=URL` of a server to read from (repeat); the one named quire also serves proofs and entries", func(s string) error {
			name, u, ok := strings.Cut(s, "=")
			if !ok || name == "" || u == "" {
				return fmt.Errorf("want NAME=URL, got %q", s)
			}
			pu, err := url.Parse(u)
			if err != nil || pu.Scheme != "http" || pu.Host == "" || (pu.Path != "" && pu.Path != "/") {
				return fmt.Errorf("%q: want a plain http://HOST:PORT URL", u)
			}
			cfg.targets = append(cfg.targets, target{name: name, url: strings.TrimSuffix(u, "/"), host: pu.Host})
			return nil
		})
		pids := map[string][]int{}
		fs.Func("pids", "`NAME=PID[,PID...]`: the processes of target NAME, whose CPU time per read is reported (repeat)", func(s string) error {
			name, list, ok := strings.Cut(s, "=")
			if !ok {
				return fmt.Errorf("want NAME=PID[,PID...], got %q", s)
			}
			for _, f := range strings.Split(list, ",") {
				pid, err := strconv.Atoi(f)
				if err != nil || pid <= 0 {
					return fmt.Errorf("bad process ID %q", f)
				}
				pids[name] = append(pids[name], pid)
			}
			return nil
		})
		if err := fs.Parse(rest); err != nil {
			return err
		}
		cfg.kinds = strings.Split(*kinds, ",")
		for i := range cfg.targets {
			cfg.targets[i].pids = pids[cfg.targets[i].name]
		}
		return runBench(cfg, *jsonOut, stdout)
	}
	return fmt.Errorf("unknown subcommand %q", args[0])
}

func serveFiles(dir, listen string, stdout io.Writer) error {
	if dir == "" {
		return errors.New("files: -dir is required")
	}
	return loopback.Serve("files", listen, http.FileServer(http.Dir(dir)), stdout)
}

// prime reads every full bundle once with gzip, four at a time, and says how long it took.
func prime(u string, size uint64, stdout io.Writer) error {
	if u == "" || size < layout.EntryBundleWidth {
		return errors.New("prime: -url and a -size of at least one full bundle are required")
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: time.Minute}
	full := size / layout.EntryBundleWidth
	var next atomic.Uint64
	errs := make([]error, 4)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < full && errs[w] == nil; i = next.Add(1) - 1 {
				_, errs[w] = fetch(client, strings.TrimSuffix(u, "/")+"/"+layout.EntriesPath(i, 0), true)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prime: %w", err)
	}
	fmt.Fprintf(stdout, "%d full bundles asked for with gzip in %.1f s\n", full, time.Since(start).Seconds())
	return nil
}

const (
	kindTile       = "tile"
	kindBundle     = "bundle"
	kindBundleGzip = "bundle-gzip"
	kindProof      = "proof"
	kindEntry      = "entry"
	// quireOnly names the target that also serves the quire.v1 reads, and the one the others are
	// compared with.
	quireOnly = "quire"
)

var allKinds = []string{kindTile, kindBundle, kindBundleGzip, kindProof, kindEntry}

var kindLabels = map[string]string{
	kindTile:       "full level-0 hash tile",
	kindBundle:     "full entry bundle",
	kindBundleGzip: "full entry bundle, gzip",
	kindProof:      "inclusion proof",
	kindEntry:      "entry by index",
}

type target struct {
	name, url string
	// host is the host:port of url, for the load generator's own connections.
	host string
	// pids are the target's processes, whose CPU time is charged to its reads.
	pids []int
}

type runConfig struct {
	size     uint64
	workers  int
	duration time.Duration
	warmup   time.Duration
	rounds   int
	slices   int
	kinds    []string
	targets  []target
}

// cell is one measurement: a kind read from a target for one round.
type cell struct {
	Kind    string  `json:"kind"`
	Target  string  `json:"target"`
	Round   int     `json:"round"`
	Reads   int64   `json:"reads"`
	Errors  int64   `json:"errors"`
	Bytes   int64   `json:"bytes"`
	Gzipped int64   `json:"gzipped"`
	Seconds float64 `json:"seconds"`
	Rate    float64 `json:"reads_per_second"`
	// ClientMicros and ServerMicros are the CPU time per read of the generator and of the target's
	// processes (0 when no -pids were given for it).
	ClientMicros float64 `json:"client_cpu_us_per_read"`
	ServerMicros float64 `json:"server_cpu_us_per_read"`
	// FirstError is an example of what went wrong, if anything did.
	FirstError string `json:"first_error,omitempty"`

	// clientCPU and serverCPU are the CPU times behind ClientMicros and ServerMicros.
	clientCPU, serverCPU time.Duration
}

// add adds slice d, a measurement of the same kind and target, to c.
func (c *cell) add(d cell) {
	c.Kind, c.Target = d.Kind, d.Target
	c.Reads += d.Reads
	c.Errors += d.Errors
	c.Bytes += d.Bytes
	c.Gzipped += d.Gzipped
	c.Seconds += d.Seconds
	c.clientCPU += d.clientCPU
	c.serverCPU += d.serverCPU
	if c.FirstError == "" {
		c.FirstError = d.FirstError
	}
	c.Rate = float64(c.Reads) / c.Seconds
	c.ClientMicros, c.ServerMicros = 0, 0
	if c.Reads > 0 {
		c.ClientMicros = c.clientCPU.Seconds() * 1e6 / float64(c.Reads)
		c.ServerMicros = c.serverCPU.Seconds() * 1e6 / float64(c.Reads)
	}
}

func (c runConfig) valid() error {
	switch {
	case c.size < layout.EntryBundleWidth:
		return fmt.Errorf("-size %d: the log needs at least one full tile (%d entries)", c.size, layout.EntryBundleWidth)
	case c.workers < 1 || c.rounds < 1 || c.slices < 1 || c.duration <= 0 || c.warmup < 0:
		return errors.New("-workers, -rounds, -slices and -duration must be positive")
	case len(c.targets) == 0:
		return errors.New("at least one -target is required")
	}
	for _, k := range c.kinds {
		if _, ok := kindLabels[k]; !ok {
			return fmt.Errorf("unknown kind %q (want some of %s)", k, strings.Join(allKinds, ","))
		}
	}
	return nil
}

func runBench(cfg runConfig, jsonOut string, stdout io.Writer) error {
	if err := cfg.valid(); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	// The check uses Go's client (gzip decoded by hand); the measurement uses conn.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 30 * time.Second}
	if err := sameLog(client, cfg); err != nil {
		return err
	}
	loadStart := loadAverage()
	var cells []cell
	slice := cfg.duration / time.Duration(cfg.slices)
	for round := 1; round <= cfg.rounds; round++ {
		fmt.Fprintf(os.Stderr, "benchread: round %d\n", round)
		first := len(cells)
		for s := range cfg.slices {
			i := first
			for _, kind := range cfg.kinds {
				for _, t := range cfg.targets {
					if !serves(t, kind) {
						continue
					}
					if s == 0 {
						if cfg.warmup > 0 {
							measure(cfg, t, kind, cfg.warmup)
						}
						cells = append(cells, cell{Round: round})
					}
					cells[i].add(measure(cfg, t, kind, slice))
					i++
				}
			}
		}
		for _, c := range cells[first:] {
			if c.Errors > 0 {
				fmt.Fprintf(os.Stderr, "benchread: %s from %s: %d errors, e.g. %s\n", c.Kind, c.Target, c.Errors, c.FirstError)
			}
		}
	}
	loadEnd := loadAverage()
	if jsonOut != "" {
		data, err := json.MarshalIndent(cells, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(jsonOut, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	printTable(stdout, cfg, cells, loadStart, loadEnd)
	return nil
}

// serves reports whether t serves reads of kind: the quire.v1 reads come only from a target named
// quire or quire-SOMETHING (quire-before, say, to compare two builds in one run).
func serves(t target, kind string) bool {
	return isQuire(t.name) || (kind != kindProof && kind != kindEntry)
}

func isQuire(name string) bool {
	return name == quireOnly || strings.HasPrefix(name, quireOnly+"-")
}

// path is the resource read for kind at random index r of the log.
func path(kind string, size uint64, rng *mrand.Rand) string {
	full := size / layout.EntryBundleWidth
	switch kind {
	case kindTile:
		return "/" + layout.TilePath(0, rng.Uint64N(full), 0)
	case kindBundle, kindBundleGzip:
		return "/" + layout.EntriesPath(rng.Uint64N(full), 0)
	case kindProof:
		return fmt.Sprintf("/quire/v1/proof/inclusion?index=%d&tree_size=%d", rng.Uint64N(size), size)
	default:
		return fmt.Sprintf("/quire/v1/entries/%d", rng.Uint64N(size))
	}
}

// measure reads kind from t with cfg.workers connections for d, and what the generator and the
// target's processes spent on it.
func measure(cfg runConfig, t target, kind string, d time.Duration) cell {
	var reads, errs, nbytes, gzipped atomic.Int64
	var firstErr atomic.Pointer[string]
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	selfStart, srvStart := selfCPU(), processCPU(t.pids)
	start := time.Now()
	var wg sync.WaitGroup
	for range cfg.workers {
		wg.Go(func() {
			rng := mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))
			c := &conn{addr: t.host}
			defer c.close()
			for ctx.Err() == nil {
				n, gz, err := c.get(t.host, path(kind, cfg.size, rng), kind == kindBundleGzip)
				if err == nil {
					err = checkShape(kind, n, gz)
				}
				if ctx.Err() != nil {
					// The clock ran out during this read; count neither way.
					return
				}
				if err != nil {
					errs.Add(1)
					msg := err.Error()
					firstErr.CompareAndSwap(nil, &msg)
					c.close()
					continue
				}
				reads.Add(1)
				nbytes.Add(n)
				if gz {
					gzipped.Add(1)
				}
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	c := cell{Kind: kind, Target: t.name, Reads: reads.Load(), Errors: errs.Load(), Bytes: nbytes.Load(), Gzipped: gzipped.Load(), Seconds: secs}
	c.clientCPU = selfCPU() - selfStart
	if len(t.pids) > 0 {
		c.serverCPU = processCPU(t.pids) - srvStart
	}
	if p := firstErr.Load(); p != nil {
		c.FirstError = *p
	}
	return c
}

// checkShape checks what an answer of kind must look like, beyond its 200 status.
func checkShape(kind string, n int64, gz bool) error {
	switch {
	case kind == kindTile && n != layout.TileWidth*32:
		return fmt.Errorf("%d bytes, want a full tile of %d", n, layout.TileWidth*32)
	case n == 0:
		return errors.New("empty body")
	case kind != kindBundleGzip && gz:
		return errors.New("gzip answer to a request that did not accept it")
	}
	return nil
}

// conn is one keep-alive HTTP/1.1 connection with a minimal client: it writes a GET and reads the
// status line, the headers it needs and the body (by Content-Length or chunked), and nothing more,
// so that the generator spends as little of the shared CPU as it can (as wrk does) and the
// measurement is of the servers.
type conn struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
	req  []byte
}

func (c *conn) close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// get reads path and returns the body length and whether it was gzip-encoded. A status other
// than 200 is an error.
func (c *conn) get(host, path string, acceptGzip bool) (int64, bool, error) {
	if c.c == nil {
		nc, err := net.Dial("tcp", c.addr)
		if err != nil {
			return 0, false, err
		}
		c.c = nc
		if c.r == nil {
			c.r = bufio.NewReaderSize(nc, 64<<10)
		} else {
			c.r.Reset(nc)
		}
	}
	c.req = append(c.req[:0], "GET "...)
	c.req = append(c.req, path...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, host...)
	if acceptGzip {
		c.req = append(c.req, "\r\nAccept-Encoding: gzip"...)
	}
	c.req = append(c.req, "\r\n\r\n"...)
	if _, err := c.c.Write(c.req); err != nil {
		return 0, false, fmt.Errorf("GET %s: %w", path, err)
	}
	n, gz, keep, status, err := c.readResponse()
	if err != nil {
		return n, gz, fmt.Errorf("GET %s: %w", path, err)
	}
	if !keep {
		c.close()
	}
	if status != http.StatusOK {
		return n, gz, fmt.Errorf("GET %s: status %d", path, status)
	}
	return n, gz, nil
}

func (c *conn) readResponse() (n int64, gz, keep bool, status int, err error) {
	line, err := c.line()
	if err != nil {
		return 0, false, false, 0, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, false, 0, fmt.Errorf("malformed status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, false, 0, fmt.Errorf("malformed status line %q", line)
	}
	length, chunked := int64(-1), false
	keep = true
	for {
		h, err := c.line()
		if err != nil {
			return 0, false, false, status, err
		}
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, false, false, status, fmt.Errorf("malformed header %q", h)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return 0, false, false, status, fmt.Errorf("malformed Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Content-Encoding")):
			gz = bytes.EqualFold(value, []byte("gzip"))
		case bytes.EqualFold(name, []byte("Connection")):
			keep = !bytes.EqualFold(value, []byte("close"))
		}
	}
	switch {
	case chunked:
		n, err = c.discardChunked()
	case length >= 0:
		var d int
		d, err = c.r.Discard(int(length))
		n = int64(d)
	default:
		return 0, gz, false, status, errors.New("answer has neither Content-Length nor chunked encoding")
	}
	return n, gz, keep, status, err
}

func (c *conn) discardChunked() (int64, error) {
	var total int64
	for {
		line, err := c.line()
		if err != nil {
			return total, err
		}
		size, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return total, fmt.Errorf("malformed chunk size %q", line)
		}
		if n == 0 {
			// No trailers are expected: the blank line ends the body.
			if _, err := c.line(); err != nil {
				return total, err
			}
			return total, nil
		}
		d, err := c.r.Discard(int(n))
		total += int64(d)
		if err != nil {
			return total, err
		}
		if _, err := c.line(); err != nil {
			return total, err
		}
	}
}

// line reads one CRLF-terminated line without its terminator; it is valid until the next read.
func (c *conn) line() ([]byte, error) {
	l, err := c.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(l, "\r\n"), nil
}

// selfCPU is the CPU time (user and system) this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processCPU is the CPU time (user and system) the processes pids have used, from /proc.
func processCPU(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses and may contain spaces.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	// Linux reports in USER_HZ, 100 per second on every architecture Go supports.
	return time.Duration(ticks) * 10 * time.Millisecond
}

// sameLog checks that every target serves the same bytes for a sample of full tiles and bundles.
func sameLog(client *http.Client, cfg runConfig) error {
	full := cfg.size / layout.EntryBundleWidth
	samples := []uint64{0, full / 2, full - 1}
	var paths []string
	for _, i := range samples {
		paths = append(paths, "/"+layout.TilePath(0, i, 0), "/"+layout.EntriesPath(i, 0))
	}
	for _, p := range paths {
		var want []byte
		for _, t := range cfg.targets {
			for _, gz := range []bool{false, true} {
				got, err := fetch(client, t.url+p, gz)
				if err != nil {
					return fmt.Errorf("checking that the targets serve one log: %w", err)
				}
				if want == nil {
					want = got
				} else if !bytes.Equal(got, want) {
					return fmt.Errorf("checking that the targets serve one log: %s%s differs from %s%s", t.url, p, cfg.targets[0].url, p)
				}
			}
		}
	}
	return nil
}

// fetch GETs u, decompressing a gzip answer.
func fetch(client *http.Client, u string, gz bool) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	var r io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", u, err)
		}
		r = zr
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	return b, nil
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// printTable prints each kind's median rate per target and, per round, Quire's rate over each
// other target's (and proofs and entries over Quire's tile rate), as medians over the rounds.
func printTable(w io.Writer, cfg runConfig, cells []cell, loadStart, loadEnd string) {
	rate := map[[3]string]float64{}  // kind, target, round
	cpu := map[[2]string][]float64{} // kind, target: server CPU µs per read, one per round
	clientCPU := map[[2]string][]float64{}
	gz := map[[2]string]int64{}
	reads := map[[2]string]int64{}
	var errs int64
	for _, c := range cells {
		rate[[3]string{c.Kind, c.Target, fmt.Sprint(c.Round)}] = c.Rate
		gz[[2]string{c.Kind, c.Target}] += c.Gzipped
		reads[[2]string{c.Kind, c.Target}] += c.Reads
		errs += c.Errors
		if c.ServerMicros > 0 {
			cpu[[2]string{c.Kind, c.Target}] = append(cpu[[2]string{c.Kind, c.Target}], c.ServerMicros)
		}
		clientCPU[[2]string{c.Kind, c.Target}] = append(clientCPU[[2]string{c.Kind, c.Target}], c.ClientMicros)
	}
	perRound := func(kind, name string) []float64 {
		var xs []float64
		for r := 1; r <= cfg.rounds; r++ {
			if v, ok := rate[[3]string{kind, name, fmt.Sprint(r)}]; ok {
				xs = append(xs, v)
			}
		}
		return xs
	}
	ratios := func(kind, a, kindB, b string) (float64, bool) {
		var xs []float64
		for r := 1; r <= cfg.rounds; r++ {
			x, ok1 := rate[[3]string{kind, a, fmt.Sprint(r)}]
			y, ok2 := rate[[3]string{kindB, b, fmt.Sprint(r)}]
			if ok1 && ok2 && y > 0 {
				xs = append(xs, x/y)
			}
		}
		return median(xs), len(xs) > 0
	}

	fmt.Fprintf(w, "bench-read: %s, %d entries, %d workers, %s per cell in %d interleaved slices after %s warm-up, %d round(s)\n",
		time.Now().UTC().Format(time.RFC3339), cfg.size, cfg.workers, cfg.duration, cfg.slices, cfg.warmup, cfg.rounds)
	fmt.Fprintf(w, "  load average at start %s, at end %s\n\n", loadStart, loadEnd)
	fmt.Fprintf(w, "%-26s", "reads/s")
	for _, t := range cfg.targets {
		fmt.Fprintf(w, " %12s", t.name)
	}
	var others []target
	for _, t := range cfg.targets {
		if t.name != quireOnly {
			others = append(others, t)
			fmt.Fprintf(w, " %14s", quireOnly+"/"+t.name)
		}
	}
	fmt.Fprintln(w)
	for _, kind := range cfg.kinds {
		fmt.Fprintf(w, "%-26s", kindLabels[kind])
		for _, t := range cfg.targets {
			xs := perRound(kind, t.name)
			if len(xs) == 0 {
				fmt.Fprintf(w, " %12s", "-")
				continue
			}
			mark := ""
			if kind == kindBundleGzip && gz[[2]string{kind, t.name}] < reads[[2]string{kind, t.name}] {
				// Not every answer was compressed: the server ignored Accept-Encoding.
				mark = "*"
			}
			fmt.Fprintf(w, " %12s", fmt.Sprintf("%.0f%s", median(xs), mark))
		}
		for _, t := range others {
			if v, ok := ratios(kind, quireOnly, kind, t.name); ok {
				fmt.Fprintf(w, " %13.2fx", v)
			} else {
				fmt.Fprintf(w, " %14s", "-")
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-26s", "CPU µs per read: server")
	fmt.Fprintf(w, "%s (generator)\n", strings.Repeat(" ", 13*len(cfg.targets)))
	for _, kind := range cfg.kinds {
		fmt.Fprintf(w, "%-26s", kindLabels[kind])
		var gen []float64
		for _, t := range cfg.targets {
			gen = append(gen, clientCPU[[2]string{kind, t.name}]...)
			if xs := cpu[[2]string{kind, t.name}]; len(xs) > 0 {
				fmt.Fprintf(w, " %12.0f", median(xs))
			} else {
				fmt.Fprintf(w, " %12s", "-")
			}
		}
		fmt.Fprintf(w, " (%.0f)\n", median(gen))
	}
	fmt.Fprintln(w)
	for _, kind := range []string{kindProof, kindEntry} {
		for _, t := range cfg.targets {
			if v, ok := ratios(kind, t.name, kindTile, t.name); ok && isQuire(t.name) {
				fmt.Fprintf(w, "%s / full tile, both from %s: %.2fx\n", kindLabels[kind], t.name, v)
			}
		}
	}
	for _, t := range cfg.targets {
		k := [2]string{kindBundleGzip, t.name}
		if reads[k] > 0 && gz[k] < reads[k] {
			fmt.Fprintf(w, "* %s answered %d of %d gzip requests uncompressed\n", t.name, reads[k]-gz[k], reads[k])
		}
	}
	if errs > 0 {
		fmt.Fprintf(w, "errors: %d answers were not a valid 200 (see stderr); they are not counted as reads\n", errs)
	}
}
