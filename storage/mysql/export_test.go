package mysql

import (
	"crypto/rand"
	"time"
)

// ExecForTest runs a statement on the front end's pool, for tests that set up what another
// program (Tessera's driver, an older log) would have written.
func ExecForTest(d *DB, q string, args ...any) error {
	_, err := d.db.Exec(q, args...)
	return err
}

// ClaimForTest claims the entry with identity hash h for a front end that never appends it nor
// renews the claim, as one that died right after claiming.
func ClaimForTest(d *DB, h []byte, lease time.Duration) error {
	owner := make([]byte, claimOwnerLen)
	if _, err := rand.Read(owner); err != nil {
		return err
	}
	_, err := d.db.Exec("INSERT INTO `QuireClaim` (`h`, `owner`, `lease_until`) VALUES (?, ?, "+dbNowMillis+" + ?)", h, owner, lease.Milliseconds())
	return err
}
