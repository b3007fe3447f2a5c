// Package log is Quire's log personality: it turns Rekor v2 write requests
// (hashedrekord v0.0.2, and DSSE v0.0.2 for older cosign) into canonical
// leaves, appends them through a Tessera appender, waits for a signed
// checkpoint that covers them, and answers with the Rekor v2
// TransparencyLogEntry (protobuf-specs dev.sigstore.rekor.v1). It also serves
// what the Quire read API needs beyond tlog-tiles: entries with inclusion
// proofs, RFC 6962 / RFC 9162 §2.1 inclusion and consistency proofs at any
// published size, past checkpoints, and search by artifact digest, signing key and certificate
// identity.
//
// Specs: the Rekor v2 API as implemented by rekor-tiles v2.3.0 (request
// validation in pkg/types/hashedrekord, the answer in
// internal/server/service.go and internal/tessera), C2SP tlog-tiles and
// tlog-checkpoint for what it reads, RFC 9162 §2.1 for proofs. The formats it
// shares with clients (the canonical leaf, key details, log ID) are package
// api/rekor's; TestVectors checks the leaves against rekor-tiles' own code.
//
// The package talks to log storage only through Tessera's interfaces
// (tessera.Appender, tessera.LogReader), so it runs on any Tessera driver.
// Search uses a separate Index, filled by a follower that tails the log.
package log

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"

	"github.com/quirelog/quire/api/rekor"
)

// Awaiter blocks until an appended entry is covered by a published
// checkpoint. *tessera.PublicationAwaiter and storage/pebble's *Storage
// satisfy it.
type Awaiter interface {
	Await(ctx context.Context, f tessera.IndexFuture) (tessera.Index, []byte, error)
}

// CheckpointHistory returns checkpoints the log published in the past.
// storage/pebble's *Storage satisfies it. An unknown size should be reported
// with an error that matches fs.ErrNotExist or ErrNotFound.
type CheckpointHistory interface {
	CheckpointAt(ctx context.Context, size uint64) ([]byte, error)
}

// WriteChecker is storage that can say whether it can take writes.
// storage/pebble's *Storage satisfies it.
type WriteChecker interface {
	Writable(ctx context.Context) error
}

// Index is the lookup store that the search follower fills: opaque keys, each
// naming any number of log indices. storage/index implements it on Pebble.
type Index interface {
	// Add records, for every i, that keys[i] names log index indices[i], and
	// sets the progress to next, all in one atomic, durable write.
	Add(ctx context.Context, keys [][]byte, indices []uint64, next uint64) error
	// Lookup returns at most limit indices recorded for key, smallest
	// first, starting at the first one at or above from.
	Lookup(ctx context.Context, key []byte, from uint64, limit int) ([]uint64, error)
	// Progress returns the first log index not yet indexed (0 when empty).
	Progress(ctx context.Context) (uint64, error)
	// Format returns the key format recorded by Restart (0 when none was).
	Format(ctx context.Context) (uint64, error)
	// Restart records format and sets the progress to 0 in one atomic, durable
	// write, unless the recorded format is already format or later.
	Restart(ctx context.Context, format uint64) error
}

// Defaults for the optional Config fields.
const (
	DefaultSearchLimit = 1000
	// DefaultWriteTimeout bounds how long CreateEntry waits for a published
	// checkpoint that covers its entry. Publication normally takes well
	// under a second; waiting longer means the log cannot publish (a
	// witness quorum that fails closed is down).
	DefaultWriteTimeout   = 20 * time.Second
	DefaultFollowInterval = 250 * time.Millisecond
	// DefaultFollowBundles is how many entry bundles (of 256 entries) the
	// follower indexes per atomic index write.
	DefaultFollowBundles = 16
	// DefaultKeyCacheBytes bounds the memory of the signer keys kept
	// parsed: about 7,000 ECDSA or 3,800 RSA-4096 keys.
	DefaultKeyCacheBytes = 4 << 20
)

// Config is what a Log needs. Appender, Reader, Awaiter and one of Verifier
// or VerifierKey are required (Appender and Awaiter only when not ReadOnly).
type Config struct {
	// Appender adds entries to the log.
	Appender *tessera.Appender
	// Reader reads checkpoints, tiles and entry bundles.
	Reader tessera.LogReader
	// Awaiter waits for an added entry to be covered by a published checkpoint.
	Awaiter Awaiter
	// History, if set, serves past checkpoints (Checkpoint, proofs to past sizes).
	History CheckpointHistory
	// Index, if set, is filled by a follower started by New and serves Search
	// and InclusionProofByLeafHash; without it those return ErrUnsupported.
	// Call Log.Close before closing the Index.
	Index Index

	// VerifierKey is the log's checkpoint verifier key in signed-note form
	// ("origin+keyhash+base64"; Ed25519 or ECDSA P-256, see
	// rekor.ParseVerifierKey). From it come Verifier (if unset) and KeyID (if
	// unset).
	VerifierKey string
	// Verifier checks the checkpoints the log serves; its name is the origin.
	Verifier note.Verifier
	// KeyID is logId.keyId in answers: the full SHA-256 C2SP signed-note key
	// ID of the log key, as rekor-tiles computes it. Derived from VerifierKey
	// when unset.
	KeyID []byte

	// Health, if set, is asked by Writable whether storage can take writes.
	Health WriteChecker

	// ReadOnly makes CreateEntry return ErrReadOnly (a frozen log).
	ReadOnly bool
	// Frozen says the log was frozen (permanently read-only) at FinalSize; it implies ReadOnly.
	Frozen    bool
	FinalSize uint64
	// NoFollow starts no search follower: the Index is only read (a log on read-only media).
	NoFollow bool
	// WriteTimeout bounds CreateEntry's wait for a checkpoint covering its
	// entry (DefaultWriteTimeout if 0).
	WriteTimeout time.Duration

	// SearchLimit caps the indices one Search returns, a page
	// (DefaultSearchLimit if 0).
	SearchLimit int
	// FollowInterval is how often the search follower polls the checkpoint
	// when it has caught up (DefaultFollowInterval if 0).
	FollowInterval time.Duration
	// FollowBundles is how many entry bundles go into one index write
	// (DefaultFollowBundles if 0).
	FollowBundles int
	// KeyCacheBytes bounds the memory of the parsed-key cache
	// (DefaultKeyCacheBytes if 0).
	KeyCacheBytes int64
	// Admission restricts who may write (algorithms, CAs, public keys, rate
	// limits); its zero value restricts nothing beyond a valid signature.
	Admission Admission

	// Logger receives the search follower's warnings; nil means slog.Default().
	Logger *slog.Logger
	// Metrics, if set, receives the log's Prometheus series (see metrics.go).
	Metrics prometheus.Registerer
}

// Log is the personality. Its methods are safe for concurrent use.
type Log struct {
	appender    *tessera.Appender
	reader      tessera.LogReader
	awaiter     Awaiter
	history     CheckpointHistory
	index       Index
	verifier    note.Verifier
	keyID       []byte
	readOnly    bool
	frozen      bool
	finalSize   uint64
	searchLimit int
	health      WriteChecker
	writeWait   time.Duration

	// fault is the storage failure of the latest append that failed, until
	// an append succeeds again.
	fault atomic.Pointer[error]

	keys      *keyCache
	admission Admission
	cps       checkpointCache
	proofs    *proofCache
	// entryOffsets is where readEntry finds entries in full bundles.
	entryOffsets offsetCache
	metrics      *metrics

	stopFollower context.CancelFunc
	followerDone chan struct{}
	follower     *follower
	// handoff carries writes' search keys to the follower; nil without one.
	handoff *keyHandoff
	// pubs and timeouts are what writes wait on (see awaitCheckpoint).
	pubs     publications
	timeouts deadlines
}

// New checks cfg and returns a Log. If cfg.Index is set it starts the search
// follower, which runs until ctx is done or Close is called.
func New(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Reader == nil {
		return nil, errors.New("log config: Reader is required")
	}
	if !cfg.ReadOnly && !cfg.Frozen && (cfg.Appender == nil || cfg.Awaiter == nil) {
		return nil, errors.New("log config: Appender and Awaiter are required unless ReadOnly")
	}
	if cfg.VerifierKey != "" {
		if cfg.Verifier == nil {
			v, _, err := rekor.ParseVerifierKey(cfg.VerifierKey)
			if err != nil {
				return nil, fmt.Errorf("log config: parsing VerifierKey: %w", err)
			}
			cfg.Verifier = v
		}
		if cfg.KeyID == nil {
			id, err := rekor.KeyID(cfg.VerifierKey)
			if err != nil {
				return nil, fmt.Errorf("log config: %w", err)
			}
			cfg.KeyID = id
		}
	}
	if cfg.Verifier == nil || len(cfg.KeyID) == 0 {
		return nil, errors.New("log config: VerifierKey, or Verifier and KeyID, are required")
	}
	if cfg.SearchLimit <= 0 {
		cfg.SearchLimit = DefaultSearchLimit
	}
	if cfg.FollowInterval <= 0 {
		cfg.FollowInterval = DefaultFollowInterval
	}
	if cfg.FollowBundles <= 0 {
		cfg.FollowBundles = DefaultFollowBundles
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.KeyCacheBytes <= 0 {
		cfg.KeyCacheBytes = DefaultKeyCacheBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	l := &Log{
		appender:    cfg.Appender,
		reader:      cfg.Reader,
		awaiter:     cfg.Awaiter,
		history:     cfg.History,
		index:       cfg.Index,
		verifier:    cfg.Verifier,
		keyID:       bytes.Clone(cfg.KeyID),
		readOnly:    cfg.ReadOnly || cfg.Frozen,
		frozen:      cfg.Frozen,
		finalSize:   cfg.FinalSize,
		searchLimit: cfg.SearchLimit,
		health:      cfg.Health,
		writeWait:   cfg.WriteTimeout,
		keys:        newKeyCache(cfg.KeyCacheBytes),
		admission:   cfg.Admission,
		metrics:     newMetrics(),
	}
	l.proofs = newProofCache(l.readTile)
	l.pubs.ctx, l.pubs.stop = context.WithCancel(ctx)
	l.pubs.cur.Store(&publication{next: make(chan struct{})})
	if cfg.Metrics != nil {
		if err := l.register(cfg.Metrics); err != nil {
			return nil, fmt.Errorf("log config: registering metrics: %w", err)
		}
		if s := cfg.Admission.Signers; s != nil {
			if err := s.Register(cfg.Metrics); err != nil {
				return nil, fmt.Errorf("log config: %w", err)
			}
		}
	}
	if cfg.Index != nil && !cfg.NoFollow {
		fctx, cancel := context.WithCancel(ctx)
		l.stopFollower = cancel
		l.followerDone = make(chan struct{})
		l.handoff = new(keyHandoff)
		l.follower = &follower{l: l, interval: cfg.FollowInterval, bundles: cfg.FollowBundles, logger: cfg.Logger}
		go func() {
			defer close(l.followerDone)
			l.follower.run(fctx)
		}()
	}
	return l, nil
}

// Close stops the search follower and the watch of published checkpoints, and
// waits for them; the Index may then be closed. It does not touch the appender
// or the reader. Writes still waiting for a checkpoint fail.
func (l *Log) Close() error {
	if l.stopFollower != nil {
		l.stopFollower()
		<-l.followerDone
	}
	l.pubs.close()
	return nil
}

// CreateEntry validates req, appends its canonical leaf, waits until a
// published checkpoint covers it, and returns the Rekor v2 answer with an
// inclusion proof to that checkpoint. Errors: ErrReadOnly;
// *InvalidRequestError for a bad request or signature; *TooLargeError for an
// oversized one; *RateLimitedError when a signer's rate limit refuses it; *DuplicateError when the same leaf is already logged; errors
// matching tessera.ErrPushback under overload; *StorageError when storage
// fails; *PendingError when the entry has an index but the wait for its
// checkpoint ended (Config.WriteTimeout, or ctx).
func (l *Log) CreateEntry(ctx context.Context, req *rekorpb.CreateEntryRequest) (*rekorv1.TransparencyLogEntry, error) {
	if l.readOnly {
		return nil, ErrReadOnly
	}
	v, err := l.validate(req)
	if err != nil {
		return nil, err
	}
	// Only signers whose signatures verified are counted, so nobody can spend another's budget.
	if err := l.admission.limitSigners(v.signers); err != nil {
		return nil, err
	}
	kind, body := v.kind, v.body
	e := tessera.NewEntry(body)
	idx, err := l.metrics.countAdd(kind, l.appender.Add(ctx, e))()
	if err != nil {
		if errors.Is(err, tessera.ErrPushback) || ctx.Err() != nil {
			return nil, fmt.Errorf("appending entry: %w", err)
		}
		return nil, l.storageFault(fmt.Errorf("appending entry: %w", err))
	}
	if l.fault.Load() != nil {
		l.fault.Store(nil)
	}
	if l.handoff != nil && v.searchKeys != nil && !idx.IsDup {
		l.handoff.put(idx.Index, v.handedKeys(e.LeafHash()))
	}
	cp, err := l.awaitCheckpoint(ctx, idx.Index)
	if err != nil {
		return nil, err
	}
	if idx.IsDup {
		return nil, &DuplicateError{Index: idx.Index}
	}
	a := new(answerParts)
	if _, err := l.proofInto(ctx, idx.Index, e.LeafHash(), cp, &a.proofParts); err != nil {
		return nil, err
	}
	a.kv.Kind, a.kv.Version = kind, rekor.APIVersion
	return l.answer(a, body, &a.kv), nil
}

// storageFault records err as the log's current write fault and wraps it.
func (l *Log) storageFault(err error) error {
	l.fault.Store(&err)
	return &StorageError{Err: err}
}

// Writable says whether the log can take writes: nil, or the reason it
// cannot (a *StorageError; a full disk matches syscall.ENOSPC). It fails
// after an append failed in storage, until one succeeds, and whenever
// Config.Health reports a fault. A read-only log takes no writes, so it is
// always healthy here.
func (l *Log) Writable(ctx context.Context) error {
	if l.readOnly {
		return nil
	}
	if p := l.fault.Load(); p != nil {
		return &StorageError{Err: *p}
	}
	if l.health != nil {
		if err := l.health.Writable(ctx); err != nil {
			return &StorageError{Err: err}
		}
	}
	return nil
}

// answerParts are the messages of one answer, allocated together: one each was five small
// objects for every write.
type answerParts struct {
	proofParts
	tle rekorv1.TransparencyLogEntry
	kv  rekorv1.KindVersion
	id  commonv1.LogId
}

// proofParts are the messages of one inclusion proof, allocated together.
type proofParts struct {
	ip rekorv1.InclusionProof
	cp rekorv1.Checkpoint
}

// answer is the Rekor v2 TransparencyLogEntry for body with a's proof, which proofInto made.
func (l *Log) answer(a *answerParts, body []byte, kv *rekorv1.KindVersion) *rekorv1.TransparencyLogEntry {
	a.id.KeyId = l.keyID
	e := &a.tle
	e.LogIndex, e.LogId, e.KindVersion, e.InclusionProof, e.CanonicalizedBody = a.ip.LogIndex, &a.id, kv, &a.ip, body
	return e
}

// proofTo builds and checks the inclusion proof of leaf at index to cp.
func (l *Log) proofTo(ctx context.Context, index uint64, leaf []byte, cp *checkpoint) (*rekorv1.InclusionProof, error) {
	return l.proofInto(ctx, index, leaf, cp, new(proofParts))
}

// proofInto is proofTo, building the proof in p.
func (l *Log) proofInto(ctx context.Context, index uint64, leaf []byte, cp *checkpoint, p *proofParts) (*rekorv1.InclusionProof, error) {
	if index >= cp.size {
		return nil, fmt.Errorf("entry %d is not covered by checkpoint of size %d", index, cp.size)
	}
	if cp.size > math.MaxInt64 {
		return nil, fmt.Errorf("tree size %d does not fit the answer", cp.size)
	}
	// The proof is checked against the root, which catches a storage fault
	// before a client sees a proof that does not verify.
	hashes, err := l.proofs.verifiedInclusion(ctx, index, cp.size, leaf, cp.root)
	if err != nil {
		return nil, fmt.Errorf("building inclusion proof for %d in tree of %d: %w", index, cp.size, err)
	}
	ip := &p.ip
	ip.LogIndex, ip.RootHash, ip.TreeSize, ip.Hashes = int64(index), cp.root, int64(cp.size), hashes
	if cp.raw != nil {
		p.cp.Envelope = cp.envelope
		ip.Checkpoint = &p.cp
	}
	return ip, nil
}

// Entry is one log entry as Rekor v2 answers for it, with its RFC 6962 leaf
// hash.
type Entry struct {
	// TransparencyLogEntry has the same shape as CreateEntry's answer: the
	// canonical body, its kind and version, the log ID, and an inclusion
	// proof to the latest checkpoint. A leaf this log did not write (another
	// personality sharing the tree) has no kind and version.
	TransparencyLogEntry *rekorv1.TransparencyLogEntry
	LeafHash             []byte
}

// Entry returns the entry at index with a proof to the latest checkpoint.
// An index at or beyond the latest checkpoint's size is ErrNotFound.
func (l *Log) Entry(ctx context.Context, index uint64) (*Entry, error) {
	cp, err := l.latest(ctx)
	if err != nil {
		return nil, err
	}
	if index >= cp.size {
		return nil, fmt.Errorf("entry %d: the log has %d entries: %w", index, cp.size, ErrNotFound)
	}
	body, err := l.readEntry(ctx, index, cp.size)
	if err != nil {
		return nil, err
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(body)
	a := new(answerParts)
	if _, err := l.proofInto(ctx, index, leaf, cp, &a.proofParts); err != nil {
		return nil, err
	}
	var kv *rekorv1.KindVersion
	if info, err := rekor.ParseEntry(body); err == nil {
		kv = info.KindVersion()
	}
	return &Entry{TransparencyLogEntry: l.answer(a, body, kv), LeafHash: leaf}, nil
}

// InclusionProof proves that the entry at index is in the tree of treeSize
// (0: the latest checkpoint's size). index >= treeSize is an
// *InvalidRequestError (field "index"); a treeSize beyond the latest
// checkpoint is ErrNotFound. The proof carries the checkpoint for treeSize
// when the log has it (always for the latest; past ones through History).
func (l *Log) InclusionProof(ctx context.Context, index, treeSize uint64) (*rekorv1.InclusionProof, error) {
	cp, err := l.checkpointForSize(ctx, treeSize)
	if err != nil {
		return nil, err
	}
	if index >= cp.size {
		return nil, invalid("index", "%d is not below tree size %d", index, cp.size)
	}
	// The leaf hash is in the level-0 tile the proof starts in, so the
	// entry's bundle need not be read; proofTo still checks it against the
	// root.
	leaf, err := l.proofs.leaf(ctx, index, cp.size)
	if err != nil {
		return nil, fmt.Errorf("reading leaf hash of entry %d: %w", index, err)
	}
	return l.proofTo(ctx, index, leaf, cp)
}

// InclusionProofByLeafHash is InclusionProof for the first entry whose RFC
// 6962 leaf hash is leafHash, found through the Index (ErrUnsupported
// without one). A leaf hash not (yet) indexed, or first logged at or beyond
// treeSize, is ErrNotFound.
func (l *Log) InclusionProofByLeafHash(ctx context.Context, leafHash []byte, treeSize uint64) (*rekorv1.InclusionProof, error) {
	if l.index == nil {
		return nil, fmt.Errorf("lookup by leaf hash needs the search index: %w", ErrUnsupported)
	}
	if len(leafHash) != sha256.Size {
		return nil, invalid("leafHash", "length %d, want %d", len(leafHash), sha256.Size)
	}
	cp, err := l.checkpointForSize(ctx, treeSize)
	if err != nil {
		return nil, err
	}
	idx, err := l.index.Lookup(ctx, leafKey(leafHash), 0, 1)
	if err != nil {
		return nil, fmt.Errorf("looking up leaf hash: %w", err)
	}
	if len(idx) == 0 {
		return nil, fmt.Errorf("leaf hash %x is not in the index: %w", leafHash, ErrNotFound)
	}
	if idx[0] >= cp.size {
		return nil, fmt.Errorf("leaf hash %x is first at index %d, not in tree of size %d: %w", leafHash, idx[0], cp.size, ErrNotFound)
	}
	return l.proofTo(ctx, idx[0], leafHash, cp)
}

// Consistency is an RFC 9162 §2.1.4 consistency proof with the two tree heads
// it links, so that a monitor can check it without another request.
type Consistency struct {
	First, Second         uint64
	FirstRoot, SecondRoot []byte
	// Hashes is the proof, in the order RFC 9162 §2.1.4.1 generates it;
	// empty when First is 0 or equal to Second.
	Hashes [][]byte
	// Checkpoint is the checkpoint the log signed at size Second, or nil when
	// it has none for that size (the root then comes from the tiles).
	Checkpoint []byte
}

// ConsistencyProof proves that the tree of size first is a prefix of the tree
// of size second (0: the latest checkpoint's size), per RFC 9162 §2.1.4. The
// RFC defines proofs for 0 < first < second; for first == second the proof
// is empty, and so it is for first == 0: every tree extends the empty tree,
// whose root is the hash of the empty string (RFC 9162 §2.1.1), and
// transparency-dev/merkle's proof.VerifyConsistency accepts exactly that.
//
// first > second is an *InvalidRequestError (field "first"); a second beyond
// the latest checkpoint, or a first beyond it when second is 0, is
// ErrNotFound. The proof is checked against both roots before it is returned,
// which catches a storage fault before a client sees it.
func (l *Log) ConsistencyProof(ctx context.Context, first, second uint64) (*Consistency, error) {
	if second != 0 && first > second {
		return nil, invalid("first", "%d is larger than second %d", first, second)
	}
	// Resolving second once keeps both roots and the proof about the same two
	// trees while the log grows.
	big, err := l.checkpointForSize(ctx, second)
	if err != nil {
		return nil, err
	}
	if first > big.size {
		return nil, fmt.Errorf("first tree size %d: the log has %d entries: %w", first, big.size, ErrNotFound)
	}
	c := &Consistency{First: first, Second: big.size, SecondRoot: big.root, Hashes: [][]byte{}, Checkpoint: big.raw}
	switch {
	case first == 0:
		c.FirstRoot = rfc6962.DefaultHasher.EmptyRoot()
	case first == big.size:
		c.FirstRoot = big.root
	default:
		small, err := l.checkpointForSize(ctx, first)
		if err != nil {
			return nil, err
		}
		c.FirstRoot = small.root
		if c.Hashes, err = l.proofs.consistency(ctx, first, big.size); err != nil {
			return nil, fmt.Errorf("building consistency proof %d→%d: %w", first, big.size, err)
		}
	}
	if err := proof.VerifyConsistency(hasher, c.First, c.Second, c.Hashes, c.FirstRoot, c.SecondRoot); err != nil {
		return nil, fmt.Errorf("consistency proof %d→%d does not verify: %w", c.First, c.Second, err)
	}
	return c, nil
}

// SearchPage is one page of a Search: indices in increasing order, and where
// the next page starts when there is one.
type SearchPage struct {
	Indices []uint64
	// More says that indices remain beyond this page; the next page starts
	// at Next, one past the last index of this one.
	More bool
	Next uint64
}

// Search returns a page of the indices (smallest first, at or above from, at
// most Config.SearchLimit) of entries that q names: by artifact digest (a
// hashedrekord's data digest, a DSSE entry's payload hash), by signing key, or
// by certificate identity and OIDC issuer (see EntryKeys). Following Next
// while More is set reaches every such entry, at the same cost for every page.
// Entries are found once the follower has indexed them, shortly after
// publication. A malformed query is an *InvalidRequestError naming the field.
func (l *Log) Search(ctx context.Context, q SearchQuery, from uint64) (*SearchPage, error) {
	if l.index == nil {
		return nil, fmt.Errorf("search needs the search index: %w", ErrUnsupported)
	}
	key, err := q.indexKey()
	if err != nil {
		return nil, err
	}
	// One more than a page tells whether another page follows.
	idx, err := l.index.Lookup(ctx, key, from, l.searchLimit+1)
	if err != nil {
		return nil, fmt.Errorf("searching for %s from index %d: %w", q, from, err)
	}
	p := &SearchPage{Indices: idx}
	if len(idx) > l.searchLimit {
		p.Indices = idx[:l.searchLimit]
		p.More, p.Next = true, p.Indices[len(p.Indices)-1]+1
	}
	return p, nil
}

// ParseDigest checks a search digest ("sha256:HEX", "sha384:HEX",
// "sha512:HEX"; hex in either case) and returns its index key, lowercased. A
// malformed digest is an *InvalidRequestError (field "digest").
func ParseDigest(digest string) ([]byte, error) {
	alg, d, err := rekor.ParseDigest(digest)
	if err != nil {
		return nil, invalid("digest", "%w", err)
	}
	key, err := rekor.FormatDigest(alg, d)
	if err != nil {
		return nil, invalid("digest", "%w", err)
	}
	return []byte(key), nil
}

// Checkpoint returns the checkpoint the log published for tree size size (0:
// the latest). Past sizes need History (else ErrUnsupported); a size the log
// never published is ErrNotFound.
func (l *Log) Checkpoint(ctx context.Context, size uint64) ([]byte, error) {
	latest, err := l.latest(ctx)
	if err != nil {
		return nil, err
	}
	if size == 0 || size == latest.size {
		return latest.raw, nil
	}
	if size > latest.size {
		return nil, fmt.Errorf("checkpoint for size %d: the log has %d entries: %w", size, latest.size, ErrNotFound)
	}
	if l.history == nil {
		return nil, fmt.Errorf("past checkpoints: %w", ErrUnsupported)
	}
	raw, err := l.history.CheckpointAt(ctx, size)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("no checkpoint was published for size %d: %w", size, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint for size %d: %w", size, err)
	}
	cp, err := l.openCheckpoint(raw)
	if err != nil {
		return nil, fmt.Errorf("stored checkpoint for size %d: %w", size, err)
	}
	if cp.size != size {
		return nil, fmt.Errorf("stored checkpoint for size %d has size %d", size, cp.size)
	}
	return raw, nil
}

// checkpoint is a verified, parsed checkpoint. raw is nil for a tree size the
// log has no checkpoint for; root is then computed from the tiles.
type checkpoint struct {
	raw  []byte
	size uint64
	root []byte
	// envelope is raw as a string, made once: every proof to the checkpoint carries it.
	envelope string
}

// checkpointCache remembers the last few checkpoints opened: every write in a
// batch gets the same one, and verifying its signature each time would cost
// as much as checking the write's own signature.
type checkpointCache struct {
	mu   sync.Mutex
	last [4]*checkpoint
	next int
}

// openCheckpoint verifies raw with the log's key and parses it.
func (l *Log) openCheckpoint(raw []byte) (*checkpoint, error) {
	c := &l.cps
	c.mu.Lock()
	for _, cp := range c.last {
		if cp != nil && bytes.Equal(cp.raw, raw) {
			c.mu.Unlock()
			return cp, nil
		}
	}
	c.mu.Unlock()
	n, err := note.Open(raw, note.VerifierList(l.verifier))
	if err != nil {
		return nil, fmt.Errorf("verifying checkpoint signature: %w", err)
	}
	var parsed flog.Checkpoint
	if _, err := parsed.Unmarshal([]byte(n.Text)); err != nil {
		return nil, fmt.Errorf("parsing checkpoint: %w", err)
	}
	if parsed.Origin != l.verifier.Name() {
		return nil, fmt.Errorf("checkpoint origin %q is not the log's %q", parsed.Origin, l.verifier.Name())
	}
	cp := &checkpoint{raw: bytes.Clone(raw), size: parsed.Size, root: parsed.Hash, envelope: string(raw)}
	c.mu.Lock()
	c.last[c.next] = cp
	c.next = (c.next + 1) % len(c.last)
	c.mu.Unlock()
	return cp, nil
}

// latest reads and verifies the latest published checkpoint. A log that has
// published nothing yet has size 0.
func (l *Log) latest(ctx context.Context) (*checkpoint, error) {
	raw, err := l.reader.ReadCheckpoint(ctx)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("the log has published no checkpoint yet: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	return l.openCheckpoint(raw)
}

// checkpointForSize returns the checkpoint for size (0: latest). Without a
// stored checkpoint for a past size, the root comes from the tiles.
func (l *Log) checkpointForSize(ctx context.Context, size uint64) (*checkpoint, error) {
	latest, err := l.latest(ctx)
	if err != nil {
		return nil, err
	}
	if size == 0 || size == latest.size {
		return latest, nil
	}
	if size > latest.size {
		return nil, fmt.Errorf("tree size %d: the log has %d entries: %w", size, latest.size, ErrNotFound)
	}
	if l.history != nil {
		raw, err := l.history.CheckpointAt(ctx, size)
		if err == nil {
			cp, err := l.openCheckpoint(raw)
			if err != nil {
				return nil, fmt.Errorf("stored checkpoint for size %d: %w", size, err)
			}
			if cp.size == size {
				return cp, nil
			}
		} else if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("reading checkpoint for size %d: %w", size, err)
		}
	}
	root, err := l.proofs.root(ctx, size)
	if err != nil {
		return nil, fmt.Errorf("computing root of tree size %d: %w", size, err)
	}
	return &checkpoint{size: size, root: root}, nil
}

// Origin is the log's checkpoint origin (its verifier key's name).
func (l *Log) Origin() string { return l.verifier.Name() }

// LogID is the logId.keyId the log puts in its answers.
func (l *Log) LogID() []byte { return bytes.Clone(l.keyID) }
