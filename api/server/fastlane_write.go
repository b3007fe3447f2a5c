package server

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// The fast lane also answers POST /api/v2/log/entries (Rekor v2's CreateEntry over REST) when the
// request head and its Content-Length body fit the lane's request buffer together, which a
// hashedrekord or DSSE request with a key or a short chain does.
//
// Why: a write's own work (verifying its signature, sequencing it, waiting for its checkpoint) is
// about 190 µs of CPU, and net/http added about 80 µs more per write: parsing the head into maps,
// a context and a background read per request, the answer through two buffers. The lane reads the
// head and body into its one buffer and writes the whole answer with one write.
//
// The answer is still the server's own handler's: the lane builds the *http.Request net/http would
// build (method, URL, Host, headers, remote address, the body) and calls the handler net/http's
// router reaches for it, with the same metrics around it (all but the path check and the router,
// which would only find the write route again), so the body limit, the in-flight byte budget, the per-address rate limit, overload refusals, the
// request metrics and the in-flight gauge are all the ones net/http's requests go through. Only
// the framing is the lane's: laneResponse writes status, headers and body as net/http's response
// writer does for what that chain sends (TestLaneAnswersWritesAsNetHTTPDoes compares the bytes).
// Anything else about a write (chunked or over laneBufSize with its head, Expect, Transfer-Encoding,
// the headers only the gateway acts on, a body that does not arrive in time) goes to net/http
// with every byte, as any request the lane does not answer.

// writePath is where Rekor v2 clients send writes.
const writePath = "/api/v2/log/entries"

// writeRefused reports whether a write with header name is net/http's to answer: the headers
// whose answer only grpc-gateway shapes (gatewayOnly; TE is laneRefused already), and Pragma,
// which net/http's request reader folds into Cache-Control.
func writeRefused(name []byte) bool {
	return len(name) >= 5 && asciiEqualFold(name[:5], "grpc-") ||
		len(name) >= 4 && asciiEqualFold(name[len(name)-4:], "-bin") ||
		asciiEqualFold(name, "X-Http-Method-Override") || asciiEqualFold(name, "Pragma")
}

// readBody waits until c's buffer holds the whole body of req, whose head is the first n bytes
// of b, what the buffer holds; it returns the request with its body and the length of head and
// body together, or ok false to hand the request to net/http.
func (l *laneListener) readBody(c *laneConn, b []byte, req laneRequest, n int, readDeadline *time.Time) (_ laneRequest, _ int, ok bool, _ error) {
	end := n + req.length
	if l.writes == nil || end > laneBufSize {
		return req, 0, false, nil
	}
	if len(b) >= end {
		req.body = b[n:end]
		return req, end, true, nil
	}
	// The body comes after the head: it has the read timeout net/http gives a body.
	if d := time.Now().Add(l.cfg.ReadTimeout); d.Before(*readDeadline) {
		*readDeadline = d
		_ = c.SetReadDeadline(d)
	}
	b, err := c.r.Peek(end)
	if err != nil {
		// Too slow or gone: net/http reads what came and answers as it does (408 for a body cut
		// short by its own read timeout).
		return req, 0, false, nil
	}
	// Filling the buffer may have moved the head within it.
	req, _, _ = parseLaneRequest(b)
	req.body = b[n:end]
	return req, end, true, nil
}

// laneHeader fills h, which it empties first, with the header map net/http's request reader makes
// of a write's header lines, which parseLaneRequest has checked (one "Name: value" a line, names
// tokens, no folding), and returns the Host. Lines the connection sent before come from cache.
func laneHeader(h http.Header, lines []byte, cache *laneHeaderCache) string {
	clear(h)
	var host string
	for i := 0; len(lines) > 0; i++ {
		var raw []byte
		raw, lines, _ = bytes.Cut(lines, []byte("\r\n"))
		var line laneHeaderLine
		if i < len(cache.lines) && cache.lines[i].raw == string(raw) {
			line = cache.lines[i]
		} else {
			line = cache.parse(i, raw)
		}
		if line.key == "" {
			host = line.vals[0]
			continue
		}
		if vals, ok := h[line.key]; ok {
			// A repeated name: append to a copy, never into the cache's slice, whose cap is 1.
			h[line.key] = append(vals, line.vals[0])
		} else {
			h[line.key] = line.vals
		}
	}
	return host
}

// laneHeaderCache is what laneHeader made of a connection's first write's header lines. A client
// sends the same lines with every write, Content-Length aside, and the strings and slices made of
// them once serve each later write, which would otherwise allocate two for every line. It holds
// at most laneHeaderCacheLines lines of at most laneHeaderCacheBytes in all (names and values are
// parts of the lines' strings); a line that changes is parsed anew each time and not kept.
type laneHeaderCache struct {
	lines []laneHeaderLine
	size  int
}

const (
	laneHeaderCacheLines = 16
	laneHeaderCacheBytes = 512
)

// laneHeaderLine is one header line: as sent, its canonical name ("" for Host), and its value
// alone in a slice of capacity 1.
type laneHeaderLine struct {
	raw, key string
	vals     []string
}

// parse reads raw, line i of a write's header, and keeps it if it is the cache's next line and
// fits.
func (c *laneHeaderCache) parse(i int, raw []byte) laneHeaderLine {
	keep := i == len(c.lines) && i < laneHeaderCacheLines && c.size+len(raw) <= laneHeaderCacheBytes
	var line laneHeaderLine
	name, value, _ := bytes.Cut(raw, []byte(":"))
	value = bytes.Trim(value, " \t")
	if keep {
		// One string for the line; the name and value are parts of it.
		line.raw = string(raw)
		rest := raw[len(name)+1:]
		start := len(name) + 1 + len(rest) - len(bytes.TrimLeft(rest, " \t"))
		v := line.raw[start : start+len(value)]
		if !asciiEqualFold(name, "Host") {
			line.key = textproto.CanonicalMIMEHeaderKey(line.raw[:len(name)])
		}
		line.vals = []string{v}
		c.lines = append(c.lines, line)
		c.size += len(raw)
		return line
	}
	if !asciiEqualFold(name, "Host") {
		var ok bool
		if line.key, ok = laneHeaderNames[string(name)]; !ok {
			line.key = textproto.CanonicalMIMEHeaderKey(string(name))
		}
	}
	line.vals = []string{string(value)}
	return line
}

// laneHeaderNames are the header names Rekor clients send, as they send them: a write's header
// map takes them without allocating a key.
var laneHeaderNames = map[string]string{
	"Accept": "Accept", "Accept-Encoding": "Accept-Encoding", "Connection": "Connection", "Content-Length": "Content-Length",
	"Content-Type": "Content-Type", "User-Agent": "User-Agent", "X-Forwarded-For": "X-Forwarded-For",
}

// answerWrite answers req, a write with its body in c's buffer, with the server's handler.
func (l *laneListener) answerWrite(c *laneConn, req laneRequest) bool {
	start := time.Now()
	// As net/http does, the answer must be written within WriteTimeout of the request; like the
	// lane's other deadlines it is refreshed once a second.
	if d := start.Add(l.cfg.WriteTimeout); d.Sub(c.writeDeadline) > time.Second {
		c.writeDeadline = d
		_ = c.SetWriteDeadline(d)
	}
	if c.remote == "" {
		c.remote = c.RemoteAddr().String()
	}
	// The handler chain keeps no part of a request once it has answered, so the map is reused.
	if c.header == nil {
		c.header = make(http.Header)
	}
	host := laneHeader(c.header, req.header, &c.headerCache)
	// Likewise the request and its URL are the connection's, made anew from the listener's
	// template, which carries the lanes' context.
	r := &c.request
	*r = *l.writeRequest
	c.url = url.URL{Path: writePath}
	r.URL, r.Header, r.Host, r.ContentLength, r.Close, r.RemoteAddr = &c.url, c.header, host, int64(req.length), req.close, c.remote
	if req.length > 0 {
		c.body.reset(req.body)
		r.Body = &c.body
	}
	w := &c.resp
	w.reset(c.out.json[:0], req.close || l.closing.Load())
	l.writes.ServeHTTP(w, r)
	out := w.finish(l.date(time.Now()))
	// Neither the body, in the lane's pooled buffer, nor an answer larger than the connection may
	// keep stays referenced past this request.
	c.body.reset(nil)
	*r = http.Request{}
	w.out = nil
	// Counted before the client can see the answer, so a test that has read it sees the count.
	l.answered.Add(1)
	_, err := c.Write(out)
	if cap(out) <= laneJSONKeep {
		c.out.json = out[:0]
	}
	if err != nil || w.closeAfter {
		_ = c.Close()
	}
	return true
}

// laneBody is a write's body, read from the lane's buffer. The entries handler takes the unread
// bytes as they are (unread) rather than reading a copy: they stay in the buffer until the handler
// returns, and decoding keeps none of them (it decodes base64 into new slices).
type laneBody struct {
	bytes.Reader
	b []byte
}

func (b *laneBody) reset(p []byte) {
	b.b = p
	b.Reader.Reset(p)
}

// unread is what the handler chain has not yet read of the body.
func (b *laneBody) unread() []byte { return b.b[len(b.b)-b.Len():] }

func (*laneBody) Close() error { return nil }

// laneResponse is the http.ResponseWriter of a write the lane answers. It frames the answer as
// net/http's response writer does (net/http/server.go, response and chunkWriter): the handler's
// headers sorted, then Date, then Content-Length when the handler finished within the first 2,048
// bytes of body and otherwise chunked framing, then a sniffed Content-Type when the handler set
// none, then Connection: close when the connection ends after this answer. It does what the write
// handlers need and no more: they set neither Content-Length nor Transfer-Encoding nor trailers,
// never flush, and answer with statuses that have a body.
type laneResponse struct {
	header http.Header
	out    []byte
	// bw holds the first bufferBeforeChunking bytes of body, as net/http's does, so that an answer
	// is framed with a length or chunked exactly when net/http would.
	bw *bufio.Writer
	// wantsClose: the client or a shutdown ends the connection after this answer; closeAfter:
	// it ends, for those reasons or because the handler said so.
	wantsClose, closeAfter bool
	// wroteHeader: the status and the handler's headers are in out; framed: so is the rest of the
	// head; done: the handler returned.
	wroteHeader, framed, done, chunked bool
	// What the handler's headers held when it wrote its status.
	hasType, hasDate, addClose bool
	date                       []byte
}

// bufferBeforeChunking is net/http's bufferBeforeChunkingSize.
const bufferBeforeChunking = 2048

var laneBodyWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bufferBeforeChunking) }}

func (w *laneResponse) reset(out []byte, wantsClose bool) {
	if w.header == nil {
		w.header = make(http.Header)
	}
	clear(w.header)
	*w = laneResponse{header: w.header, out: out, wantsClose: wantsClose}
	w.bw = laneBodyWriters.Get().(*bufio.Writer)
	w.bw.Reset((*laneChunks)(w))
}

func (w *laneResponse) Header() http.Header { return w.header }

// WriteHeader writes the status line and the handler's headers as they are now; net/http too
// ignores changes made to them afterwards.
func (w *laneResponse) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	conn := w.header.Get("Connection")
	w.closeAfter = w.wantsClose || conn == "close"
	w.addClose = w.closeAfter && !httpguts.HeaderValuesContainsToken([]string{conn}, "close")
	_, w.hasType = w.header["Content-Type"]
	w.hasType = w.hasType || w.header.Get("Content-Encoding") != ""
	_, w.hasDate = w.header["Date"]
	w.out = append(w.out, "HTTP/1.1 "...)
	if text := http.StatusText(code); text != "" {
		w.out = append(append(append(strconv.AppendInt(w.out, int64(code), 10), ' '), text...), "\r\n"...)
	} else {
		w.out = strconv.AppendInt(append(strconv.AppendInt(w.out, int64(code), 10), " status code "...), int64(code), 10)
		w.out = append(w.out, "\r\n"...)
	}
	var exclude map[string]bool
	if w.addClose {
		exclude = excludeConnection
	}
	_ = w.header.WriteSubset((*laneOut)(w), exclude)
}

var excludeConnection = map[string]bool{"Connection": true}

func (w *laneResponse) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.bw.Write(p)
}

// finish ends the answer, as net/http's finishRequest does, and returns it whole.
func (w *laneResponse) finish(date []byte) []byte {
	w.done, w.date = true, date
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_ = w.bw.Flush()
	w.bw.Reset(nil)
	laneBodyWriters.Put(w.bw)
	w.bw = nil
	if !w.framed {
		w.frame(nil)
	}
	if w.chunked {
		w.out = append(w.out, "0\r\n\r\n"...)
	}
	return w.out
}

// frame ends the head, given p, the first body bytes to go out.
func (w *laneResponse) frame(p []byte) {
	w.framed = true
	if !w.hasDate {
		w.out = append(append(append(w.out, "Date: "...), w.date...), "\r\n"...)
	}
	if w.done {
		w.out = strconv.AppendInt(append(w.out, "Content-Length: "...), int64(len(p)), 10)
		w.out = append(w.out, "\r\n"...)
	} else {
		w.chunked = true
	}
	if !w.hasType && len(p) > 0 {
		w.out = append(append(append(w.out, "Content-Type: "...), http.DetectContentType(p)...), "\r\n"...)
	}
	if w.addClose {
		w.out = append(w.out, "Connection: close\r\n"...)
	}
	if w.chunked {
		w.out = append(w.out, "Transfer-Encoding: chunked\r\n"...)
	}
	w.out = append(w.out, "\r\n"...)
}

// laneChunks takes the body from bw, as net/http's chunkWriter does.
type laneChunks laneResponse

func (cw *laneChunks) Write(p []byte) (int, error) {
	w := (*laneResponse)(cw)
	if !w.framed {
		w.frame(p)
	}
	if w.chunked {
		w.out = append(strconv.AppendUint(w.out, uint64(len(p)), 16), "\r\n"...)
	}
	w.out = append(w.out, p...)
	if w.chunked {
		w.out = append(w.out, "\r\n"...)
	}
	return len(p), nil
}

// laneOut appends to the answer.
type laneOut laneResponse

func (o *laneOut) Write(p []byte) (int, error) {
	o.out = append(o.out, p...)
	return len(p), nil
}

// WriteString spares http.Header.WriteSubset a copy of every header line into a new []byte,
// which it makes for a writer that takes only []byte.
func (o *laneOut) WriteString(s string) (int, error) {
	o.out = append(o.out, s...)
	return len(s), nil
}
