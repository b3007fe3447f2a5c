// Package checkpoint reads the body of a signed C2SP tlog-checkpoint note
// (https://c2sp.org/tlog-checkpoint) without checking its signatures.
//
// That is for code that holds a checkpoint the log already verified (the status page, a backup
// reading its own copy) or that must say what a checkpoint claimed when verifying it failed.
// Anything that trusts a checkpoint from elsewhere opens it with note.Open and a verifier
// instead. It is the one place Quire splits a checkpoint note into its text and signatures, so
// that every reader agrees on where the body ends.
package checkpoint

import (
	"bytes"
	"errors"
	"fmt"

	flog "github.com/transparency-dev/formats/log"
)

// Unverified parses the checkpoint text of the signed note raw: its origin, tree size and root
// hash. The text ends at the note's last blank line, where note.Open ends it (signature lines
// hold no blank line, but a text may). raw is not modified or kept.
func Unverified(raw []byte) (*flog.Checkpoint, error) {
	split := bytes.LastIndex(raw, []byte("\n\n"))
	if split < 0 {
		return nil, errors.New("checkpoint note has no blank line before its signatures")
	}
	var c flog.Checkpoint
	if _, err := c.Unmarshal(raw[:split+1]); err != nil {
		return nil, fmt.Errorf("parsing checkpoint text: %w", err)
	}
	return &c, nil
}
