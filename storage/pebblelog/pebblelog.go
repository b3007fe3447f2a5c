// Package pebblelog holds what Quire's Pebble databases (the log storage, the search index, the
// witness) share: an adapter of Pebble's logger interface (pebble.Logger) to a *slog.Logger, so
// that they report through the logger their owner was given rather than through Go's global log
// package, and Settle, which lets compactions finish before a database is closed.
package pebblelog

import (
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
)

// New returns a pebble.Logger writing to l (nil: slog.Default()): Pebble's informational messages
// (compactions, flushes) at debug level, its errors at error level, each with component=pebble.
// Pebble calls Fatalf only when its own state is unrecoverable and requires that it not return;
// it logs the message and panics, leaving it to the process, not a library, to decide to exit.
func New(l *slog.Logger) pebble.Logger {
	if l == nil {
		l = slog.Default()
	}
	return logger{l}
}

type logger struct{ l *slog.Logger }

func (p logger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p logger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p logger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble", "fatal", true)
	panic("pebble: " + msg)
}
