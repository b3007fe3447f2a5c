package log

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/client"

	"github.com/quirelog/quire/storage/index"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
)

// BenchmarkValidate measures the whole validation of a P-256 hashedrekord
// request (key from the cache, signature check, canonical leaf); the
// signature check is most of it.
func BenchmarkValidate(b *testing.B) {
	l := &Log{keys: newKeyCache(1 << 20)}
	s := newTestSigner(b, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	req := s.request(b, []byte("bench"), s.pkixVerifier(b))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := l.Validate(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateDSSE measures the validation of the costliest DSSE request the log takes: ten
// P-521 verifiers over a 2.9 MiB payload, each signature after the ones its verifier is tried
// against first. Hashing the PAE once per hash, not once per verifier and signature pair, is what
// keeps it near the cost of ten signature checks.
func BenchmarkValidateDSSE(b *testing.B) {
	l := &Log{keys: newKeyCache(1 << 20)}
	var signers []*testSigner
	for range maxDSSEVerifiers {
		signers = append(signers, newTestSigner(b, commonv1.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512))
	}
	req := dsseRequest(b, make([]byte, 2900<<10), signers...)
	sigs := req.GetDsseRequestV002().GetEnvelope().GetSignatures()
	for i, j := 0, len(sigs)-1; i < j; i, j = i+1, j-1 {
		sigs[i], sigs[j] = sigs[j], sigs[i]
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := l.Validate(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateEntry runs the whole write path (validate, append, await the
// checkpoint, proof) from 1,024 goroutines per CPU on each driver, with requests
// signed beforehand, and the search follower indexing behind it. It reports
// entries/s and the process's CPU per entry (user and system, from getrusage),
// counted until the follower has indexed every entry: a share of the
// machine's cores that other work does not change, unlike entries/s.
func BenchmarkCreateEntry(b *testing.B) {
	for _, bc := range []struct {
		name   string
		pebble bool
	}{{"posix", false}, {"pebble", true}} {
		b.Run(bc.name, func(b *testing.B) {
			dir := b.TempDir()
			idx, err := index.Open(filepath.Join(dir, "index"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer idx.Close()
			tl := openTestLog(b, filepath.Join(dir, "log"), testLogOpts{pebble: bc.pebble, pushback: 1 << 20, index: idx})
			defer tl.close()
			s := newTestSigner(b, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
			v := s.pkixVerifier(b)
			reqs := make([]*rekorpb.CreateEntryRequest, b.N)
			for i := range reqs {
				reqs[i] = s.request(b, fmt.Appendf(nil, "bench %d", i), v)
			}
			runtime.GC()
			var next atomic.Int64
			b.SetParallelism(1024)
			cpu := cpuTime(b)
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
			b.StopTimer()
			for n := uint64(0); n < uint64(b.N); time.Sleep(time.Millisecond) {
				if n, err = tl.IndexedSize(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
			b.ReportMetric((cpuTime(b)-cpu).Seconds()*1e6/float64(b.N), "cpu-µs/entry")
		})
	}
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkInclusionProof compares this package's memoizing proof builder
// with Tessera's client.ProofBuilder, both warm, on a tree of 20,000 leaves.
func BenchmarkInclusionProof(b *testing.B) {
	ctx := context.Background()
	tl := openTestLog(b, b.TempDir(), testLogOpts{pebble: true, pushback: 1 << 20})
	const size = 20000
	futures := make([]tessera.IndexFuture, size)
	for i := range futures {
		futures[i] = tl.appender.Add(ctx, tessera.NewEntry(fmt.Appendf(nil, "leaf %d", i)))
	}
	if _, _, err := tl.awaiter.Await(ctx, futures[size-1]); err != nil {
		b.Fatal(err)
	}
	cp, err := tl.latest(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("memoized", func(b *testing.B) {
		i := uint64(0)
		for b.Loop() {
			if _, err := tl.proofs.inclusion(ctx, i%cp.size, cp.size); err != nil {
				b.Fatal(err)
			}
			i += 7919
		}
	})
	b.Run("Log.InclusionProof, as a reader asks for it", func(b *testing.B) {
		i := uint64(0)
		for b.Loop() {
			if _, err := tl.InclusionProof(ctx, i%cp.size, 0); err != nil {
				b.Fatal(err)
			}
			i += 7919
		}
	})
	b.Run("Log.Entry", func(b *testing.B) {
		i := uint64(0)
		for b.Loop() {
			if _, err := tl.Entry(ctx, i%cp.size); err != nil {
				b.Fatal(err)
			}
			i += 7919
		}
	})
	b.Run("tessera ProofBuilder", func(b *testing.B) {
		pb, err := client.NewProofBuilder(ctx, cp.size, tl.readTile)
		if err != nil {
			b.Fatal(err)
		}
		i := uint64(0)
		for b.Loop() {
			if _, err := pb.InclusionProof(ctx, i%cp.size); err != nil {
				b.Fatal(err)
			}
			i += 7919
		}
	})
}

// BenchmarkFollower measures the search follower: parsing canonical leaves
// and writing their digest and leaf-hash keys to the Pebble index.
func BenchmarkFollower(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	idx, err := index.Open(filepath.Join(dir, "index"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer idx.Close()
	tl := openTestLog(b, filepath.Join(dir, "log"), testLogOpts{pebble: true, pushback: 1 << 20})
	s := newTestSigner(b, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)
	v := s.pkixVerifier(b)
	const size = 4096
	l := &Log{keys: newKeyCache(1 << 20)}
	futures := make([]tessera.IndexFuture, size)
	for i := range futures {
		_, body, err := l.Validate(s.request(b, fmt.Appendf(nil, "follow %d", i), v))
		if err != nil {
			b.Fatal(err)
		}
		futures[i] = tl.appender.Add(ctx, tessera.NewEntry(body))
	}
	if _, _, err := tl.awaiter.Await(ctx, futures[size-1]); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		sub, err := index.Open(filepath.Join(dir, fmt.Sprintf("index%d", i)), nil)
		if err != nil {
			b.Fatal(err)
		}
		tl.index = sub
		f := &follower{l: tl.Log, bundles: DefaultFollowBundles}
		b.StartTimer()
		for caughtUp := false; !caughtUp; {
			if caughtUp, err = f.step(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		tl.index = nil
		sub.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "entries/s")
}
