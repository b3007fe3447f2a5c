package tiles_test

import (
	"fmt"

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

// A partial entry bundle is the start of every wider one, so a reader that holds only the wider
// one can still serve it.
func ExampleTrimBundle() {
	// Three entries: "a", "bc" and an empty one, each after its big-endian uint16 length.
	wider := []byte{0, 1, 'a', 0, 2, 'b', 'c', 0, 0}
	b, err := tiles.TrimBundle(wider, 2)
	fmt.Printf("%q %v\n", b, err)

	_, err = tiles.TrimBundle(wider, 4)
	fmt.Println(err)
	// Output:
	// "\x00\x01a\x00\x02bc" <nil>
	// entry bundle holds 3 entries, want at least 4
}
