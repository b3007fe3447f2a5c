package loadgen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/quirelog/quire/api/client"
)

// Receipt is what a 201 answer promised, one JSON line each in a Recorder's output, so that a
// later check (scripts/crashtest) can find every acknowledged entry at its index with its bytes.
type Receipt struct {
	LogIndex          int64  `json:"log_index"`
	CanonicalizedBody []byte `json:"canonicalized_body"` // base64 in JSON
	TreeSize          int64  `json:"tree_size"`
	RootHash          []byte `json:"root_hash"`
	Checkpoint        string `json:"checkpoint"`
}

// Recorder writes a Receipt for every 201 it is given; use its Record method as Config.OnResult.
// It is safe for concurrent use.
type Recorder struct {
	mu        sync.Mutex
	w         *bufio.Writer
	written   int64
	malformed int64
	err       error
}

// NewRecorder writes receipts to w (buffered; call Flush at the end).
func NewRecorder(w io.Writer) *Recorder {
	return &Recorder{w: bufio.NewWriterSize(w, 1<<16)}
}

// Record writes a receipt for a 201 answer and ignores every other result.
func (r *Recorder) Record(res Result) {
	if res.Status != 201 {
		return
	}
	tle, err := client.UnmarshalTransparencyLogEntry(res.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.malformed++
		return
	}
	line, err := json.Marshal(Receipt{
		LogIndex:          tle.GetLogIndex(),
		CanonicalizedBody: tle.GetCanonicalizedBody(),
		TreeSize:          tle.GetInclusionProof().GetTreeSize(),
		RootHash:          tle.GetInclusionProof().GetRootHash(),
		Checkpoint:        tle.GetInclusionProof().GetCheckpoint().GetEnvelope(),
	})
	if err == nil {
		line = append(line, '\n')
		_, err = r.w.Write(line)
	}
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("writing receipt: %w", err)
	}
	if err == nil {
		r.written++
	}
}

// Flush writes out buffered receipts and reports how many were written, how many 201 answers
// could not be decoded, and the first write error.
func (r *Recorder) Flush() (written, malformed int64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ferr := r.w.Flush(); ferr != nil && r.err == nil {
		r.err = fmt.Errorf("flushing receipts: %w", ferr)
	}
	return r.written, r.malformed, r.err
}
