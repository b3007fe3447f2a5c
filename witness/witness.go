// Package witness is a transparency log witness: it cosigns a log's
// checkpoints only when they are consistent with everything it cosigned for
// that log before, so a log cannot show different histories to different
// people without being caught.
//
// It implements C2SP tlog-witness (https://c2sp.org/tlog-witness): the
// add-checkpoint call and the monitoring read ("Monitor Retrieval
// Mechanism"), returning Ed25519 cosignature/v1 signatures
// (https://c2sp.org/tlog-cosignature) over checkpoints
// (https://c2sp.org/tlog-checkpoint) that are signed notes
// (https://c2sp.org/signed-note). Consistency proofs are RFC 6962, Section
// 2.1.2, checked by transparency-dev/merkle.
//
// Spec version: where the current text of tlog-witness differs from its
// v1.0.0 tag, this package follows the current text. The differences that
// change behaviour are: a checkpoint whose size equals the recorded size but
// whose root differs gets 422 (v1.0.0 said 409); a signature line that names a
// trusted key but does not verify gets 403 (v1.0.0 only covered "none
// verify"); a size-zero checkpoint must carry the empty-tree root, else 422
// (new); and the monitoring read GET <prefix>/<hex SHA-256(origin)>/checkpoint
// exists (v1.0.0 had only a TODO). The current text also says witnesses
// SHOULD use ML-DSA-44 cosignatures; Quire's contract fixes Ed25519
// cosignature/v1, which the spec still allows.
//
// State (the latest cosigned checkpoint of each log) lives in Pebble and is
// synced before any cosignature is returned.
package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/time/rate"

	"github.com/quirelog/quire/storage/pebblelog"
)

const (
	// DefaultRateLimit is the sustained add-checkpoint rate allowed per log.
	// Logs publish a checkpoint every second or so; the margin covers the
	// 409 retry that follows a restart.
	DefaultRateLimit rate.Limit = 20
	// DefaultRateBurst is the burst allowed per log above DefaultRateLimit.
	DefaultRateBurst = 40
)

// Config configures a Witness. Signer and at least one Log are required, and
// exactly one of Path and DB.
type Config struct {
	// Path is the directory of the witness's own Pebble database, created
	// if missing. The Witness closes it on Close.
	Path string
	// DB is an already open Pebble database to keep state in, under keys
	// prefixed "witness/v1/". The caller owns it: Close leaves it open.
	DB *pebble.DB

	// Signer produces the witness's cosignatures. It must produce
	// cosignature/v1 signatures: use NewCosigner (or formats'
	// NewSignerForCosignatureV1).
	Signer note.Signer

	// Logs are the logs to witness. Several entries with one origin give
	// that log several trusted keys.
	Logs []Log

	// RateLimit is the sustained add-checkpoint requests per second allowed
	// for each log; 0 means DefaultRateLimit and rate.Inf means no limit.
	RateLimit rate.Limit
	// RateBurst is the burst allowed above RateLimit; 0 means
	// DefaultRateBurst.
	RateBurst int

	// Logger receives one line per refused or accepted checkpoint; nil
	// means slog.Default().
	Logger *slog.Logger

	// Observe, if set, is called after each add-checkpoint with the origin
	// of the log it was for ("" when it names no configured log, so callers
	// can label by origin without unbounded values) and the outcome
	// (Outcome of the answer's status).
	Observe func(origin, outcome string)
}

// Witness cosigns checkpoints for a fixed set of logs. It is safe for
// concurrent use.
type Witness struct {
	db      *pebble.DB
	ownDB   bool
	signer  note.Signer
	logger  *slog.Logger
	observe func(origin, outcome string)

	// Both maps are built in New and never change, so they are read
	// without locks; each logState guards its own mutable fields.
	byOrigin map[string]*logState
	byHash   map[string]*logState
}

type logState struct {
	origin    string
	verifiers note.Verifiers
	limiter   *rate.Limiter

	// mu serialises add-checkpoint for this log: checking the old size
	// against rec and persisting the new rec happen under it, which is the
	// atomicity tlog-witness, "add-checkpoint" requires (its A/B race).
	mu  sync.Mutex
	rec *record // nil until the first cosignature
}

// New opens (or creates) the witness state and returns a Witness ready to
// serve. It fails if the configuration is incomplete or the state cannot be
// read.
func New(cfg Config) (*Witness, error) {
	if cfg.Signer == nil {
		return nil, errors.New("witness config: Signer is required")
	}
	if len(cfg.Logs) == 0 {
		return nil, errors.New("witness config: at least one log is required")
	}
	if (cfg.Path == "") == (cfg.DB == nil) {
		return nil, errors.New("witness config: set exactly one of Path and DB")
	}
	limit, burst := cfg.RateLimit, cfg.RateBurst
	if limit == 0 {
		limit = DefaultRateLimit
	}
	if burst == 0 {
		burst = DefaultRateBurst
	}
	if limit < 0 || burst < 0 {
		return nil, fmt.Errorf("witness config: negative rate limit %v or burst %d", limit, burst)
	}

	w := &Witness{
		db:       cfg.DB,
		signer:   cfg.Signer,
		logger:   cfg.Logger,
		observe:  cfg.Observe,
		byOrigin: make(map[string]*logState),
		byHash:   make(map[string]*logState),
	}
	if w.logger == nil {
		w.logger = slog.Default()
	}
	keys := make(map[string][]note.Verifier)
	for i, l := range cfg.Logs {
		if l.Origin == "" || bytes.ContainsAny([]byte(l.Origin), "\n") {
			return nil, fmt.Errorf("witness config: log %d has an empty or multi-line origin %q", i, l.Origin)
		}
		if l.Verifier == nil {
			return nil, fmt.Errorf("witness config: log %q has no verifier", l.Origin)
		}
		dup := false
		for _, v := range keys[l.Origin] {
			dup = dup || (v.Name() == l.Verifier.Name() && v.KeyHash() == l.Verifier.KeyHash())
		}
		if !dup {
			keys[l.Origin] = append(keys[l.Origin], l.Verifier)
		}
	}

	if w.db == nil {
		db, err := pebble.Open(cfg.Path, &pebble.Options{Logger: pebblelog.New(w.logger)})
		if err != nil {
			return nil, fmt.Errorf("opening witness database %s: %w", cfg.Path, err)
		}
		w.db, w.ownDB = db, true
	}
	for origin, vs := range keys {
		rec, err := loadRecord(w.db, origin)
		if err != nil {
			w.Close()
			return nil, err
		}
		ls := &logState{
			origin:    origin,
			verifiers: note.VerifierList(vs...),
			limiter:   rate.NewLimiter(limit, burst),
			rec:       rec,
		}
		w.byOrigin[origin] = ls
		w.byHash[originHash(origin)] = ls
	}
	return w, nil
}

// Close releases the database if the Witness opened it. Stop serving
// (http.Server.Shutdown) before calling it: requests still in flight would
// write to a closed database.
func (w *Witness) Close() error {
	if w.ownDB && w.db != nil {
		if err := w.db.Close(); err != nil {
			return fmt.Errorf("closing witness database: %w", err)
		}
		w.db = nil
	}
	return nil
}

var emptyRoot = rfc6962.DefaultHasher.EmptyRoot()

// AddCheckpoint handles one add-checkpoint request body (tlog-witness,
// "add-checkpoint") and returns the response body for 200: the witness's
// cosignature/v1 signature line. A refusal is an *Error whose Status is the
// code the spec assigns; storage and signing failures are other errors (500).
// The new state is synced to disk before AddCheckpoint returns success.
func (w *Witness) AddCheckpoint(ctx context.Context, body []byte) (_ []byte, err error) {
	var ls *logState
	if w.observe != nil {
		defer func() {
			origin := ""
			if ls != nil {
				origin = ls.origin
			}
			w.observe(origin, Outcome(StatusOf(err)))
		}()
	}
	if len(body) > MaxBodySize {
		return nil, errTooLarge(MaxBodySize)
	}
	// Malformed body: 400 Bad Request (tlog-witness, "add-checkpoint").
	req, err := ParseRequest(body)
	if err != nil {
		return nil, err
	}
	origin, _, _ := bytes.Cut(req.Checkpoint, []byte("\n"))
	// "If the checkpoint origin is unknown, the witness MUST respond with a
	// 404 Not Found" (tlog-witness, "add-checkpoint").
	ls = w.byOrigin[string(origin)]
	if ls == nil {
		return nil, errUnknownOrigin(string(origin))
	}
	// "The witness MUST verify the checkpoint signature against the public
	// key(s) it trusts for the checkpoint origin, and it MUST ignore
	// signatures from unknown keys ... 403 Forbidden if either no signature
	// from a trusted key for the origin is present, or a signature line's
	// key name and ID match a trusted key but the signature itself fails to
	// verify" (current text; v1.0.0 only had the first case). openCheckpoint
	// checks every line, and the checkpoint's own format, strictly.
	n, cp, err := openCheckpoint(req.Checkpoint, ls.verifiers)
	if err != nil {
		return nil, err
	}
	// Rate limiting is Quire's own guard (the spec is silent). It counts
	// only requests that carry a valid log signature, so nobody but the log
	// can spend the log's budget and starve its real checkpoints; unsigned
	// junk costs one signature check each.
	if r := ls.limiter.Reserve(); !r.OK() {
		return nil, errRateLimited(time.Second)
	} else if d := r.Delay(); d > 0 {
		r.Cancel()
		return nil, errRateLimited(d)
	}
	// "The old size MUST be equal to or lower than the checkpoint size.
	// Otherwise, the witness MUST respond with a 400 Bad Request."
	if req.OldSize > cp.Size {
		return nil, errMalformed(fmt.Sprintf("old size %d exceeds checkpoint size %d", req.OldSize, cp.Size), nil)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("add-checkpoint for %q: %w", ls.origin, err)
	}

	ls.mu.Lock()
	defer ls.mu.Unlock()

	var recSize uint64
	var recRoot []byte
	if ls.rec != nil {
		recSize, recRoot = ls.rec.size, ls.rec.root
	}
	// "The witness MUST check that the old size matches the size of the
	// latest checkpoint it cosigned for the checkpoint's origin (or zero if
	// it never cosigned ...). If it doesn't match ... 409 Conflict", body
	// the recorded size, Content-Type text/x.tlog.size (set by Handler).
	if req.OldSize != recSize {
		return nil, errConflict(recSize, req.OldSize)
	}
	if err := checkConsistency(req, cp, recRoot); err != nil {
		w.logger.Warn("refused inconsistent checkpoint", "origin", ls.origin,
			"old_size", req.OldSize, "size", cp.Size, "reason", err.Error(), "checkpoint", string(req.Checkpoint))
		return nil, err
	}

	signed, err := note.Sign(&note.Note{Text: n.Text}, w.signer)
	if err != nil {
		return nil, fmt.Errorf("cosigning checkpoint %q/%d: %w", ls.origin, cp.Size, err)
	}
	cosig := signed[len(n.Text)+1:]

	// The monitoring read serves the checkpoint with the log signatures
	// the witness verified and its own cosignature (tlog-witness, "Monitor
	// Retrieval Mechanism").
	var mon bytes.Buffer
	mon.WriteString(n.Text)
	mon.WriteByte('\n')
	for _, s := range n.Sigs {
		fmt.Fprintf(&mon, "— %s %s\n", s.Name, s.Base64)
	}
	mon.Write(cosig)

	rec := &record{size: cp.Size, root: cp.Hash, checkpoint: mon.Bytes()}
	// "The witness MUST persist the new checkpoint before responding."
	if err := storeRecord(w.db, ls.origin, rec); err != nil {
		return nil, err
	}
	ls.rec = rec
	w.logger.Debug("cosigned checkpoint", "origin", ls.origin, "old_size", req.OldSize, "size", cp.Size)
	return cosig, nil
}

// checkConsistency applies the consistency rules of tlog-witness,
// "add-checkpoint", in the order the spec lists them, given that the old
// size already equals the recorded size. Every failure is 422.
func checkConsistency(req *Request, cp *log.Checkpoint, recRoot []byte) error {
	// "A checkpoint of size zero MUST have the root hash of the empty tree
	// ... Otherwise ... 422" (current text; not in v1.0.0).
	if cp.Size == 0 && !bytes.Equal(cp.Hash, emptyRoot) {
		return errInconsistent("checkpoint of size 0 does not carry the empty tree's root", nil)
	}
	// "If the old size is zero, the consistency proof MUST be empty ... If
	// the proof is not empty when the old size is zero ... 422."
	if req.OldSize == 0 {
		if len(req.Proof) != 0 {
			return errInconsistent(fmt.Sprintf("old size is 0 but the request carries %d proof lines", len(req.Proof)), nil)
		}
		return nil
	}
	// "If the old size matches the checkpoint size, the witness MUST check
	// that the root hashes are also identical. If they don't match ... 422"
	// (current text; v1.0.0 said 409 Conflict here, which Tessera's client
	// also treats as fatal when the Content-Type is not text/x.tlog.size).
	if req.OldSize == cp.Size && !bytes.Equal(cp.Hash, recRoot) {
		return errInconsistent(fmt.Sprintf("checkpoint root differs from the root cosigned at size %d", cp.Size), nil)
	}
	// "If a Merkle Consistency Proof doesn't verify ... 422" (RFC 6962,
	// Section 2.1.2 proofs).
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, req.OldSize, cp.Size, req.Proof, recRoot, cp.Hash); err != nil {
		return errInconsistent(fmt.Sprintf("consistency proof from size %d to %d does not verify", req.OldSize, cp.Size), err)
	}
	return nil
}

// Status is the witness's view of one log, for operators and metrics.
type Status struct {
	Origin string
	// OriginHash is the lowercase hex SHA-256 of Origin, the path element
	// of the monitoring read.
	OriginHash string
	// Cosigned is false until the first cosignature; then Size, Root and
	// Checkpoint describe the latest one.
	Cosigned   bool
	Size       uint64
	Root       []byte
	Checkpoint []byte
}

// Logs returns the state of every configured log, sorted by origin.
func (w *Witness) Logs() []Status {
	out := make([]Status, 0, len(w.byOrigin))
	for _, ls := range w.byOrigin {
		ls.mu.Lock()
		s := Status{Origin: ls.origin, OriginHash: originHash(ls.origin)}
		if ls.rec != nil {
			s.Cosigned, s.Size, s.Root, s.Checkpoint = true, ls.rec.size, ls.rec.root, ls.rec.checkpoint
		}
		ls.mu.Unlock()
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Origin < out[j].Origin })
	return out
}

// Checkpoint returns the latest cosigned checkpoint of the log whose origin
// hashes (SHA-256, lowercase hex) to originHash, with the log's signatures and
// the witness's cosignature (tlog-witness, "Monitor Retrieval Mechanism"). It
// reports false if the log is unknown or was never cosigned.
func (w *Witness) Checkpoint(originHash string) ([]byte, bool) {
	ls := w.byHash[originHash]
	if ls == nil {
		return nil, false
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.rec == nil {
		return nil, false
	}
	return ls.rec.checkpoint, true
}

// retryAfterSeconds rounds a wait up to whole seconds, at least 1, as the
// Retry-After header counts seconds.
func retryAfterSeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		return 1
	}
	return s
}

// OriginHash returns the path element of the monitoring read for origin:
// the lowercase hex SHA-256 of the origin line.
func OriginHash(origin string) string { return originHash(origin) }
