package explorer

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	quirelog "github.com/quirelog/quire/log"
	logstatus "github.com/quirelog/quire/log/status"
)

// checkpointsPerPage is how many checkpoints the checkpoints page lists.
const checkpointsPerPage = 25

type checkpointsView struct {
	Checkpoints []checkpointView
	// Older is the URL of the next page of older checkpoints, when there are more.
	Older string
	// First and Second are the consistency form's sizes as given.
	First, Second string
	Consistency   *consistencyView
	Message       string
	// Witnesses says whether the log has a witness policy.
	Witnesses bool
}

type checkpointView struct {
	Size     uint64
	RootHash string
	Text     string
	Cosigs   []cosignatureView
}

type cosignatureView struct {
	Witness string
	// Time is when the witness cosigned; nil when this checkpoint carries no cosignature of it.
	Time *time.Time
}

type consistencyView struct {
	First, Second         uint64
	FirstRoot, SecondRoot string
	Hashes                []string
	Checkpoint            string
}

func (e *Explorer) serveCheckpoints(w http.ResponseWriter, r *http.Request) {
	qv := r.URL.Query()
	v := checkpointsView{First: qv.Get("first"), Second: qv.Get("second"), Witnesses: e.cfg.Witnesses != nil}
	var before uint64
	if s := qv.Get("before"); s != "" {
		var ok bool
		if before, ok = parseUint(s); !ok {
			e.renderError(w, r, http.StatusBadRequest, "before is a decimal tree size.")
			return
		}
	}
	cps, err := e.cfg.Log.Checkpoints(r.Context(), before, checkpointsPerPage+1)
	if err != nil {
		e.fail(w, r, "The checkpoint history", err)
		return
	}
	if len(cps) > checkpointsPerPage {
		cps = cps[:checkpointsPerPage]
		v.Older = fmt.Sprintf("%scheckpoints?before=%d", Prefix, cps[len(cps)-1].Size)
	}
	for _, cp := range cps {
		v.Checkpoints = append(v.Checkpoints, e.checkpointView(cp))
	}
	status := http.StatusOK
	if v.First != "" || v.Second != "" {
		first, ok1 := parseUint(v.First)
		second, ok2 := parseUint(v.Second)
		switch {
		case !ok1 || !ok2:
			v.Message = "Give both tree sizes as decimal numbers."
		default:
			c, err := e.cfg.Log.ConsistencyProof(r.Context(), first, second)
			if err != nil {
				v.Message = consistencyMessage(err)
				break
			}
			cv := &consistencyView{First: c.First, Second: c.Second, FirstRoot: hex.EncodeToString(c.FirstRoot),
				SecondRoot: hex.EncodeToString(c.SecondRoot), Checkpoint: string(c.Checkpoint)}
			for _, h := range c.Hashes {
				cv.Hashes = append(cv.Hashes, hex.EncodeToString(h))
			}
			v.Consistency = cv
		}
		if v.Message != "" {
			status = http.StatusBadRequest
		}
	}
	e.render(w, r, status, "checkpoints", v)
}

func consistencyMessage(err error) string {
	var ie *quirelog.InvalidRequestError
	switch {
	case errors.As(err, &ie):
		return ie.Error()
	case errors.Is(err, quirelog.ErrNotFound):
		return "The log has no tree of that size yet."
	}
	return "The proof could not be built; try again later."
}

// checkpointView shows cp with the cosignature of each witness of the policy.
func (e *Explorer) checkpointView(cp quirelog.PublishedCheckpoint) checkpointView {
	v := checkpointView{Size: cp.Size, RootHash: hex.EncodeToString(cp.Root), Text: string(cp.Raw)}
	if e.cfg.Witnesses == nil {
		return v
	}
	for _, w := range e.cfg.Witnesses.Witnesses() {
		c := cosignatureView{Witness: w.Name}
		if t, ok := logstatus.CosignedAt(bytes.Clone(cp.Raw), w.Verifier); ok {
			c.Time = &t
		}
		v.Cosigs = append(v.Cosigs, c)
	}
	return v
}
