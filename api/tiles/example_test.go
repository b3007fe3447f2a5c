package tiles_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/transparency-dev/tessera/client"

	"github.com/quirelog/quire/api/tiles"
)

func ExampleParsePath() {
	r, err := tiles.ParsePath("/tile/1/x001/234.p/7")
	fmt.Println(r.Kind, r.Level, r.Index, r.Width, r.Partial(), err)

	_, err = tiles.ParsePath("/tile/0/x000/001")
	fmt.Println(err)
	// Output:
	// tile 1 1234 7 true <nil>
	// bad tile path: not in canonical form (want /tile/0/001)
}

// Quire serves the same log at the root and under /api/v2, beside its other
// routes; the more specific patterns Register adds win over a catch-all
// such as a grpc-gateway mux mounted at "/".
func ExampleHandler_Register() {
	// Any tessera.LogReader works; here, Tessera's reader of a tlog-tiles
	// tree on disk, which is still empty.
	h, err := tiles.New(client.FileFetcher{Root: os.TempDir() + "/no-such-log"}, tiles.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	h.Register(mux, "")
	h.Register(mux, "/api/v2")
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, path := range []string{"/checkpoint", "/api/v2/tile/0/000", "/api/v2/tile/0/01"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(path, resp.StatusCode)
	}
	// Output:
	// /checkpoint 404
	// /api/v2/tile/0/000 404
	// /api/v2/tile/0/01 400
}
