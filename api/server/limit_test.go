package server

import (
	"net"
	"testing"
)

// TestLaneWritesAnswersToTheTCPConnection: behind the connection limit, the lane writes to the
// *net.TCPConn itself, the only net.Conn that net.Buffers writes with one writev; through the
// limit's wrapper each buffer of an answer would be its own write and TCP segment.
func TestLaneWritesAnswersToTheTCPConnection(t *testing.T) {
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := limitListener(tl, 1)
	defer l.Close()
	client, err := net.Dial("tcp", tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*net.TCPConn); ok {
		t.Fatal("the limit listener returned its connection unwrapped; this test no longer tests the unwrapping")
	}
	if w := answerConn(c); w != c.(*limitedSyscallConn).Conn {
		t.Fatalf("the lane writes answers to a %T, want the *net.TCPConn under the limit", w)
	}
}
