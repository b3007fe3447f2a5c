package main

import (
	"net/netip"
	"strings"

	"github.com/quirelog/quire/api/rekor"
	"github.com/quirelog/quire/cmd/internal/cli"
	quirelog "github.com/quirelog/quire/log"
	"github.com/quirelog/quire/log/admission"
)

// admissionFlags are serve's flags for who may write: algorithms, CAs, public keys, rate limits.
type admissionFlags struct {
	algorithms      string
	trustedCA       string
	allowPublicKeys bool
	addressRate     float64
	addressBurst    int
	signerRate      float64
	signerBurst     int
	rateLimitKeys   int
	trustedProxies  string
}

func addAdmissionFlags(fs *cli.FlagSet) *admissionFlags {
	a := &admissionFlags{}
	fs.StringVar(&a.algorithms, "client-signing-algorithms", strings.Join(rekor.ClientSigningAlgorithms(), ","), "comma-separated signing algorithms entries may use, in rekor-tiles' names; an entry signed otherwise gets 400 naming its algorithm")
	fs.StringVar(&a.trustedCA, "trusted-ca", "", "`FILE` of PEM root and intermediate certificates, or a Sigstore trusted_root.json (its certificateAuthorities): an entry's X.509 certificate must chain to one, issued within its validity (the certificate's own expiry does not count)")
	fs.BoolVar(&a.allowPublicKeys, "allow-public-keys", true, "accept entries verified by a bare public key rather than a certificate")
	fs.Float64Var(&a.addressRate, "rate-limit-address", 0, "writes a second each client address may make on average (0: no limit); beyond it 429 with Retry-After")
	fs.IntVar(&a.addressBurst, "rate-limit-address-burst", 10, "writes a client address may make at once")
	fs.Float64Var(&a.signerRate, "rate-limit-signer", 0, "writes a second each signing key or certificate identity may make on average (0: no limit); beyond it 429 with Retry-After")
	fs.IntVar(&a.signerBurst, "rate-limit-signer-burst", 10, "writes a signing key or identity may make at once")
	fs.IntVar(&a.rateLimitKeys, "rate-limit-keys", admission.DefaultMaxKeys, "most addresses, and most signers, each rate limit tracks (about 200 bytes each); the least recently seen is forgotten first")
	fs.StringVar(&a.trustedProxies, "trusted-proxies", "", "comma-separated `CIDR`s of proxies whose X-Forwarded-For names the client for --rate-limit-address (default: none, the TCP peer is the client)")
	return a
}

// build turns the flags into the log's Admission and the server's address limit.
func (a *admissionFlags) build() (quirelog.Admission, *admission.Limiter, []netip.Prefix, error) {
	var adm quirelog.Admission
	for _, name := range strings.Split(a.algorithms, ",") {
		d, err := rekor.ParseAlgorithmName(strings.TrimSpace(name))
		if err != nil {
			return adm, nil, nil, cli.Usagef("--client-signing-algorithms: %v", err)
		}
		adm.Algorithms = append(adm.Algorithms, d)
	}
	if len(adm.Algorithms) == len(rekor.ClientSigningAlgorithms()) {
		// Every algorithm the log knows: no allow-list to check.
		adm.Algorithms = nil
	}
	if a.trustedCA != "" {
		cas, err := admission.LoadCAs(a.trustedCA)
		if err != nil {
			return adm, nil, nil, err
		}
		adm.CAs = cas
	}
	adm.RefusePublicKeys = !a.allowPublicKeys
	var err error
	if a.signerRate != 0 {
		if adm.Signers, err = admission.NewLimiter(admission.Limit{Name: "signer", Rate: a.signerRate, Burst: a.signerBurst, MaxKeys: a.rateLimitKeys}); err != nil {
			return adm, nil, nil, cli.Usagef("--rate-limit-signer: %v", err)
		}
	}
	var byAddress *admission.Limiter
	if a.addressRate != 0 {
		if byAddress, err = admission.NewLimiter(admission.Limit{Name: "address", Rate: a.addressRate, Burst: a.addressBurst, MaxKeys: a.rateLimitKeys}); err != nil {
			return adm, nil, nil, cli.Usagef("--rate-limit-address: %v", err)
		}
	}
	var proxies []netip.Prefix
	if a.trustedProxies != "" {
		for _, s := range strings.Split(a.trustedProxies, ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(s))
			if err != nil {
				return adm, nil, nil, cli.Usagef("--trusted-proxies: %v", err)
			}
			proxies = append(proxies, p.Masked())
		}
	}
	return adm, byAddress, proxies, nil
}
