package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	prototrustroot "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/quirelog/quire/api/rekor"
)

const (
	trustedRootFile   = "trusted_root.json"
	signingConfigFile = "signing_config.json"
)

// trustMaterial is what `quire trust-root` writes: a Sigstore TrustedRoot naming the log, and a
// SigningConfig pointing signers at it.
type trustMaterial struct {
	trustedRoot   *prototrustroot.TrustedRoot
	signingConfig *prototrustroot.SigningConfig
}

// buildTrustMaterial describes the log at baseURL, signed by key, valid from validFrom, run by
// operator (empty: the URL's host).
func buildTrustMaterial(baseURL string, key *logKey, validFrom time.Time, operator string) (*trustMaterial, error) {
	l := rekor.Log{URL: baseURL, VerifierKey: key.vkey, Start: validFrom, Operator: operator}
	tr, err := rekor.TrustedRoot(l)
	if err != nil {
		return nil, fmt.Errorf("--url: %w", err)
	}
	sc, err := rekor.SigningConfig(l)
	if err != nil {
		return nil, fmt.Errorf("--url: %w", err)
	}
	return &trustMaterial{trustedRoot: tr, signingConfig: sc}, nil
}

// appendTrustMaterial reads the trusted root and signing config in dir and adds the log at
// baseURL to them as the newest shard (rekor.AppendLog).
func appendTrustMaterial(dir, baseURL string, key *logKey, validFrom time.Time, operator string) (*trustMaterial, error) {
	m := &trustMaterial{trustedRoot: &prototrustroot.TrustedRoot{}, signingConfig: &prototrustroot.SigningConfig{}}
	for _, doc := range []struct {
		name string
		msg  proto.Message
	}{{trustedRootFile, m.trustedRoot}, {signingConfigFile, m.signingConfig}} {
		b, err := os.ReadFile(filepath.Join(dir, doc.name))
		if err != nil {
			return nil, fmt.Errorf("--append: %w", err)
		}
		if err := protojson.Unmarshal(b, doc.msg); err != nil {
			return nil, fmt.Errorf("--append: parsing %s: %w", filepath.Join(dir, doc.name), err)
		}
	}
	l := rekor.Log{URL: baseURL, VerifierKey: key.vkey, Start: validFrom, Operator: operator}
	if err := rekor.AppendLog(m.trustedRoot, m.signingConfig, l); err != nil {
		return nil, err
	}
	return m, nil
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
