package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	quirev1 "github.com/quirelog/quire/api/quire/v1"
	"github.com/quirelog/quire/api/tiles"
	quirelog "github.com/quirelog/quire/log"
	"github.com/quirelog/quire/storage/filecache"
)

// The fast lane answers the reads that dominate a log's traffic, on plaintext HTTP/1.1
// connections, before net/http sees them: GET and HEAD of full tiles and entry bundles (the
// answers of tileHandler.serveFull), GET of an inclusion proof or an entry by index (the
// answers of the gateway's GetInclusionProof and GetEntry), and writes with a small body
// (fastlane_write.go). It hands a connection to net/http at the first request it does not answer
// itself.
//
// Why: a full tile is 8 KiB lent out by storage, yet net/http spends about 55 µs of CPU on it
// (header maps, a context and goroutine hand-offs per request, the answer in two writes and so two
// TCP segments), more than nginx spends serving a file; the lane reads the request into one
// buffer and writes the answer with one writev, as a static file server does, and costs about
// what nginx costs (scripts/bench-read). Anything else (another path, method or query, a
// conditional or Range request, a body, HTTP/1.0, a header block over laneBufSize, a resource
// that is not full, an error of any kind) goes to net/http with every byte the client sent, and
// the connection stays with net/http from then on. So the lane only has to be right about the
// simplest requests: parseLaneRequest accepts a request only if net/http reads the same one
// (FuzzParseLaneRequest), and each answer is the one net/http gives, headers and bytes
// (TestLaneAnswersAsNetHTTPDoes). It counts its requests in the same metrics.
//
// It keeps net/http's limits: a new connection has ReadHeaderTimeout to send its first headers, a
// kept-alive one IdleTimeout to start the next request and then ReadHeaderTimeout to finish its
// headers; an answer has WriteTimeout. A connection in the lane holds at most laneBufSize of
// request, laneJSONKeep of answer buffer between requests, and while it writes a full tile or
// bundle, the one stored value it sends (Pebble lends it without a copy, as it does to net/http's
// handler); net/http holds a 4 KiB reader and a 4 KiB writer per connection. It is on by default and
// off with Config.DisableFastLane (quire serve --fast-lane=false), with TLS and with LogRequests.

// laneBufSize bounds a request the lane reads: a tile GET from any client is a few hundred bytes.
// laneJSONKeep bounds the answer buffer a connection keeps between requests; a larger answer (an
// entry with a long certificate chain) gets a buffer of its own that is dropped once written.
const (
	laneBufSize  = 4 << 10
	laneJSONKeep = 16 << 10
)

// laneKind says what a lane request reads.
type laneKind int

const (
	// laneTile is a full tile or entry bundle (GET or HEAD).
	laneTile laneKind = iota + 1
	// laneProof is GET /quire/v1/proof/inclusion?index=I[&tree_size=N].
	laneProof
	// laneEntry is GET /quire/v1/entries/I.
	laneEntry
	// laneWrite is POST /api/v2/log/entries with a Content-Length body (fastlane_write.go).
	laneWrite
)

// laneRequest is a request the lane answers.
type laneRequest struct {
	kind            laneKind
	res             tiles.Resource // laneTile
	index, treeSize uint64         // laneProof, laneEntry
	head            bool           // HEAD rather than GET
	gzip            bool           // the client accepts gzip
	close           bool           // Connection: close
	// laneWrite: the header lines (after the request line, before the empty line), the declared
	// body length and, once readRequest has it whole, the body.
	header []byte
	length int
	body   []byte
}

// parseLaneRequest parses one request at the start of b. It returns the request and its length
// (request line and headers; it has no body) when the lane can answer it, or ok false when the
// request is anything else or is not complete in b.
func parseLaneRequest(b []byte) (req laneRequest, n int, ok bool) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return req, 0, false
	}
	n = end + 4
	line, rest, _ := bytes.Cut(b[:end+2], []byte("\r\n"))
	method, line, _ := bytes.Cut(line, []byte(" "))
	target, proto, _ := bytes.Cut(line, []byte(" "))
	switch {
	case string(method) == http.MethodGet:
	case string(method) == http.MethodHead:
		req.head = true
	case string(method) == http.MethodPost && string(target) == writePath:
		req.kind, req.header, req.length = laneWrite, rest, -1
	default:
		return req, 0, false
	}
	if string(proto) != "HTTP/1.1" || req.kind != laneWrite && !parseLaneTarget(&req, target) {
		return req, 0, false
	}
	hosts, encodings := 0, 0
	for len(rest) > 0 {
		var h []byte
		h, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, found := bytes.Cut(h, []byte(":"))
		if !found || len(name) == 0 || !isToken(name) || !isFieldValue(value) {
			// Folded or malformed lines are net/http's to refuse.
			return req, 0, false
		}
		value = bytes.Trim(value, " \t")
		switch {
		case asciiEqualFold(name, "Host"):
			hosts++
			if !isHost(value) {
				return req, 0, false
			}
		case asciiEqualFold(name, "Accept-Encoding"):
			// tileHandler reads the first one (http.Header.Get); so does the lane.
			if encodings++; encodings == 1 {
				req.gzip = acceptsGzip(string(value))
			}
		case asciiEqualFold(name, "Connection"):
			switch {
			case asciiEqualFold(value, "close"):
				req.close = true
			case asciiEqualFold(value, "keep-alive"):
			default:
				return req, 0, false
			}
		case req.kind == laneWrite && asciiEqualFold(name, "Content-Length"):
			// One length, in plain digits; repeats and the rest are net/http's to judge.
			v, ok := parseDecimal(value)
			if !ok || req.length >= 0 || v > laneBufSize {
				return req, 0, false
			}
			req.length = int(v)
		case laneRefused(name), req.kind == laneWrite && writeRefused(name):
			return req, 0, false
		}
	}
	// HTTP/1.1 requires exactly one Host (RFC 9112 section 3.2); net/http answers the rest.
	if hosts != 1 || req.kind == laneWrite && req.length < 0 {
		return req, 0, false
	}
	return req, n, true
}

// parseLaneTarget fills in what req reads from its request target, and reports whether the lane
// answers it: a canonical full tile or bundle path (at / or under /api/v2/), or the quire.v1
// proof or entry read by index with nothing in the query but what the gateway would use.
func parseLaneTarget(req *laneRequest, target []byte) bool {
	path, query, hasQuery := bytes.Cut(target, []byte("?"))
	if p, ok := bytes.CutPrefix(path, []byte("/quire/v1/")); ok {
		if req.head {
			return false
		}
		if i, ok := bytes.CutPrefix(p, []byte("entries/")); ok && !hasQuery {
			req.kind = laneEntry
			req.index, ok = parseDecimal(i)
			return ok
		}
		if string(p) != "proof/inclusion" || !hasQuery {
			return false
		}
		req.kind = laneProof
		var hasIndex, hasSize bool
		for len(query) > 0 {
			var param []byte
			param, query, _ = bytes.Cut(query, []byte("&"))
			name, value, _ := bytes.Cut(param, []byte("="))
			v, ok := parseDecimal(value)
			switch {
			case !ok:
				return false
			case string(name) == "index" && !hasIndex:
				req.index, hasIndex = v, true
			case (string(name) == "tree_size" || string(name) == "treeSize") && !hasSize:
				req.treeSize, hasSize = v, true
			default:
				return false
			}
		}
		return hasIndex
	}
	if hasQuery {
		return false
	}
	if bytes.HasPrefix(path, []byte("/api/v2/")) {
		path = path[len("/api/v2"):]
	}
	// ParsePath accepts only canonical tile paths: digits, "x", "p", ".", "/", "entries", so no
	// escape or dot segment gets through.
	res, err := tiles.ParsePath(string(path))
	if err != nil || res.Partial() || (res.Kind != tiles.HashTile && res.Kind != tiles.EntryBundle) {
		return false
	}
	req.kind, req.res = laneTile, res
	return true
}

// parseDecimal parses a uint64 written in 1 to 20 decimal digits, as the gateway's parser
// (strconv.ParseUint) accepts them.
func parseDecimal(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(string(b), 10, 64)
	return v, err == nil
}

// laneRefused reports whether a request with header name is net/http's to answer: a body, an
// upgrade, or any header that makes the answer something other than the whole resource.
func laneRefused(name []byte) bool {
	for _, h := range [...]string{"Content-Length", "Transfer-Encoding", "Expect", "Upgrade", "TE", "Trailer",
		"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if asciiEqualFold(name, h) {
			return true
		}
	}
	return false
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// isToken reports whether b is an RFC 9110 token (section 5.6.2), as header names must be.
func isToken(b []byte) bool {
	for _, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0) {
			return false
		}
	}
	return true
}

// isFieldValue reports whether b holds no control character but tab (RFC 9110 section 5.5).
func isFieldValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// isHost accepts the host[:port] forms clients send (names, IPv4, bracketed IPv6); anything
// stranger is left to net/http's own check.
func isHost(b []byte) bool {
	if len(b) == 0 || len(b) > 255 {
		return false
	}
	for _, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || bytes.IndexByte([]byte(".-:[]_"), c) >= 0) {
			return false
		}
	}
	return true
}

// laneListener wraps the HTTP listener: it accepts every connection, serves it in the lane, and
// hands net/http (through Accept) the connections the lane gives up.
type laneListener struct {
	net.Listener
	tiles *tileHandler // its storage is a fullReader
	log   *quirelog.Log
	// writes, if not nil, is the server's handler, which answers the writes the lane reads
	// (fastlane_write.go) with ctx as their context; stop ends ctx when a shutdown runs out of time.
	writes http.Handler
	// writeRequest is what every write's *http.Request starts from: its method, target, protocol
	// and ctx, which it can only get through WithContext.
	writeRequest *http.Request
	ctx          context.Context
	stop         context.CancelFunc
	cfg          *Config
	metrics      *laneMetrics
	// files, if not nil, holds full tiles, bundles and bundles' gzip forms as files, sent with
	// sendfile.
	files *filecache.Cache
	// answered counts the requests the lane answered itself; sentFiles those it answered from files.
	answered, sentFiles atomic.Int64
	// filesWarned is when (Unix seconds) the lane last warned that it could not keep a file.
	filesWarned atomic.Int64
	// proofs holds the prepared parts of inclusion proof answers (answerTileProof).
	proofs proofJSON

	handoff chan net.Conn
	done    chan struct{} // closed when the underlying listener stops
	err     error         // why it stopped; set before done closes

	today atomic.Pointer[httpDate]

	closing atomic.Bool
	mu      sync.Mutex // guards conns
	conns   map[*laneConn]struct{}
	active  sync.WaitGroup // one per connection the lane holds
	closed  sync.Once
}

// Connection states: a connection waits for a request (idle), answers one (busy), or has been
// closed by Close or wait (shut); only an idle one is shut from outside.
const (
	laneIdle int32 = iota
	laneBusy
	laneShut
)

// laneConn is a connection the lane holds, with what its one goroutine reuses between requests.
type laneConn struct {
	net.Conn
	l     *laneListener
	r     *bufio.Reader
	state atomic.Int32
	// w is answerConn(c.Conn), which answers are written to.
	w net.Conn

	out           laneWriter
	req           laneRequest
	coding        string
	start         time.Time
	writeDeadline time.Time
	werr          error
	// writeFull is c.writeFullBody, bound once so that a request allocates no closure.
	writeFull func(body, version []byte) error
	// name is the file cache name of c.req, built here.
	name []byte
	// send is what sendFile sends, kept here so that a request allocates no closure.
	send fileSend
	// remote is the client's address; request, url, header, body and resp are a write's request
	// and its parts, and its answer; headerCache is what the connection's header lines were.
	remote      string
	request     http.Request
	url         url.URL
	header      http.Header
	headerCache laneHeaderCache
	body        laneBody
	resp        laneResponse
}

// httpDate is the Date header of the current second.
type httpDate struct {
	unix int64
	text []byte
}

var laneReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, laneBufSize) }}

// newLaneListener starts the lane on l; writes, if not nil, answers the writes it reads.
func newLaneListener(l net.Listener, h *tileHandler, cfg *Config, m *laneMetrics, writes http.Handler) *laneListener {
	ll := &laneListener{Listener: l, tiles: h, log: cfg.Log, cfg: cfg, metrics: m, files: cfg.FileCache, writes: writes,
		handoff: make(chan net.Conn), done: make(chan struct{}), conns: make(map[*laneConn]struct{})}
	ll.ctx, ll.stop = context.WithCancel(context.Background())
	ll.writeRequest = (&http.Request{
		Method: http.MethodPost, RequestURI: writePath, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Body: http.NoBody,
	}).WithContext(ll.ctx)
	go ll.acceptLoop()
	return ll
}

func (l *laneListener) acceptLoop() {
	var backoff time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				l.err = err
				close(l.done)
				return
			}
			// Out of file descriptors and the like: wait, as net/http's own loop does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		lc := &laneConn{Conn: c, l: l}
		l.mu.Lock()
		if l.closing.Load() {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.conns[lc] = struct{}{}
		l.active.Add(1)
		l.mu.Unlock()
		go l.serve(lc)
	}
}

// Accept returns the next connection for net/http.
func (l *laneListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.handoff:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// Close stops accepting and closes the lane's idle connections; those answering a request close
// once the answer is written.
func (l *laneListener) Close() error {
	var err error
	l.closed.Do(func() {
		err = l.Listener.Close()
		l.closing.Store(true)
		l.mu.Lock()
		for c := range l.conns {
			if c.state.CompareAndSwap(laneIdle, laneShut) {
				c.Close()
			}
		}
		l.mu.Unlock()
	})
	return err
}

// wait blocks until the lane holds no connection, or ctx ends; then it closes what is left.
func (l *laneListener) wait(ctx context.Context) {
	idle := make(chan struct{})
	go func() {
		l.active.Wait()
		close(idle)
	}()
	select {
	case <-idle:
	case <-ctx.Done():
		// A write still waiting for its checkpoint gives up, unanswered, as net/http's do when
		// their connections close.
		l.stop()
		l.mu.Lock()
		for c := range l.conns {
			c.state.Store(laneShut)
			c.Close()
		}
		l.mu.Unlock()
		<-idle
	}
}

// idle marks c as waiting for a request and reports false if the lane is closing, so c must close.
func (c *laneConn) idle(l *laneListener) bool {
	if !c.state.CompareAndSwap(laneBusy, laneIdle) && c.state.Load() != laneIdle {
		return false
	}
	// Close sets closing before it looks at the states: either it saw c idle and shuts it, or c
	// sees closing here.
	return !l.closing.Load() || !c.state.CompareAndSwap(laneIdle, laneShut)
}

func (l *laneListener) forget(c *laneConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	l.active.Done()
}

// serve answers c's requests until one is not the lane's, then hands c to net/http.
func (l *laneListener) serve(c *laneConn) {
	defer l.forget(c)
	c.r = laneReaders.Get().(*bufio.Reader)
	c.r.Reset(c.Conn)
	defer func() {
		if c.r != nil {
			c.r.Reset(nil)
			laneReaders.Put(c.r)
		}
	}()
	defer func() {
		// As net/http does for a handler, a panic ends this connection, not the process.
		if p := recover(); p != nil {
			l.cfg.Logger.Error("panic in the fast lane", "panic", p, "stack", string(debug.Stack()))
			c.Close()
		}
	}()
	c.writeFull = c.writeFullBody
	c.send.init(c.Conn)
	c.w = answerConn(c.Conn)
	// As net/http does, a new connection has ReadHeaderTimeout to send its first request's
	// headers, and a kept-alive one IdleTimeout to start its next request.
	readDeadline := time.Now().Add(l.cfg.ReadHeaderTimeout)
	_ = c.SetReadDeadline(readDeadline)
	for first := true; ; first = false {
		if !c.idle(l) {
			c.Close()
			return
		}
		now := time.Now()
		// Deadlines are refreshed once a second, not per request: they are timers in the runtime.
		if !first && now.Add(l.cfg.IdleTimeout).Sub(readDeadline) > time.Second {
			readDeadline = now.Add(l.cfg.IdleTimeout)
			_ = c.SetReadDeadline(readDeadline)
		}
		if _, err := c.r.Peek(1); err != nil {
			c.Close()
			return
		}
		if !c.state.CompareAndSwap(laneIdle, laneBusy) {
			c.Close()
			return
		}
		req, n, ok, err := l.readRequest(c, &readDeadline)
		if err != nil {
			c.Close()
			return
		}
		if !ok || !l.answer(c, req) {
			l.handOff(c)
			return
		}
		if _, err := c.r.Discard(n); err != nil || req.close {
			c.Close()
			return
		}
	}
}

// answerConn is the connection the lane writes c's answers to: c without the connection limit's
// wrapper, which would make every buffer of a net.Buffers its own write and TCP segment (for a
// proof, two writes that cost a third of its CPU).
func answerConn(c net.Conn) net.Conn {
	if u, ok := c.(interface{ NetConn() net.Conn }); ok {
		return u.NetConn()
	}
	return c
}

// readRequest reads until c's buffer holds a whole header block and parses it; ok false means
// net/http is to answer what the buffer holds. An error (a client too slow to send its headers,
// or gone) ends the connection.
func (l *laneListener) readRequest(c *laneConn, readDeadline *time.Time) (req laneRequest, n int, ok bool, err error) {
	for {
		b, _ := c.r.Peek(c.r.Buffered())
		// net/http ends a header block at its first empty line, whose line ends may be bare LFs;
		// parseLaneRequest accepts only CRLF and leaves the rest to net/http, which must then get
		// the request now rather than after the lane waited for a CRLF CRLF that never comes.
		if bytes.Contains(b, []byte("\n\n")) || bytes.Contains(b, []byte("\n\r\n")) {
			req, n, ok = parseLaneRequest(b)
			if ok && req.kind == laneWrite {
				return l.readBody(c, b, req, n, readDeadline)
			}
			return req, n, ok, nil
		}
		if len(b) == laneBufSize {
			return req, 0, false, nil
		}
		// The headers arrive in pieces: give them the time net/http would.
		if d := time.Now().Add(l.cfg.ReadHeaderTimeout); d.Before(*readDeadline) {
			*readDeadline = d
			_ = c.SetReadDeadline(d)
		}
		if _, err := c.r.Peek(len(b) + 1); err != nil {
			return req, 0, false, err
		}
	}
}

// answer writes the answer to req and reports true, or reports false having written nothing:
// for a resource that is not full, and for any error, which net/http then reports as it does.
func (l *laneListener) answer(c *laneConn, req laneRequest) bool {
	if req.kind == laneWrite {
		return l.answerWrite(c, req)
	}
	c.req, c.start, c.werr, c.coding = req, time.Now(), nil, ""
	ctx := context.Background()
	switch req.kind {
	case laneTile:
		if req.gzip && req.res.Kind == tiles.EntryBundle {
			c.coding = codingGzip
		}
		if c.sendCached() {
			break
		}
		err := l.tiles.full.ViewFull(ctx, req.res, c.coding, c.writeFull)
		if err != nil && c.coding != "" {
			var gz, version []byte
			if gz, version, err = l.tiles.gzipForm(ctx, req.res); err == nil {
				_ = c.writeFullBody(gz, version)
			}
		}
		if err != nil {
			return false
		}
	case laneProof, laneEntry:
		if req.kind == laneProof && l.answerTileProof(ctx, c) {
			break
		}
		var msg any
		if req.kind == laneProof {
			p, err := l.log.InclusionProof(ctx, req.index, req.treeSize)
			if err != nil {
				return false
			}
			msg = p
		} else {
			e, err := l.log.Entry(ctx, req.index)
			if err != nil {
				return false
			}
			msg = &quirev1.Entry{TransparencyLogEntry: e.TransparencyLogEntry, LeafHash: e.LeafHash}
		}
		body, ok := appendAnswerJSON(c.out.json[:0], msg)
		if !ok {
			return false
		}
		c.write(body, contentTypeJSON, "")
		// An idle connection keeps at most laneJSONKeep bytes of answer buffer.
		if cap(body) <= laneJSONKeep {
			c.out.json = body
		}
	}
	l.metrics.observe(req, c.start)
	if c.werr != nil {
		// The client went away mid-answer; the connection is done.
		_ = c.Close()
	}
	return true
}

// writeFullBody offers c.req, a full tile or bundle with body in coding c.coding, to the file cache
// for the next requests for it (sendCached), then answers it. The offer comes first so that a
// client holding this answer finds the file there on its next request, whichever connection asks.
func (c *laneConn) writeFullBody(body, version []byte) error {
	tag := etag(version, c.coding)
	if c.cacheName() {
		if err := c.l.files.Put(string(c.name), body, tag); err != nil {
			// The bundle is still served, from storage: a full disk should not stop reads, nor
			// flood the log with a warning per read.
			if now := c.start.Unix(); c.l.filesWarned.Load() < now-60 {
				c.l.filesWarned.Store(now)
				c.l.cfg.Logger.Warn("keeping a full tile or bundle as a file (warned at most once a minute)", "path", c.req.res.Path(), "error", err)
			}
		}
	}
	c.write(body, contentTypeTile, tag)
	return nil
}

// cacheName sets c.name to the file cache name of c.req and reports whether the lane keeps it as a
// file: GET of a full tile, a full bundle or a bundle's gzip form. Even an 8 KiB tile costs less
// sent from a file (35 against 43 µs of CPU a read in scripts/bench-read): no storage lookups for
// it and its version, no copy into the socket.
func (c *laneConn) cacheName() bool {
	if c.l.files == nil || !c.send.ok || c.req.head {
		return false
	}
	if c.req.res.Kind == tiles.EntryBundle {
		c.name = strconv.AppendUint(append(c.name[:0], "bundle-"...), c.req.res.Index, 10)
	} else {
		c.name = strconv.AppendUint(append(c.name[:0], "tile-"...), c.req.res.Level, 10)
		c.name = strconv.AppendUint(append(c.name, '-'), c.req.res.Index, 10)
	}
	if c.coding != "" {
		c.name = append(append(c.name, '.'), c.coding...)
	}
	return true
}

// sendCached answers c.req from the file cache and reports true, or reports false having written
// nothing when the cache does not hold it.
func (c *laneConn) sendCached() bool {
	if !c.cacheName() {
		return false
	}
	f := c.l.files.Get(c.name)
	if f == nil {
		return false
	}
	defer f.Release()
	c.begin(int(f.Size()), contentTypeTile, f.Tag())
	c.l.sentFiles.Add(1)
	c.werr = c.send.sendFile(c.out.hdr, int(f.Fd()), f.Size())
	return true
}

// write sends a 200 answer to c.req with body.
func (c *laneConn) write(body []byte, contentType, etag string) {
	c.begin(len(body), contentType, etag)
	c.werr = c.out.write(c.w, body, c.req.head)
}

// begin readies the answer to c.req: its header in c.out.hdr for a body of length bytes, and the
// write deadline.
func (c *laneConn) begin(length int, contentType, etag string) {
	c.out.header(c.req, length, contentType, etag, c.coding, c.l.date(c.start))
	// Like the read deadline, refreshed once a second.
	if d := c.start.Add(c.l.cfg.WriteTimeout); d.Sub(c.writeDeadline) > time.Second {
		c.writeDeadline = d
		_ = c.SetWriteDeadline(d)
	}
	// Counted before the client can see the answer, so a test that has read it sees the count.
	c.l.answered.Add(1)
}

// date returns the Date header value (RFC 9110 section 6.6.1) for now, formatted once a second.
func (l *laneListener) date(now time.Time) []byte {
	sec := now.Unix()
	if d := l.today.Load(); d != nil && d.unix == sec {
		return d.text
	}
	d := &httpDate{unix: sec, text: now.UTC().AppendFormat(nil, http.TimeFormat)}
	l.today.Store(d)
	return d.text
}

// handOff gives c, with the bytes the lane has buffered but not answered, to net/http.
func (l *laneListener) handOff(c *laneConn) {
	buffered, _ := c.r.Peek(c.r.Buffered())
	rc := &replayConn{Conn: c.Conn, pending: bytes.Clone(buffered)}
	c.r.Reset(nil)
	laneReaders.Put(c.r)
	c.r = nil
	// net/http sets its own deadlines; clear the lane's.
	_ = rc.SetDeadline(time.Time{})
	select {
	case l.handoff <- rc:
	case <-l.done:
		rc.Close()
	}
}

// replayConn is a connection handed to net/http: it reads the bytes the lane had buffered first.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite lets net/http half-close the connection as it does a plain TCP one.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// laneWriter builds the lane's answers; one per connection, its buffers reused.
type laneWriter struct {
	hdr, json []byte
	bufs      [2][]byte
}

// contentTypeJSON is what the gateway sends with quire.v1 answers.
const contentTypeJSON = "application/json"

// header writes the status line and headers of a 200 answer: for a tile or bundle the headers
// tileHandler sends, for a quire.v1 read those the gateway sends.
func (w *laneWriter) header(req laneRequest, length int, contentType, etag, coding string, date []byte) {
	h := append(w.hdr[:0], "HTTP/1.1 200 OK\r\n"...)
	if req.kind == laneTile {
		h = append(h, "Accept-Ranges: bytes\r\nCache-Control: "+immutableCacheControl+"\r\nEtag: "...)
		h = append(append(h, etag...), "\r\n"...)
		if coding != "" {
			h = append(append(append(h, "Content-Encoding: "...), coding...), "\r\n"...)
		}
		if req.res.Kind == tiles.EntryBundle {
			h = append(h, "Vary: Accept-Encoding\r\n"...)
		}
		h = append(h, "X-Content-Type-Options: nosniff\r\n"...)
	}
	h = append(append(append(h, "Content-Type: "...), contentType...), "\r\nDate: "...)
	h = append(h, date...)
	h = append(h, "\r\nContent-Length: "...)
	h = strconv.AppendInt(h, int64(length), 10)
	if req.close {
		h = append(h, "\r\nConnection: close"...)
	}
	w.hdr = append(h, "\r\n\r\n"...)
}

// write sends the headers and, unless head, body, in one writev.
func (w *laneWriter) write(c net.Conn, body []byte, head bool) error {
	w.bufs[0], w.bufs[1] = w.hdr, body
	bufs := net.Buffers(w.bufs[:])
	if head {
		bufs = bufs[:1]
	}
	_, err := bufs.WriteTo(c)
	w.bufs[1] = nil
	return err
}

// laneMetrics are the request counter and duration histogram instrumentHTTP keeps, resolved once
// for the lane's few label sets. The lane leaves the in-flight gauge alone: its answers take
// microseconds, and a gauge touched by every read on every core costs more than it tells.
type laneMetrics struct {
	requests map[laneKey]prometheus.Counter
	duration map[string]prometheus.Observer
}

type laneKey struct {
	route string
	head  bool
}

// laneRoutes are route's labels for what the lane answers.
var laneRoutes = []string{route("/tile/0/000"), route("/tile/entries/000"), route("/quire/v1/entries/0"), route("/quire/v1/proof/inclusion")}

func newLaneMetrics(m *metrics) *laneMetrics {
	lm := &laneMetrics{requests: map[laneKey]prometheus.Counter{}, duration: map[string]prometheus.Observer{}}
	for _, rt := range laneRoutes {
		lm.duration[rt] = m.httpDuration.WithLabelValues(rt)
		lm.requests[laneKey{rt, false}] = m.httpRequests.WithLabelValues(rt, http.MethodGet, "200")
		lm.requests[laneKey{rt, true}] = m.httpRequests.WithLabelValues(rt, http.MethodHead, "200")
	}
	return lm
}

func (m *laneMetrics) observe(req laneRequest, start time.Time) {
	var rt string
	switch {
	case req.kind == laneProof:
		rt = laneRoutes[3]
	case req.kind == laneEntry:
		rt = laneRoutes[2]
	case req.res.Kind == tiles.EntryBundle:
		rt = laneRoutes[1]
	default:
		rt = laneRoutes[0]
	}
	m.requests[laneKey{rt, req.head}].Inc()
	m.duration[rt].Observe(time.Since(start).Seconds())
}
