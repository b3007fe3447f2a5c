package mysql

import (
	"context"
	"fmt"

	"github.com/transparency-dev/tessera"
	antispam "github.com/transparency-dev/tessera/storage/aws/antispam"
)

// Settings of Tessera's antispam on MySQL. Its follower writes an entry's identity hash in one
// INSERT per batch of antispamBatch entries; Tessera's default of 64 keeps up with a few hundred
// entries a second, and one front end integrates thousands.
const (
	antispamBatch = 1024
	antispamConns = 8
)

// Dedup is Tessera's MySQL antispam on this database: a decorator that answers a resubmitted
// entry with the index of its first copy, and a follower that records each entry's identity from
// the log. The follower runs behind integration, so Indexed tells a Watcher how far it is.
type Dedup struct {
	// Antispam goes to tessera.AppendOptions.WithAntispam.
	Antispam tessera.Antispam
	// Indexed returns how many leading log entries the antispam table covers.
	Indexed func(context.Context) (uint64, error)
}

// Dedup opens Tessera's MySQL antispam in this database (it creates its own tables). Writes get
// tessera.ErrPushbackAntispam while its follower is more than pushback entries behind the tree.
func (d *DB) Dedup(ctx context.Context, pushback uint) (*Dedup, error) {
	as, err := antispam.NewAntispam(ctx, d.dsn, antispam.AntispamOpts{
		MaxBatchSize:      antispamBatch,
		PushbackThreshold: pushback,
		MaxOpenConns:      antispamConns,
		MaxIdleConns:      antispamConns,
	})
	if err != nil {
		// Tessera's messages here come from go-sql-driver and the schema check, not the DSN.
		return nil, fmt.Errorf("starting Tessera's MySQL antispam: %w", err)
	}
	// EntriesProcessed reads the followers' shared progress row; it needs no bundle hasher.
	return &Dedup{Antispam: as, Indexed: as.Follower(nil).EntriesProcessed}, nil
}
