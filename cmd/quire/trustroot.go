package main

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	prototrustroot "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	quirelog "github.com/quirelog/quire/log"
)

const (
	// Media types sigstore-go v1.3.0 accepts (pkg/root TrustedRootMediaType01, SigningConfigMediaType02).
	trustedRootMediaType   = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
	signingConfigMediaType = "application/vnd.dev.sigstore.signingconfig.v0.2+json"

	trustedRootFile   = "trusted_root.json"
	signingConfigFile = "signing_config.json"
)

// trustMaterial is what `quire trust-root` writes: a Sigstore TrustedRoot naming the log, and a
// SigningConfig pointing signers at it.
type trustMaterial struct {
	trustedRoot   *prototrustroot.TrustedRoot
	signingConfig *prototrustroot.SigningConfig
}

// buildTrustMaterial describes the log at baseURL, signed by key, valid from validFrom.
//
// Rekor v2 clients (sigstore-go pkg/verify/tlog.go) verify the checkpoint with a note verifier named
// after the host of the trust root's baseUrl, so that host must be the log's origin; a mismatch
// would produce a trust root that can never verify an entry, so it is refused here.
func buildTrustMaterial(baseURL string, key *logKey, validFrom time.Time, operator string) (*trustMaterial, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("parsing --url %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q: want an http or https URL with a host", baseURL)
	}
	if u.Hostname() != key.origin {
		return nil, fmt.Errorf("--url host %q differs from the log's origin %q: Rekor v2 clients check checkpoints against the URL's host, so use a URL whose host is %q (or a key made with --origin %s)", u.Hostname(), key.origin, key.origin, u.Hostname())
	}
	// The same log ID the log puts in every TransparencyLogEntry, so clients find this entry by it.
	logID, err := quirelog.KeyID(key.vkey)
	if err != nil {
		return nil, fmt.Errorf("computing log ID: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(key.public)
	if err != nil {
		return nil, fmt.Errorf("encoding log public key as PKIX: %w", err)
	}
	if operator == "" {
		operator = u.Hostname()
	}
	validFor := &protocommon.TimeRange{Start: timestamppb.New(validFrom.UTC().Truncate(time.Second))}
	tr := &prototrustroot.TrustedRoot{
		MediaType: trustedRootMediaType,
		Tlogs: []*prototrustroot.TransparencyLogInstance{{
			BaseUrl:       baseURL,
			HashAlgorithm: protocommon.HashAlgorithm_SHA2_256,
			PublicKey: &protocommon.PublicKey{
				RawBytes:   der,
				KeyDetails: protocommon.PublicKeyDetails_PKIX_ED25519,
				ValidFor:   validFor,
			},
			LogId: &protocommon.LogId{KeyId: logID},
		}},
	}
	sc := &prototrustroot.SigningConfig{
		MediaType: signingConfigMediaType,
		RekorTlogUrls: []*prototrustroot.Service{{
			Url:             baseURL,
			MajorApiVersion: 2,
			ValidFor:        validFor,
			Operator:        operator,
		}},
		RekorTlogConfig: &prototrustroot.ServiceConfiguration{Selector: prototrustroot.ServiceSelector_ANY},
		TsaConfig:       &prototrustroot.ServiceConfiguration{Selector: prototrustroot.ServiceSelector_ANY},
	}
	return &trustMaterial{trustedRoot: tr, signingConfig: sc}, nil
}

// write stores both documents in dir as indented protobuf JSON (camelCase names, as Sigstore's own
// trust roots are written).
func (m *trustMaterial) write(dir string) (rootPath, configPath string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("creating output directory %s: %w", dir, err)
	}
	opts := protojson.MarshalOptions{Multiline: true, Indent: "  "}
	rootJSON, err := opts.Marshal(m.trustedRoot)
	if err != nil {
		return "", "", fmt.Errorf("encoding trusted root: %w", err)
	}
	configJSON, err := opts.Marshal(m.signingConfig)
	if err != nil {
		return "", "", fmt.Errorf("encoding signing config: %w", err)
	}
	rootPath = filepath.Join(dir, trustedRootFile)
	configPath = filepath.Join(dir, signingConfigFile)
	if err := os.WriteFile(rootPath, append(rootJSON, '\n'), 0o644); err != nil {
		return "", "", fmt.Errorf("writing %s: %w", rootPath, err)
	}
	if err := os.WriteFile(configPath, append(configJSON, '\n'), 0o644); err != nil {
		return "", "", fmt.Errorf("writing %s: %w", configPath, err)
	}
	return rootPath, configPath, nil
}
