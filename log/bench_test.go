package log

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
)

// BenchmarkValidate measures the whole validation of a P-256 hashedrekord
// request (key from the cache, signature check, canonical leaf); the
// signature check is most of it.
func BenchmarkValidate(b *testing.B) {
	l := &Log{keys: newKeyCache(64)}
	s := newTestSigner(b, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	req := s.request(b, []byte("bench"), s.pkixVerifier(b))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := l.Validate(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLeaf compares the hand-written canonical leaf with protojson + JCS.
func BenchmarkLeaf(b *testing.B) {
	s := newTestSigner(b, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	hr := s.request(b, []byte("bench"), s.pkixVerifier(b)).GetHashedRekordRequestV002()
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			hashedRekordLeaf(hr.Digest, commonv1.HashAlgorithm_SHA2_256, hr.Signature)
		}
	})
	b.Run("protojson+jcs", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, err := canonicalSlow(&rekorpb.Entry{Kind: KindHashedRekord, ApiVersion: APIVersion, Spec: &rekorpb.Spec{Spec: &rekorpb.Spec_HashedRekordV002{HashedRekordV002: &rekorpb.HashedRekordLogEntryV002{
				Data: &commonv1.HashOutput{Algorithm: commonv1.HashAlgorithm_SHA2_256, Digest: hr.Digest}, Signature: hr.Signature}}}})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCreateEntry runs the whole write path (validate, append, await the
// checkpoint, proof) from many goroutines on Tessera's POSIX driver, with
// requests signed beforehand. It reports entries/s.
func BenchmarkCreateEntry(b *testing.B) {
	tl := openTestLog(b, b.TempDir(), testLogOpts{})
	s := newTestSigner(b, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	v := s.pkixVerifier(b)
	reqs := make([]*rekorpb.CreateEntryRequest, b.N)
	for i := range reqs {
		reqs[i] = s.request(b, fmt.Appendf(nil, "bench %d", i), v)
	}
	var next atomic.Int64
	b.SetParallelism(256)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := reqs[next.Add(1)-1]
			if _, err := tl.CreateEntry(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
