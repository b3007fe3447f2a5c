package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// budgetRetrySeconds is what a request refused for want of room is told to wait: requests
// holding the room are answered within a checkpoint interval or two.
const budgetRetrySeconds = 1

// bodyBudget bounds the bytes of request bodies the server holds at once, over HTTP and gRPC
// together, so that peak memory has a ceiling whatever clients send (see Config.MaxInFlightBytes).
// A request reserves its body's size before the body is read and keeps it until it is answered:
// its decoded form lives that long. A request that finds no room waits up to wait for some, then
// is refused with 503 (HTTP) or RESOURCE_EXHAUSTED (gRPC) and Retry-After, its body unread.
//
// HTTP requests reserve their declared Content-Length (the limit when they declare none). gRPC
// sends no length ahead of a message, so a call reserves the largest message size before its
// message is read and gives back the rest once it is decoded; until then HTTP/2 flow control keeps
// what the client may send ahead to one stream window (grpcStreamWindow).
type bodyBudget struct {
	sem   *semaphore.Weighted
	limit int64
	wait  time.Duration
}

func newBodyBudget(limit int64, wait time.Duration) *bodyBudget {
	return &bodyBudget{sem: semaphore.NewWeighted(limit), limit: limit, wait: wait}
}

// reservation is room held in a bodyBudget; release gives it back, once, from any goroutine.
type reservation struct {
	b    *bodyBudget
	mu   sync.Mutex
	held int64
}

// reserve waits (at most b.wait, or until ctx ends) for n bytes of room; a request larger than the
// whole budget gets all of it, alone.
func (b *bodyBudget) reserve(ctx context.Context, n int64) (*reservation, error) {
	held, err := b.acquire(ctx, n)
	if err != nil {
		return nil, err
	}
	return &reservation{b: b, held: held}, nil
}

// acquire is reserve for a caller that gives back all it holds at once (b.sem.Release(held)) and
// so needs no reservation, which every HTTP request would otherwise allocate.
func (b *bodyBudget) acquire(ctx context.Context, n int64) (held int64, _ error) {
	n = min(max(n, 1), b.limit)
	// Most requests find room at once; taking it without the timed context spares every request
	// a timer and two contexts. TryAcquire leaves room to those already waiting, as Acquire does.
	if ctx.Err() == nil && b.sem.TryAcquire(n) {
		return n, nil
	}
	wctx, cancel := context.WithTimeout(ctx, b.wait)
	defer cancel()
	if err := b.sem.Acquire(wctx, n); err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("waiting to read the request: %w", ctx.Err())
		}
		return 0, b.busy()
	}
	return n, nil
}

// busy is the refusal of a request that found no room in time.
func (b *bodyBudget) busy() *apiError {
	e := newAPIError(codes.ResourceExhausted, http.StatusServiceUnavailable, fmt.Sprintf(
		"the server is holding as many request bytes as it takes at once (%d); retry after %ds", b.limit, budgetRetrySeconds))
	e.headers = map[string]string{headerRetryAfter: strconv.Itoa(budgetRetrySeconds)}
	return e
}

// shrink gives back all but n bytes, once the request is known to need no more.
func (r *reservation) shrink(n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n = max(n, 1)
	if n < r.held {
		r.b.sem.Release(r.held - n)
		r.held = n
	}
}

func (r *reservation) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held > 0 {
		r.b.sem.Release(r.held)
		r.held = 0
	}
}

// http reserves room for a request's body before next reads it, and holds it until next returns.
// A request without a body passes freely.
func (b *bodyBudget) http(maxBody int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		n := r.ContentLength
		if n < 0 {
			n = maxBody
		}
		held, err := b.acquire(r.Context(), n)
		if err != nil {
			refuseUnread(w, r, mapError(err))
			return
		}
		defer b.sem.Release(held)
		next.ServeHTTP(w, r)
	})
}

// service returns a copy of desc whose unary methods reserve maxMsg bytes before their request
// message is read, keep what it decodes to until they return, and are refused (failing through
// fail, with Retry-After as gRPC metadata) when no room comes in time. Streaming methods are the
// stream interceptor's (streamInterceptor).
func (b *bodyBudget) service(desc *grpc.ServiceDesc, maxMsg int64, fail func(context.Context, error) error) *grpc.ServiceDesc {
	d := *desc
	d.Methods = make([]grpc.MethodDesc, len(desc.Methods))
	for i, m := range desc.Methods {
		h := m.Handler
		m.Handler = func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			res, err := b.reserve(ctx, maxMsg)
			if err != nil {
				return nil, fail(ctx, err)
			}
			defer res.release()
			return h(srv, ctx, func(msg any) error {
				err := dec(msg)
				if pm, ok := msg.(proto.Message); ok && err == nil {
					res.shrink(int64(proto.Size(pm)))
				}
				return err
			}, in)
		}
		d.Methods[i] = m
	}
	return &d
}

// streamInterceptor reserves maxMsg bytes around each message a streaming call receives (gRPC
// reflection, health watches), so that no method reads a message outside the budget.
func (b *bodyBudget) streamInterceptor(maxMsg int64) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &budgetedStream{ServerStream: ss, b: b, maxMsg: maxMsg})
	}
}

type budgetedStream struct {
	grpc.ServerStream
	b      *bodyBudget
	maxMsg int64
}

func (s *budgetedStream) RecvMsg(m any) error {
	res, err := s.b.reserve(s.Context(), s.maxMsg)
	if err != nil {
		return err
	}
	defer res.release()
	return s.ServerStream.RecvMsg(m)
}

// refuseUnread answers a request refused before its body was read. A client that waits for "100
// Continue" has not sent the body: the connection closes without it. Any other client is sending
// it, and closing under it would reset the connection and lose the answer, so the body (bounded
// by limitBody) is read and dropped first, a small buffer at a time.
func refuseUnread(w http.ResponseWriter, r *http.Request, e *apiError) {
	if strings.EqualFold(r.Header.Get("Expect"), "100-continue") || r.Context().Err() != nil {
		w.Header().Set("Connection", "close")
	} else if _, err := io.Copy(io.Discard, r.Body); err != nil {
		w.Header().Set("Connection", "close")
	}
	writeError(w, e)
}
