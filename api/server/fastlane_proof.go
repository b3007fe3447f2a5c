package server

import (
	"bytes"
	"context"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/transparency-dev/tessera/api/layout"

	quirelog "github.com/quirelog/quire/log"
)

// The lane answers an inclusion proof for an entry in a full level-0 tile from parts it encoded
// before: the JSON of the tree head and checkpoint, per tree, and of the hashes above the tile,
// per tile and tree (log.TileProof), so that a proof costs the base64 of its eight lower hashes
// and the copying of a few prepared slices. Encoding every hash and the checkpoint's envelope
// anew took a fifth of a proof's CPU in a profile once the answer went out in one write, and the
// eight lower hashes are about half of that. The bytes are those
// appendAnswerJSON writes for the same proof (TestTileProofJSONIsTheProofJSON), and so those of
// the gateway's GetInclusionProof.

// upperJSONBytes bounds proofJSON.upper, counting each part's bytes and upperJSONOverhead: the
// hashes above the level-0 tiles of a tree of a million entries, 12 of 47 bytes per tile, take
// about 2.5 MiB. treeJSONMax bounds a tree head kept in proofJSON.trees: the checkpoint's
// envelope, escaped, is most of it, and the entry also holds the envelope itself, so each takes
// at most twice treeJSONMax (README "Memory"); a bigger one (a checkpoint with hundreds of
// cosignatures) is encoded for each proof.
const (
	upperJSONBytes    = 4 << 20
	upperJSONOverhead = 96
	treeJSONMax       = 64 << 10
)

// proofJSON holds the prepared parts of inclusion proof answers. Its zero value is ready.
type proofJSON struct {
	// trees are the last tree heads encoded, replaced in turn (next).
	trees [4]atomic.Pointer[treeJSON]
	next  atomic.Uint32

	mu         sync.Mutex // guards upper and upperBytes
	upper      map[upperJSONKey]upperJSON
	upperBytes int
}

// treeJSON is what a proof to one tree writes around its hashes: head after the entry's index,
// `","rootHash":"…","treeSize":"…","hashes":[`, and tail after the last hash, `],"checkpoint":…}`.
type treeJSON struct {
	size       uint64
	root       []byte
	checkpoint string
	signed     bool
	head, tail []byte
}

type upperJSONKey struct{ size, tile uint64 }

// upperJSON is the JSON of the hashes above a tile, each with the comma before it, and the root
// of the tree they were checked against.
type upperJSON struct {
	root []byte
	json []byte
}

// answerTileProof answers c.req, an inclusion proof, from prepared parts and reports true, or
// reports false having written nothing when log.TileInclusionProof leaves it to
// log.InclusionProof (the partial tile at the right edge, any error) or the answer is not one
// appendAnswerJSON would write.
func (l *laneListener) answerTileProof(ctx context.Context, c *laneConn) bool {
	p, ok, err := l.log.TileInclusionProof(ctx, c.req.index, c.req.treeSize)
	if err != nil || !ok {
		return false
	}
	b, ok := l.proofs.appendTileProof(c.out.json[:0], &p)
	if !ok {
		return false
	}
	c.write(b, contentTypeJSON, "")
	if cap(b) <= laneJSONKeep {
		c.out.json = b
	}
	return true
}

// appendTileProof appends the JSON of p, as appendAnswerJSON writes it, and reports true, or
// reports false when appendAnswerJSON would refuse it.
func (j *proofJSON) appendTileProof(b []byte, p *quirelog.TileProof) ([]byte, bool) {
	tree := j.tree(p)
	if tree == nil {
		return b, false
	}
	upper := j.upperPart(p)
	b = append(b, `{"logIndex":"`...)
	b = strconv.AppendUint(b, p.Index, 10)
	b = append(b, tree.head...)
	for i, h := range p.Lower {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendBytes(b, h)
	}
	b = append(b, upper...)
	return append(b, tree.tail...), true
}

// tree returns the encoded head and tail of p's tree, or nil when its checkpoint is not valid
// UTF-8, which protojson refuses to write.
func (j *proofJSON) tree(p *quirelog.TileProof) *treeJSON {
	for i := range j.trees {
		t := j.trees[i].Load()
		// The checkpoint strings of one checkpoint are one string, so this compares pointers.
		if t != nil && t.size == p.TreeSize && t.checkpoint == p.Checkpoint && t.signed == p.Signed && bytes.Equal(t.root, p.Root) {
			return t
		}
	}
	t := &treeJSON{size: p.TreeSize, root: p.Root, checkpoint: p.Checkpoint, signed: p.Signed}
	h := []byte(`","rootHash":`)
	h = appendBytes(h, p.Root)
	h = append(h, `,"treeSize":`...)
	h = appendInt(h, int64(p.TreeSize))
	t.head = append(h, `,"hashes":[`...)
	tail := append([]byte(nil), `],"checkpoint":`...)
	if p.Signed {
		var ok bool
		tail = append(tail, `{"envelope":`...)
		if tail, ok = appendString(tail, p.Checkpoint); !ok {
			return nil
		}
		tail = append(tail, '}')
	} else {
		tail = append(tail, "null"...)
	}
	t.tail = append(tail, '}')
	if len(t.head)+len(t.tail) <= treeJSONMax {
		j.trees[j.next.Add(1)%uint32(len(j.trees))].Store(t)
	}
	return t
}

// upperPart returns the JSON of p.Upper, each hash with the comma before it.
func (j *proofJSON) upperPart(p *quirelog.TileProof) []byte {
	k := upperJSONKey{size: p.TreeSize, tile: p.Index / layout.TileWidth}
	j.mu.Lock()
	u, ok := j.upper[k]
	j.mu.Unlock()
	// Hashes checked against one root are the only ones that can be, whichever tile read they
	// came from; the root is compared all the same, so that no other tree's part is served.
	if ok && bytes.Equal(u.root, p.Root) {
		return u.json
	}
	var b []byte
	for _, h := range p.Upper {
		b = append(b, ',')
		b = appendBytes(b, h)
	}
	j.mu.Lock()
	if j.upper == nil || j.upperBytes+len(b)+upperJSONOverhead > upperJSONBytes {
		// Readers ask for proofs to the latest trees, whose parts come back quickly; emptying
		// the map needs no order kept to evict by.
		j.upper, j.upperBytes = make(map[upperJSONKey]upperJSON), 0
	}
	if _, ok := j.upper[k]; !ok {
		j.upperBytes += len(b) + upperJSONOverhead
	}
	j.upper[k] = upperJSON{root: p.Root, json: b}
	j.mu.Unlock()
	return b
}
