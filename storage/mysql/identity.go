package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
)

// IdentityError says the database belongs to another log than the front end's key.
type IdentityError struct {
	// Stored is the verifier key the database was first served with; empty when the database
	// has no identity row but holds a checkpoint the front end's key does not verify.
	Stored string
	// Given is the front end's verifier key.
	Given string
}

func (e *IdentityError) Error() string {
	if e.Stored == "" {
		return fmt.Sprintf("the database holds a checkpoint that the key %q does not verify: it is another log's", e.Given)
	}
	return fmt.Sprintf("the database belongs to the log with verifier key %q, not %q: every front end of one database needs the same --key (and origin)", e.Stored, e.Given)
}

// CheckIdentity makes sure the database is the log of verifierKey: the first front end records
// the key, every later one must have the same. A database that already holds a checkpoint (a
// log Tessera wrote before Quire's tables existed) must be signed by that key. Front ends that
// start together race only to insert the same row; all of them then read the one that won.
func (d *DB) CheckIdentity(ctx context.Context, verifierKey string) error {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return fmt.Errorf("parsing verifier key: %w", err)
	}
	stored, err := d.storedIdentity(ctx)
	if err != nil {
		return err
	}
	if stored == "" {
		var cp []byte
		err := d.db.QueryRowContext(ctx, "SELECT `note` FROM `Checkpoint` WHERE `id` = 0").Scan(&cp)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("reading the latest checkpoint: %w", err)
		default:
			if _, err := note.Open(cp, note.VerifierList(v)); err != nil {
				return &IdentityError{Given: verifierKey}
			}
		}
		if _, err := d.db.ExecContext(ctx, "INSERT IGNORE INTO `QuireIdentity` (`id`, `verifier_key`) VALUES (0, ?)", verifierKey); err != nil {
			return fmt.Errorf("recording the log's identity: %w", err)
		}
		if stored, err = d.storedIdentity(ctx); err != nil {
			return err
		}
	}
	if stored != verifierKey {
		return &IdentityError{Stored: stored, Given: verifierKey}
	}
	return nil
}

// storedIdentity is the recorded verifier key, or "" when none is.
func (d *DB) storedIdentity(ctx context.Context) (string, error) {
	var k []byte
	err := d.db.QueryRowContext(ctx, "SELECT `verifier_key` FROM `QuireIdentity` WHERE `id` = 0").Scan(&k)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the log's identity: %w", err)
	}
	return string(k), nil
}
