//go:build !linux

package server

import "net"

// fileSend sends files with sendfile(2), which the lane uses on Linux only; elsewhere it never
// opens a file, and the lane sends every bundle from storage.
type fileSend struct{ ok bool }

func (s *fileSend) init(net.Conn)           {}
func (s *fileSend) open(string, int64) bool { return false }
func (s *fileSend) close()                  {}
func (s *fileSend) sendFile([]byte) error   { return nil }
