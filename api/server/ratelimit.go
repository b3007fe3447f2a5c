package server

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	quirelog "github.com/quirelog/quire/log"
	"github.com/quirelog/quire/log/admission"
)

// addressLimit rate-limits writes per client address. The address is the TCP peer's, unless the
// peer is one of the trusted proxies: then it is the right-most X-Forwarded-For address that is
// not a trusted proxy (the one the nearest untrusted hop connected from), so a client cannot pick
// its own bucket by sending the header.
type addressLimit struct {
	lim     *admission.Limiter
	proxies []netip.Prefix
}

type clientAddrKey struct{}

// withClientAddr records a REST request's client address in its context, where CreateEntry
// finds it behind the in-process gateway (which has no gRPC peer).
func (a *addressLimit) withClientAddr(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := a.clientAddr(r.RemoteAddr, r.Header.Values("X-Forwarded-For"))
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientAddrKey{}, addr)))
	})
}

// allow takes a write from the bucket of ctx's client; a refusal is a *quirelog.RateLimitedError.
func (a *addressLimit) allow(ctx context.Context) error {
	addr, ok := ctx.Value(clientAddrKey{}).(string)
	if !ok {
		p, _ := peer.FromContext(ctx)
		if p == nil || p.Addr == nil {
			// No address to limit by: an in-process call, not a client.
			return nil
		}
		md, _ := metadata.FromIncomingContext(ctx)
		addr = a.clientAddr(p.Addr.String(), md.Get("x-forwarded-for"))
	}
	if ok, wait := a.lim.Allow(addr, time.Now()); !ok {
		return &quirelog.RateLimitedError{By: a.lim.Name(), RetryAfter: wait}
	}
	return nil
}

// clientAddr is the address writes are counted against, from the TCP peer "host:port" and the
// X-Forwarded-For values (used only when the peer is a trusted proxy).
func (a *addressLimit) clientAddr(peerAddr string, forwarded []string) string {
	host, _, err := net.SplitHostPort(peerAddr)
	if err != nil {
		host = peerAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !a.trusted(ip) {
		return host
	}
	hops := strings.Split(strings.Join(forwarded, ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			// A hop that is no address was written by the client, not by a proxy: the hop
			// before it is the last one a trusted proxy vouched for.
			return ip.String()
		}
		if ip = hop.Unmap(); !a.trusted(ip) {
			return ip.String()
		}
	}
	return ip.String()
}

func (a *addressLimit) trusted(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range a.proxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
