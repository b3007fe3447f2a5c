package mysql

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"strings"
)

// postingsPerStatement bounds one INSERT: 2 placeholders a posting stays far below MySQL's 65,535
// per prepared statement, and the packet below max_allowed_packet.
const postingsPerStatement = 1000

// Index is the search index in the database: opaque keys, each naming log indices, and the
// progress (the first log index not yet indexed). Every front end runs a follower that fills it;
// Add takes the progress row's lock, so one front end's batch commits and the others', finding
// the progress past their batch, write nothing. Postings are keyed by (key, index), so a batch
// that overlaps one already written is harmless too. A search answers the same on every front
// end, and a new front end finds the index already filled.
type Index struct {
	db *sql.DB
}

// Index returns the database's search index.
func (d *DB) Index() *Index { return &Index{db: d.db} }

// Add records that keys[i] names indices[i] for every i and moves the progress to next, in one
// transaction. If another front end has already indexed up to next or beyond, it changes
// nothing.
func (x *Index) Add(ctx context.Context, keys [][]byte, indices []uint64, next uint64) (err error) {
	if len(keys) != len(indices) {
		return fmt.Errorf("adding to index: %d keys but %d indices", len(keys), len(indices))
	}
	tx, err := x.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("adding to index: starting transaction: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var cur uint64
	if err := tx.QueryRowContext(ctx, "SELECT `next_idx` FROM `QuireSearchProgress` WHERE `id` = 0 FOR UPDATE").Scan(&cur); err != nil {
		return fmt.Errorf("adding to index: locking progress: %w", err)
	}
	if cur >= next {
		return tx.Rollback()
	}
	for start := 0; start < len(keys); start += postingsPerStatement {
		end := min(start+postingsPerStatement, len(keys))
		args := make([]any, 0, 2*(end-start))
		for i := start; i < end; i++ {
			h := sha256.Sum256(keys[i])
			args = append(args, h[:], indices[i])
		}
		q := "INSERT IGNORE INTO `QuireSearch` (`key_hash`, `idx`) VALUES " + strings.Repeat("(?, ?),", end-start-1) + "(?, ?)"
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("adding postings %d to %d: %w", start, end, err)
		}
	}
	if _, err := tx.ExecContext(ctx, "UPDATE `QuireSearchProgress` SET `next_idx` = ? WHERE `id` = 0", next); err != nil {
		return fmt.Errorf("adding to index: moving progress to %d: %w", next, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing index batch up to %d: %w", next, err)
	}
	return nil
}

// Lookup returns at most limit indices recorded for key, smallest first, from the first at or
// above from (limit <= 0: all).
func (x *Index) Lookup(ctx context.Context, key []byte, from uint64, limit int) ([]uint64, error) {
	h := sha256.Sum256(key)
	q := "SELECT `idx` FROM `QuireSearch` WHERE `key_hash` = ? AND `idx` >= ? ORDER BY `idx`"
	args := []any{h[:], from}
	if limit > 0 {
		q += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := x.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("looking up index key: %w", err)
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var i uint64
		if err := rows.Scan(&i); err != nil {
			return nil, fmt.Errorf("reading index posting: %w", err)
		}
		out = append(out, i)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("looking up index key: %w", err)
	}
	return out, nil
}

// Format returns the key format the index is built with (0 for one that never recorded it).
func (x *Index) Format(ctx context.Context) (uint64, error) {
	var f uint64
	if err := x.db.QueryRowContext(ctx, "SELECT `format` FROM `QuireSearchFormat` WHERE `id` = 0").Scan(&f); err != nil {
		return 0, fmt.Errorf("reading index format: %w", err)
	}
	return f, nil
}

// Restart records format and moves the progress back to 0 in one transaction, so that the
// followers add every entry again with that format's keys; postings already there stay. When the
// recorded format is already format or later (another front end restarted first) it changes
// nothing. It takes the progress row's lock first, as Add does.
func (x *Index) Restart(ctx context.Context, format uint64) (err error) {
	tx, err := x.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("restarting index: starting transaction: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var next, cur uint64
	if err := tx.QueryRowContext(ctx, "SELECT `next_idx` FROM `QuireSearchProgress` WHERE `id` = 0 FOR UPDATE").Scan(&next); err != nil {
		return fmt.Errorf("restarting index: locking progress: %w", err)
	}
	if err := tx.QueryRowContext(ctx, "SELECT `format` FROM `QuireSearchFormat` WHERE `id` = 0 FOR UPDATE").Scan(&cur); err != nil {
		return fmt.Errorf("restarting index: locking format: %w", err)
	}
	if cur >= format {
		return tx.Rollback()
	}
	if _, err := tx.ExecContext(ctx, "UPDATE `QuireSearchFormat` SET `format` = ? WHERE `id` = 0", format); err != nil {
		return fmt.Errorf("restarting index: recording format %d: %w", format, err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE `QuireSearchProgress` SET `next_idx` = 0 WHERE `id` = 0"); err != nil {
		return fmt.Errorf("restarting index: moving progress back from %d: %w", next, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing index restart for format %d: %w", format, err)
	}
	return nil
}

// Progress returns the first log index not yet indexed (0 for a new index).
func (x *Index) Progress(ctx context.Context) (uint64, error) {
	var n uint64
	if err := x.db.QueryRowContext(ctx, "SELECT `next_idx` FROM `QuireSearchProgress` WHERE `id` = 0").Scan(&n); err != nil {
		return 0, fmt.Errorf("reading index progress: %w", err)
	}
	return n, nil
}
