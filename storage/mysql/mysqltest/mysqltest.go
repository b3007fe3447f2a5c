// Package mysqltest gives tests a fresh database on a real MySQL-compatible server: the server of
// the DSN in $QUIRE_TEST_MYSQL_DSN (.ci/run starts MariaDB with scripts/mariadb and sets it), or
// else a MariaDB the package starts itself with scripts/mariadb, which installs Debian's
// mariadb-server if it is missing. Under CI ($CI set) a test without a server fails; elsewhere it
// is skipped with a message saying what to do.
package mysqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
)

// EnvDSN names the environment variable with the DSN of a server tests may create databases on.
const EnvDSN = "QUIRE_TEST_MYSQL_DSN"

var server struct {
	once sync.Once
	dsn  string
	dir  string // set when this process started the server
	err  error
}

// Stop stops the server this process started, if any. Call it from TestMain after m.Run.
func Stop() {
	if server.dir == "" {
		return
	}
	if out, err := exec.Command(script(), "stop", server.dir).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "mysqltest: stopping MariaDB in %s: %v\n%s", server.dir, err, out)
	}
	server.dir = ""
}

// ServerDSN returns the DSN of the test server (its default database), starting one if needed.
func ServerDSN(t testing.TB) string {
	t.Helper()
	server.once.Do(func() {
		if server.dsn = os.Getenv(EnvDSN); server.dsn != "" {
			return
		}
		server.dsn, server.err = start()
	})
	if server.err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no MySQL server for the test: %s is unset and starting MariaDB failed: %v", EnvDSN, server.err)
		}
		t.Skipf("no MySQL server: set %s to a DSN of a server the tests may create databases on, or run as root so that scripts/mariadb can install and start MariaDB (%v)", EnvDSN, server.err)
	}
	return server.dsn
}

// Database creates a new, empty database on the test server and returns its DSN; it is dropped
// when the test ends.
func Database(t testing.TB) string {
	t.Helper()
	cfg, err := gomysql.ParseDSN(ServerDSN(t))
	if err != nil {
		t.Fatalf("parsing %s: %v", EnvDSN, err)
	}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatalf("opening test server: %v", err)
	}
	defer db.Close()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "quire_test_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE `"+name+"`"); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			t.Errorf("opening test server to drop %s: %v", name, err)
			return
		}
		defer db.Close()
		if _, err := db.Exec("DROP DATABASE `" + name + "`"); err != nil {
			t.Errorf("dropping test database %s: %v", name, err)
		}
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}

// start runs scripts/mariadb start in a new temporary directory.
func start() (string, error) {
	dir, err := os.MkdirTemp("", "qmdb")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script(), "start", dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("scripts/mariadb start: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	server.dir = dir
	dsn := strings.TrimSpace(string(out))
	if dsn == "" {
		return "", errors.New("scripts/mariadb start printed no DSN")
	}
	return dsn, nil
}

// script is the path of scripts/mariadb, found from the test's working directory (its package's
// folder) by walking up to the module root.
func script() string {
	dir, err := os.Getwd()
	if err != nil {
		return "scripts/mariadb"
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "scripts", "mariadb")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "scripts/mariadb"
		}
		dir = parent
	}
}
