// Package logging gives the Quire binaries one structured log stream: log/slog as the default
// logger, in text or JSON, at a chosen level, with what Pebble (storage/pebblelog), Tessera
// (through k8s.io/klog) and gRPC (grpclog) say routed into it, a normal first start not reported as a failure, and
// bursts of identical warnings and errors cut to one line per interval (repeat.go).
package logging

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// Defaults of the flags.
const (
	DefaultLevel  = "info"
	DefaultFormat = "text"
	// DefaultRepeatInterval is how long an identical warning or error is held back after it was
	// logged; the next one after that says how many were held back.
	DefaultRepeatInterval = time.Minute
)

// Options are the logging flags of a command.
type Options struct {
	Level  string
	Format string
}

// AddFlags defines --log-level and --log-format on fs.
func AddFlags(fs *flag.FlagSet) *Options {
	o := &Options{}
	fs.StringVar(&o.Level, "log-level", DefaultLevel, "least severe messages logged: debug, info, warn or error")
	fs.StringVar(&o.Format, "log-format", DefaultFormat, "log as text (key=value lines) or json (one object per line)")
	return o
}

// ParseLevel reads a level name (debug, info, warn, error, in any case).
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// New returns the logger the options ask for, writing to w, and makes it the process's default:
// slog.Default, the standard log package, klog and grpclog all write through it. An error names the
// option that is wrong.
func (o *Options) New(w io.Writer) (*slog.Logger, error) {
	level, err := ParseLevel(o.Level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch strings.ToLower(o.Format) {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("log format %q: want text or json", o.Format)
	}
	logger := slog.New(NewRepeatLimiter(h, DefaultRepeatInterval))
	slog.SetDefault(logger)
	routeKlog(logger)
	routeGRPC(logger)
	return logger, nil
}
