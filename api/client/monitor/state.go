package monitor

import (
	"bytes"
	"errors"
	"fmt"

	flog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// stateHeader opens every state file, so that a file of another format is never mistaken for one.
const stateHeader = "quire-monitor-state/v1\n"

// maxStateSize bounds what ParseState accepts: a checkpoint with a few hundred cosignatures.
const maxStateSize = 64 << 10

// State is the monitor's memory: the last checkpoint it verified, kept signed so that it is evidence.
type State struct {
	Raw        []byte
	Checkpoint flog.Checkpoint
}

// MarshalState encodes a verified checkpoint as a state file.
func MarshalState(checkpoint []byte) []byte {
	return append([]byte(stateHeader), checkpoint...)
}

// ParseState decodes a state file and re-verifies the checkpoint in it with v, so a state file edited
// by hand can never make the monitor trust a tree the log did not sign.
func ParseState(data []byte, v note.Verifier) (*State, error) {
	if len(data) > maxStateSize {
		return nil, fmt.Errorf("state is %d bytes, more than %d", len(data), maxStateSize)
	}
	raw, ok := bytes.CutPrefix(data, []byte(stateHeader))
	if !ok {
		return nil, errors.New("not a quire monitor state file (bad header)")
	}
	cp, _, _, err := flog.ParseCheckpoint(raw, v.Name(), v)
	if err != nil {
		return nil, fmt.Errorf("checkpoint in state: %w", err)
	}
	return &State{Raw: bytes.Clone(raw), Checkpoint: *cp}, nil
}
