package witness

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Handler returns the witness's HTTP interface with both URL prefixes at the
// root (tlog-witness, "HTTP Interface": a witness MAY use one value for the
// submission and monitoring prefixes):
//
//	POST /add-checkpoint            (tlog-witness, "add-checkpoint")
//	GET  /<hex SHA-256(origin)>/checkpoint  ("Monitor Retrieval Mechanism")
func (w *Witness) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", w.serveAddCheckpoint)
	mux.HandleFunc("GET /{originhash}/checkpoint", w.serveCheckpoint)
	return mux
}

func (w *Witness) serveAddCheckpoint(rw http.ResponseWriter, r *http.Request) {
	if r.ContentLength > MaxBodySize {
		// Refused before any of it is read, so a client that sent "Expect: 100-continue" is
		// never asked for the body, and none is left in flight to reset the connection under
		// the answer. The connection closes after it.
		rw.Header().Set("Connection", "close")
		writeError(rw, errTooLarge(MaxBodySize))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, MaxBodySize))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(rw, errTooLarge(MaxBodySize))
			return
		}
		writeError(rw, errMalformed("reading request body", err))
		return
	}
	cosig, err := w.AddCheckpoint(r.Context(), body)
	if err != nil {
		if StatusOf(err) == http.StatusInternalServerError {
			w.logger.Error("add-checkpoint failed", "err", err)
		}
		writeError(rw, err)
		return
	}
	// "The response body MUST be a sequence of one or more note signature
	// lines" (tlog-witness, "add-checkpoint"): 200 with the cosignature only.
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.WriteHeader(http.StatusOK)
	_, _ = rw.Write(cosig)
}

// writeError is the one place a refusal becomes an HTTP response.
func writeError(rw http.ResponseWriter, err error) {
	status := StatusOf(err)
	var we *Error
	errors.As(err, &we)
	switch status {
	case http.StatusConflict:
		// "The response body MUST consist of the tree size of the latest
		// cosigned checkpoint in decimal, followed by a newline. The
		// response MUST have a Content-Type of text/x.tlog.size." Tessera's
		// client compares the header byte for byte, so no parameters.
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(status)
		_, _ = fmt.Fprintf(rw, "%d\n", we.RecordedSize)
		return
	case http.StatusTooManyRequests:
		rw.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(we.RetryAfter)))
	}
	msg := http.StatusText(status)
	if we != nil {
		msg = we.Error()
	}
	http.Error(rw, msg, status)
}

func (w *Witness) serveCheckpoint(rw http.ResponseWriter, r *http.Request) {
	cp, ok := w.Checkpoint(r.PathValue("originhash"))
	if !ok {
		// "If the witness has never cosigned a checkpoint for that log, it
		// MUST respond with a 404 Not Found" (tlog-witness, "Monitor
		// Retrieval Mechanism").
		http.Error(rw, "no cosigned checkpoint for this log", http.StatusNotFound)
		return
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.Header().Set("Cache-Control", "no-cache")
	_, _ = rw.Write(cp)
}
