package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/quirelog/quire/api/rekor/fulciotest"
)

// chromium finds a headless-capable Chromium: $QUIRE_TEST_CHROMIUM, or the one scripts/chromium
// finds or installs (Debian's chromium, with apt-get). Under CI ($CI set) a test without one
// fails; elsewhere it is skipped with a message saying what to do.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("QUIRE_TEST_CHROMIUM"); p != "" {
		return p
	}
	out, err := exec.Command(filepath.Join("..", "..", "scripts", "chromium")).Output()
	if p := strings.TrimSpace(string(out)); err == nil && p != "" {
		return p
	}
	msg := fmt.Sprintf("no Chromium for the explorer's browser test: set QUIRE_TEST_CHROMIUM, or run scripts/chromium as root to install Debian's chromium (%v)", err)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// screenshots is where the browser test keeps its screenshots: $QUIRE_TEST_ARTIFACTS/explorer,
// or a new temporary directory that outlives the test, named in the test's log.
func screenshots(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("QUIRE_TEST_ARTIFACTS")
	var err error
	if dir != "" {
		dir = filepath.Join(dir, "explorer")
		err = os.MkdirAll(dir, 0o755)
	} else {
		dir, err = os.MkdirTemp("", "quire-explorer-screenshots-")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots of the explorer's pages go to %s", dir)
	return dir
}

// certHashedRekord is a really signed request body naming its signer by certificate.
func certHashedRekord(t *testing.T, k *ecdsa.PrivateKey, certDER, artifact []byte) []byte {
	t.Helper()
	d := sha256.Sum256(artifact)
	sig, err := ecdsa.SignASN1(rand.Reader, k, d[:])
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	return []byte(fmt.Sprintf(`{"hashedRekordRequestV002":{"digest":%q,"signature":{"content":%q,"verifier":{"x509Certificate":{"rawBytes":%q},"keyDetails":"PKIX_ECDSA_P256_SHA_256"}}}}`,
		b64(d[:]), b64(sig), b64(certDER)))
}

// hostile is what a signer who wants to run script in visitors' browsers puts in a certificate:
// each would set window.quirePwned if a page let it through as markup.
var hostile = struct{ email, dns, issuer string }{
	email:  `"><img src=x onerror="window.quirePwned='email'">@evil.example`,
	dns:    `<script>window.quirePwned='dns'</script>`,
	issuer: `<script>window.quirePwned='issuer'</script>`,
}

// TestExplorerInABrowser drives the explorer of a real `quire serve` in headless Chromium: the
// home page, a search by identity, an entry page whose inclusion proof the page's script checks
// with WebCrypto, an entry whose certificate holds HTML and script (shown as text, none of it
// run), and the checkpoints page with a consistency proof. It keeps a screenshot of each page.
func TestExplorerInABrowser(t *testing.T) {
	chrome := chromium(t)
	shots := screenshots(t)
	s := startServe(t, t.TempDir())

	ca, err := fulciotest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	const alice, aliceIssuer = "alice@example.com", "https://accounts.example.com"
	aliceKey, evilKey, plainKey := newECDSA(t), newECDSA(t), newECDSA(t)
	aliceCert, err := ca.Issue(&aliceKey.PublicKey, fulciotest.Leaf{Emails: []string{alice}, Issuer: aliceIssuer})
	if err != nil {
		t.Fatal(err)
	}
	evilCert, err := ca.Issue(&evilKey.PublicKey, fulciotest.Leaf{Emails: []string{hostile.email}, DNSNames: []string{hostile.dns}, Issuer: hostile.issuer})
	if err != nil {
		t.Fatal(err)
	}
	bodies := [][]byte{
		hashedRekord(t, plainKey, []byte("plain 0")),
		certHashedRekord(t, aliceKey, aliceCert, []byte("alice 0")),
		hashedRekord(t, plainKey, []byte("plain 1")),
		certHashedRekord(t, aliceKey, aliceCert, []byte("alice 1")),
		certHashedRekord(t, evilKey, evilCert, []byte("evil")),
	}
	for i, b := range bodies {
		if status, answer := s.post(b); status != http.StatusCreated {
			t.Fatalf("entry %d: status %d: %s", i, status, answer)
		}
	}
	const evilIndex = 4
	// Search follows publication by a moment: wait until the follower has indexed the last entry.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, b := s.get("/quire/v1/search?identity=" + url.QueryEscape(hostile.email))
		var p struct{ Indices []string }
		if json.Unmarshal(b, &p) == nil && len(p.Indices) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the last entry was not indexed within 20s: %s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}

	t.Run("every page carries the strict CSP, and bad addresses get a clear 4xx page", func(t *testing.T) {
		for _, tc := range []struct {
			path, want string
			status     int
		}{
			{"/explorer/entries/1", "Entry 1", http.StatusOK},
			{"/explorer/entries/x1", "An entry is named by its index", http.StatusBadRequest},
			{"/explorer/entries/999", "Entry 999 is not in this log", http.StatusNotFound},
			{"/explorer/search?q=sha256:00", "digest", http.StatusBadRequest},
			{"/explorer/checkpoints?first=5&second=2", "first", http.StatusBadRequest},
			{"/explorer/nothing", "There is no page at this address", http.StatusNotFound},
		} {
			resp, err := http.Get(s.baseURL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			_, err = io.Copy(&b, resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			h := resp.Header
			if resp.StatusCode != tc.status || !strings.Contains(b.String(), tc.want) {
				t.Errorf("GET %s: %d, want %d and a page saying %q", tc.path, resp.StatusCode, tc.status, tc.want)
			}
			if h.Get("Content-Security-Policy") != "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'" ||
				h.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
				t.Errorf("GET %s: headers %v, want the strict CSP, nosniff and HTML", tc.path, h)
			}
		}
	})

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chrome),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1024),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	defer cancel()

	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return strings.TrimSpace(v)
	}
	eval := func(js string) any {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[any](js))
		if err != nil {
			t.Fatalf("evaluating %s: %v", js, err)
		}
		return v
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// inert checks that nothing an entry holds ran or became markup on the current page.
	inert := func(page string) {
		t.Helper()
		if v := eval(`window.quirePwned === undefined ? "" : String(window.quirePwned)`); v != "" {
			t.Errorf("%s: script from an entry ran (window.quirePwned = %v)", page, v)
		}
		if n := eval(`document.querySelectorAll("main img, main script, img[src='x']").length`); n != float64(0) {
			t.Errorf("%s: %v img or script elements in the page, want none", page, n)
		}
	}

	t.Run("home shows the log, its checkpoint and the latest entries", func(t *testing.T) {
		do("opening home", chromedp.Navigate(s.baseURL+"/"), chromedp.WaitVisible(chromedp.CSS("#size")))
		shot("home")
		if got := text("#size"); got != "5" {
			t.Errorf("size %q, want 5", got)
		}
		if got := text("#published"); !strings.HasPrefix(got, "published ") {
			t.Errorf("latest checkpoint %q, want its publication time and age", got)
		}
		if got := text("table.entries"); !strings.Contains(got, alice) || !strings.Contains(got, hostile.email) {
			t.Errorf("latest entries lack alice's and the hostile email as text:\n%s", got)
		}
		inert("home")
	})
	t.Run("a search by identity lists that identity's entries", func(t *testing.T) {
		do("searching", chromedp.SendKeys(chromedp.CSS("#q"), alice), chromedp.Click(chromedp.CSS("form.search button")),
			chromedp.WaitVisible(chromedp.CSS("section.result")))
		shot("search")
		if got := text("section.result h2"); !strings.Contains(got, alice) {
			t.Errorf("result heading %q does not name %s", got, alice)
		}
		if n := eval(`document.querySelectorAll("section.result table.entries tr").length`); n != float64(3) {
			t.Errorf("%v rows, want a header and alice's 2 entries", n)
		}
	})
	t.Run("an entry page verifies its inclusion proof in the browser", func(t *testing.T) {
		do("opening the first result", chromedp.Click(chromedp.CSS("section.result table.entries tr:nth-child(2) a")),
			chromedp.WaitEnabled(chromedp.CSS("#verify-button")))
		if got := text("#index"); got != "1" {
			t.Fatalf("opened entry %q, want alice's first, 1", got)
		}
		if got := text(".san"); got != alice {
			t.Errorf("SAN %q, want %q", got, alice)
		}
		if got := text(".issuer"); !strings.HasPrefix(got, aliceIssuer) {
			t.Errorf("issuer %q, want %q", got, aliceIssuer)
		}
		do("verifying", chromedp.Click(chromedp.CSS("#verify-button")))
		state, err := chromedp.Run(ctx, chromedp.Poll[string](`["ok", "bad"].includes(document.getElementById("verify-result").dataset.state) && document.getElementById("verify-result").dataset.state`))
		if err != nil {
			t.Fatalf("waiting for the verification: %v", err)
		}
		shot("entry")
		result := text("#verify-result")
		if state != "ok" || !strings.HasPrefix(result, "Verified in this browser") || !strings.Contains(result, text("#root")) {
			t.Fatalf("verification %s: %q, want it verified against root %s", state, result, text("#root"))
		}
	})
	t.Run("a tampered proof fails the in-browser verification", func(t *testing.T) {
		eval(`(() => { const b = document.getElementById("verify"); const p = b.dataset.proof.split(","); p[0] = p[0].replace(/^./, c => c === "0" ? "1" : "0"); b.dataset.proof = p.join(","); document.getElementById("verify-result").dataset.state = "idle"; })()`)
		do("verifying again", chromedp.Click(chromedp.CSS("#verify-button")))
		state, err := chromedp.Run(ctx, chromedp.Poll[string](`["ok", "bad"].includes(document.getElementById("verify-result").dataset.state) && document.getElementById("verify-result").dataset.state`))
		if err != nil || state != "bad" {
			t.Fatalf("verification of a tampered proof: %q, %v; want bad", state, err)
		}
	})
	t.Run("an entry whose certificate holds HTML and script shows it as text", func(t *testing.T) {
		do("opening the hostile entry", chromedp.Navigate(fmt.Sprintf("%s/explorer/entries/%d", s.baseURL, evilIndex)),
			chromedp.WaitEnabled(chromedp.CSS("#verify-button")))
		shot("hostile-entry")
		inert("hostile entry")
		sans := eval(`Array.from(document.querySelectorAll(".san"), e => e.textContent)`)
		if fmt.Sprint(sans) != fmt.Sprint([]any{hostile.email, hostile.dns}) {
			t.Errorf("SANs shown %q, want the hostile names as text", sans)
		}
		if got := text(".issuer"); !strings.HasPrefix(got, hostile.issuer) {
			t.Errorf("issuer shown %q, want %q as text", got, hostile.issuer)
		}
		_, raw := s.get(fmt.Sprintf("/explorer/entries/%d", evilIndex))
		for _, markup := range []string{`<img src=x`, `<script>window`} {
			if strings.Contains(string(raw), markup) {
				t.Errorf("the page's HTML holds %q unescaped", markup)
			}
		}
	})
	t.Run("a search for the hostile identity shows it as text", func(t *testing.T) {
		do("searching", chromedp.Navigate(s.baseURL+"/explorer/search?q="+url.QueryEscape(hostile.email)),
			chromedp.WaitVisible(chromedp.CSS("section.result")))
		shot("hostile-search")
		inert("hostile search")
		if got := eval(`document.getElementById("q").value`); got != hostile.email {
			t.Errorf("search box holds %q, want the query as typed", got)
		}
	})
	t.Run("the checkpoints page proves two sizes consistent", func(t *testing.T) {
		do("opening checkpoints", chromedp.Navigate(s.baseURL+"/explorer/checkpoints"), chromedp.WaitVisible(chromedp.CSS("#checkpoints")),
			chromedp.SendKeys(chromedp.CSS("#first"), "2"), chromedp.SendKeys(chromedp.CSS("#second"), "5"),
			chromedp.Click(chromedp.CSS("form button")), chromedp.WaitVisible(chromedp.CSS("#consistency")))
		shot("checkpoints")
		if got := text("#consistency p"); !strings.Contains(got, "tree of size 2") || !strings.Contains(got, "tree of size 5") {
			t.Errorf("consistency %q, want sizes 2 and 5", got)
		}
		if n := eval(`document.querySelectorAll("#checkpoints tr").length`); n.(float64) < 2 {
			t.Errorf("%v rows in the history, want at least one checkpoint", n)
		}
	})
}
