// Package web renders Quire's HTML pages: server-side html/template, with every template, style
// sheet and image served from the binary, so a page never loads anything from elsewhere, and a
// Content-Security-Policy that forbids it to. Pages share one layout (templates/layout.html) and
// the parts under templates/parts/; a page is a template file defining "title" and "content"
// (and optionally "head" and "nav"). Other packages add pages of their own with NewPages (the
// explorer, api/explorer, does).
//
// html/template escapes everything a page shows by context, which matters because much of what a
// log shows (entries, witness answers) comes from people the log does not trust.
package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"path"
	"strings"
	"time"
)

// CSP is the Content-Security-Policy of every page: nothing but the server's own scripts, style
// sheets, images and fetches (no inline script or style, nothing from elsewhere), no frames, forms
// only to the server itself.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// StaticPrefix is the path under which Static serves the pages' assets.
const StaticPrefix = "/static/"

//go:embed templates
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

var funcs = template.FuncMap{
	"duration": humanDuration,
	"time": func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return t.UTC().Format(time.RFC3339)
	},
	"since": func(t *time.Time, now time.Time) string {
		if t == nil {
			return ""
		}
		return humanDuration(now.Sub(*t).Seconds()) + " ago"
	},
	"rate": func(r float64) string { return fmt.Sprintf("%.1f", r) },
	"deref": func(f *float64) float64 {
		if f == nil {
			return 0
		}
		return *f
	},
}

// Pages is a set of parsed page templates, each with the layout and the parts.
type Pages struct {
	pages map[string]*template.Template
}

// base is the layout and the parts, which every page is parsed on top of.
var base = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts/*.html"))

// own are this package's pages.
var own = mustPages(templateFS, "templates", nil)

func mustPages(fsys fs.FS, dir string, extra template.FuncMap) *Pages {
	p, err := NewPages(fsys, dir, extra)
	if err != nil {
		panic(err)
	}
	return p
}

// NewPages parses every dir/*.html in fsys as a page (named by its file name without ".html")
// with the layout, the parts (this package's, and dir/parts/*.html of fsys), and extra template
// functions besides the package's own.
func NewPages(fsys fs.FS, dir string, extra template.FuncMap) (*Pages, error) {
	names, err := fs.Glob(fsys, dir+"/*.html")
	if err != nil {
		return nil, fmt.Errorf("listing page templates: %w", err)
	}
	parts, err := fs.Glob(fsys, dir+"/parts/*.html")
	if err != nil {
		return nil, fmt.Errorf("listing part templates: %w", err)
	}
	p := &Pages{pages: map[string]*template.Template{}}
	for _, n := range names {
		if path.Base(n) == "layout.html" {
			continue
		}
		t, err := base.Clone()
		if err != nil {
			return nil, fmt.Errorf("cloning layout: %w", err)
		}
		if t, err = t.Funcs(extra).ParseFS(fsys, append([]string{n}, parts...)...); err != nil {
			return nil, fmt.Errorf("parsing page %s: %w", n, err)
		}
		p.pages[strings.TrimSuffix(path.Base(n), ".html")] = t
	}
	return p, nil
}

// Render writes page with data and the given status, with the headers every page carries. The
// page is rendered into memory first, so a template error becomes a 500 rather than half a page.
func (p *Pages) Render(w http.ResponseWriter, status int, page string, data any) error {
	t, ok := p.pages[page]
	if !ok {
		return fmt.Errorf("no page %q", page)
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "layout.html", data); err != nil {
		return fmt.Errorf("rendering page %q: %w", page, err)
	}
	h := w.Header()
	SetHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	_, err := w.Write(b.Bytes())
	return err
}

// Render renders one of this package's pages (Pages.Render).
func Render(w http.ResponseWriter, status int, page string, data any) error {
	return own.Render(w, status, page, data)
}

// SetHeaders sets the security headers of a page or asset.
func SetHeaders(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// Static serves the pages' assets; mount it at StaticPrefix.
func Static() http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	files := http.StripPrefix(StaticPrefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetHeaders(w.Header())
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}

// humanDuration writes seconds the way a person reads an age: "850ms", "42s", "3m20s", "5h02m".
func humanDuration(s float64) string {
	switch {
	case s < 1:
		return fmt.Sprintf("%dms", int(math.Round(s*1000)))
	case s < 60:
		return fmt.Sprintf("%ds", int(s))
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", int(s)/60, int(s)%60)
	default:
		return fmt.Sprintf("%dh%02dm", int(s)/3600, int(s)%3600/60)
	}
}
