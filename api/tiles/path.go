package tiles

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/transparency-dev/tessera/api/layout"
)

// Kind says which tlog-tiles resource a path names.
type Kind int

const (
	// Checkpoint is <prefix>/checkpoint.
	Checkpoint Kind = iota + 1
	// HashTile is <prefix>/tile/<L>/<N>[.p/<W>].
	HashTile
	// EntryBundle is <prefix>/tile/entries/<N>[.p/<W>].
	EntryBundle
)

func (k Kind) String() string {
	switch k {
	case Checkpoint:
		return "checkpoint"
	case HashTile:
		return "tile"
	case EntryBundle:
		return "entry bundle"
	default:
		return fmt.Sprintf("Kind(%d)", int(k))
	}
}

// Resource is one parsed tlog-tiles path.
type Resource struct {
	Kind Kind
	// Level is the tile level L (0 for entry bundles and the checkpoint).
	Level uint64
	// Index is the tile or bundle index N.
	Index uint64
	// Width is W for a partial tile or bundle, 0 for a full one.
	Width uint8
}

// Partial reports whether r is a partial tile or bundle, whose content
// grows until the full one replaces it.
func (r Resource) Partial() bool { return r.Width > 0 }

// Path returns r's canonical path, with a leading slash and no prefix: what Tessera's
// layout.TilePath and layout.EntriesPath return, with the slash.
func (r Resource) Path() string {
	var buf [maxPathLen]byte
	return string(r.appendPath(buf[:0]))
}

// appendPath appends r.Path() to dst without formatting through fmt, which was most of the cost
// of parsing a tile request. <N> is written per tlog-tiles "Merkle Tree": three-digit groups,
// zero-padded, all but the last prefixed with "x" (TestPathIsTesseras holds it to layout's).
func (r Resource) appendPath(dst []byte) []byte {
	switch r.Kind {
	case Checkpoint:
		return append(dst, "/"+layout.CheckpointPath...)
	case HashTile:
		dst = strconv.AppendUint(append(dst, "/tile/"...), r.Level, 10)
		dst = append(dst, '/')
	case EntryBundle:
		dst = append(dst, "/tile/entries/"...)
	default:
		return dst
	}
	var groups [7]uint64
	n, g := r.Index, 0
	for {
		groups[g] = n % 1000
		n /= 1000
		g++
		if n == 0 {
			break
		}
	}
	for g--; g >= 0; g-- {
		if g > 0 {
			dst = append(dst, 'x')
		}
		v := groups[g]
		dst = append(dst, byte('0'+v/100), byte('0'+v/10%10), byte('0'+v%10))
		if g > 0 {
			dst = append(dst, '/')
		}
	}
	if r.Width > 0 {
		dst = strconv.AppendUint(append(dst, ".p/"...), uint64(r.Width), 10)
	}
	return dst
}

var (
	// ErrNotTiles means the path is outside the tlog-tiles namespace
	// (neither /checkpoint nor under /tile/); a server answers 404.
	ErrNotTiles = errors.New("not a tlog-tiles path")
	// ErrBadPath means the path is under /tile/ but is not a well-formed,
	// canonical tile or bundle path that a uint64-sized tree can have; a
	// server answers 400. Errors wrapping it say what is wrong.
	ErrBadPath = errors.New("bad tile path")
)

// maxPathLen bounds the work done on a path. The longest canonical path,
// /tile/entries/ with a 20-digit index in seven groups and .p/255, is 48
// bytes long.
const maxPathLen = 64

// ParsePath parses a path relative to the log prefix, such as
// "/tile/1/x001/234.p/7". It accepts only the canonical form of C2SP
// tlog-tiles ("Merkle Tree" and "Log entries"): <L> from 0 to 63 without
// leading zeroes, <N> in zero-padded 3-digit groups all but the last
// prefixed with "x", and <W> from 1 to 255 without leading zeroes, so each
// resource has exactly one URL (which keeps caches from holding copies).
// It returns ErrNotTiles for a path outside the namespace and an error
// wrapping ErrBadPath for a malformed one, or for a tile that no tree of
// fewer than 2^64 entries has.
func ParsePath(path string) (Resource, error) {
	if path == "/"+layout.CheckpointPath {
		return Resource{Kind: Checkpoint}, nil
	}
	rest, ok := strings.CutPrefix(path, "/tile/")
	if !ok {
		return Resource{}, ErrNotTiles
	}
	if len(path) > maxPathLen {
		return Resource{}, fmt.Errorf("%w: longer than %d bytes", ErrBadPath, maxPathLen)
	}
	for i := 0; i < len(rest); i++ {
		// Anything else (dots of "..", percent escapes, NULs) is not in
		// any tile path, so reject it before layout's parser sees it.
		if c := rest[i]; !('0' <= c && c <= '9') && !strings.ContainsRune("/xp.entries", rune(c)) {
			return Resource{}, fmt.Errorf("%w: unexpected character %q", ErrBadPath, c)
		}
	}

	var r Resource
	if n, ok := strings.CutPrefix(rest, "entries/"); ok {
		idx, w, err := layout.ParseTileIndexPartial(n)
		if err != nil {
			return Resource{}, fmt.Errorf("%w: entry bundle index %q: %w", ErrBadPath, n, err)
		}
		r = Resource{Kind: EntryBundle, Index: idx, Width: w}
	} else {
		level, n, ok := strings.Cut(rest, "/")
		if !ok {
			return Resource{}, fmt.Errorf("%w: no tile index after level %q", ErrBadPath, level)
		}
		l, idx, w, err := layout.ParseTileLevelIndexPartial(level, n)
		if err != nil {
			return Resource{}, fmt.Errorf("%w: tile level %q index %q: %w", ErrBadPath, level, n, err)
		}
		r = Resource{Kind: HashTile, Level: l, Index: idx, Width: w}
	}
	var buf [maxPathLen]byte
	if canonical := r.appendPath(buf[:0]); string(canonical) != path {
		return Resource{}, fmt.Errorf("%w: not in canonical form (want %s)", ErrBadPath, canonical)
	}
	if !possible(r.Level, r.Index) {
		return Resource{}, fmt.Errorf("%w: %s %d at level %d starts beyond 2^64 entries", ErrBadPath, r.Kind, r.Index, r.Level)
	}
	return r, nil
}

// possible reports whether a tree of fewer than 2^64 entries can have tile
// index at level: per tlog-tiles "Merkle Tree", the tile's start index
// index*256^(level+1) must be below 2^64 and its first hash needs
// 256^level entries, so no tile above level 7 exists.
func possible(level, index uint64) bool {
	shift := 8 * (level + 1)
	if shift >= 64 {
		return shift == 64 && index == 0
	}
	return index < 1<<(64-shift)
}
