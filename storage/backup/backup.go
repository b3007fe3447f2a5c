// Package backup makes consistent online backups of a Quire data directory while the log keeps
// serving and appending, and lets a second process ask a running server for one.
//
// A backup is itself a data directory: log/ (a Pebble checkpoint of the log database), index/ (one
// of the search index) and a copy of every file at the top of the data directory (the log key when
// it lives there, its verifier key, the identity record). Restoring is serving it: `quire serve
// --data-dir BACKUP` (or a copy of it). The index is checkpointed before the log, so it never
// covers entries the backed-up log lacks; it may lag the log, and the search follower indexes the
// rest after a restore, as after any restart. Every entry acknowledged before the backup began is
// in it: an answer is sent only after the entry's batch and a checkpoint covering it were synced,
// and a Pebble checkpoint holds every synced batch (TestBackupUnderLoad in cmd/quire restores a
// backup taken under load and finds each one).
//
// Pebble's lock keeps a second process from opening a database in use, so `quire serve` listens on
// a Unix socket in the data directory (SocketName, mode 0600 in a 0700 directory: only the
// directory's owner reaches it) and takes backups when asked there; with no server running, the
// backup command opens the databases itself.
package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	flog "github.com/transparency-dev/formats/log"

	"github.com/quirelog/quire/api/checkpoint"
	"github.com/quirelog/quire/storage/index"
	"github.com/quirelog/quire/storage/pebble"
)

// Names inside a data directory.
const (
	LogDir     = "log"
	IndexDir   = "index"
	SocketName = "admin.sock"
)

// Sources is what a backup copies: the open databases of a data directory, and the directory for
// its files.
type Sources struct {
	DataDir string
	Log     *pebble.Storage
	Index   *index.DB
}

// Result describes a written backup.
type Result struct {
	Dir string `json:"dir"`
	// Size is the tree size of the backed-up log; CheckpointSize that of its latest checkpoint,
	// the size a restored log serves at once (it publishes Size soon after it starts).
	Size           uint64 `json:"size"`
	CheckpointSize uint64 `json:"checkpoint_size"`
}

// Write backs src up into out, which must not exist or be an empty directory, and checks the
// copy by opening it. The files are the owner's only (0700 directories, key files keep 0600).
func Write(ctx context.Context, src Sources, out string) (*Result, error) {
	if err := prepare(out); err != nil {
		return nil, err
	}
	if err := src.Index.Backup(filepath.Join(out, IndexDir)); err != nil {
		return nil, err
	}
	if err := src.Log.Backup(filepath.Join(out, LogDir)); err != nil {
		return nil, err
	}
	if err := copyFiles(src.DataDir, out); err != nil {
		return nil, err
	}
	return Check(ctx, out)
}

// Check opens the log database of a backup (or any data directory not in use) read-only and
// reports its sizes.
func Check(ctx context.Context, dir string) (*Result, error) {
	drv, err := pebble.New(ctx, pebble.Config{Path: filepath.Join(dir, LogDir), ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("opening the backed-up log: %w", err)
	}
	s := drv.(*pebble.Storage)
	res := &Result{Dir: dir}
	res.Size, err = s.IntegratedSize(ctx)
	if err == nil {
		var cp []byte
		cp, err = s.ReadCheckpoint(ctx)
		if err == nil {
			var c *flog.Checkpoint
			if c, err = checkpoint.Unverified(cp); err == nil {
				res.CheckpointSize = c.Size
			}
		} else if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	}
	if cerr := s.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("checking the backup: %w", err)
	}
	return res, nil
}

// prepare creates out, or accepts it empty.
func prepare(out string) error {
	ents, err := os.ReadDir(out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(out, 0o700); err != nil {
			return fmt.Errorf("creating backup directory: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("reading backup directory: %w", err)
	case len(ents) > 0:
		return fmt.Errorf("backup directory %s is not empty: a backup never overwrites another", out)
	}
	return os.Chmod(out, 0o700)
}

// copyFiles copies the regular files at the top of dataDir (keys, identity) into out with their
// modes; directories (the databases) and sockets are not copied.
func copyFiles(dataDir, out string) error {
	ents, err := os.ReadDir(dataDir)
	if err != nil {
		return fmt.Errorf("listing data directory: %w", err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(dataDir, e.Name()), filepath.Join(out, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return fmt.Errorf("backing up %s: %w", from, err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("backing up %s: %w", from, err)
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return fmt.Errorf("backing up %s: %w", from, err)
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backing up %s: %w", from, err)
	}
	return nil
}
