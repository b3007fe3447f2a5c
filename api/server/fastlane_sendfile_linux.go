package server

import (
	"errors"
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// fileSend sends a header and then a file on one connection, with sendfile(2): the kernel hands the
// file's pages in its page cache to the socket, so a tile or a 125 KiB bundle costs the server no
// copy, as a file costs nginx none. Its state lives in the connection, so a request allocates nothing.
type fileSend struct {
	ok   bool // the connection is a socket sendfile can write to
	raw  syscall.RawConn
	step func(fd uintptr) bool // s.sendStep, bound once

	hdr       []byte
	file      int
	off, size int64
	err       error
}

func (s *fileSend) init(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	s.raw, s.step, s.ok = raw, s.sendStep, true
}

// sendFile writes hdr and then the first size bytes of file, waiting for the socket as net/http's
// writes do (and so keeping the connection's write deadline). It reads file at explicit offsets,
// so any number of connections can send it at once.
func (s *fileSend) sendFile(hdr []byte, file int, size int64) error {
	s.hdr, s.file, s.off, s.size, s.err = hdr, file, 0, size, nil
	err := s.raw.Write(s.step)
	s.hdr = nil
	return errors.Join(err, s.err)
}

// sendStep does what the socket takes now: it reports false to wait until the socket can take
// more, true when done (s.err says whether it failed).
func (s *fileSend) sendStep(fd uintptr) bool {
	for len(s.hdr) > 0 || s.off < s.size {
		var err error
		if len(s.hdr) > 0 {
			// MSG_MORE holds the header back to leave with the file's first bytes, in one segment.
			var n int
			if n, err = unix.SendmsgN(int(fd), s.hdr, nil, nil, unix.MSG_MORE|unix.MSG_NOSIGNAL); err == nil {
				s.hdr = s.hdr[n:]
			}
		} else if n, serr := unix.Sendfile(int(fd), s.file, &s.off, int(s.size-s.off)); serr != nil {
			err = serr
		} else if n == 0 {
			// The file ended early, which a file written whole before it joined the cache
			// cannot; stop rather than loop.
			err = io.ErrUnexpectedEOF
		}
		switch {
		case err == unix.EAGAIN:
			return false
		case err != nil && err != unix.EINTR:
			s.err = err
			return true
		}
	}
	return true
}
