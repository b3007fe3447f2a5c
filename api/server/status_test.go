package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/quirelog/quire/api/server"
	"github.com/quirelog/quire/api/server/web"
	"github.com/quirelog/quire/log/status"
)

// getAccept sends a GET with an Accept header and returns the answer and its headers.
func (l *testLog) getAccept(path, accept string) (httpAnswer, http.Header) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.baseURL+path, nil)
	if err != nil {
		l.t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		l.t.Fatal(err)
	}
	return httpAnswer{status: resp.StatusCode, body: body}, resp.Header
}

func TestStatusPage(t *testing.T) {
	l := startLog(t)
	fillLog(t, l, 3)

	t.Run("a browser gets the page, served under a strict CSP", func(t *testing.T) {
		a, h := l.getAccept("/", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
		if a.status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
			t.Fatalf("status %d, type %q", a.status, h.Get("Content-Type"))
		}
		if got := h.Get("Content-Security-Policy"); got != web.CSP || !strings.Contains(got, "default-src 'none'") {
			t.Fatalf("CSP %q", got)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatal("no nosniff")
		}
		for _, want := range []string{"<h1>" + testOrigin + "</h1>", `<td id="size">3</td>`, "Ready for writes.", `href="/static/quire.css"`, "No witness policy"} {
			if !strings.Contains(string(a.body), want) {
				t.Errorf("page lacks %q:\n%s", want, a.body)
			}
		}
		if strings.Contains(string(a.body), "<script") || strings.Contains(string(a.body), "src=") {
			t.Error("the page has scripts or embedded resources")
		}
		for _, m := range regexp.MustCompile(`href="([^"]*)"`).FindAllStringSubmatch(string(a.body), -1) {
			if !strings.HasPrefix(m[1], "/") || strings.HasPrefix(m[1], "//") {
				t.Errorf("the page links outside the server: %s", m[1])
			}
		}
	})
	t.Run("a client asking for JSON gets the status model at / and at /quire/v1/status", func(t *testing.T) {
		for _, path := range []string{"/", server.StatusPath} {
			a, h := l.getAccept(path, "application/json")
			var m status.Model
			if err := json.Unmarshal(a.body, &m); a.status != http.StatusOK || err != nil {
				t.Fatalf("%s: status %d, %v: %s", path, a.status, err, a.body)
			}
			if h.Get("Content-Type") != "application/json" || m.Origin != testOrigin || m.Size != 3 || !m.Ready || m.AgeSeconds == nil || m.Version != "test" {
				t.Fatalf("%s: %+v", path, m)
			}
			if !strings.Contains(m.Checkpoint, "\n3\n") {
				t.Fatalf("%s: checkpoint %q is not of size 3", path, m.Checkpoint)
			}
		}
	})
	t.Run("the style sheet comes from the binary", func(t *testing.T) {
		a, h := l.getAccept("/static/quire.css", "")
		if a.status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/css") {
			t.Fatalf("status %d type %q", a.status, h.Get("Content-Type"))
		}
	})
	t.Run("the OpenAPI documents are served and listed", func(t *testing.T) {
		a, _ := l.getAccept(server.OpenAPIPath, "")
		if a.status != http.StatusOK || !strings.Contains(string(a.body), "/openapi/quire/v1/log.swagger.json") || !strings.Contains(string(a.body), "/openapi/rekor/v2/rekor_service.swagger.json") {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		a, _ = l.getAccept("/openapi/quire/v1/log.swagger.json", "")
		var doc struct {
			Swagger string `json:"swagger"`
			Info    struct{ Title string }
		}
		if err := json.Unmarshal(a.body, &doc); a.status != http.StatusOK || err != nil || doc.Info.Title != "Quire log read API" {
			t.Fatalf("status %d, %v, %+v", a.status, err, doc)
		}
	})
	t.Run("another path is still a 404 in the API's error format", func(t *testing.T) {
		a, _ := l.getAccept("/no/such/page", "text/html")
		if a.status != http.StatusNotFound {
			t.Fatalf("status %d", a.status)
		}
		if _, err := decodeErrorBody(a.body); err != nil {
			t.Fatal(err)
		}
	})
}

func TestReadyzNamesEachFailedCheck(t *testing.T) {
	l := startLog(t)
	fe := l.frontEnd(t, server.Config{Ready: []server.Check{
		{Name: "checkpoint", Check: func(context.Context) error { return nil }},
		{Name: "witnesses", Check: func(context.Context) error { return errors.New("witness quorum not met: w1 (unreachable)") }},
	}})
	resp, err := http.Get(fe.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || string(body) != "ok storage\nok checkpoint\nFAILED witnesses: witness quorum not met: w1 (unreachable)\n" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	if a := l.do(http.MethodGet, "/readyz", nil); a.status != http.StatusOK || string(a.body) != "ok storage\nready\n" {
		t.Fatalf("the harness's own server: status %d body %q", a.status, a.body)
	}
}
