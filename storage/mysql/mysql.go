// Package mysql runs a Quire log on MySQL or MariaDB, so that any number of `quire serve` front
// ends share one log. The Merkle tree, entry bundles and the latest checkpoint are Tessera's MySQL
// driver's (github.com/transparency-dev/tessera/storage/mysql, used as it is: one transaction per
// batch under a row lock on the tree state), and deduplication is Tessera's MySQL antispam
// (storage/aws/antispam, which takes any MySQL DSN). This package adds, in the same database,
// what the embedded Pebble storage gives and those drivers do not:
//
//   - the log's identity (origin and checkpoint verifier key), so that every front end of one
//     database signs for the same log (CheckIdentity);
//   - checkpoint history, every checkpoint any front end saw published, for proofs and
//     checkpoints at past sizes (History, fed by Watcher);
//   - the search index, shared by every front end and filled by whichever front end gets there
//     first (Index), so that all of them answer a search alike and a new one needs no catching up.
//
// It knows nothing of entry kinds or HTTP: it stores opaque keys, checkpoints and sizes. The
// schema (schema.go) creates Tessera's tables, whose shape the driver's queries fix, and Quire's.
// The tests run against a real MariaDB (scripts/mariadb): TestCheckIdentity, TestHistory,
// TestIndex and the Watcher tests show each part, TestTwoFrontEndsShareOneLog two appenders
// deduplicating through one database, and scripts/crashtest's TestScaleout three `quire serve`
// front ends under load with one of them SIGKILLed.
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/transparency-dev/tessera"
	tmysql "github.com/transparency-dev/tessera/storage/mysql"
)

// URLScheme is the prefix of a --storage value that names a MySQL database.
const URLScheme = "mysql://"

// Defaults for Config.
const (
	DefaultMaxOpenConns    = 64
	DefaultConnMaxLifetime = 3 * time.Minute
	// MinCheckpointInterval is the shortest checkpoint interval Tessera's MySQL driver accepts.
	MinCheckpointInterval = time.Second
)

// ParseURL turns a --storage value, mysql://USER:PASS@tcp(HOST:PORT)/DB[?PARAMS], into a
// go-sql-driver DSN (the same text without the scheme). Its errors never repeat the value, which
// holds a password.
func ParseURL(u string) (string, error) {
	dsn, ok := strings.CutPrefix(u, URLScheme)
	if !ok {
		return "", fmt.Errorf("storage URL does not start with %s", URLScheme)
	}
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		// go-sql-driver's messages name the part that is wrong without echoing the DSN.
		return "", fmt.Errorf("storage URL is not mysql://USER:PASS@tcp(HOST:PORT)/DB: %w", err)
	}
	if cfg.DBName == "" {
		return "", errors.New("storage URL names no database: mysql://USER:PASS@tcp(HOST:PORT)/DB")
	}
	return dsn, nil
}

// Redact returns dsn with its password replaced, for logs and errors.
func Redact(dsn string) string {
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	if cfg.Passwd != "" {
		cfg.Passwd = "xxxxx"
	}
	return cfg.FormatDSN()
}

// Config says which database to use and how.
type Config struct {
	// DSN is a go-sql-driver DSN, USER:PASS@tcp(HOST:PORT)/DB (see ParseURL).
	DSN string
	// MaxOpenConns bounds the connections of this front end's pool (DefaultMaxOpenConns if 0);
	// Tessera's antispam keeps a small pool of its own.
	MaxOpenConns int
}

func (c *Config) valid() error {
	if c.DSN == "" {
		return errors.New("mysql storage config: DSN is required")
	}
	if c.MaxOpenConns < 0 {
		return fmt.Errorf("mysql storage config: MaxOpenConns %d is negative", c.MaxOpenConns)
	}
	if c.MaxOpenConns == 0 {
		c.MaxOpenConns = DefaultMaxOpenConns
	}
	return nil
}

// DB is one front end's connection pool to the log's database. Its methods are safe for
// concurrent use.
type DB struct {
	db  *sql.DB
	dsn string
}

// Open connects to the database and creates the tables that are missing (Tessera's and Quire's);
// several front ends may open one database at once.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if err := cfg.valid(); err != nil {
		return nil, err
	}
	mc, err := gomysql.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("parsing MySQL DSN: %w", err)
	}
	// Without it every query with arguments is a server-side prepare, execute and close: three
	// round trips, and most of the database's CPU for the point reads antispam makes per entry.
	// go-sql-driver escapes the arguments itself, safely for the utf8mb4 connections it opens.
	mc.InterpolateParams = true
	connector, err := gomysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("MySQL connector for %s: %w", Redact(cfg.DSN), err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(cfg.MaxOpenConns)
	db.SetMaxIdleConns(cfg.MaxOpenConns)
	db.SetConnMaxLifetime(DefaultConnMaxLifetime)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connecting to MySQL at %s: %w", Redact(cfg.DSN), err)
	}
	d := &DB{db: db, dsn: mc.FormatDSN()}
	if err := d.createSchema(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return d, nil
}

// Close closes the connection pool.
func (d *DB) Close() error {
	if err := d.db.Close(); err != nil {
		return fmt.Errorf("closing MySQL connections: %w", err)
	}
	return nil
}

// Driver is Tessera's MySQL driver on this database, for tessera.NewAppender. It is also the
// log's tessera.LogReader (a read-only front end reads through it).
func (d *DB) Driver(ctx context.Context) (*tmysql.Storage, error) {
	s, err := tmysql.New(ctx, d.db)
	if err != nil {
		return nil, fmt.Errorf("starting Tessera's MySQL driver: %w", err)
	}
	return s, nil
}

var _ tessera.LogReader = (*tmysql.Storage)(nil)
