package rekor

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	trustv1 "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Media types of the trust material.
//
// protobuf-specs v0.5 names "application/vnd.dev.sigstore.trustedroot.v0.2+json" for a
// TrustedRoot that carries checkpointKeyId and operator, but sigstore-go (v1.3.0 and its main
// branch since) refuses every TrustedRoot media type but the v0.1 one, and cosign writes v0.1 too.
// So the TrustedRoot says v0.1 and also fills in the v0.2 fields, which readers of either version
// parse (protojson does not look at the media type) and v0.1 readers ignore. The SigningConfig is
// v0.2, the version with rekorTlogUrls and service API versions, which sigstore-go requires.
const (
	TrustedRootMediaType   = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
	SigningConfigMediaType = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
)

// Log describes one Rekor v2 log for the trust material: what verifiers trust it with and where
// signers find it.
type Log struct {
	// URL is the log's base URL, http or https. Rekor v2 clients (sigstore-go pkg/verify/tlog.go)
	// check checkpoints with a note verifier named after its host, so that host must be the log's
	// origin, the name of its key.
	URL string
	// VerifierKey is the log's checkpoint key: a C2SP signed-note verifier key, Ed25519 (type
	// 0x01) or ECDSA P-256 (type 0x02); see ParseVerifierKey.
	VerifierKey string
	// Start is when the key began signing; required. End, if not zero, is when it stopped.
	Start, End time.Time
	// Operator names who runs the log, as a scheme-less URI; empty means the URL's host.
	Operator string
}

// instance checks l and builds its TransparencyLogInstance.
func (l Log) instance() (*trustv1.TransparencyLogInstance, error) {
	u, err := l.url()
	if err != nil {
		return nil, err
	}
	v, pub, err := ParseVerifierKey(l.VerifierKey)
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	if u.Hostname() != v.Name() {
		return nil, fmt.Errorf("URL host %q differs from the log's origin %q: Rekor v2 clients check checkpoints against the URL's host, so use a URL whose host is %q (or a key made for origin %s)", u.Hostname(), v.Name(), v.Name(), u.Hostname())
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding log key as PKIX: %w", err)
	}
	details := commonv1.PublicKeyDetails_PKIX_ED25519
	if _, ok := pub.(*ecdsa.PublicKey); ok {
		details = commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256
	}
	validFor, err := l.validity()
	if err != nil {
		return nil, err
	}
	keyID, err := LogKeyID(v.Name(), pub)
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	// The log ID is the one the log puts in every TransparencyLogEntry, so clients find the log
	// by it; for Rekor v2 the checkpoint key ID is the same value (protobuf-specs trustroot.proto).
	id := &commonv1.LogId{KeyId: keyID}
	return &trustv1.TransparencyLogInstance{
		BaseUrl:       l.URL,
		HashAlgorithm: commonv1.HashAlgorithm_SHA2_256,
		PublicKey: &commonv1.PublicKey{
			RawBytes:   der,
			KeyDetails: details,
			ValidFor:   validFor,
		},
		LogId:           id,
		CheckpointKeyId: id,
		Operator:        l.operator(u),
	}, nil
}

func (l Log) url() (*url.URL, error) {
	u, err := url.Parse(l.URL)
	if err != nil {
		return nil, fmt.Errorf("log URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("log URL %q: want an http or https URL with a host", l.URL)
	}
	return u, nil
}

func (l Log) operator(u *url.URL) string {
	if l.Operator != "" {
		return l.Operator
	}
	return u.Hostname()
}

// validity is the key's validity period, to the second as Sigstore's own trust roots write it.
func (l Log) validity() (*commonv1.TimeRange, error) {
	if l.Start.IsZero() {
		return nil, errors.New("log key validity has no start")
	}
	r := &commonv1.TimeRange{Start: timestamppb.New(l.Start.UTC().Truncate(time.Second))}
	if !l.End.IsZero() {
		if !l.End.After(l.Start) {
			return nil, fmt.Errorf("log key validity ends (%s) before it starts (%s)", l.End.Format(time.RFC3339), l.Start.Format(time.RFC3339))
		}
		r.End = timestamppb.New(l.End.UTC().Truncate(time.Second))
	}
	return r, nil
}

// TrustedRoot is a Sigstore TrustedRoot that trusts the given logs' checkpoint keys, listed oldest
// first as protobuf-specs asks.
func TrustedRoot(logs ...Log) (*trustv1.TrustedRoot, error) {
	if len(logs) == 0 {
		return nil, errors.New("trusted root: no logs")
	}
	tr := &trustv1.TrustedRoot{MediaType: TrustedRootMediaType}
	for _, l := range byStart(logs, 1) {
		inst, err := l.instance()
		if err != nil {
			return nil, fmt.Errorf("trusted root: %w", err)
		}
		tr.Tlogs = append(tr.Tlogs, inst)
	}
	return tr, nil
}

// SigningConfig is a Sigstore SigningConfig that sends signers' entries to the given logs (Rekor
// API version 2), listed newest first as protobuf-specs asks; a client picks any one that is valid.
// It names no CA, identity provider or timestamp authority: those are not the log's to choose.
func SigningConfig(logs ...Log) (*trustv1.SigningConfig, error) {
	if len(logs) == 0 {
		return nil, errors.New("signing config: no logs")
	}
	sc := &trustv1.SigningConfig{
		MediaType:       SigningConfigMediaType,
		RekorTlogConfig: &trustv1.ServiceConfiguration{Selector: trustv1.ServiceSelector_ANY},
		TsaConfig:       &trustv1.ServiceConfiguration{Selector: trustv1.ServiceSelector_ANY},
	}
	for _, l := range byStart(logs, -1) {
		u, err := l.url()
		if err != nil {
			return nil, fmt.Errorf("signing config: %w", err)
		}
		validFor, err := l.validity()
		if err != nil {
			return nil, fmt.Errorf("signing config: %w", err)
		}
		sc.RekorTlogUrls = append(sc.RekorTlogUrls, &trustv1.Service{
			Url:             l.URL,
			MajorApiVersion: 2,
			ValidFor:        validFor,
			Operator:        l.operator(u),
		})
	}
	return sc, nil
}

// byStart is a copy of logs sorted by Start, ascending for order 1 and descending for -1.
func byStart(logs []Log, order int) []Log {
	sorted := slices.Clone(logs)
	slices.SortStableFunc(sorted, func(a, b Log) int { return order * a.Start.Compare(b.Start) })
	return sorted
}

// AppendLog adds l to an existing TrustedRoot and SigningConfig as a new shard: the logs that take
// writes now (the Rekor v2 services of sc still open at l.Start) stop at l.Start, in both
// documents, so they keep verifying the entries they hold while signers move to l. Everything else
// in the documents (CAs, timestamp authorities, other logs) is kept as it is. A log already in tr
// (by log ID) is refused.
func AppendLog(tr *trustv1.TrustedRoot, sc *trustv1.SigningConfig, l Log) error {
	inst, err := l.instance()
	if err != nil {
		return fmt.Errorf("appending log: %w", err)
	}
	for _, t := range tr.GetTlogs() {
		if bytes.Equal(t.GetLogId().GetKeyId(), inst.GetLogId().GetKeyId()) {
			return fmt.Errorf("appending log: the trusted root already has the log with ID %x (%s)", inst.GetLogId().GetKeyId(), t.GetBaseUrl())
		}
	}
	svcs, err := SigningConfig(l)
	if err != nil {
		return fmt.Errorf("appending log: %w", err)
	}
	end := inst.GetPublicKey().GetValidFor().GetStart()
	retired := map[string]bool{}
	for _, s := range sc.GetRekorTlogUrls() {
		if s.GetMajorApiVersion() == 2 && open(s.GetValidFor(), end) {
			if !s.GetValidFor().GetStart().AsTime().Before(end.AsTime()) {
				return fmt.Errorf("appending log: %s starts at or after the new log does", s.GetUrl())
			}
			s.ValidFor.End = end
			retired[strings.TrimSuffix(s.GetUrl(), "/")] = true
		}
	}
	for _, t := range tr.GetTlogs() {
		if retired[strings.TrimSuffix(t.GetBaseUrl(), "/")] && open(t.GetPublicKey().GetValidFor(), end) {
			t.PublicKey.ValidFor.End = end
		}
	}
	tr.Tlogs = append(tr.Tlogs, inst)
	sc.RekorTlogUrls = append(svcs.GetRekorTlogUrls(), sc.GetRekorTlogUrls()...)
	return nil
}

// open says whether r has no end, or ends after t.
func open(r *commonv1.TimeRange, t *timestamppb.Timestamp) bool {
	return r != nil && (r.GetEnd() == nil || r.GetEnd().AsTime().After(t.AsTime()))
}
