package server

import (
	"net"
	"sync"
	"syscall"
)

// limitListener returns a listener that holds at most n accepted connections open at once; Accept
// waits for one to close before accepting more, so the rest wait in the kernel's backlog. It is
// x/net/netutil's LimitListener, but its connections still offer syscall.Conn, which the fast lane
// needs to send files with sendfile(2).
func limitListener(l net.Listener, n int) net.Listener {
	return &limitedListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type limitedListener struct {
	net.Listener
	sem       chan struct{}
	closeOnce sync.Once
	done      chan struct{}
}

func (l *limitedListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	lc := &limitedConn{Conn: c, release: func() { <-l.sem }}
	if sc, ok := c.(syscall.Conn); ok {
		return &limitedSyscallConn{lc, sc}, nil
	}
	return lc, nil
}

func (l *limitedListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

// limitedConn gives its slot back when first closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// NetConn returns the connection under the limit, as tls.Conn's NetConn does. Writers that send
// several buffers need it: net.Buffers goes out in one writev only to a *net.TCPConn, and to any
// wrapper in one write per buffer, so each its own TCP segment.
func (c *limitedConn) NetConn() net.Conn { return c.Conn }

// limitedSyscallConn is a limitedConn over a connection that offers syscall.Conn.
type limitedSyscallConn struct {
	*limitedConn
	sc syscall.Conn
}

func (c *limitedSyscallConn) SyscallConn() (syscall.RawConn, error) { return c.sc.SyscallConn() }
