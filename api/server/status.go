package server

import (
	"encoding/json"
	"io/fs"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/quirelog/quire/api/openapi"
	"github.com/quirelog/quire/api/server/web"
	logstatus "github.com/quirelog/quire/log/status"
)

// Paths of the status and documentation resources.
const (
	StatusPath  = "/quire/v1/status"
	OpenAPIPath = "/openapi/"
	// ExplorerPrefix is where Config.Explorer's pages live (api/explorer.Prefix).
	ExplorerPrefix = "/explorer/"
)

// Explorer serves the HTML pages a person browses the log with (package api/explorer): those
// under ExplorerPrefix, and the home page at /, which extends the status page with the same
// model.
type Explorer interface {
	http.Handler
	ServeHome(w http.ResponseWriter, r *http.Request, m *logstatus.Model)
}

// statusModel computes the status and adds what only the server knows: readiness.
func (s *Server) statusModel(r *http.Request) (*logstatus.Model, error) {
	m, err := s.cfg.Status.Compute(r.Context())
	if err != nil {
		return nil, err
	}
	problems := s.problems(r.Context())
	m.Ready = len(problems) == 0
	for _, p := range problems {
		m.Problems = append(m.Problems, p.String())
	}
	return m, nil
}

// serveStatusPage answers / with the status page (the explorer's home page when there is an
// explorer), or with its JSON form for a client that prefers application/json (the same body as
// /quire/v1/status). Any other path under / that no handler
// claims is a 404 in the API's error format.
func (s *Server) serveStatusPage(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" || s.cfg.Status == nil {
		writeError(w, newAPIError(codes.NotFound, http.StatusNotFound, r.URL.Path+" is not a Quire API path"))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, newAPIError(codes.Unimplemented, http.StatusMethodNotAllowed, "the status page is read with GET"))
		return
	}
	w.Header().Add("Vary", "Accept")
	if prefersJSON(r.Header.Get("Accept")) {
		s.serveStatusJSON(w, r)
		return
	}
	m, err := s.statusModel(r)
	if err != nil {
		writeError(w, mapError(err))
		return
	}
	if s.cfg.Explorer != nil {
		s.cfg.Explorer.ServeHome(w, r, m)
		return
	}
	if err := web.Render(w, http.StatusOK, "status", m); err != nil {
		s.cfg.Logger.ErrorContext(r.Context(), "rendering the status page", "error", err)
	}
}

// serveStatusJSON answers /quire/v1/status with the status.Model as JSON.
func (s *Server) serveStatusJSON(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Status == nil {
		writeError(w, newAPIError(codes.Unimplemented, http.StatusNotImplemented, "this server has no status source"))
		return
	}
	m, err := s.statusModel(r)
	if err != nil {
		writeError(w, mapError(err))
		return
	}
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		writeError(w, mapError(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(append(body, '\n'))
}

// prefersJSON says whether an Accept header ranks application/json above text/html. A browser
// asks for text/html first; curl's */* gets the page too, scripts name application/json.
func prefersJSON(accept string) bool {
	best, bestQ := "", -1.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				continue
			}
			q = f
		}
		if (mt == "application/json" || mt == "text/html") && q > bestQ {
			best, bestQ = mt, q
		}
	}
	return best == "application/json"
}

// serveOpenAPI serves the OpenAPI documents under /openapi/, and at /openapi/ a list of them.
func serveOpenAPI() http.Handler {
	files := http.StripPrefix(OpenAPIPath, http.FileServerFS(openapi.Documents))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == OpenAPIPath {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_ = fs.WalkDir(openapi.Documents, ".", func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					_, _ = w.Write([]byte(OpenAPIPath + p + "\n"))
				}
				return err
			})
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
