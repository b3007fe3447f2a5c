package server

import (
	"context"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// logRequests logs each HTTP request once answered: method, path, route, status, time taken and
// the client's address (Config.LogRequests).
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		code := rec.code
		if code == 0 {
			code = http.StatusOK
		}
		s.cfg.Logger.InfoContext(r.Context(), "http request",
			"method", r.Method, "path", r.URL.Path, "route", route(r.URL.Path), "status", code,
			"duration", time.Since(start), "remote", r.RemoteAddr)
	})
}

// logCall logs each gRPC call once answered: method, status code and time taken.
func (s *Server) logCall(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	s.cfg.Logger.InfoContext(ctx, "grpc call", "method", info.FullMethod, "code", status.Code(err).String(), "duration", time.Since(start))
	return resp, err
}
