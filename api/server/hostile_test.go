package server_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/proto"
)

// hostileCase is one request a careless or malicious client may send.
// Most live in testdata/hostile/cases.json; generatedCases adds those too big or too deep to keep
// as files. A case with Status 201 is a positive one (an accepted spelling): it must add exactly
// one entry; every other case must change nothing.
type hostileCase struct {
	Name   string `json:"name"`
	Method string `json:"method"`
	Path   string `json:"path"`
	// ContentType defaults to application/json when there is a body; "-" sends none.
	ContentType string `json:"contentType"`
	// Body is a JSON body kept byte for byte (duplicate keys and all); RawBody one that is not JSON.
	Body    json.RawMessage `json:"body"`
	RawBody *string         `json:"rawBody"`
	// Chunked sends the body without a Content-Length.
	Chunked bool `json:"chunked"`
	Status  int  `json:"status"`
	// Code is the gRPC code in the {"code","message","details"} error body; nil for the tlog-tiles
	// handler's plain-text errors.
	Code    *int   `json:"code"`
	Message string `json:"message"`

	rawBody []byte // generated bodies, used as they are (no placeholders)
}

func loadHostileCases(t *testing.T) []hostileCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "hostile", "cases.json"))
	if err != nil {
		t.Fatalf("reading hostile cases: %v", err)
	}
	var cases []hostileCase
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cases); err != nil {
		t.Fatalf("parsing testdata/hostile/cases.json: %v", err)
	}
	return cases
}

// placeholder matches the {{NAME}} markers that hostileKeys.placeholders fills in.
var placeholder = regexp.MustCompile(`\{\{[A-Z0-9_]+\}\}`)

func intp(n int) *int { return &n }

// generatedCases are the cases whose requests are built in code: 10,000-level nesting, bodies over
// the harness's 64 KiB limit, paths and numbers thousands of characters long.
func generatedCases(t *testing.T) []hostileCase {
	t.Helper()
	const depth = 10000
	deepArrays := strings.Repeat("[", depth) + strings.Repeat("]", depth)
	deepObjects := strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
	prefix := `{"hashedRekordRequestV002":{"digest":`
	// A body just over the limit that would otherwise be a valid request: spaces are legal JSON.
	padded := `{"hashedRekordRequestV002":{"digest":"{{DIGEST}}",` + strings.Repeat(" ", 65<<10) + `"signature":{"content":"{{SIG}}","verifier":{"publicKey":{"rawBytes":"{{PUB}}"},"keyDetails":"PKIX_ECDSA_P256_SHA_256"}}}}`
	hugeDigest := base64.StdEncoding.EncodeToString(make([]byte, 40<<10))
	binary, err := proto.Marshal(&rekorpb.CreateEntryRequest{Spec: &rekorpb.CreateEntryRequest_HashedRekordRequestV002{
		HashedRekordRequestV002: &rekorpb.HashedRekordRequestV002{Digest: make([]byte, sha256.Size)},
	}})
	if err != nil {
		t.Fatalf("encoding a protobuf request: %v", err)
	}
	return []hostileCase{
		{Name: "a body of 10,000 nested arrays is refused with 400 without exhausting the stack",
			Method: "POST", Path: "/api/v2/log/entries", rawBody: []byte(deepArrays), Status: 400, Code: intp(3), Message: "unexpected token ["},
		{Name: "10,000 nested objects under an unknown field are refused with 400",
			Method: "POST", Path: "/api/v2/log/entries", rawBody: []byte(`{"hashedRekordRequestV002":{"nested":` + deepObjects + `}}`), Status: 400, Code: intp(3), Message: "exceeded max depth"},
		{Name: "a digest that is 10,000 nested arrays is refused with 400",
			Method: "POST", Path: "/api/v2/log/entries", rawBody: []byte(prefix + deepArrays + `}}`), Status: 400, Code: intp(3), Message: "exceeded max depth"},
		{Name: "a declared body over the limit is refused with 413 before it is read",
			Method: "POST", Path: "/api/v2/log/entries", Body: json.RawMessage(padded), Status: 413, Code: intp(8), Message: "larger than 65536 bytes"},
		{Name: "a chunked body over the limit is refused with 413",
			Method: "POST", Path: "/api/v2/log/entries", Body: json.RawMessage(padded), Chunked: true, Status: 413, Code: intp(8), Message: "larger than 65536 bytes"},
		{Name: "a 40 KiB digest inside the body limit is refused with 400 naming the digest length",
			Method: "POST", Path: "/api/v2/log/entries", Body: json.RawMessage(`{"hashedRekordRequestV002":{"digest":"` + hugeDigest + `","signature":{"content":"{{SIG}}","verifier":{"publicKey":{"rawBytes":"{{PUB}}"},"keyDetails":"PKIX_ECDSA_P256_SHA_256"}}}}`),
			Status: 400, Code: intp(3), Message: "digest: length 40960"},
		{Name: "a key details number with 5,000 digits is refused with 400 naming keyDetails",
			Method: "POST", Path: "/api/v2/log/entries", Body: json.RawMessage(`{"hashedRekordRequestV002":{"digest":"{{DIGEST}}","signature":{"content":"{{SIG}}","verifier":{"publicKey":{"rawBytes":"{{PUB}}"},"keyDetails":` + strings.Repeat("9", 5000) + `}}}}`),
			Status: 400, Code: intp(3), Message: "keyDetails"},
		{Name: "a binary protobuf body is refused with 400: the REST gateway speaks JSON only",
			Method: "POST", Path: "/api/v2/log/entries", ContentType: "application/x-protobuf", rawBody: binary, Status: 400, Code: intp(3), Message: "invalid character"},
		{Name: "a body with an invalid UTF-8 byte in a string is refused with 400",
			Method: "POST", Path: "/api/v2/log/entries", rawBody: []byte("{\"hashedRekordRequestV002\":{\"digest\":\"\xff\"}}"), Status: 400, Code: intp(3), Message: "UTF-8"},
		{Name: "a tile path of 10,000 characters is refused with 400",
			Method: "GET", Path: "/tile/0/" + strings.Repeat("x001/", 2000) + "000", Status: 400, Message: "longer than"},
		{Name: "a search digest of 10,000 hex digits is refused with 400 naming the digest",
			Method: "GET", Path: "/quire/v1/search?digest=sha256:" + strings.Repeat("ab", 5000), Status: 400, Code: intp(3), Message: "digest"},
	}
}

// hostileKeys are the signers the placeholders in cases.json stand for.
type hostileKeys struct {
	ecdsa, other, p224 *ecdsa.PrivateKey
	ed                 ed25519.PrivateKey
	rsa                *rsa.PrivateKey
	cert, otherCert    []byte
}

func newHostileKeys(t *testing.T) *hostileKeys {
	t.Helper()
	k := &hostileKeys{ecdsa: newSigner(t), other: newSigner(t)}
	var err error
	if k.p224, err = ecdsa.GenerateKey(elliptic.P224(), rand.Reader); err != nil {
		t.Fatalf("generating P-224 key: %v", err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatalf("generating Ed25519 key: %v", err)
	}
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatalf("generating RSA key: %v", err)
	}
	k.cert = selfSigned(t, k.ecdsa)
	k.otherCert = selfSigned(t, k.other)
	return k
}

func selfSigned(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "hostile test signer"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatalf("creating certificate: %v", err)
	}
	return der
}

func pkixDER(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatalf("encoding public key: %v", err)
	}
	return der
}

// placeholders fills a case's body and path for one fresh artifact, so that a case the server
// wrongly accepted would add a new entry (and be caught) rather than hit a duplicate.
func (k *hostileKeys) placeholders(t *testing.T, artifact []byte) *strings.Replacer {
	t.Helper()
	d := sha256.Sum256(artifact)
	d384 := sha512.Sum384(artifact)
	sig, err := ecdsa.SignASN1(rand.Reader, k.ecdsa, d[:])
	if err != nil {
		t.Fatal(err)
	}
	otherSig, err := ecdsa.SignASN1(rand.Reader, k.other, d[:])
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := sha256.Sum256(append([]byte("not "), artifact...))
	sigElsewhere, err := ecdsa.SignASN1(rand.Reader, k.ecdsa, elsewhere[:])
	if err != nil {
		t.Fatal(err)
	}
	rsaSig, err := rsa.SignPKCS1v15(rand.Reader, k.rsa, crypto.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	return strings.NewReplacer(
		"{{DIGEST}}", b64(d[:]),
		"{{DIGEST_HEX}}", fmt.Sprintf("%x", d[:]),
		"{{DIGEST384}}", b64(d384[:]),
		"{{DIGEST_SHORT}}", b64(d[:20]),
		"{{DIGEST_LONG}}", b64(append(d[:], d[:]...)),
		"{{SIG}}", b64(sig),
		"{{SIG_TRUNCATED}}", b64(sig[:len(sig)/2]),
		"{{SIG_OTHER_KEY}}", b64(otherSig),
		"{{SIG_OTHER_DIGEST}}", b64(sigElsewhere),
		"{{SIG_RSA}}", b64(rsaSig),
		"{{PUB}}", b64(pkixDER(t, &k.ecdsa.PublicKey)),
		"{{PUB_P224}}", b64(pkixDER(t, &k.p224.PublicKey)),
		"{{PUB_ED25519}}", b64(pkixDER(t, k.ed.Public())),
		"{{PUB_RSA}}", b64(pkixDER(t, &k.rsa.PublicKey)),
		"{{CERT}}", b64(k.cert),
		"{{CERT_OTHER_KEY}}", b64(k.otherCert),
	)
}

// treeState is everything a refused request must leave alone: the published checkpoint's size and
// root, and the next index the sequencer would hand out.
type treeState struct {
	size uint64
	root []byte
	next uint64
}

func (l *testLog) treeState(t *testing.T) treeState {
	t.Helper()
	a := l.do(http.MethodGet, "/checkpoint", nil)
	if a.status != http.StatusOK {
		t.Fatalf("GET /checkpoint: status %d: %s", a.status, a.body)
	}
	cp, err := l.openCheckpoint(a.body)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	next, err := l.storage.NextIndex(ctx)
	if err != nil {
		t.Fatalf("reading next index: %v", err)
	}
	return treeState{size: cp.Size, root: cp.Hash, next: next}
}

// noRedirects shows a redirect as the answer it is, so a path the mux rewrites is judged by what
// the server said and not by where it pointed.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (l *testLog) sendHostile(t *testing.T, tc hostileCase, fill *strings.Replacer) httpAnswer {
	t.Helper()
	var body []byte
	switch {
	case tc.rawBody != nil:
		body = tc.rawBody
	case tc.RawBody != nil:
		body = []byte(fill.Replace(*tc.RawBody))
	case tc.Body != nil:
		body = []byte(fill.Replace(string(tc.Body)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, tc.Method, l.baseURL+fill.Replace(tc.Path), bytes.NewReader(body))
	if err != nil {
		t.Fatalf("building request: %v", err)
	}
	switch {
	case tc.ContentType == "-":
	case tc.ContentType != "":
		req.Header.Set("Content-Type", tc.ContentType)
	case body != nil:
		req.Header.Set("Content-Type", "application/json")
	}
	if tc.Chunked {
		req.ContentLength = -1
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = nil
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", tc.Method, tc.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading answer: %v", err)
	}
	return httpAnswer{status: resp.StatusCode, header: resp.Header, body: b}
}

// checkHostileAnswer checks the status and that the message names the problem.
func checkHostileAnswer(t *testing.T, tc hostileCase, a httpAnswer) {
	t.Helper()
	if a.status != tc.Status {
		t.Fatalf("status %d, want %d: %.300s", a.status, tc.Status, a.body)
	}
	if tc.Status < 400 {
		return
	}
	if tc.Code == nil {
		// The tlog-tiles handler answers in plain text (tiles.go), like every static tile server.
		if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("Content-Type %q, want text/plain", ct)
		}
		if !strings.Contains(string(a.body), tc.Message) {
			t.Errorf("message %q does not name the problem (%q)", a.body, tc.Message)
		}
		return
	}
	e, err := decodeErrorBody(a.body)
	if err != nil {
		t.Fatal(err)
	}
	if *e.Code != *tc.Code {
		t.Errorf("code %d, want %d (message %q)", *e.Code, *tc.Code, *e.Message)
	}
	if !strings.Contains(*e.Message, tc.Message) {
		t.Errorf("message %q does not name the problem (%q)", *e.Message, tc.Message)
	}
	if a.header.Get("Cache-Control") != "no-store" {
		t.Errorf("error answered with Cache-Control %q, want no-store", a.header.Get("Cache-Control"))
	}
}

// TestHostileInput checks that every hostile request gets its documented 4xx and a message
// naming the problem, the tree (checkpoint size and root, next index) is unchanged, and a valid
// write right after gets the next index.
func TestHostileInput(t *testing.T) {
	l := startLog(t)
	keys := newHostileKeys(t)
	fromFile, generated := loadHostileCases(t), generatedCases(t)
	cases := append(fromFile, generated...)
	if len(cases) < 60 {
		t.Fatalf("%d hostile cases, want at least 60: losing cases loses coverage", len(cases))
	}
	// Entries for read cases to refer to.
	fillLog(t, l, 3)
	good := newSigner(t)
	seen := map[string]bool{}
	for i, tc := range cases {
		if seen[tc.Name] {
			t.Fatalf("two cases are named %q", tc.Name)
		}
		seen[tc.Name] = true
		t.Run(tc.Name, func(t *testing.T) {
			before := l.treeState(t)
			a := l.sendHostile(t, tc, keys.placeholders(t, []byte(fmt.Sprintf("hostile artifact %d", i))))
			checkHostileAnswer(t, tc, a)

			after := l.treeState(t)
			grew := uint64(0)
			if tc.Status == http.StatusCreated {
				grew = 1
			}
			if after.size != before.size+grew || after.next != before.next+grew {
				t.Errorf("tree went from size %d (next %d) to %d (next %d), want growth %d", before.size, before.next, after.size, after.next, grew)
			}
			if grew == 0 && !bytes.Equal(after.root, before.root) {
				t.Errorf("root changed from %x to %x at the same size", before.root, after.root)
			}

			w := l.post(signArtifact(t, good, []byte(fmt.Sprintf("valid write after hostile case %d", i))).json())
			if w.status != http.StatusCreated {
				t.Fatalf("a valid write after the case: status %d: %s", w.status, w.body)
			}
			if got := decodeEntry(t, w.body).GetLogIndex(); got != int64(after.next) {
				t.Errorf("the valid write got index %d, want %d", got, after.next)
			}
		})
	}
	t.Logf("%d hostile cases (%d from testdata/hostile/cases.json, %d generated)", len(cases), len(fromFile), len(generated))
}

// TestHostileCaseFileIsWellFormed keeps the fixture honest: every case names a documented status,
// a JSON error code unless it targets the tlog-tiles handler, and a message to look for.
func TestHostileCaseFileIsWellFormed(t *testing.T) {
	for _, tc := range append(loadHostileCases(t), generatedCases(t)...) {
		t.Run(tc.Name, func(t *testing.T) {
			if tc.Method == "" || !strings.HasPrefix(tc.Path, "/") {
				t.Errorf("method %q path %q", tc.Method, tc.Path)
			}
			if tc.Status != http.StatusCreated && (tc.Status < 400 || tc.Status > 499) {
				t.Errorf("status %d is neither 201 nor a 4xx", tc.Status)
			}
			if tc.Status >= 400 && tc.Message == "" {
				t.Errorf("a refusal without a message to look for")
			}
			tiles := strings.HasPrefix(tc.Path, "/tile/") || strings.HasPrefix(tc.Path, "/api/v2/tile/") || tc.Path == "/checkpoint"
			if tc.Status >= 400 && tc.Code == nil && !tiles {
				t.Errorf("no code for path %s: only the tlog-tiles handler answers in plain text", tc.Path)
			}
			if tc.Body != nil && tc.RawBody != nil {
				t.Errorf("both body and rawBody")
			}
			if len(tc.Body) > 0 && !json.Valid(placeholder.ReplaceAll(tc.Body, []byte("X"))) {
				t.Errorf("body is not JSON: use rawBody")
			}
			if tc.Code != nil {
				if *tc.Code < 0 || *tc.Code > 16 {
					t.Errorf("code %d is not a gRPC code", *tc.Code)
				}
			}
		})
	}
}
