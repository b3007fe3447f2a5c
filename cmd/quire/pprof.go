//go:build pprof

package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

// A binary built with -tags pprof serves Go's profiles (/debug/pprof/) on $QUIRE_PPROF_LISTEN,
// for profiling the real server under load (go build -tags pprof ./cmd/quire, then go tool pprof
// http://ADDR/debug/pprof/profile while scripts/benchread or quirectl bench runs). The default
// build has no such listener: profiles show memory contents and must never be exposed.
func init() {
	addr := os.Getenv("QUIRE_PPROF_LISTEN")
	if addr == "" {
		return
	}
	go func() { _ = http.ListenAndServe(addr, nil) }()
}
