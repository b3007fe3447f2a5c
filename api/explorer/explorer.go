// Package explorer serves the pages a person browses a Quire log with: the home page (the log's
// status, a search box and the latest entries), an entry page (what the entry says, who signed
// it, and its inclusion proof with a button that checks it in the browser), search results, and
// the checkpoint history with consistency proofs and witness cosignatures. The pages are
// server-side html/template (package api/server/web's layout and Content-Security-Policy), work
// without JavaScript, and load nothing from outside the binary: the one script, verify.js,
// recomputes an RFC 6962 / RFC 9162 §2.1.3.2 root from an inclusion proof with WebCrypto.
//
// Everything an entry holds (certificate names, issuers, subjects) is chosen by whoever signed
// it. Templates print it as text, escaped by html/template, never as template.HTML; the
// escaping is tested with hostile entries in a real browser (cmd/quire's TestExplorerInABrowser,
// which drives `quire serve` in headless Chromium).
package explorer

import (
	"embed"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/quirelog/quire/api/server/web"
	quirelog "github.com/quirelog/quire/log"
	logstatus "github.com/quirelog/quire/log/status"
	"github.com/quirelog/quire/log/witnessing"
)

// Prefix is the path under which the explorer's pages live; the home page is at /.
const Prefix = "/explorer/"

// DefaultRecentEntries is how many of the latest entries the home page lists.
const DefaultRecentEntries = 10

//go:embed templates
var templateFS embed.FS

//go:embed static/verify.js
var verifyJS []byte

var pages = func() *web.Pages {
	p, err := web.NewPages(templateFS, "templates", funcs)
	if err != nil {
		panic(err)
	}
	return p
}()

// Config is what the explorer shows. Log is required.
type Config struct {
	Log *quirelog.Log
	// Witnesses, if set, are the witness policy's witnesses, whose cosignatures the checkpoints
	// page checks.
	Witnesses *witnessing.Tracker
	// RecentEntries is how many entries the home page lists (DefaultRecentEntries if 0).
	RecentEntries int
	// Logger receives rendering failures; nil means slog.Default().
	Logger *slog.Logger
}

// Explorer serves the pages. Its methods are safe for concurrent use.
type Explorer struct {
	cfg Config
	mux *http.ServeMux
}

// New returns the explorer for cfg.
func New(cfg Config) (*Explorer, error) {
	if cfg.Log == nil {
		return nil, errors.New("explorer: Config.Log is nil")
	}
	if cfg.RecentEntries <= 0 {
		cfg.RecentEntries = DefaultRecentEntries
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	e := &Explorer{cfg: cfg, mux: http.NewServeMux()}
	e.mux.HandleFunc("GET "+Prefix+"entries/{index}", e.serveEntry)
	e.mux.HandleFunc("GET "+Prefix+"search", e.serveSearch)
	e.mux.HandleFunc("GET "+Prefix+"checkpoints", e.serveCheckpoints)
	e.mux.HandleFunc("GET "+Prefix+"verify.js", serveScript)
	e.mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		e.renderError(w, r, http.StatusNotFound, "There is no page at this address.")
	})
	return e, nil
}

// ServeHTTP serves the pages under Prefix.
func (e *Explorer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mux.ServeHTTP(w, r)
}

// homeView is the home page: the status page's model, a search box and the latest entries.
type homeView struct {
	Status *logstatus.Model
	Recent []entrySummary
	// RecentError says why the latest entries could not be read.
	RecentError string
}

// ServeHome answers / for a browser: the status m (the same model the status page and its JSON
// show), a search box and the latest entries.
func (e *Explorer) ServeHome(w http.ResponseWriter, r *http.Request, m *logstatus.Model) {
	v := homeView{Status: m}
	n := uint64(e.cfg.RecentEntries)
	for i := m.Size; i > 0 && m.Size-i < n; i-- {
		s, err := e.summary(r, i-1)
		if err != nil {
			v.RecentError = "The latest entries could not be read."
			e.cfg.Logger.WarnContext(r.Context(), "explorer: reading a recent entry", "index", i-1, "error", err)
			break
		}
		v.Recent = append(v.Recent, s)
	}
	e.render(w, r, http.StatusOK, "home", v)
}

func (e *Explorer) render(w http.ResponseWriter, r *http.Request, status int, page string, data any) {
	if err := pages.Render(w, status, page, data); err != nil {
		e.cfg.Logger.ErrorContext(r.Context(), "explorer: rendering a page", "page", page, "error", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
	}
}

type errorView struct {
	Status  int
	Message string
}

// renderError answers with the error page. message is shown to the visitor: it must not carry
// internal detail.
func (e *Explorer) renderError(w http.ResponseWriter, r *http.Request, status int, message string) {
	e.render(w, r, status, "error", errorView{Status: status, Message: message})
}

// fail answers with the error page for err from the log, telling the visitor what they can do
// about it and logging what they cannot.
func (e *Explorer) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	var ie *quirelog.InvalidRequestError
	switch {
	case errors.As(err, &ie):
		e.renderError(w, r, http.StatusBadRequest, ie.Error())
	case errors.Is(err, quirelog.ErrNotFound):
		e.renderError(w, r, http.StatusNotFound, what+" is not in this log.")
	case errors.Is(err, quirelog.ErrUnsupported):
		e.renderError(w, r, http.StatusNotImplemented, "This log does not keep what this page needs.")
	default:
		e.cfg.Logger.ErrorContext(r.Context(), "explorer: reading the log", "what", what, "error", err)
		e.renderError(w, r, http.StatusInternalServerError, "The log could not be read; try again later.")
	}
}

func serveScript(w http.ResponseWriter, _ *http.Request) {
	web.SetHeaders(w.Header())
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(verifyJS)
}

// parseUint reads a decimal query or path number; ok is false for anything else.
func parseUint(s string) (uint64, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}
