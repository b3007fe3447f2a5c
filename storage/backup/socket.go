package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// maxRequest bounds a request on the socket: a JSON object naming one directory.
const maxRequest = 64 << 10

type request struct {
	Out string `json:"out"`
}

// Listen serves backup requests on the Unix socket path (mode 0600) until the returned stop is
// called; stop waits for a backup in progress. A socket file left by a server that died is
// replaced; one a live server answers on is an error. Backups run one at a time.
func Listen(path string, src Sources, logger *slog.Logger) (stop func() error, err error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another server answers on %s", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale socket %s: %w", path, err)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		lis.Close()
		return nil, fmt.Errorf("restricting %s: %w", path, err)
	}
	var mu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("POST /backup", func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := json.NewDecoder(io.LimitReader(r.Body, maxRequest)).Decode(&req); err != nil || !filepath.IsAbs(req.Out) {
			http.Error(w, "want {\"out\": ABSOLUTE-DIR}", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		res, err := Write(r.Context(), src, req.Out)
		if err != nil {
			logger.Error("backup failed", "out", req.Out, "error", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		logger.Info("backup written", "out", res.Dir, "size", res.Size, "checkpoint_size", res.CheckpointSize)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return srv.Shutdown(ctx)
	}, nil
}

// ErrNoServer is returned by Request when no server listens on the socket.
var ErrNoServer = errors.New("no server listens on the admin socket")

// Request asks the server listening on the Unix socket path for a backup into out (made absolute).
func Request(ctx context.Context, path, out string) (*Result, error) {
	abs, err := filepath.Abs(out)
	if err != nil {
		return nil, fmt.Errorf("backup directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoServer, err)
	} else {
		c.Close()
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
	body, err := json.Marshal(request{Out: abs})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://quire/backup", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking the server for a backup: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRequest))
	if err != nil {
		return nil, fmt.Errorf("reading the server's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the server could not back up: %s", bytes.TrimSpace(b))
	}
	var res Result
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("reading the server's answer: %w", err)
	}
	return &res, nil
}
