// Package setsum is an order-independent digest of a multiset of records: the sum, modulo 2^256,
// of the SHA-256 of each record (AdHash, Bellare and Micciancio 1997). Two stores that should
// hold the same records, filed in different orders (a log's entries in index order, their dedup
// or search keys in key order), are compared in one sequential pass over each, in constant
// memory, instead of a lookup per record; only when the sums differ need a slower pass find the
// record that differs. TestSum shows that the order of additions does not matter and that a
// changed, missing or extra record changes the sum.
package setsum

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
)

// Sum is the digest of the records added so far. The zero value is the empty multiset.
type Sum struct {
	limbs [4]uint64
	n     uint64
	buf   []byte
}

// Add adds one record made of parts; each part is length-prefixed, so ("ab", "c") and ("a",
// "bc") are different records.
func (s *Sum) Add(parts ...[]byte) {
	s.buf = s.buf[:0]
	for _, p := range parts {
		s.buf = binary.AppendUvarint(s.buf, uint64(len(p)))
		s.buf = append(s.buf, p...)
	}
	h := sha256.Sum256(s.buf)
	var carry uint64
	for i := range s.limbs {
		s.limbs[i], carry = bits.Add64(s.limbs[i], binary.LittleEndian.Uint64(h[8*i:]), carry)
	}
	s.n++
}

// Equal says whether s and o digest the same multiset (of the same size).
func (s *Sum) Equal(o *Sum) bool { return s.limbs == o.limbs && s.n == o.n }

// Count is the number of records added.
func (s *Sum) Count() uint64 { return s.n }
