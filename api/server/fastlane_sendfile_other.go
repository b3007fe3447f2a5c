//go:build !linux

package server

import (
	"errors"
	"net"
)

// fileSend sends files with sendfile(2), which the lane uses on Linux only; elsewhere it is never
// ready (ok false), and the lane sends every bundle from storage.
type fileSend struct{ ok bool }

func (s *fileSend) init(net.Conn) {}

func (s *fileSend) sendFile([]byte, int, int64) error { return errors.ErrUnsupported }
