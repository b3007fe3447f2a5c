package mysql

// ExecForTest runs a statement on the front end's pool, for tests that set up what another
// program (Tessera's driver, an older log) would have written.
func ExecForTest(d *DB, q string, args ...any) error {
	_, err := d.db.Exec(q, args...)
	return err
}
