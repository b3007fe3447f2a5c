package witness

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
)

const (
	// MaxProofLines is the most consistency proof lines a request may carry
	// (tlog-witness, "add-checkpoint": "The client MUST NOT send more than 63
	// consistency proof lines").
	MaxProofLines = 63

	// MaxBodySize bounds an add-checkpoint request body. A 63-line proof is
	// under 3 KiB; the rest is the checkpoint and its signatures.
	MaxBodySize = 16 << 10

	hashSize = 32
)

// Request is a parsed add-checkpoint request body. The checkpoint is kept as
// the raw signed note; it is verified against the log's keys separately.
type Request struct {
	OldSize    uint64
	Proof      [][]byte
	Checkpoint []byte
}

// ParseRequest parses an add-checkpoint request body as tlog-witness,
// "add-checkpoint" defines it: an old size line, zero to 63 base64 proof lines,
// an empty line, then the checkpoint. Every line ends in U+000A. It returns an
// *Error with status 400 when the body is malformed; it does not look at the
// checkpoint beyond requiring it to be present.
func ParseRequest(body []byte) (*Request, error) {
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return nil, errMalformed("missing old size line", nil)
	}
	// "The old size line MUST consist of the string old, a single space
	// (0x20), and the tree size ... as an ASCII decimal with no leading
	// zeroes (unless the size is zero ...)."
	num, ok := bytes.CutPrefix(line, []byte("old "))
	if !ok {
		return nil, errMalformed(fmt.Sprintf("old size line %q does not start with \"old \"", truncate(line)), nil)
	}
	old, err := parseDecimal(num)
	if err != nil {
		return nil, errMalformed("old size", err)
	}

	var proof [][]byte
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, errMalformed("missing empty line before the checkpoint", nil)
		}
		if len(line) == 0 {
			break
		}
		if len(proof) == MaxProofLines {
			return nil, errMalformed(fmt.Sprintf("more than %d consistency proof lines", MaxProofLines), nil)
		}
		h, err := base64.StdEncoding.Strict().DecodeString(string(line))
		if err != nil {
			return nil, errMalformed(fmt.Sprintf("consistency proof line %d is not base64", len(proof)+1), err)
		}
		// Go's decoder skips \r and \n even in Strict mode, so only the
		// canonical encoding of the decoded hash is accepted as the line.
		if base64.StdEncoding.EncodeToString(h) != string(line) {
			return nil, errMalformed(fmt.Sprintf("consistency proof line %d is not canonical base64", len(proof)+1), nil)
		}
		if len(h) != hashSize {
			return nil, errMalformed(fmt.Sprintf("consistency proof line %d holds %d bytes, want %d", len(proof)+1, len(h), hashSize), nil)
		}
		proof = append(proof, h)
	}
	if len(rest) == 0 {
		return nil, errMalformed("missing checkpoint", nil)
	}
	return &Request{OldSize: old, Proof: proof, Checkpoint: rest}, nil
}

// Marshal encodes r as an add-checkpoint request body; ParseRequest inverts it.
func (r *Request) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", r.OldSize)
	for _, h := range r.Proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(r.Checkpoint)
	return b.Bytes()
}

// parseDecimal accepts only the canonical ASCII decimal form: no sign, no
// leading zeroes except for "0" itself.
func parseDecimal(b []byte) (uint64, error) {
	if len(b) == 0 {
		return 0, fmt.Errorf("empty number")
	}
	if len(b) > 1 && b[0] == '0' {
		return 0, fmt.Errorf("%q has a leading zero", truncate(b))
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a decimal number", truncate(b))
		}
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing %q: %w", truncate(b), err)
	}
	return n, nil
}

// truncate keeps client-supplied text in error messages short.
func truncate(b []byte) string {
	const max = 64
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
