package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/quirelog/quire/cmd/internal/cli"
)

// followDefaults fills in the serve settings whose defaults follow others, so that moving the log
// by --http-listen alone moves everything with it: gRPC listens on the same host one port up,
// metrics on the loopback interface two ports up, the public URL is where --http-listen is
// reached, and the origin is the public URL's host.
func (f *serveFlags) followDefaults() error {
	host, port, err := net.SplitHostPort(f.httpListen)
	if err != nil {
		return cli.Usagef("--http-listen %q: %v", f.httpListen, err)
	}
	if f.grpcListen == "" {
		if f.grpcListen, err = portAbove(host, port, 1); err != nil {
			return cli.Usagef("--http-listen %q: %v, so give --grpc-listen", f.httpListen, err)
		}
	}
	if f.metricsListen == "" {
		// Metrics stay on the loopback interface whatever --http-listen serves the world on.
		if f.metricsListen, err = portAbove("127.0.0.1", port, 2); err != nil {
			return cli.Usagef("--http-listen %q: %v, so give --metrics-listen", f.httpListen, err)
		}
	}
	f.publicURLSet = f.publicURL != ""
	if !f.publicURLSet {
		f.publicURL = publicURLFor(host, port, f.tlsCert != "")
	}
	u, err := url.Parse(f.publicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return cli.Usagef("--public-url %q: want an http or https URL with a host", f.publicURL)
	}
	if f.origin == "" {
		f.origin = u.Hostname()
	}
	return nil
}

// portAbove is the address on host by ports above port; port 0 (any free port) stays 0.
func portAbove(host, port string, by uint64) (string, error) {
	n, err := strconv.ParseUint(port, 10, 16)
	switch {
	case err != nil:
		return "", fmt.Errorf("port %q is not a number", port)
	case n == 0:
		return net.JoinHostPort(host, "0"), nil
	case n+by > 65535:
		return "", fmt.Errorf("port %d has no port %d above it", n, by)
	}
	return net.JoinHostPort(host, strconv.FormatUint(n+by, 10)), nil
}

// publicURLFor is the URL of a listener on host:port as clients would reach it. A wildcard host
// (none, 0.0.0.0, ::) listens for other machines, which reach it by this machine's name: the best
// a default can guess; behind a proxy or a DNS name, --public-url says the real one.
func publicURLFor(host, port string, tls bool) string {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = machineName()
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// machineName is this machine's host name in lower case, as origins are compared exactly.
func machineName() string {
	name, err := os.Hostname()
	if err != nil || name == "" {
		return "localhost"
	}
	return strings.ToLower(name)
}

// settlePublicURL puts the port the HTTP listener got into a public URL that follows
// --http-listen, which matters when that asked for any free port (":0").
func (f *serveFlags) settlePublicURL(addr net.Addr) {
	if f.publicURLSet {
		return
	}
	host, _, err := net.SplitHostPort(f.httpListen)
	if err != nil {
		return
	}
	if _, port, err := net.SplitHostPort(addr.String()); err == nil {
		f.publicURL = publicURLFor(host, port, f.tlsCert != "")
	}
}

// warnIfOriginIsNotPublicHost says when the log's origin (from its key or --origin) is not the host
// of its public URL: Sigstore clients check checkpoints against the host of the URL they were
// given, so they would reject every entry.
func warnIfOriginIsNotPublicHost(f *serveFlags, key *logKey, logger *slog.Logger) {
	u, err := url.Parse(f.publicURL)
	if err != nil || u.Hostname() == key.origin {
		return
	}
	logger.Warn("the log's origin is not the host of its public URL, so Sigstore clients given that URL reject its checkpoints: give --public-url the URL clients use",
		"origin", key.origin, "public_url", f.publicURL)
}
