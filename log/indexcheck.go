package log

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/quirelog/quire/storage/setsum"
)

// IndexContents is a search index that can be audited: storage/index's *DB.
type IndexContents interface {
	// Has says whether key names log index idx.
	Has(key []byte, idx uint64) (bool, error)
	// Progress is the first log index not yet indexed.
	Progress(ctx context.Context) (uint64, error)
	// Format is the IndexFormat the index was built with.
	Format(ctx context.Context) (uint64, error)
	// Postings calls fn with every key and index recorded.
	Postings(ctx context.Context, fn func(key []byte, idx uint64) error) error
}

// IndexCheck audits a search index against the log, with the follower's own EntryKeys, so
// every kind of key the follower files is covered: each entry the index covers must have all its
// keys, and no key may name an entry that does not carry it (or lie beyond the index's progress). Feed it every entry in order with
// Entry (storage/pebble's Check does, through CheckOptions.Entry), then call Finish.
type IndexCheck struct {
	ix       IndexContents
	progress uint64
	// want digests the postings the entries seen so far should have.
	want setsum.Sum
	// entries is how many entries Entry has seen.
	entries uint64
	// format is the IndexFormat the index was built with.
	format uint64
}

// NewIndexCheck starts a check of ix for a log of size entries.
func NewIndexCheck(ctx context.Context, ix IndexContents, size uint64) (*IndexCheck, error) {
	p, err := ix.Progress(ctx)
	if err != nil {
		return nil, err
	}
	if p > size {
		return nil, fmt.Errorf("search index covers %d entries but the log has %d: it is another log's, or the log was restored from an older backup", p, size)
	}
	format, err := ix.Format(ctx)
	if err != nil {
		return nil, err
	}
	if format < IndexFormat {
		// The follower rebuilds an index of an older format from entry 0 when the log next
		// serves; until then its keys are not this version's to judge.
		return &IndexCheck{ix: ix, format: format}, nil
	}
	return &IndexCheck{ix: ix, progress: p, format: format}, nil
}

// Progress is how many leading entries the index covers and the check audits.
func (c *IndexCheck) Progress() uint64 { return c.progress }

// Stale returns the format of an index older than IndexFormat, which the check leaves alone
// (quire serve rebuilds it), and whether it is one.
func (c *IndexCheck) Stale() (uint64, bool) { return c.format, c.format < IndexFormat }

// Entry notes the postings the index should hold for entry index (data): one for every key the
// follower files it under.
func (c *IndexCheck) Entry(index uint64, data []byte) error {
	c.entries++
	if index >= c.progress {
		return nil
	}
	keys, _ := EntryKeys(data, rfc6962.DefaultHasher.HashLeaf(data))
	var idx [8]byte
	binary.BigEndian.PutUint64(idx[:], index)
	for _, k := range keys {
		c.want.Add(k, idx[:])
	}
	return nil
}

// Finish compares the index with what Entry noted, once it has seen every entry: the postings are
// digested in one pass and compared with the expected digest (storage/setsum). Only when they
// differ does it name the fault, walking the postings to find one whose entry (read with entry)
// does not carry its key, then the entries to find one lacking a key.
func (c *IndexCheck) Finish(ctx context.Context, entry func(ctx context.Context, index uint64) ([]byte, error)) error {
	if _, stale := c.Stale(); stale {
		return nil
	}
	var got setsum.Sum
	var idx [8]byte
	err := c.ix.Postings(ctx, func(k []byte, i uint64) error {
		binary.BigEndian.PutUint64(idx[:], i)
		got.Add(k, idx[:])
		return nil
	})
	if err != nil {
		return err
	}
	if got.Equal(&c.want) {
		return nil
	}
	errFound := errors.New("found")
	var found error
	err = c.ix.Postings(ctx, func(k []byte, idx uint64) error {
		if idx >= c.progress {
			found = fmt.Errorf("search index key %s names entry %d, beyond the %d entries it covers", keyText(k), idx, c.progress)
			return errFound
		}
		data, err := entry(ctx, idx)
		if err != nil {
			return err
		}
		keys, _ := EntryKeys(data, rfc6962.DefaultHasher.HashLeaf(data))
		for _, want := range keys {
			if bytes.Equal(want, k) {
				return nil
			}
		}
		found = fmt.Errorf("search index key %s names entry %d, which does not carry it", keyText(k), idx)
		return errFound
	})
	if errors.Is(err, errFound) {
		return found
	}
	if err != nil {
		return err
	}
	for i := range min(c.progress, c.entries) {
		data, err := entry(ctx, i)
		if err != nil {
			return err
		}
		keys, _ := EntryKeys(data, rfc6962.DefaultHasher.HashLeaf(data))
		for _, k := range keys {
			ok, err := c.ix.Has(k, i)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("search index lacks key %s of entry %d", keyText(k), i)
			}
		}
	}
	return fmt.Errorf("search index holds %d postings, the entries it covers have %d", got.Count(), c.want.Count())
}

// keyText writes an index key for a message: leaf hashes in hex, other keys quoted.
func keyText(k []byte) string {
	if h, ok := bytes.CutPrefix(k, []byte("leaf:")); ok {
		return "leaf hash " + hex.EncodeToString(h)
	}
	return strconv.Quote(string(k))
}
