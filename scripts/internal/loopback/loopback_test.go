package loopback

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestServeRefusesWhatIsNotALoopbackAddress(t *testing.T) {
	tests := []struct {
		name, listen, want string
	}{
		{"an address on every interface is refused", "0.0.0.0:0", "not a loopback address"},
		{"a host name is refused", "localhost:0", "not a loopback address"},
		{"an address without a port is refused", "127.0.0.1", "missing port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Serve("ref", tc.listen, http.NotFoundHandler(), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "ref: ") {
				t.Fatalf("err = %v, want %q prefixed with the server's name", err, tc.want)
			}
		})
	}
}
