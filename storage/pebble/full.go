package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	pdb "github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/quirelog/quire/api/tiles"
)

// A full tile or entry bundle never changes, so it is served the way a static file server serves
// a file: straight from storage, with nothing computed per request. ViewFull hands out the stored
// bytes without copying them, with a version fixed when the resource became full, and the
// compressed form of a bundle that PutCoded stored once.
//
// The version of full tile L/N, and of entry bundle N (whose entries are the leaves of tile 0/N),
// is the Merkle hash of the subtree the resource covers: node N at tree level 8(L+1), which
// tlog-tiles stores as hash N mod 256 of tile L+1/⌊N/256⌋. The sequencer wrote it in the same
// batch as the full tile; it commits to every byte of the resource, so two logs (or a log wiped
// and rebuilt) that hold different bytes at one path never share a version; and it costs
// neither a hash per request nor anything on the write path.

// CodingGzip names the gzip form of a full entry bundle (RFC 9110 section 8.4.1.3).
const CodingGzip = "gzip"

// ViewFull calls fn with the bytes of full tile or entry bundle res in content coding coding
// ("" for the bytes themselves, CodingGzip for a bundle's gzip form) and the resource's version
// (see above). body is valid only until fn returns and must not be modified. ViewFull returns an
// error wrapping os.ErrNotExist, without calling fn, when res is not full (or does not exist yet)
// or when its coded form has not been stored.
func (s *Storage) ViewFull(_ context.Context, res tiles.Resource, coding string, fn func(body, version []byte) error) error {
	if res.Partial() || (res.Kind != tiles.HashTile && res.Kind != tiles.EntryBundle) {
		return fmt.Errorf("%s is not a full tile or entry bundle: %w", res.Path(), os.ErrNotExist)
	}
	if coding != "" && (coding != CodingGzip || res.Kind != tiles.EntryBundle) {
		return fmt.Errorf("%s has no %q form: %w", res.Path(), coding, os.ErrNotExist)
	}
	s.readMu.RLock()
	defer s.readMu.RUnlock()
	if s.closed {
		return errors.New("pebble storage is closed")
	}
	var version [hashSize]byte
	err := s.view(cacheKey{kind: keyTile, level: res.Level + 1, index: res.Index / layout.TileWidth}, func(parent []byte) error {
		off := int(res.Index%layout.TileWidth) * hashSize
		if len(parent) < off+hashSize {
			return fmt.Errorf("tile %d/%d has %d hashes, want the root of %s at %d: %w", res.Level+1, res.Index/layout.TileWidth, len(parent)/hashSize, res.Path(), off/hashSize, os.ErrNotExist)
		}
		copy(version[:], parent[off:])
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the version of %s: %w", res.Path(), err)
	}
	k := cacheKey{kind: keyTile, level: res.Level, index: res.Index}
	switch {
	case coding == CodingGzip:
		k = cacheKey{kind: keyGzip, index: res.Index}
	case res.Kind == tiles.EntryBundle:
		k = cacheKey{kind: keyBundle, index: res.Index}
	}
	err = s.view(k, func(v []byte) error {
		switch {
		case k.kind == keyTile && len(v) != layout.TileWidth*hashSize:
			return fmt.Errorf("tile has %d hashes: %w", len(v)/hashSize, os.ErrNotExist)
		case k.kind == keyBundle:
			if len(v) < 1 || v[0] != 0 {
				return fmt.Errorf("entry bundle is partial: %w", os.ErrNotExist)
			}
			v = v[1:]
		}
		return fn(v, version[:])
	})
	if err != nil {
		return fmt.Errorf("reading %s: %w", res.Path(), err)
	}
	return nil
}

// PutCoded stores body as the coding form of full entry bundle res, for ViewFull. The form can
// be derived again from the bundle, so it is written without a sync: a crash may lose it, and
// the next reader that wants it stores it again. A read-only Storage keeps it in its cache only.
func (s *Storage) PutCoded(_ context.Context, res tiles.Resource, coding string, body []byte) error {
	if res.Kind != tiles.EntryBundle || res.Partial() || coding != CodingGzip {
		return fmt.Errorf("storing %s in coding %q: only full entry bundles have a stored %q form", res.Path(), coding, CodingGzip)
	}
	s.readMu.RLock()
	defer s.readMu.RUnlock()
	if s.closed {
		return errors.New("pebble storage is closed")
	}
	// A read-only database (a frozen log, read-only media) keeps the form in memory only, so its
	// readers are not left compressing every bundle on every request.
	if !s.cfg.ReadOnly {
		if err := s.db.Set(gzipKey(nil, res.Index), body, pdb.NoSync); err != nil {
			return fmt.Errorf("storing the %s form of %s: %w", coding, res.Path(), err)
		}
	}
	s.cache.put(cacheKey{kind: keyGzip, index: res.Index}, bytes.Clone(body))
	return nil
}

// view calls fn with the stored value of k, from the cache (whose values are never modified) or
// from Pebble without a copy. s.readMu must be held shared.
//
// A full tile, a tile above level 0 or a gzip form read from Pebble joins the cache, which then
// serves it at the cost of a map lookup rather than a Pebble Get (a quarter of a tile read's
// CPU): tiles are read for every proof and are small, and a tile above level 0 holds the versions
// of 256 resources below it. Full ones never change; a partial one read here joins only if the
// sequencer has not put a wider one since (putIfLonger). Bundles themselves (some 125 KiB) stay
// in Pebble's block cache, where a read costs little beside sending them.
func (s *Storage) view(k cacheKey, fn func(v []byte) error) error {
	if v, ok := s.cache.get(k); ok {
		return fn(v)
	}
	var key []byte
	switch k.kind {
	case keyTile:
		key = tileKey(nil, k.level, k.index)
	case keyBundle:
		key = bundleKey(nil, k.index)
	default:
		key = gzipKey(nil, k.index)
	}
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pdb.ErrNotFound) {
		return fmt.Errorf("key %q: %w", key, os.ErrNotExist)
	}
	if err != nil {
		return fmt.Errorf("getting key %q: %w", key, err)
	}
	if k.kind == keyGzip || (k.kind == keyTile && (k.level > 0 || len(v) == layout.TileWidth*hashSize)) {
		s.cache.putIfLonger(k, append([]byte(nil), v...))
	}
	err = fn(v)
	if cerr := closer.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("releasing key %q: %w", key, cerr)
	}
	return err
}

func gzipKey(dst []byte, index uint64) []byte {
	dst = append(dst[:0], keyGzip)
	return binary.BigEndian.AppendUint64(dst, index)
}
