package log

// Admission: who may write, beyond a signature that verifies. The rules are the operator's
// (quire serve --client-signing-algorithms, --trusted-ca, --allow-public-keys,
// --rate-limit-signer); package admission holds the CA and rate limit machinery.

import (
	"slices"
	"strings"
	"time"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"

	"github.com/quirelog/quire/api/rekor"
	"github.com/quirelog/quire/log/admission"
)

// Admission says which verifiers a log accepts. Its zero value accepts every algorithm of
// api/rekor's table, any certificate and any public key, without limit.
type Admission struct {
	// Algorithms, if not nil, are the only key details accepted, as rekor-tiles'
	// --client-signing-algorithms restricts them.
	Algorithms []commonv1.PublicKeyDetails
	// CAs, if set, are the certificate authorities an X.509 verifier must chain to
	// (admission.CAs.Verify says how).
	CAs *admission.CAs
	// RefusePublicKeys refuses verifiers that are bare public keys, leaving certificates only.
	RefusePublicKeys bool
	// Signers, if set, rate-limits writes per signing key or certificate identity; a refused write
	// is a *RateLimitedError.
	Signers *admission.Limiter
	// Now is the clock certificates are judged by (time.Now if nil).
	Now func() time.Time
}

// checkAlgorithm refuses an algorithm outside the allow-list, naming it.
func (a *Admission) checkAlgorithm(field string, alg rekor.Algorithm) error {
	if a.Algorithms == nil || slices.Contains(a.Algorithms, alg.Details) {
		return nil
	}
	names := make([]string, 0, len(a.Algorithms))
	for _, d := range a.Algorithms {
		if x, ok := rekor.AlgorithmFor(d); ok {
			names = append(names, x.Name)
		}
	}
	slices.Sort(names)
	return invalid(field, "signing algorithm %s (%s) is not allowed by this log: it accepts %s", alg.Name, alg.Details, strings.Join(names, ", "))
}

// admit checks a verifier's key against the rules, before its signature is checked: a bare key
// must be allowed, a certificate must chain to the CAs. Keys from the cache were admitted
// already. prefix is the verifier's field path.
func (a *Admission) admit(prefix string, k *verifierKey) error {
	if !k.isCert {
		if a.RefusePublicKeys {
			return invalid(prefix+".publicKey", "this log accepts only X.509 certificates issued by its trusted CAs, not bare public keys")
		}
		return nil
	}
	if k.cert == nil || a.CAs == nil {
		return nil
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	if err := a.CAs.Verify(k.cert, now()); err != nil {
		return invalid(prefix+".x509Certificate.rawBytes", "%w", err)
	}
	return nil
}

// limitSigners takes one write from each signer's bucket; the first empty one refuses the write.
func (a *Admission) limitSigners(signers []string) error {
	if a.Signers == nil {
		return nil
	}
	now := time.Now()
	for _, s := range slices.Compact(slices.Sorted(slices.Values(signers))) {
		if ok, wait := a.Signers.Allow(s, now); !ok {
			return &RateLimitedError{By: a.Signers.Name(), RetryAfter: wait}
		}
	}
	return nil
}
