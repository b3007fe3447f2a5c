package explorer

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/quirelog/quire/api/rekor"
)

var funcs = template.FuncMap{
	"hex":  hex.EncodeToString,
	"utc":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"join": strings.Join,
	// searchQuery is the search form's data for a page that has none of its own.
	"searchQuery": func(q, issuer string) searchView { return searchView{Q: q, Issuer: issuer} },
}

// entrySummary is one line of an entry list.
type entrySummary struct {
	Index  uint64
	Kind   string
	Digest string
	// Signer is a certificate's first name or a key's fingerprint.
	Signer string
}

// signerView is one signer of an entry: a key, or a certificate and its key.
type signerView struct {
	KeyFingerprint string
	Certificate    *certificateView
	// Error says why the certificate could not be read.
	Error string
}

type certificateView struct {
	Subject             string
	SANs                []string
	Issuer              string
	CertIssuer          string
	NotBefore, NotAfter time.Time
}

// entryView is the entry page.
type entryView struct {
	Index         uint64
	Kind, Version string
	Digest        string
	Signers       []signerView
	// ParseError says why the body is not an entry Quire reads (another personality's leaf).
	ParseError string
	Body       string
	LeafHash   string
	// The inclusion proof and the checkpoint it leads to; the script reads them from data
	// attributes (BodyBase64, Proof as comma-separated hex).
	BodyBase64 string
	TreeSize   uint64
	RootHash   string
	Proof      []string
	Checkpoint string
}

// signers describes who signed body.
func signers(info *rekor.EntryInfo) []signerView {
	var out []signerView
	for _, v := range info.Verifiers {
		if v.PublicKey != nil {
			fp := rekor.KeyFingerprint(v.PublicKey)
			out = append(out, signerView{KeyFingerprint: hex.EncodeToString(fp[:])})
			continue
		}
		id, err := rekor.ParseCertificateIdentity(v.Certificate)
		if err != nil {
			out = append(out, signerView{Error: err.Error()})
			continue
		}
		fp := rekor.KeyFingerprint(id.KeyDER)
		out = append(out, signerView{KeyFingerprint: hex.EncodeToString(fp[:]), Certificate: &certificateView{
			Subject: id.Subject, SANs: id.SANs(), Issuer: id.Issuer, CertIssuer: id.CertIssuer,
			NotBefore: id.NotBefore, NotAfter: id.NotAfter,
		}})
	}
	return out
}

// summary reads the entry at index for a list.
func (e *Explorer) summary(r *http.Request, index uint64) (entrySummary, error) {
	body, err := e.cfg.Log.EntryBody(r.Context(), index)
	if err != nil {
		return entrySummary{}, err
	}
	s := entrySummary{Index: index}
	info, err := rekor.ParseEntry(body)
	if err != nil {
		s.Kind = "unknown"
		return s, nil
	}
	s.Kind = info.Kind
	s.Digest, _ = rekor.FormatDigest(info.DigestAlgorithm, info.Digest)
	if sv := signers(info); len(sv) > 0 {
		switch {
		case sv[0].Certificate != nil && len(sv[0].Certificate.SANs) > 0:
			s.Signer = sv[0].Certificate.SANs[0]
		case sv[0].KeyFingerprint != "":
			s.Signer = "key " + sv[0].KeyFingerprint[:16] + "…"
		}
	}
	return s, nil
}

func (e *Explorer) serveEntry(w http.ResponseWriter, r *http.Request) {
	index, ok := parseUint(r.PathValue("index"))
	if !ok {
		e.renderError(w, r, http.StatusBadRequest, "An entry is named by its index, a decimal number.")
		return
	}
	ent, err := e.cfg.Log.Entry(r.Context(), index)
	if err != nil {
		e.fail(w, r, fmt.Sprintf("Entry %d", index), err)
		return
	}
	tle := ent.TransparencyLogEntry
	body := tle.GetCanonicalizedBody()
	p := tle.GetInclusionProof()
	v := entryView{
		Index:      index,
		LeafHash:   hex.EncodeToString(ent.LeafHash),
		BodyBase64: base64.StdEncoding.EncodeToString(body),
		TreeSize:   uint64(p.GetTreeSize()),
		RootHash:   hex.EncodeToString(p.GetRootHash()),
		Checkpoint: p.GetCheckpoint().GetEnvelope(),
	}
	for _, h := range p.GetHashes() {
		v.Proof = append(v.Proof, hex.EncodeToString(h))
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, body, "", "  ") == nil {
		v.Body = pretty.String()
	} else {
		v.Body = string(body)
	}
	info, err := rekor.ParseEntry(body)
	if err != nil {
		v.ParseError = err.Error()
	} else {
		v.Kind, v.Version = info.Kind, info.APIVersion
		v.Digest, _ = rekor.FormatDigest(info.DigestAlgorithm, info.Digest)
		v.Signers = signers(info)
	}
	e.render(w, r, http.StatusOK, "entry", v)
}
