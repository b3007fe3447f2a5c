package witness

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// openCheckpoint verifies a signed checkpoint against the log's trusted keys and parses it, as
// strictly as C2SP signed-note and tlog-checkpoint ask, which is more strictly than x/mod's
// note.Open and formats' Checkpoint.Unmarshal check:
//
//   - every signature line, trusted or not, is "— NAME BASE64" with canonical base64 (signed-note:
//     "the signature is base64-encoded"; Go's decoder accepts non-zero padding bits) of at least
//     a key ID and one byte, else 400;
//   - every line whose key name and ID match a trusted key must verify, even after another line by
//     that key that does (tlog-witness, "add-checkpoint", current text: 403 when "a signature
//     line's key name and ID match a trusted key but the signature itself fails to verify";
//     note.Open checks only the first line of each key);
//   - the size line is ASCII decimal with no leading zero (tlog-checkpoint: "with no leading
//     zeroes") and the root hash canonical base64 of 32 bytes, else 400.
//
// A checkpoint no trusted key signs is 403; any other malformation is 400.
func openCheckpoint(raw []byte, trusted note.Verifiers) (*note.Note, *log.Checkpoint, error) {
	n, err := note.Open(raw, trusted)
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return nil, nil, errUnverified("checkpoint is not signed by a trusted key", err)
		}
		return nil, nil, errMalformed("checkpoint is not a valid signed note", err)
	}
	// note.Open has checked the shape: the text ends in a newline, a blank line follows, then one
	// or more signature lines, each ending in a newline.
	sigs := raw[len(n.Text)+1:]
	for i := 1; len(sigs) > 0; i++ {
		var line []byte
		line, sigs, _ = bytes.Cut(sigs, []byte("\n"))
		if err := checkSignatureLine(line, n.Text, trusted); err != nil {
			var we *Error
			if errors.As(err, &we) {
				return nil, nil, err
			}
			return nil, nil, errMalformed(fmt.Sprintf("signature line %d", i), err)
		}
	}
	cp, err := parseCheckpointText(n.Text)
	if err != nil {
		return nil, nil, errMalformed("checkpoint body", err)
	}
	return n, cp, nil
}

// checkSignatureLine checks one signature line of a note whose text is text: canonical base64,
// and a valid signature if its key is trusted (*Error with 403 if not).
func checkSignatureLine(line []byte, text string, trusted note.Verifiers) error {
	rest, ok := bytes.CutPrefix(line, []byte("— "))
	if !ok {
		return fmt.Errorf("%q does not start with \"— \"", truncate(line))
	}
	name, b64, ok := bytes.Cut(rest, []byte(" "))
	if !ok || len(name) == 0 {
		return fmt.Errorf("%q is not \"— NAME SIGNATURE\"", truncate(line))
	}
	sig, err := decodeCanonical(b64)
	if err != nil {
		return fmt.Errorf("signature of %q: %w", truncate(name), err)
	}
	if len(sig) < 5 {
		return fmt.Errorf("signature of %q holds %d bytes, too few for a key ID and a signature", truncate(name), len(sig))
	}
	v, err := trusted.Verifier(string(name), binary.BigEndian.Uint32(sig))
	if err != nil {
		// A key the witness does not trust: the spec says to ignore it.
		return nil
	}
	if !v.Verify([]byte(text), sig[4:]) {
		return errUnverified(fmt.Sprintf("a signature line of trusted key %s+%08x does not verify", v.Name(), v.KeyHash()), nil)
	}
	return nil
}

// parseCheckpointText parses a checkpoint body (tlog-checkpoint): origin, size and root hash lines,
// then any extension lines, which are ignored.
func parseCheckpointText(text string) (*log.Checkpoint, error) {
	lines := bytes.SplitN([]byte(text), []byte("\n"), 4)
	if len(lines) < 4 {
		return nil, errors.New("fewer than three lines")
	}
	if len(lines[0]) == 0 {
		return nil, errors.New("empty origin line")
	}
	size, err := parseDecimal(lines[1])
	if err != nil {
		return nil, fmt.Errorf("size line: %w", err)
	}
	root, err := decodeCanonical(lines[2])
	if err != nil {
		return nil, fmt.Errorf("root hash line: %w", err)
	}
	if len(root) != hashSize {
		return nil, fmt.Errorf("root hash is %d bytes, want %d", len(root), hashSize)
	}
	return &log.Checkpoint{Origin: string(lines[0]), Size: size, Hash: root}, nil
}

// decodeCanonical decodes standard padded base64 that is exactly the encoding of what it decodes
// to: Go's decoder skips \r and \n even in Strict mode, so the result is encoded again and compared.
func decodeCanonical(b []byte) ([]byte, error) {
	d, err := base64.StdEncoding.Strict().DecodeString(string(b))
	if err != nil {
		return nil, fmt.Errorf("%q is not base64: %w", truncate(b), err)
	}
	if base64.StdEncoding.EncodeToString(d) != string(b) {
		return nil, fmt.Errorf("%q is not canonical base64", truncate(b))
	}
	return d, nil
}
