// Command memload is the helper of scripts/memcheck: it starts a real `quire serve` (the binary it
// is given, so the same load runs against any version), sends it the requests that once ran it
// out of memory, and reports the server's peak resident memory against a ceiling:
//
//  1. -certs hashedrekord requests, half over REST and half over gRPC, each naming its signer by
//     a distinct certificate of -cert-bytes (3 MB: a valid certificate padded by an extension)
//     and carrying a signature that does not verify, so nothing is logged;
//  2. -bodies DSSE requests of the largest size the server takes, over REST and over gRPC (one
//     connection) at once, all in flight together.
//
// Peak memory is the kernel's high-water mark of the server's resident set (VmHWM in
// /proc/PID/status), so no sampling can miss it; VmRSS is sampled during each phase as well.
// memload exits 1 when the peak is above -ceiling-mib, or above the idle server's RSS by more than
// -load-mib, and 2 on a usage error.
//
//	memload -bin PATH [-ceiling-mib N] [-load-mib N] [-certs 200] [-cert-bytes 3000000]
//	        [-bodies 100] [-max-body 4194304] [-- SERVE FLAGS...]
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	dssepb "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

func main() {
	code, err := run(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "memload: %v\n", err)
	}
	os.Exit(code)
}

type options struct {
	bin        string
	ceilingMiB int
	loadMiB    int
	certs      int
	certBytes  int
	bodies     int
	maxBody    int
	serveArgs  []string
}

func run(args []string) (int, error) {
	var o options
	fs := flag.NewFlagSet("memload", flag.ContinueOnError)
	fs.StringVar(&o.bin, "bin", "", "the quire binary to run (required)")
	fs.IntVar(&o.ceilingMiB, "ceiling-mib", 0, "fail when the server's peak RSS exceeds this many MiB (0: report only)")
	fs.IntVar(&o.loadMiB, "load-mib", 0, "fail when the server's peak RSS exceeds its idle RSS by this many MiB (0: report only)")
	fs.IntVar(&o.certs, "certs", 200, "requests with a large certificate, half over REST, half over gRPC")
	fs.IntVar(&o.certBytes, "cert-bytes", 3_000_000, "size of each of those certificates")
	fs.IntVar(&o.bodies, "bodies", 100, "concurrent maximum-size requests over REST and as many over gRPC")
	fs.IntVar(&o.maxBody, "max-body", 4<<20, "the server's largest request body (its --max-request-body)")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	o.serveArgs = fs.Args()
	if o.bin == "" {
		return 2, errors.New("-bin is required")
	}
	srv, err := startServer(o.bin, o.serveArgs)
	if err != nil {
		return 1, err
	}
	defer srv.stop()
	idle, _ := srv.memory("VmRSS")
	fmt.Printf("quire serve pid %d: idle RSS %d MiB\n", srv.cmd.Process.Pid, idle>>20)

	conn, err := grpc.NewClient(srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(2*o.maxBody)))
	if err != nil {
		return 1, fmt.Errorf("dialing gRPC: %w", err)
	}
	defer conn.Close()
	l := &load{o: o, srv: srv, rekor: rekorpb.NewRekorClient(conn), http: &http.Client{
		Timeout:   5 * time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: 2 * o.bodies, MaxConnsPerHost: 2 * o.bodies},
	}}
	if err := l.phase("large certificates", l.certificates); err != nil {
		return 1, err
	}
	if err := l.phase("maximum-size bodies", l.maxBodies); err != nil {
		return 1, err
	}
	peak, err := srv.memory("VmHWM")
	if err != nil {
		return 1, err
	}
	peakMiB, growthMiB := peak>>20, (peak-idle)>>20
	fmt.Printf("peak RSS (VmHWM) %d MiB", peakMiB)
	if o.ceilingMiB > 0 {
		fmt.Printf(", ceiling %d MiB", o.ceilingMiB)
	}
	fmt.Printf("; %d MiB over idle", growthMiB)
	if o.loadMiB > 0 {
		fmt.Printf(", allowed %d MiB", o.loadMiB)
	}
	fmt.Println()
	if exited := srv.exited(); exited != "" {
		return 1, fmt.Errorf("the server exited during the load: %s", exited)
	}
	if o.ceilingMiB > 0 && peakMiB > int64(o.ceilingMiB) {
		return 1, fmt.Errorf("peak RSS %d MiB is above the ceiling of %d MiB", peakMiB, o.ceilingMiB)
	}
	if o.loadMiB > 0 && growthMiB > int64(o.loadMiB) {
		return 1, fmt.Errorf("the load raised RSS by %d MiB, more than the %d MiB allowed", growthMiB, o.loadMiB)
	}
	return 0, nil
}

// server is the running `quire serve`.
type server struct {
	cmd      *exec.Cmd
	dir      string
	httpURL  string
	grpcAddr string
	done     chan struct{}
	waitErr  error
	stderr   bytes.Buffer
	mu       sync.Mutex
}

var servingRE = regexp.MustCompile(`msg="quire serving" http=(127\.0\.0\.1:\d+) grpc=(127\.0\.0\.1:\d+)`)

func startServer(bin string, args []string) (*server, error) {
	dir, err := os.MkdirTemp("", "memload-")
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir, done: make(chan struct{})}
	args = append([]string{"serve", "--data-dir", dir + "/data", "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"}, args...)
	s.cmd = exec.Command(bin, args...)
	pr, pw := io.Pipe()
	s.cmd.Stderr = pw
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		pw.Close()
		close(s.done)
	}()
	addrs := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.mu.Lock()
			s.stderr.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if m := servingRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addrs <- m[1:]:
				default:
				}
			}
		}
	}()
	select {
	case a := <-addrs:
		s.httpURL, s.grpcAddr = "http://"+a[0], a[1]
	case <-s.done:
		return nil, fmt.Errorf("quire serve exited before serving: %v\n%s", s.waitErr, s.log())
	case <-time.After(60 * time.Second):
		s.stop()
		return nil, fmt.Errorf("quire serve did not report its addresses within 60s:\n%s", s.log())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.httpURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("quire serve not healthy within 30s:\n%s", s.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *server) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// exited says how the server ended if it has, "" while it runs.
func (s *server) exited() string {
	select {
	case <-s.done:
		return fmt.Sprintf("%v\n%s", s.waitErr, s.log())
	default:
		return ""
	}
}

// stop ends the server (SIGTERM, then SIGKILL after 30s) and removes its data.
func (s *server) stop() {
	if s.exited() == "" {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	os.RemoveAll(s.dir)
}

// memory reads a size field (VmRSS, VmHWM) of the server's /proc/PID/status, in bytes.
func (s *server) memory(field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("reading the server's memory: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing %s %q: %w", field, v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, s.cmd.Process.Pid)
}

// load sends the requests and counts the answers.
type load struct {
	o     options
	srv   *server
	rekor rekorpb.RekorClient
	http  *http.Client

	mu      sync.Mutex
	answers map[string]int
}

func (l *load) count(answer string) {
	l.mu.Lock()
	l.answers[answer]++
	l.mu.Unlock()
}

// phase runs f while sampling the server's RSS, then prints the answers and the phase's peak.
func (l *load) phase(name string, f func() error) error {
	l.answers = map[string]int{}
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, err := l.srv.memory("VmRSS"); err == nil && rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	start := time.Now()
	err := f()
	close(stop)
	<-sampled
	var answers []string
	for a, n := range l.answers {
		answers = append(answers, fmt.Sprintf("%s×%d", a, n))
	}
	sort.Strings(answers)
	fmt.Printf("%s: %v, sampled peak RSS %d MiB, answers %s\n", name, time.Since(start).Round(time.Millisecond), peak.Load()>>20, strings.Join(answers, " "))
	return err
}

// certificates sends o.certs hashedrekord requests with large certificates, 8 at a time over each
// transport.
func (l *load) certificates() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	var serial atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	per := l.o.certs / 2
	for w := range 16 {
		overGRPC := w%2 == 1
		n := per / 8
		if w/2 < per%8 {
			n++
		}
		wg.Go(func() {
			for range n {
				cert, err := paddedCert(key, serial.Add(1), l.o.certBytes)
				if err != nil {
					errs <- err
					return
				}
				req := badHashedRekord(key, cert)
				if overGRPC {
					l.sendGRPC(req)
				} else {
					l.sendREST(req)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// maxBodies sends o.bodies maximum-size DSSE requests over REST and as many over gRPC, all at once.
func (l *load) maxBodies() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	// The JSON body carries the payload in base64 (4/3 of it); the gRPC message in binary.
	restReq, err := maxDSSE(key, (l.o.maxBody-2048)/4*3)
	if err != nil {
		return err
	}
	grpcReq, err := maxDSSE(key, l.o.maxBody-2048)
	if err != nil {
		return err
	}
	restBody, err := protojson.Marshal(restReq)
	if err != nil {
		return err
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range l.o.bodies {
		wg.Go(func() {
			<-start
			l.postREST(restBody)
		})
		wg.Go(func() {
			<-start
			l.sendGRPC(grpcReq)
		})
	}
	close(start)
	wg.Wait()
	return nil
}

func (l *load) sendREST(req *rekorpb.CreateEntryRequest) {
	body, err := protojson.Marshal(req)
	if err != nil {
		l.count("REST:encode-error")
		return
	}
	l.postREST(body)
}

func (l *load) postREST(body []byte) {
	resp, err := l.http.Post(l.srv.httpURL+"/api/v2/log/entries", "application/json", bytes.NewReader(body))
	if err != nil {
		l.count("REST:" + shortError(err))
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	l.count("REST:" + strconv.Itoa(resp.StatusCode))
}

func (l *load) sendGRPC(req *rekorpb.CreateEntryRequest) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, err := l.rekor.CreateEntry(ctx, req)
	l.count("gRPC:" + status.Code(err).String())
}

// shortError names a transport failure without the addresses in it.
func shortError(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		return "connection-reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection-closed"
	}
	return "transport-error"
}

// paddedCert is a valid certificate for key, grown to about size bytes by an opaque extension.
func paddedCert(key *ecdsa.PrivateKey, serial int64, size int) ([]byte, error) {
	pad, err := asn1.Marshal(make([]byte, max(size-600, 1)))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:    big.NewInt(serial),
		Subject:         pkix.Name{CommonName: "memload"},
		NotBefore:       time.Now().Add(-time.Hour),
		NotAfter:        time.Now().Add(time.Hour),
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 99}, Value: pad}},
	}
	return x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
}

// badHashedRekord names its signer by cert but signs another digest than it carries.
func badHashedRekord(key *ecdsa.PrivateKey, cert []byte) *rekorpb.CreateEntryRequest {
	digest := sha256.Sum256(cert[len(cert)-64:])
	other := sha256.Sum256(digest[:])
	sig, _ := ecdsa.SignASN1(rand.Reader, key, other[:])
	return &rekorpb.CreateEntryRequest{Spec: &rekorpb.CreateEntryRequest_HashedRekordRequestV002{
		HashedRekordRequestV002: &rekorpb.HashedRekordRequestV002{Digest: digest[:], Signature: &rekorpb.Signature{
			Content: sig,
			Verifier: &rekorpb.Verifier{
				KeyDetails: commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
				Verifier:   &rekorpb.Verifier_X509Certificate{X509Certificate: &commonv1.X509Certificate{RawBytes: cert}},
			},
		}},
	}}
}

// maxDSSE is a DSSE request with a payload of payloadBytes whose one signature does not verify,
// so the server reads, decodes and checks all of it and logs nothing.
func maxDSSE(key *ecdsa.PrivateKey, payloadBytes int) (*rekorpb.CreateEntryRequest, error) {
	payload := make([]byte, payloadBytes)
	if _, err := rand.Read(payload); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	d := sha256.Sum256([]byte("not the PAE"))
	sig, err := ecdsa.SignASN1(rand.Reader, key, d[:])
	if err != nil {
		return nil, err
	}
	return &rekorpb.CreateEntryRequest{Spec: &rekorpb.CreateEntryRequest_DsseRequestV002{DsseRequestV002: &rekorpb.DSSERequestV002{
		Envelope: &dssepb.Envelope{
			Payload:     payload,
			PayloadType: "application/vnd.in-toto+json",
			Signatures:  []*dssepb.Signature{{Sig: sig}},
		},
		Verifiers: []*rekorpb.Verifier{{
			KeyDetails: commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
			Verifier:   &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: der}},
		}},
	}}}, nil
}
