package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/api/client"
	"github.com/quirelog/quire/api/client/verify"
	"github.com/quirelog/quire/api/notekey"
	"github.com/quirelog/quire/api/rekor"
	"github.com/quirelog/quire/cmd/internal/cli"
)

func init() {
	commands["get"] = cli.Command{Run: runGet, Args: "--url URL --log-key VKEY --index N",
		Summary: "fetch an entry by index, verify its inclusion proof and checkpoint, and print it decoded"}
	commands["search"] = cli.Command{Run: runSearch, Args: "--url URL (--digest sha256:HEX | --key PEMFILE | --identity ID [--issuer URL] | --issuer URL)",
		Summary: "print the indices of the entries for an artifact digest, a signing key or a certificate identity, every page of them"}
	commands["info"] = cli.Command{Run: runInfo, Args: "--url URL --log-key VKEY [--witness-policy FILE]",
		Summary: "print the log's verified checkpoint: origin, size, root and its witnesses' cosignatures"}
}

// httpClient is the client every quirectl command talks to a log with: requests pushed back with
// 429 or 503 are retried after the Retry-After the log asks for, within client.RetryPolicy's
// default bounds, and each retry is said on stderr.
func httpClient(stderr io.Writer) *http.Client {
	return &http.Client{
		Timeout: client.DefaultTimeout + client.DefaultRetryBudget,
		Transport: client.NewRetryTransport(nil, client.RetryPolicy{
			OnRetry: func(req *http.Request, status int, wait time.Duration) {
				fmt.Fprintf(stderr, "quirectl: %s %s answered %d; retrying in %s\n", req.Method, req.URL.Path, status, wait)
			},
		}),
	}
}

// readsClient is a log client for the read commands.
func readsClient(logURL string, stderr io.Writer) (*client.Client, error) {
	if logURL == "" {
		return nil, cli.Usagef("--url is required")
	}
	c, err := client.New(logURL, client.WithHTTPClient(httpClient(stderr)), client.WithUserAgent("quirectl"))
	if err != nil {
		return nil, cli.Usagef("--url: %w", err)
	}
	return c, nil
}

// logTrust reads --log-key and an optional --witness-policy into verification options.
func logTrust(logKey, policyPath string) (verify.Options, note.Verifier, error) {
	v, err := loadLogVerifier(logKey)
	if err != nil {
		return verify.Options{}, nil, err
	}
	vkey := logKey
	if data, err := os.ReadFile(logKey); err == nil {
		vkey = strings.TrimSpace(string(data))
	}
	tr, err := verify.TrustedRootForLog(vkey)
	if err != nil {
		return verify.Options{}, nil, cli.Usagef("--log-key: %w", err)
	}
	opts := verify.Options{TrustedRoot: tr}
	if policyPath != "" {
		p, err := os.ReadFile(policyPath)
		if err != nil {
			return verify.Options{}, nil, err
		}
		if opts.WitnessPolicy, err = verify.ParseWitnessPolicy(p); err != nil {
			return verify.Options{}, nil, fmt.Errorf("--witness-policy %s: %w", policyPath, err)
		}
	}
	return opts, v, nil
}

func runGet(ctx context.Context, inv *cli.Invocation, args []string) error {
	fs := inv.Flags()
	logURL := fs.String("url", "", "base `URL` of the Quire log")
	logKey := fs.String("log-key", "", "the log's checkpoint verifier key (`VKEY`), or a file holding it")
	index := fs.Uint64("index", 0, "the entry's index `N`")
	policyPath := fs.String("witness-policy", "", "witness policy `FILE` the checkpoint must satisfy")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *logKey == "" || !fs.Given("index") {
		return cli.Usagef("--url, --log-key and --index are required")
	}
	opts, _, err := logTrust(*logKey, *policyPath)
	if err != nil {
		return err
	}
	c, err := readsClient(*logURL, inv.Stderr)
	if err != nil {
		return err
	}
	e, err := c.Entry(ctx, *index)
	if err != nil {
		return err
	}
	tle := e.GetTransparencyLogEntry()
	if tle.GetLogIndex() != int64(*index) {
		return fmt.Errorf("asked for entry %d, the log answered with entry %d", *index, tle.GetLogIndex())
	}
	res, err := verify.Entry(tle, opts)
	if err != nil {
		return fmt.Errorf("entry %d does not verify: %w", *index, err)
	}
	body := tle.GetCanonicalizedBody()
	leaf := rfc6962.DefaultHasher.HashLeaf(body)
	if len(e.GetLeafHash()) > 0 && !bytes.Equal(e.GetLeafHash(), leaf) {
		return fmt.Errorf("the log says entry %d has leaf hash %x, its body hashes to %x", *index, e.GetLeafHash(), leaf)
	}
	w := inv.Stdout
	fmt.Fprintf(w, "entry %d of %s, in tree size %d: inclusion proof and checkpoint signature verified", res.LogIndex, res.Origin, res.TreeSize)
	if opts.WitnessPolicy != nil {
		fmt.Fprint(w, ", witness policy satisfied")
	}
	fmt.Fprintf(w, "\nleaf hash %x\n", leaf)
	if info, err := rekor.ParseEntry(body); err == nil {
		fmt.Fprintf(w, "kind %s %s\n", info.Kind, info.APIVersion)
		if d, err := rekor.FormatDigest(info.DigestAlgorithm, info.Digest); err == nil {
			fmt.Fprintf(w, "artifact digest %s\n", d)
		}
	} else {
		fmt.Fprintf(w, "kind unknown: %v\n", err)
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, body, "", "  ") == nil {
		body = pretty.Bytes()
	}
	fmt.Fprintf(w, "%s\n", body)
	return nil
}

func runSearch(ctx context.Context, inv *cli.Invocation, args []string) error {
	fs := inv.Flags()
	logURL := fs.String("url", "", "base `URL` of the Quire log")
	digest := fs.String("digest", "", "artifact `DIGEST`: sha256:HEX (or sha384:, sha512:)")
	keyFile := fs.String("key", "", "signing key: a PEM public key `FILE` (as cosign's --key)")
	identity := fs.String("identity", "", "certificate `IDENTITY`: a subject alternative name (email, URI), matched exactly")
	issuer := fs.String("issuer", "", "certificate OIDC `ISSUER` (Fulcio's extension), matched exactly")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var q client.SearchQuery
	given := 0
	if *digest != "" {
		if _, _, err := rekor.ParseDigest(*digest); err != nil {
			return cli.Usagef("--digest: %w", err)
		}
		q.Digest = *digest
		given++
	}
	if *keyFile != "" {
		pemKey, err := os.ReadFile(*keyFile)
		if err != nil {
			return cli.Usagef("--key: %w", err)
		}
		fp, err := rekor.ParseKeyFingerprint(string(pemKey))
		if err != nil {
			return cli.Usagef("--key %s: %w", *keyFile, err)
		}
		q.Key = hex.EncodeToString(fp[:])
		given++
	}
	if *identity != "" || *issuer != "" {
		q.Identity, q.Issuer = *identity, *issuer
		given++
	}
	if given != 1 {
		return cli.Usagef("--url and exactly one of --digest, --key, and --identity and/or --issuer are required")
	}
	c, err := readsClient(*logURL, inv.Stderr)
	if err != nil {
		return err
	}
	var from uint64
	for {
		page, err := c.Search(ctx, q, from)
		if err != nil {
			return err
		}
		for _, i := range page.GetIndices() {
			fmt.Fprintln(inv.Stdout, i)
		}
		next := page.GetNextFromIndex()
		if next == 0 || next <= from {
			return nil
		}
		from = next
	}
}

func runInfo(ctx context.Context, inv *cli.Invocation, args []string) error {
	fs := inv.Flags()
	logURL := fs.String("url", "", "base `URL` of the log")
	logKey := fs.String("log-key", "", "the log's checkpoint verifier key (`VKEY`), or a file holding it")
	policyPath := fs.String("witness-policy", "", "witness policy `FILE`: say which of its witnesses cosigned and whether it is satisfied")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *logKey == "" {
		return cli.Usagef("--url and --log-key are required")
	}
	opts, v, err := logTrust(*logKey, *policyPath)
	if err != nil {
		return err
	}
	c, err := readsClient(*logURL, inv.Stderr)
	if err != nil {
		return err
	}
	raw, err := c.Checkpoint(ctx)
	if err != nil {
		return err
	}
	cp, _, n, err := flog.ParseCheckpoint(raw, v.Name(), v)
	if err != nil {
		return fmt.Errorf("the log's checkpoint does not verify with its key: %w", err)
	}
	w := inv.Stdout
	fmt.Fprintf(w, "origin %s\nsize %d\nroot %s\ncheckpoint signature verified (%s)\n", cp.Origin, cp.Size, hex.EncodeToString(cp.Hash), v.Name())
	cosigs := 0
	for _, s := range n.UnverifiedSigs {
		sig, _ := base64.StdEncoding.DecodeString(s.Base64)
		if when, ok := notekey.CosignatureTime(sig); ok {
			cosigs++
			fmt.Fprintf(w, "cosignature by %s (key hash %08x) at %s\n", s.Name, s.Hash, when.Format(time.RFC3339))
		} else {
			fmt.Fprintf(w, "other signature by %s (key hash %08x)\n", s.Name, s.Hash)
		}
	}
	if cosigs == 0 {
		fmt.Fprintln(w, "no witness cosignatures")
	}
	if opts.WitnessPolicy != nil {
		for u, wv := range opts.WitnessPolicy.Endpoints() {
			_, err := note.Open(raw, note.VerifierList(wv))
			fmt.Fprintf(w, "witness %s (%s): cosigned %t\n", wv.Name(), u, err == nil)
		}
		fmt.Fprintf(w, "witness policy satisfied: %t\n", opts.WitnessPolicy.Satisfied(raw))
	}
	// A Quire log also says how its witnesses last answered; another Rekor v2 log has no status.
	if st, err := c.Status(ctx); err == nil {
		printStatusWitnesses(w, st)
	} else if ae := (*client.APIError)(nil); !errors.As(err, &ae) || ae.StatusCode != http.StatusNotFound {
		fmt.Fprintf(inv.Stderr, "quirectl: reading the log's status: %v\n", err)
	}
	return nil
}

// printStatusWitnesses prints what a Quire log's status says of its witnesses and checkpoint age.
func printStatusWitnesses(w io.Writer, raw []byte) {
	var st struct {
		AgeSeconds *float64 `json:"ageSeconds"`
		Ready      bool     `json:"ready"`
		Problems   []string `json:"problems"`
		Witnesses  []struct {
			Name, URL, LastOutcome, LastError string
			LastCosigned                      *time.Time
		} `json:"witnesses"`
	}
	if json.Unmarshal(raw, &st) != nil {
		return
	}
	if st.AgeSeconds != nil {
		fmt.Fprintf(w, "checkpoint age %s (the log's own clock)\n", time.Duration(*st.AgeSeconds*float64(time.Second)).Round(time.Millisecond))
	}
	fmt.Fprintf(w, "ready for writes %t\n", st.Ready)
	for _, p := range st.Problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
	for _, ws := range st.Witnesses {
		last := "never"
		if ws.LastCosigned != nil {
			last = ws.LastCosigned.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "policy witness %s %s: last answer %s, last cosigned %s", ws.Name, ws.URL, ws.LastOutcome, last)
		if ws.LastError != "" {
			fmt.Fprintf(w, " (%s)", ws.LastError)
		}
		fmt.Fprintln(w)
	}
}
