package log

import (
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
	"encoding/asn1"
	"math/big"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/storage/pebble"
)

// testSigner is a client key that signs hashedrekord digests.
type testSigner struct {
	details commonv1.PublicKeyDetails
	priv    crypto.Signer
	hash    crypto.Hash
}

func newTestSigner(t testing.TB, d commonv1.PublicKeyDetails) *testSigner {
	t.Helper()
	var priv crypto.Signer
	var err error
	h := crypto.SHA256
	switch d {
	case commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case commonv1.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		h = crypto.SHA384
	case commonv1.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512:
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		h = crypto.SHA512
	case commonv1.PublicKeyDetails_PKIX_ED25519_PH, commonv1.PublicKeyDetails_PKIX_ED25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
		h = crypto.SHA512
	case commonv1.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case commonv1.PublicKeyDetails_PKIX_RSA_PKCS1V15_3072_SHA256:
		priv, err = rsa.GenerateKey(rand.Reader, 3072)
	case commonv1.PublicKeyDetails_PKIX_RSA_PKCS1V15_4096_SHA256:
		priv, err = rsa.GenerateKey(rand.Reader, 4096)
	default:
		t.Fatalf("no test key for %s", d)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &testSigner{details: d, priv: priv, hash: h}
}

func (s *testSigner) digest(artifact []byte) []byte {
	switch s.hash {
	case crypto.SHA384:
		d := sha512.Sum384(artifact)
		return d[:]
	case crypto.SHA512:
		d := sha512.Sum512(artifact)
		return d[:]
	default:
		d := sha256.Sum256(artifact)
		return d[:]
	}
}

func (s *testSigner) signDigest(t testing.TB, digest []byte) []byte {
	t.Helper()
	var opts crypto.SignerOpts = s.hash
	if _, ok := s.priv.(ed25519.PrivateKey); ok {
		opts = &ed25519.Options{Hash: crypto.SHA512}
	}
	sig, err := s.priv.Sign(rand.Reader, digest, opts)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func (s *testSigner) pkixVerifier(t testing.TB) *rekorpb.Verifier {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(s.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &rekorpb.Verifier{KeyDetails: s.details, Verifier: &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: der}}}
}

func (s *testSigner) certVerifier(t testing.TB) *rekorpb.Verifier {
	t.Helper()
	return s.paddedCertVerifier(t, 0)
}

// paddedCertVerifier names s by a self-signed certificate; a size above 0 grows it to about that
// many bytes by an opaque extension, the way a Fulcio certificate carries its OIDC claims.
func (s *testSigner) paddedCertVerifier(t testing.TB, size int) *rekorpb.Verifier {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "quire test signer"},
		NotBefore:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if size > 0 {
		pad, err := asn1.Marshal(strings.Repeat("x", max(size-600, 1)))
		if err != nil {
			t.Fatal(err)
		}
		tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 99}, Value: pad}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, s.priv.Public(), s.priv)
	if err != nil {
		t.Fatal(err)
	}
	return &rekorpb.Verifier{KeyDetails: s.details, Verifier: &rekorpb.Verifier_X509Certificate{X509Certificate: &commonv1.X509Certificate{RawBytes: der}}}
}

// request builds a signed hashedrekord request for artifact.
func (s *testSigner) request(t testing.TB, artifact []byte, v *rekorpb.Verifier) *rekorpb.CreateEntryRequest {
	t.Helper()
	d := s.digest(artifact)
	return &rekorpb.CreateEntryRequest{Spec: &rekorpb.CreateEntryRequest_HashedRekordRequestV002{
		HashedRekordRequestV002: &rekorpb.HashedRekordRequestV002{
			Digest:    d,
			Signature: &rekorpb.Signature{Content: s.signDigest(t, d), Verifier: v},
		},
	}}
}

// testLog is a Log on Tessera's POSIX driver in a directory, with the
// publication awaiter, as cmd/ wires it on any Tessera driver.
type testLog struct {
	*Log
	dir      string
	vkey     string
	shutdown func(context.Context) error
	cancel   context.CancelFunc
	reader   tessera.LogReader
	store    *pebble.Storage
}

type testLogOpts struct {
	// pebble selects Quire's storage/pebble driver (with its own Await and
	// checkpoint history) instead of Tessera's POSIX driver.
	pebble   bool
	index    Index
	readOnly bool
	pushback uint // 0: Tessera's default
	skey     string
	vkey     string
	admit    Admission
	// awaiter, if set, wraps the driver's awaiter.
	awaiter      func(Awaiter) Awaiter
	writeTimeout time.Duration
}

func newTestKeys(t testing.TB) (skey, vkey string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "quire.test/log")
	if err != nil {
		t.Fatal(err)
	}
	return skey, vkey
}

func openTestLog(t testing.TB, dir string, o testLogOpts) *testLog {
	t.Helper()
	if o.skey == "" {
		o.skey, o.vkey = newTestKeys(t)
	}
	signer, err := note.NewSigner(o.skey)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithBatching(512, 20*time.Millisecond).
		WithCheckpointInterval(100 * time.Millisecond)
	if o.pushback > 0 {
		opts = opts.WithPushback(o.pushback)
	}
	var driver tessera.Driver
	var store *pebble.Storage
	if o.pebble {
		driver, err = pebble.New(ctx, pebble.Config{Path: dir})
		if err == nil {
			store = driver.(*pebble.Storage)
		}
	} else {
		driver, err = posix.New(ctx, posix.Config{Path: dir})
		opts = opts.WithAntispam(1<<16, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	appender, shutdown, reader, err := tessera.NewAppender(ctx, driver, opts)
	if err != nil {
		t.Fatal(err)
	}
	var awaiter Awaiter = tessera.NewPublicationAwaiter(ctx, reader.ReadCheckpoint, 10*time.Millisecond)
	var history CheckpointHistory
	if store != nil {
		awaiter, history = store, store
	}
	if o.awaiter != nil {
		awaiter = o.awaiter(awaiter)
	}
	l, err := New(ctx, Config{
		Appender:       appender,
		Reader:         reader,
		Awaiter:        awaiter,
		History:        history,
		Index:          o.index,
		VerifierKey:    o.vkey,
		ReadOnly:       o.readOnly,
		FollowInterval: 20 * time.Millisecond,
		Admission:      o.admit,
		WriteTimeout:   o.writeTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	tl := &testLog{Log: l, dir: dir, vkey: o.vkey, shutdown: shutdown, cancel: cancel, reader: reader, store: store}
	t.Cleanup(tl.close)
	return tl
}

func (tl *testLog) close() {
	if tl.cancel == nil {
		return
	}
	_ = tl.Log.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = tl.shutdown(ctx)
	if tl.store != nil {
		_ = tl.store.Close()
	}
	tl.cancel()
	tl.cancel = nil
}
