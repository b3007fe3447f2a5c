package web_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/quirelog/quire/api/server/web"
	"github.com/quirelog/quire/log/status"
)

func TestStatusPageRendersWitnessesAndEscapesWhatTheyReturn(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	age := 2.5
	m := &status.Model{
		Origin: "log.example", Size: 42, RootHash: "ab", Checkpoint: "log.example\n42\nq80=\n\n— log.example x\n",
		Published: &at, AgeSeconds: &age, Version: "v1.0.0", Ready: false,
		Problems: []string{"witnesses: witness quorum not met"},
		Witnesses: []status.Witness{
			{Name: "w1.example", URL: "http://w1/add-checkpoint", InCheckpoint: true, Cosigned: &at, LastOutcome: "cosigned", LastAttempt: &at, LastCosigned: &at},
			{Name: "w2.example", URL: "http://w2/add-checkpoint", LastOutcome: "refused", LastAttempt: &at, LastError: `<script>alert("w2")</script>`},
			{Name: "w3.example", URL: "http://w3/add-checkpoint"},
		},
	}
	rec := httptest.NewRecorder()
	if err := web.Render(rec, http.StatusOK, "status", m); err != nil {
		t.Fatal(err)
	}
	page := rec.Body.String()
	for _, want := range []string{
		"Not ready for writes.", "<li>witnesses: witness quorum not met</li>", `<td id="size">42</td>`,
		"published 2026-01-02T03:04:05Z (2s ago)", "yes, signed 2026-01-02T03:04:05Z",
		"refused at 2026-01-02T03:04:05Z: &lt;script&gt;alert(&#34;w2&#34;)&lt;/script&gt;", "not asked yet",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<script>") {
		t.Fatalf("a witness's answer reached the page as markup:\n%s", page)
	}
	if rec.Header().Get("Content-Security-Policy") != web.CSP {
		t.Fatalf("CSP %q", rec.Header().Get("Content-Security-Policy"))
	}
}

func TestRenderRefusesAnUnknownPage(t *testing.T) {
	rec := httptest.NewRecorder()
	if err := web.Render(rec, http.StatusOK, "nope", nil); err == nil || rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Fatalf("err %v, wrote %d bytes", err, rec.Body.Len())
	}
}
