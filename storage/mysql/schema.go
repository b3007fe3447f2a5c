package mysql

import (
	"context"
	"fmt"
)

// tesseraSchemaVersion is the layout version Tessera v1.0.4's MySQL driver checks for at start
// (its schemaCompatibilityVersion).
const tesseraSchemaVersion = 1

// schema creates every table a Quire log on MySQL uses, each only if it is missing, so that any
// front end may run it at any start. The driver does not create its tables: their columns here
// are the ones its queries read and write. MariaDB 10.11 and MySQL 8 both take this dialect.
var schema = []string{
	// Tessera's: one row naming the layout version, checked by the driver at start.
	"CREATE TABLE IF NOT EXISTS `Tessera` (" +
		"`id` TINYINT UNSIGNED NOT NULL, `compatibilityVersion` BIGINT UNSIGNED NOT NULL, PRIMARY KEY (`id`))",
	fmt.Sprintf("INSERT IGNORE INTO `Tessera` (`id`, `compatibilityVersion`) VALUES (0, %d)", tesseraSchemaVersion),
	// Tessera's: the latest published checkpoint (one row) and when it was published, in ms.
	"CREATE TABLE IF NOT EXISTS `Checkpoint` (" +
		"`id` TINYINT UNSIGNED NOT NULL, `note` MEDIUMBLOB NOT NULL, `published_at` BIGINT NOT NULL, PRIMARY KEY (`id`))",
	// Tessera's: the integrated tree's size and root (one row, locked by each batch).
	"CREATE TABLE IF NOT EXISTS `TreeState` (" +
		"`id` TINYINT UNSIGNED NOT NULL, `size` BIGINT UNSIGNED NOT NULL, `root` TINYBLOB NOT NULL, PRIMARY KEY (`id`))",
	// Tessera's: hash tiles, rewritten until full.
	"CREATE TABLE IF NOT EXISTS `Subtree` (" +
		"`level` TINYINT UNSIGNED NOT NULL, `index` BIGINT UNSIGNED NOT NULL, `nodes` MEDIUMBLOB NOT NULL, PRIMARY KEY (`level`, `index`))",
	// Tessera's: entry bundles, rewritten until full.
	"CREATE TABLE IF NOT EXISTS `TiledLeaves` (" +
		"`tile_index` BIGINT UNSIGNED NOT NULL, `size` SMALLINT UNSIGNED NOT NULL, `data` LONGBLOB NOT NULL, PRIMARY KEY (`tile_index`))",

	// Quire's: the log this database belongs to (one row, written by the first front end).
	"CREATE TABLE IF NOT EXISTS `QuireIdentity` (" +
		"`id` TINYINT UNSIGNED NOT NULL, `verifier_key` VARBINARY(1024) NOT NULL, PRIMARY KEY (`id`))",
	// Quire's: every published checkpoint a front end saw, by tree size.
	"CREATE TABLE IF NOT EXISTS `QuireCheckpoint` (" +
		"`size` BIGINT UNSIGNED NOT NULL, `note` MEDIUMBLOB NOT NULL, PRIMARY KEY (`size`))",
	// Quire's: search postings. A key is stored as its SHA-256, so keys of any length fit one
	// fixed-width primary key, and a key's indices are one range scan in index order.
	"CREATE TABLE IF NOT EXISTS `QuireSearch` (" +
		"`key_hash` BINARY(32) NOT NULL, `idx` BIGINT UNSIGNED NOT NULL, PRIMARY KEY (`key_hash`, `idx`))",
	// Quire's: the first log index the search index does not cover yet (one row).
	"CREATE TABLE IF NOT EXISTS `QuireSearchProgress` (" +
		"`id` TINYINT UNSIGNED NOT NULL, `next_idx` BIGINT UNSIGNED NOT NULL, PRIMARY KEY (`id`))",
	"INSERT IGNORE INTO `QuireSearchProgress` (`id`, `next_idx`) VALUES (0, 0)",
	// Quire's: deduplication claims (claims.go), one per entry identity hash: the front end that
	// owns it (a random ID), until when (ms on the database's clock), and the index once logged.
	"CREATE TABLE IF NOT EXISTS `QuireClaim` (" +
		"`h` BINARY(32) NOT NULL, `owner` BINARY(16) NOT NULL, `lease_until` BIGINT NOT NULL, `idx` BIGINT UNSIGNED NULL, PRIMARY KEY (`h`))",
	// Quire's: the key format the search index is built with (one row; 0 before formats were
	// recorded). A front end that writes a later format restarts the index from entry 0.
	"CREATE TABLE IF NOT EXISTS `QuireSearchFormat` (" +
		"`id` TINYINT UNSIGNED NOT NULL, `format` BIGINT UNSIGNED NOT NULL, PRIMARY KEY (`id`))",
	"INSERT IGNORE INTO `QuireSearchFormat` (`id`, `format`) VALUES (0, 0)",
}

func (d *DB) createSchema(ctx context.Context) error {
	for _, stmt := range schema {
		if _, err := d.db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("creating schema (%.60s…): %w", stmt, err)
		}
	}
	return nil
}
