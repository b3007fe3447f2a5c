package server

import (
	"bytes"
	"encoding/base64"
	"math/bits"
	"slices"
	"strconv"
	"unicode/utf8"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"

	quirev1 "github.com/quirelog/quire/api/quire/v1"
)

// appendAnswerJSON appends the JSON of the answers that every write and most reads send (a
// TransparencyLogEntry, an InclusionProof, a quire.v1 Entry) and reports true, or reports false
// for any other value. It writes what protojson writes with the gateway's options (lowerCamelCase
// names, unpopulated fields included, 64-bit integers as strings, bytes as padded standard base64,
// fields in declaration order) without reflection, which was a fifth of the CPU of a proof read;
// TestAnswerJSONIsProtojson holds it to protojson's output, field set included. A string that is
// not valid UTF-8 also reports false, so protojson refuses it as it would have.
func appendAnswerJSON(b []byte, v any) ([]byte, bool) {
	// Room for the whole answer at once: grown step by step, a write's answer of a few KiB was
	// copied about ten times, a fifth of the bytes a write allocates.
	b = slices.Grow(b, answerJSONSize(v))
	switch m := v.(type) {
	case *rekorv1.TransparencyLogEntry:
		return appendEntryJSON(b, m)
	case *rekorv1.InclusionProof:
		return appendProofJSON(b, m)
	case *quirev1.Entry:
		b = append(b, `{"transparencyLogEntry":`...)
		b, ok := appendEntryJSON(b, m.GetTransparencyLogEntry())
		b = append(b, `,"leafHash":`...)
		b = appendBytes(b, m.GetLeafHash())
		return append(b, '}'), ok
	}
	return b, false
}

func appendEntryJSON(b []byte, e *rekorv1.TransparencyLogEntry) ([]byte, bool) {
	if e == nil {
		return append(b, "null"...), true
	}
	b = append(b, `{"logIndex":`...)
	b = appendInt(b, e.GetLogIndex())
	b = append(b, `,"logId":`...)
	b = appendLogID(b, e.GetLogId())
	b = append(b, `,"kindVersion":`...)
	ok := true
	if kv := e.GetKindVersion(); kv != nil {
		var ok1, ok2 bool
		b = append(b, `{"kind":`...)
		b, ok1 = appendString(b, kv.GetKind())
		b = append(b, `,"version":`...)
		b, ok2 = appendString(b, kv.GetVersion())
		b = append(b, '}')
		ok = ok1 && ok2
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"integratedTime":`...)
	b = appendInt(b, e.GetIntegratedTime())
	b = append(b, `,"inclusionPromise":`...)
	if p := e.GetInclusionPromise(); p != nil {
		b = append(b, `{"signedEntryTimestamp":`...)
		b = appendBytes(b, p.GetSignedEntryTimestamp())
		b = append(b, '}')
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"inclusionProof":`...)
	b, okProof := appendProofJSON(b, e.GetInclusionProof())
	b = append(b, `,"canonicalizedBody":`...)
	b = appendBytes(b, e.GetCanonicalizedBody())
	return append(b, '}'), ok && okProof
}

func appendLogID(b []byte, id *commonv1.LogId) []byte {
	if id == nil {
		return append(b, "null"...)
	}
	b = append(b, `{"keyId":`...)
	b = appendBytes(b, id.GetKeyId())
	return append(b, '}')
}

func appendProofJSON(b []byte, p *rekorv1.InclusionProof) ([]byte, bool) {
	if p == nil {
		return append(b, "null"...), true
	}
	b = append(b, `{"logIndex":`...)
	b = appendInt(b, p.GetLogIndex())
	b = append(b, `,"rootHash":`...)
	b = appendBytes(b, p.GetRootHash())
	b = append(b, `,"treeSize":`...)
	b = appendInt(b, p.GetTreeSize())
	b = append(b, `,"hashes":[`...)
	for i, h := range p.GetHashes() {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendBytes(b, h)
	}
	b = append(b, `],"checkpoint":`...)
	ok := true
	if c := p.GetCheckpoint(); c != nil {
		b = append(b, `{"envelope":`...)
		b, ok = appendString(b, c.GetEnvelope())
		b = append(b, '}')
	} else {
		b = append(b, "null"...)
	}
	return append(b, '}'), ok
}

// answerJSONSize is at least the length of appendAnswerJSON's output for v in practice: exact for
// the base64 fields, with room for the names, numbers and a few escapes in the checkpoint.
func answerJSONSize(v any) int {
	switch m := v.(type) {
	case *rekorv1.TransparencyLogEntry:
		return entryJSONSize(m)
	case *rekorv1.InclusionProof:
		return proofJSONSize(m)
	case *quirev1.Entry:
		return 64 + entryJSONSize(m.GetTransparencyLogEntry()) + base64.StdEncoding.EncodedLen(len(m.GetLeafHash()))
	}
	return 0
}

func entryJSONSize(e *rekorv1.TransparencyLogEntry) int {
	enc := base64.StdEncoding
	return 256 + enc.EncodedLen(len(e.GetLogId().GetKeyId())) + enc.EncodedLen(len(e.GetCanonicalizedBody())) +
		enc.EncodedLen(len(e.GetInclusionPromise().GetSignedEntryTimestamp())) + proofJSONSize(e.GetInclusionProof())
}

func proofJSONSize(p *rekorv1.InclusionProof) int {
	enc := base64.StdEncoding
	n := 128 + enc.EncodedLen(len(p.GetRootHash())) + len(p.GetCheckpoint().GetEnvelope()) + 16
	for _, h := range p.GetHashes() {
		n += enc.EncodedLen(len(h)) + 3
	}
	return n
}

// appendInt writes a 64-bit integer as protojson does (ProtoJSON "int64": a decimal string).
func appendInt(b []byte, v int64) []byte {
	b = append(b, '"')
	b = strconv.AppendInt(b, v, 10)
	return append(b, '"')
}

// appendBytes writes bytes as protojson does (ProtoJSON "bytes": standard base64 with padding).
func appendBytes(b []byte, v []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

// appendString writes s as a JSON string escaped as protojson escapes it: '"', '\\' and control
// characters only, everything else as UTF-8. It reports false for invalid UTF-8.
func appendString(b []byte, s string) ([]byte, bool) {
	b = append(b, '"')
	for i := 0; i < len(s); {
		// Runs of ASCII that needs no escape, most of a checkpoint, are copied whole: a byte at a
		// time, a write's checkpoint cost more than the base64 of its entry.
		run := i
		for run < len(s) && s[run] >= ' ' && s[run] < utf8.RuneSelf && s[run] != '"' && s[run] != '\\' {
			run++
		}
		if run > i {
			b = append(b, s[i:run]...)
			i = run
			continue
		}
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				return b, false
			}
			b = append(b, s[i:i+n]...)
			i += n
			continue
		}
		i++
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c >= ' ':
			b = append(b, c)
		case c == '\b':
			b = append(b, `\b`...)
		case c == '\f':
			b = append(b, `\f`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '\r':
			b = append(b, `\r`...)
		case c == '\t':
			b = append(b, `\t`...)
		default:
			b = append(b, `\u`...)
			b = append(b, "0000"[1+(bits.Len32(uint32(c))-1)/4:]...)
			b = strconv.AppendUint(b, uint64(c), 16)
		}
	}
	return append(b, '"'), true
}

// decodeHashedRekord decodes body as protojson decodes a CreateEntryRequest into m, for the
// shape every Rekor v2 client sends: a hashedRekordRequestV002 with a digest and a signature whose
// verifier is a public key or a certificate, in camelCase or snake_case, strings without escapes,
// bytes in padded standard base64, key details by name. It reports false for anything else
// (another kind, an unknown or repeated field, null, an escape, other base64, a number), leaving m
// for protojson, which then decodes or refuses it as it always did; FuzzDecodeHashedRekord holds
// the two to the same result. protojson and the gateway's encoding/json pass cost a fifth of a
// write's CPU besides the signature check.
func decodeHashedRekord(body []byte, m *rekorpb.CreateEntryRequest) bool {
	s := jsonScan{b: body}
	// The request's messages and its usual bytes (a digest, a signature, a key) come in one
	// allocation: one for each was nine small objects a write, a tenth of what a write allocates.
	p := new(hashedRekordParts)
	s.buf = p.buf[:0]
	var hr *rekorpb.HashedRekordRequestV002
	ok := s.object(func(key []byte) bool {
		if hr != nil || !fieldIs(key, "hashedRekordRequestV002", "hashed_rekord_request_v002") {
			return false
		}
		hr = &p.hr
		return s.object(func(key []byte) bool {
			switch {
			case fieldIs(key, "digest", "digest") && hr.Digest == nil:
				d, ok := s.bytes()
				hr.Digest = d
				return ok
			case fieldIs(key, "signature", "signature") && hr.Signature == nil:
				hr.Signature = &p.sig
				return s.signature(p)
			}
			return false
		})
	})
	s.space()
	if !ok || hr == nil || s.i != len(s.b) {
		return false
	}
	p.spec.HashedRekordRequestV002 = hr
	m.Spec = &p.spec
	return true
}

// hashedRekordParts are the messages decodeHashedRekord makes of one request, and room for its
// bytes fields: a P-256 or Ed25519 request's digest, signature and key fit in buf together.
type hashedRekordParts struct {
	spec  rekorpb.CreateEntryRequest_HashedRekordRequestV002
	hr    rekorpb.HashedRekordRequestV002
	sig   rekorpb.Signature
	v     rekorpb.Verifier
	key   rekorpb.PublicKey
	keyV  rekorpb.Verifier_PublicKey
	cert  commonv1.X509Certificate
	certV rekorpb.Verifier_X509Certificate
	buf   [256]byte
}

func (s *jsonScan) signature(p *hashedRekordParts) bool {
	sig := &p.sig
	return s.object(func(key []byte) bool {
		var ok bool
		switch {
		case fieldIs(key, "content", "content") && sig.Content == nil:
			sig.Content, ok = s.bytes()
			return ok
		case fieldIs(key, "verifier", "verifier") && sig.Verifier == nil:
			v := &p.v
			sig.Verifier = v
			details := false
			return s.object(func(key []byte) bool {
				var ok bool
				switch {
				case fieldIs(key, "publicKey", "public_key") && v.Verifier == nil:
					p.key.RawBytes, ok = s.rawBytes()
					p.keyV.PublicKey = &p.key
					v.Verifier = &p.keyV
					return ok
				case fieldIs(key, "x509Certificate", "x509_certificate") && v.Verifier == nil:
					p.cert.RawBytes, ok = s.rawBytes()
					p.certV.X509Certificate = &p.cert
					v.Verifier = &p.certV
					return ok
				case fieldIs(key, "keyDetails", "key_details") && !details:
					name, ok := s.str()
					d, known := commonv1.PublicKeyDetails_value[string(name)]
					v.KeyDetails, details = commonv1.PublicKeyDetails(d), true
					return ok && known
				}
				return false
			})
		}
		return false
	})
}

// rawBytes reads {"rawBytes": "<base64>"} (or raw_bytes).
func (s *jsonScan) rawBytes() ([]byte, bool) {
	var raw []byte
	ok := s.object(func(key []byte) bool {
		if raw != nil || !fieldIs(key, "rawBytes", "raw_bytes") {
			return false
		}
		var ok bool
		raw, ok = s.bytes()
		return ok
	})
	return raw, ok && raw != nil
}

func fieldIs(key []byte, jsonName, protoName string) bool {
	return string(key) == jsonName || string(key) == protoName
}

// jsonScan reads the JSON subset decodeHashedRekord accepts.
type jsonScan struct {
	b []byte
	i int
	// buf is where bytes decodes to while it has room.
	buf []byte
}

func (s *jsonScan) space() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

func (s *jsonScan) consume(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// object reads an object, calling member for each key with the scanner at the value; member
// reads the value and reports whether it is acceptable.
func (s *jsonScan) object(member func(key []byte) bool) bool {
	if !s.consume('{') {
		return false
	}
	if s.consume('}') {
		return true
	}
	for {
		key, ok := s.str()
		if !ok || !s.consume(':') || !member(key) {
			return false
		}
		if s.consume('}') {
			return true
		}
		if !s.consume(',') {
			return false
		}
	}
}

// str reads a string without escapes or control characters, in valid UTF-8.
func (s *jsonScan) str() ([]byte, bool) {
	if !s.consume('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			return v, utf8.Valid(v)
		case c == '\\' || c < ' ':
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// bytes reads a string of padded standard base64, the form protojson decodes as
// base64.StdEncoding, and returns the bytes (non-nil, possibly empty), which alias s.buf when they
// fit in it.
func (s *jsonScan) bytes() ([]byte, bool) {
	if !s.consume('"') {
		return nil, false
	}
	// The closing quote is found without looking at each byte, and the string is not checked for
	// escapes, control characters or UTF-8: the base64 decoder refuses every byte that is none of
	// A-Z a-z 0-9 + / =, and so an escaped quote, which ends v early, too; the bytes it skips
	// (CR, LF) show in the decoded length. "-" and "_" are protojson's cue for URL base64.
	end := bytes.IndexByte(s.b[s.i:], '"')
	if end < 0 {
		return nil, false
	}
	v := s.b[s.i : s.i+end]
	s.i += end + 1
	if len(v)%4 != 0 || bytes.ContainsAny(v, "-_") {
		return nil, false
	}
	want := len(v) / 4 * 3
	if len(v) > 0 && v[len(v)-1] == '=' {
		want--
		if v[len(v)-2] == '=' {
			want--
		}
	}
	var out []byte
	if free := cap(s.buf) - len(s.buf); free >= want {
		// Capped at its length, so that appending to one field never writes over the next.
		out = s.buf[len(s.buf) : len(s.buf)+want : len(s.buf)+want]
		s.buf = s.buf[:len(s.buf)+want]
	} else {
		out = make([]byte, want)
	}
	n, err := base64.StdEncoding.Decode(out, v)
	return out[:n], err == nil && n == want
}
