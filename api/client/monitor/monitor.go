// Package monitor watches a C2SP tlog-tiles log (such as Quire, a Rekor v2 log) for split views and
// for entries of interest.
//
// Each poll fetches the log's checkpoint (C2SP tlog-checkpoint) and checks its signature, proves it
// consistent with the last checkpoint this monitor verified (RFC 9162 §2.1.4, proof built from the
// tiles), reads every new entry from the entry bundles (C2SP tlog-tiles), recomputes the tree root
// from those entries' leaf hashes and the compact range of the old tree and compares it to the
// checkpoint, and only then reports the Rekor v2 entries (hashedrekord and dsse v0.0.2) that were
// signed by a watched key or are for a watched digest, one JSON line each. The last verified checkpoint lives in a state file
// that is replaced atomically; a fork is returned as *ForkError with both checkpoints saved beside it.
package monitor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/quirelog/quire/api/client/atomicfile"
	"github.com/quirelog/quire/api/rekor"
	"github.com/quirelog/quire/api/tiles"
)

// DefaultParallel is how many entry bundles are fetched at once when Config.Parallel is zero.
const DefaultParallel = 4

// Config configures a Monitor.
type Config struct {
	// Fetcher reads the log. Required.
	Fetcher tiles.Fetcher
	// LogVerifier verifies the log's checkpoints; its name is the log origin. Required.
	LogVerifier note.Verifier
	// StatePath is the file holding the last verified checkpoint. Required.
	StatePath string
	// WatchKeys are PKIX DER public keys whose entries are reported.
	WatchKeys [][]byte
	// WatchDigests are artifact digests whose entries are reported.
	WatchDigests [][]byte
	// Out receives one JSON line per reported entry. Required.
	Out io.Writer
	// Parallel is the number of concurrent entry bundle fetches (DefaultParallel if zero).
	Parallel uint
}

func (c Config) valid() error {
	switch {
	case c.Fetcher == nil:
		return errors.New("monitor: Config.Fetcher is required")
	case c.LogVerifier == nil:
		return errors.New("monitor: Config.LogVerifier is required")
	case c.StatePath == "":
		return errors.New("monitor: Config.StatePath is required")
	case c.Out == nil:
		return errors.New("monitor: Config.Out is required")
	}
	return nil
}

// Monitor watches one log. It is not safe for concurrent use.
type Monitor struct {
	cfg     Config
	keys    map[string]bool
	digests map[string]bool
}

// New checks cfg and returns a Monitor.
func New(cfg Config) (*Monitor, error) {
	if err := cfg.valid(); err != nil {
		return nil, err
	}
	if cfg.Parallel == 0 {
		cfg.Parallel = DefaultParallel
	}
	m := &Monitor{cfg: cfg, keys: map[string]bool{}, digests: map[string]bool{}}
	for _, k := range cfg.WatchKeys {
		m.keys[string(k)] = true
	}
	for _, d := range cfg.WatchDigests {
		m.digests[string(d)] = true
	}
	return m, nil
}

// ForkError reports two validly signed checkpoints that cannot both be views of one append-only log.
type ForkError struct {
	// Old is the checkpoint verified earlier, New the one just fetched.
	Old, New []byte
	// OldPath and NewPath are where both were saved (empty if saving failed).
	OldPath, NewPath string
	Err              error
}

func (e *ForkError) Error() string {
	return fmt.Sprintf("LOG FORK: checkpoint inconsistent with the last verified one (saved to %s and %s): %v", e.OldPath, e.NewPath, e.Err)
}

func (e *ForkError) Unwrap() error { return e.Err }

// Report summarises one poll.
type Report struct {
	// OldSize is the verified size before the poll; NewSize after it.
	OldSize, NewSize uint64
	// Matches is how many entries were reported.
	Matches int
}

// Match is the JSON line written for a reported entry.
type Match struct {
	Index    uint64   `json:"index"`
	TreeSize uint64   `json:"tree_size"`
	Origin   string   `json:"origin"`
	Kind     string   `json:"kind"`
	Digest   string   `json:"digest"`
	KeySHA   string   `json:"key_sha256"`
	Reasons  []string `json:"reasons"`
	LeafHash string   `json:"leaf_hash"`
}

// Poll runs one round: it returns *ForkError for a split view, another error for anything else that
// stops it, and saves the new checkpoint only after every new entry is verified and reported.
func (m *Monitor) Poll(ctx context.Context) (Report, error) {
	v := m.cfg.LogVerifier
	newCP, newRaw, _, err := client.FetchCheckpoint(ctx, m.cfg.Fetcher.ReadCheckpoint, v, v.Name())
	if err != nil {
		return Report{}, fmt.Errorf("fetching checkpoint: %w", err)
	}
	var old *State
	switch data, err := os.ReadFile(m.cfg.StatePath); {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return Report{}, fmt.Errorf("reading state: %w", err)
	default:
		if old, err = ParseState(data, v); err != nil {
			return Report{}, fmt.Errorf("state file %s: %w", m.cfg.StatePath, err)
		}
	}
	var oldSize uint64
	var oldHash []byte
	if old != nil {
		oldSize, oldHash = old.Checkpoint.Size, old.Checkpoint.Hash
	}
	rep := Report{OldSize: oldSize, NewSize: oldSize}

	switch {
	case old == nil:
	case newCP.Size == oldSize:
		if !bytes.Equal(newCP.Hash, oldHash) {
			return rep, m.fork(old.Raw, newRaw, fmt.Errorf("two roots for size %d: %x and %x", oldSize, oldHash, newCP.Hash))
		}
		return rep, nil
	case newCP.Size < oldSize:
		// An older checkpoint (a lagging cache) is fine only if the tree we verified extends it.
		if err := m.consistent(ctx, newCP.Size, oldSize, newCP.Hash, oldHash); err != nil {
			return rep, m.fork(old.Raw, newRaw, err)
		}
		return rep, nil
	default:
		if err := m.consistent(ctx, oldSize, newCP.Size, oldHash, newCP.Hash); err != nil {
			return rep, m.fork(old.Raw, newRaw, err)
		}
	}

	matches, err := m.readEntries(ctx, oldSize, oldHash, newCP)
	if err != nil {
		return rep, err
	}
	for _, mt := range matches {
		line, err := json.Marshal(mt)
		if err != nil {
			return rep, fmt.Errorf("encoding match for entry %d: %w", mt.Index, err)
		}
		if _, err := m.cfg.Out.Write(append(line, '\n')); err != nil {
			return rep, fmt.Errorf("writing match for entry %d: %w", mt.Index, err)
		}
	}
	if err := atomicfile.Write(m.cfg.StatePath, MarshalState(newRaw), 0o644, atomicfile.Options{Sync: true}); err != nil {
		return rep, fmt.Errorf("saving state: %w", err)
	}
	rep.NewSize, rep.Matches = newCP.Size, len(matches)
	return rep, nil
}

// consistent proves the tree of size small with root smallRoot a prefix of the tree of size large.
// A proof that cannot be fetched is an ordinary error; one that fails is the fork evidence.
func (m *Monitor) consistent(ctx context.Context, small, large uint64, smallRoot, largeRoot []byte) error {
	if small == 0 {
		return nil
	}
	pb, err := client.NewProofBuilder(ctx, large, m.cfg.Fetcher.ReadTile)
	if err != nil {
		return fmt.Errorf("building proofs at size %d: %w", large, err)
	}
	p, err := pb.ConsistencyProof(ctx, small, large)
	if err != nil {
		return fmt.Errorf("fetching consistency proof %d→%d: %w", small, large, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, small, large, p, smallRoot, largeRoot); err != nil {
		return fmt.Errorf("consistency proof %d→%d: %w", small, large, err)
	}
	return nil
}

// fork saves both checkpoints next to the state file, under names that do not overwrite earlier
// evidence, and returns the *ForkError.
func (m *Monitor) fork(oldRaw, newRaw []byte, cause error) error {
	fe := &ForkError{Old: oldRaw, New: newRaw, Err: cause}
	stamp := time.Now().UTC().Format("20060102T150405.000000000Z")
	base := fmt.Sprintf("%s.fork-%s", m.cfg.StatePath, stamp)
	if err := atomicfile.Write(base+".old", oldRaw, 0o644, atomicfile.Options{Sync: true}); err != nil {
		return errors.Join(fe, fmt.Errorf("saving old checkpoint: %w", err))
	}
	fe.OldPath = base + ".old"
	if err := atomicfile.Write(base+".new", newRaw, 0o644, atomicfile.Options{Sync: true}); err != nil {
		return errors.Join(fe, fmt.Errorf("saving new checkpoint: %w", err))
	}
	fe.NewPath = base + ".new"
	return fe
}

// readEntries reads entries [oldSize, cp.Size), checks that together with the old tree's compact
// range they hash to cp's root, and returns the matches.
func (m *Monitor) readEntries(ctx context.Context, oldSize uint64, oldHash []byte, cp *flog.Checkpoint) ([]Match, error) {
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	rng := rf.NewEmptyRange(0)
	if oldSize > 0 {
		nodes, err := client.FetchRangeNodes(ctx, oldSize, m.cfg.Fetcher.ReadTile)
		if err != nil {
			return nil, fmt.Errorf("fetching the compact range at size %d: %w", oldSize, err)
		}
		if rng, err = rf.NewRange(0, oldSize, nodes); err != nil {
			return nil, fmt.Errorf("building the compact range at size %d: %w", oldSize, err)
		}
		root, err := rng.GetRootHash(nil)
		if err != nil {
			return nil, fmt.Errorf("hashing the compact range at size %d: %w", oldSize, err)
		}
		if !bytes.Equal(root, oldHash) {
			return nil, fmt.Errorf("tiles give root %x at size %d, the verified checkpoint says %x", root, oldSize, oldHash)
		}
	}
	var matches []Match
	getSize := func(context.Context) (uint64, error) { return cp.Size, nil }
	for b, err := range client.EntryBundles(ctx, m.cfg.Parallel, getSize, m.cfg.Fetcher.ReadEntryBundle, oldSize, cp.Size-oldSize) {
		if err != nil {
			return nil, fmt.Errorf("reading entry bundles: %w", err)
		}
		var eb api.EntryBundle
		if err := eb.UnmarshalText(b.Data); err != nil {
			return nil, fmt.Errorf("parsing entry bundle %d: %w", b.RangeInfo.Index, err)
		}
		ri := b.RangeInfo
		if uint(len(eb.Entries)) < ri.First+ri.N {
			return nil, fmt.Errorf("entry bundle %d has %d entries, need %d", ri.Index, len(eb.Entries), ri.First+ri.N)
		}
		for i, e := range eb.Entries[ri.First : ri.First+ri.N] {
			index := ri.Index*256 + uint64(ri.First) + uint64(i)
			leaf := rfc6962.DefaultHasher.HashLeaf(e)
			if err := rng.Append(leaf, nil); err != nil {
				return nil, fmt.Errorf("appending leaf %d: %w", index, err)
			}
			if mt, ok := m.inspect(e); ok {
				mt.Index, mt.TreeSize, mt.Origin, mt.LeafHash = index, cp.Size, cp.Origin, hex.EncodeToString(leaf)
				matches = append(matches, mt)
			}
		}
		if rng.End() >= cp.Size {
			break
		}
	}
	if rng.End() != cp.Size {
		return nil, fmt.Errorf("read entries up to %d, checkpoint size is %d", rng.End(), cp.Size)
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return nil, fmt.Errorf("hashing the tree of size %d: %w", cp.Size, err)
	}
	if rng.End() == 0 {
		// RFC 6962 §2.1: the empty tree hashes to SHA-256(""), where a compact range gives nil.
		root = rfc6962.DefaultHasher.EmptyRoot()
	}
	if !bytes.Equal(root, cp.Hash) {
		return nil, fmt.Errorf("entries hash to root %x at size %d, the checkpoint says %x", root, cp.Size, cp.Hash)
	}
	return matches, nil
}

// inspect matches a Rekor v2 entry (hashedrekord or dsse, v0.0.2) against the watch lists: the
// signer keys and the artifact digest (a DSSE entry's payload hash). Other entries never match.
func (m *Monitor) inspect(e []byte) (Match, bool) {
	if len(m.keys) == 0 && len(m.digests) == 0 {
		return Match{}, false
	}
	var entry rekorpb.Entry
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(e, &entry); err != nil {
		return Match{}, false
	}
	var data *protocommon.HashOutput
	var verifiers []*rekorpb.Verifier
	switch {
	case entry.GetSpec().GetHashedRekordV002() != nil:
		hr := entry.GetSpec().GetHashedRekordV002()
		data, verifiers = hr.GetData(), []*rekorpb.Verifier{hr.GetSignature().GetVerifier()}
	case entry.GetSpec().GetDsseV002() != nil:
		d := entry.GetSpec().GetDsseV002()
		data = d.GetPayloadHash()
		for _, sig := range d.GetSignatures() {
			verifiers = append(verifiers, sig.GetVerifier())
		}
	default:
		return Match{}, false
	}
	var reasons []string
	var matchedKey []byte
	for _, v := range verifiers {
		if key := signerKey(v); key != nil && m.keys[string(key)] {
			reasons, matchedKey = append(reasons, "key"), key
			break
		}
	}
	if m.digests[string(data.GetDigest())] {
		reasons = append(reasons, "digest")
	}
	if len(reasons) == 0 {
		return Match{}, false
	}
	if matchedKey == nil && len(verifiers) > 0 {
		matchedKey = signerKey(verifiers[0])
	}
	keySum := sha256.Sum256(matchedKey)
	alg := strings.ToLower(strings.ReplaceAll(data.GetAlgorithm().String(), "SHA2_", "sha"))
	return Match{
		Kind:    entry.GetKind() + "/" + entry.GetApiVersion(),
		Digest:  alg + ":" + hex.EncodeToString(data.GetDigest()),
		KeySHA:  hex.EncodeToString(keySum[:]),
		Reasons: reasons,
	}, true
}

// signerKey is the PKIX DER key of a hashedrekord verifier, from a public key or a certificate.
func signerKey(v *rekorpb.Verifier) []byte {
	if pk := v.GetPublicKey(); pk != nil {
		return pk.GetRawBytes()
	}
	if c := v.GetX509Certificate(); c != nil {
		cert, err := x509.ParseCertificate(c.GetRawBytes())
		if err != nil {
			return nil
		}
		return cert.RawSubjectPublicKeyInfo
	}
	return nil
}

// ParseWatchKey reads a PEM public key (PKIX "PUBLIC KEY") and returns its DER.
func ParseWatchKey(pemData []byte) ([]byte, error) {
	block, _ := pem.Decode(pemData)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("no PEM PUBLIC KEY block")
	}
	if _, err := x509.ParsePKIXPublicKey(block.Bytes); err != nil {
		return nil, fmt.Errorf("parsing public key: %w", err)
	}
	return block.Bytes, nil
}

// ParseDigest reads a digest written as "sha256:HEX" (or sha384, sha512) or as bare HEX of any
// length.
func ParseDigest(s string) ([]byte, error) {
	if !strings.Contains(s, ":") {
		d, err := hex.DecodeString(s)
		if err != nil || len(d) == 0 {
			return nil, fmt.Errorf("digest %q: want ALGORITHM:HEX or HEX", s)
		}
		return d, nil
	}
	_, d, err := rekor.ParseDigest(s)
	if err != nil {
		return nil, fmt.Errorf("digest %q: %w", s, err)
	}
	return d, nil
}

// Run polls every interval until ctx is done or a fork is found. Other errors (the log unreachable,
// say) are passed to logf and retried on the next tick.
func (m *Monitor) Run(ctx context.Context, interval time.Duration, logf func(format string, args ...any)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		rep, err := m.Poll(ctx)
		var fe *ForkError
		switch {
		case errors.As(err, &fe):
			return err
		case err != nil:
			logf("poll failed: %v", err)
		case rep.NewSize != rep.OldSize:
			logf("verified tree size %d → %d, %d matching entries", rep.OldSize, rep.NewSize, rep.Matches)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
