package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekornote "github.com/sigstore/rekor-tiles/v2/pkg/note"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/quirelog/quire/api/client/testlog"
	quirev1 "github.com/quirelog/quire/api/quire/v1"
)

// fsckSizeRE is the line by which fsck v1.0.4 reports success, the only sign of it.
var fsckSizeRE = regexp.MustCompile(`Successfully fsck'd log with size (\d+)`)

// fsckSize runs Tessera's fsck on the log at baseURL and returns the size it verified.
func fsckSize(ctx context.Context, t *testing.T, baseURL, pubKey string) uint64 {
	t.Helper()
	out, err := runFsck(ctx, t, baseURL, pubKey)
	if err != nil {
		t.Fatalf("fsck: %v\n%s", err, out)
	}
	m := fsckSizeRE.FindStringSubmatch(out)
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// checkpointOf fetches and verifies the log's checkpoint.
func (s *serveProc) checkpointOf(t *testing.T, vkey string) (size uint64, rootHash []byte) {
	t.Helper()
	key, err := parseVerifierKey(vkey)
	if err != nil {
		t.Fatal(err)
	}
	_, raw := s.get("/checkpoint")
	cp := openCheckpoint(t, key.verifier, raw)
	return cp.Size, cp.Hash
}

// TestImportContinuesATesseraPOSIXLog imports a log written by Tessera's POSIX driver (the storage
// layout rekor-tiles' POSIX server writes too) from its directory and from a server, continues it
// with `quire serve` and the source's key, and checks the result with Tessera's fsck and a
// consistency proof from the source's checkpoint.
func TestImportContinuesATesseraPOSIXLog(t *testing.T) {
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	key, err := testlog.NewKey("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srcDir := filepath.Join(work, "posix")
	src, err := testlog.Open(ctx, srcDir, key)
	if err != nil {
		t.Fatal(err)
	}
	entries := testlog.Entries(0, 3*256+45)
	// Tessera's POSIX driver without antispam logs a repeated entry again; so must the copy.
	entries = append(entries, entries[7])
	if err := src.Add(ctx, entries); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(ctx); err != nil {
		t.Fatal(err)
	}
	srcCP, err := os.ReadFile(filepath.Join(srcDir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := testlog.NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	source := openCheckpoint(t, verifier, srcCP)
	if source.Size != uint64(len(entries)) {
		t.Fatalf("source log has %d entries, want %d", source.Size, len(entries))
	}

	t.Run("an import from a tlog-tiles server verifies and reports the source's checkpoint", func(t *testing.T) {
		hs := testlog.Serve(srcDir)
		defer hs.Close()
		code, stdout, stderr := runQuire(t, work, "import", "--from", hs.URL, "--log-key", key.VKey, "--data-dir", filepath.Join(work, "from-url"))
		if code != 0 || !strings.Contains(stdout, string(srcCP)) {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
	})
	t.Run("an import under another key is refused", func(t *testing.T) {
		other, err := testlog.NewKey("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(work, "wrong-key")
		code, _, stderr := runQuire(t, work, "import", "--from", srcDir, "--log-key", other.VKey, "--data-dir", dir)
		if code == 0 || !strings.Contains(stderr, "verifying the source checkpoint") {
			t.Fatalf("exit %d: %s", code, stderr)
		}
	})

	dataDir := filepath.Join(work, "imported")
	code, stdout, stderr := runQuire(t, work, "import", "--from", srcDir, "--log-key", key.VKey, "--data-dir", dataDir)
	if code != 0 {
		t.Fatalf("import: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, fmt.Sprintf("import: %d of %d entries", source.Size, source.Size)) {
		t.Errorf("no final progress line:\n%s", stderr)
	}
	keyPath := filepath.Join(work, "source.key")
	writeFile(t, keyPath, key.SKey+"\n", 0o600)
	pubPath := filepath.Join(work, "source.pub")
	writeFile(t, pubPath, key.VKey+"\n", 0o644)

	s := startServe(t, work, "--data-dir", dataDir, "--key", keyPath)
	if size, rootHash := s.checkpointOf(t, key.VKey); size != source.Size || !bytes.Equal(rootHash, source.Hash) {
		t.Fatalf("the imported log serves size %d root %x, the source had %d %x", size, rootHash, source.Size, source.Hash)
	}
	t.Run("the search index was rebuilt from the imported entries", func(t *testing.T) {
		leaf := rfc6962.DefaultHasher.HashLeaf(entries[7])
		status, body := s.get(fmt.Sprintf("/quire/v1/proof/inclusion?leaf_hash=%x&tree_size=%d", leaf, source.Size))
		p := &rekorv1.InclusionProof{}
		if status != http.StatusOK || protojson.Unmarshal(body, p) != nil {
			t.Fatalf("inclusion proof by leaf hash: %d %s", status, body)
		}
		if p.GetLogIndex() != 7 {
			t.Fatalf("the index finds the entry logged at 7 and %d at %d", len(entries)-1, p.GetLogIndex())
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, 7, source.Size, leaf, p.GetHashes(), source.Hash); err != nil {
			t.Fatal(err)
		}
	})
	k := newECDSA(t)
	for i := range 3 {
		if status, body := s.post(hashedRekord(t, k, fmt.Appendf(nil, "after the import %d", i))); status != http.StatusCreated {
			t.Fatalf("status %d: %s", status, body)
		}
	}
	newSize, newRoot := s.checkpointOf(t, key.VKey)
	if newSize != source.Size+3 {
		t.Fatalf("after 3 writes the log has %d entries, want %d", newSize, source.Size+3)
	}

	t.Run("a consistency proof links the source's checkpoint to the new one", func(t *testing.T) {
		status, body := s.get(fmt.Sprintf("/quire/v1/proof/consistency?first=%d&second=%d", source.Size, newSize))
		if status != http.StatusOK {
			t.Fatalf("status %d: %s", status, body)
		}
		p := &quirev1.ConsistencyProof{}
		if err := protojson.Unmarshal(body, p); err != nil {
			t.Fatal(err)
		}
		hashes := p.GetHashes()
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, source.Size, newSize, hashes, source.Hash, newRoot); err != nil {
			t.Fatalf("the new checkpoint is not consistent with the source's: %v", err)
		}
	})
	t.Run("Tessera's fsck verifies the continued log", func(t *testing.T) {
		if got := fsckSize(ctx, t, s.baseURL, pubPath); got != newSize {
			t.Fatalf("fsck checked size %d, want %d", got, newSize)
		}
	})
	s.stop()
}

// TestBackupUnderLoad backs a log up with `quire backup` while writers keep it busy, restores the
// backup by serving a copy of it, and checks that every entry acknowledged before the backup began
// is in the restored log, that it continues at the backed-up size with the same key, and that
// Tessera's fsck accepts it.
func TestBackupUnderLoad(t *testing.T) {
	work := t.TempDir()
	dataDir := filepath.Join(work, defaultDataDir)
	s := startServe(t, work)
	vkey, _ := readVerifier(t, dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	type ack struct {
		index int64
		body  []byte
	}
	var (
		mu     sync.Mutex
		acks   []ack
		stop   = make(chan struct{})
		wg     sync.WaitGroup
		errs   = make(chan error, 4)
		warmed = make(chan struct{})
		once   sync.Once
		// busy counts writes sent and not yet answered: the backup is under load if some are
		// outstanding both when it starts and when it ends. (Counting answers that arrive while it
		// runs would fail whenever a backup of a small log is quicker than one write.)
		busy atomic.Int64
	)
	const writers, perWriter, warm = 8, 300, 300
	for w := range writers {
		k := newECDSA(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				select {
				case <-stop:
					return
				default:
				}
				body, err := signHashedRekord(k, fmt.Appendf(nil, "load %d/%d", w, i))
				if err != nil {
					errs <- err
					return
				}
				busy.Add(1)
				status, answer, err := s.tryPost(body)
				busy.Add(-1)
				if err != nil || status != http.StatusCreated {
					errs <- fmt.Errorf("writer %d entry %d: status %d %s %v", w, i, status, answer, err)
					return
				}
				tle := &rekorv1.TransparencyLogEntry{}
				if err := protojson.Unmarshal(answer, tle); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				acks = append(acks, ack{tle.GetLogIndex(), tle.GetCanonicalizedBody()})
				if len(acks) >= warm {
					once.Do(func() { close(warmed) })
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-warmed:
	case <-ctx.Done():
		t.Fatal("writers did not warm up")
	}
	mu.Lock()
	before := append([]ack(nil), acks...)
	mu.Unlock()
	backupDir := filepath.Join(work, "backup")
	busyAtStart := busy.Load()
	code, stdout, stderr := runQuire(t, work, "backup", "--data-dir", dataDir, "--out", backupDir)
	busyAtEnd := busy.Load()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s\n%s", code, stdout, stderr)
	}
	m := regexp.MustCompile(`backed up (\d+) entries \(latest checkpoint: size (\d+)\)`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("backup output does not say its size and its checkpoint's:\n%s", stdout)
	}
	backedUp, _ := strconv.ParseUint(m[1], 10, 64)
	// Writes were acknowledged, so proved against a checkpoint, before the backup began.
	if cpSize, _ := strconv.ParseUint(m[2], 10, 64); cpSize == 0 || cpSize > backedUp {
		t.Errorf("the backup's latest checkpoint has size %d; want one in [1, %d]", cpSize, backedUp)
	}
	s.stop()
	if busyAtStart == 0 || busyAtEnd == 0 {
		t.Errorf("%d writes were outstanding when the backup started and %d when it ended: it was not under load", busyAtStart, busyAtEnd)
	}

	restored := filepath.Join(work, "restored")
	if out, err := exec.Command("cp", "-a", backupDir, restored).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	r := startServe(t, work, "--data-dir", restored)
	deadline := time.Now().Add(30 * time.Second)
	size, _ := r.checkpointOf(t, vkey)
	for size < backedUp && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		size, _ = r.checkpointOf(t, vkey)
	}
	if size != backedUp {
		t.Fatalf("the restored log serves size %d, the backup holds %d", size, backedUp)
	}
	missing := 0
	for _, a := range before {
		status, body := r.get(fmt.Sprintf("/quire/v1/entries/%d", a.index))
		e := &quirev1.Entry{}
		if status != http.StatusOK || protojson.Unmarshal(body, e) != nil || !bytes.Equal(e.GetTransparencyLogEntry().GetCanonicalizedBody(), a.body) {
			missing++
		}
	}
	t.Logf("backup under load: %d writes acknowledged before the backup began, %d outstanding as it started and %d as it ended; backup holds %d entries; %d of the %d missing after restore",
		len(before), busyAtStart, busyAtEnd, backedUp, missing, len(before))
	if missing > 0 {
		t.Fatalf("%d acknowledged entries are missing from the restored log", missing)
	}
	if fi, err := os.Stat(filepath.Join(restored, keyFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the restored key file: %v", err)
	}
	status, body := r.post(hashedRekord(t, newECDSA(t), []byte("after the restore")))
	if status != http.StatusCreated {
		t.Fatalf("status %d: %s", status, body)
	}
	tle := &rekorv1.TransparencyLogEntry{}
	if err := protojson.Unmarshal(body, tle); err != nil || uint64(tle.GetLogIndex()) != backedUp {
		t.Fatalf("the first write after the restore got index %d, want %d (%v)", tle.GetLogIndex(), backedUp, err)
	}
	if got := fsckSize(ctx, t, r.baseURL, filepath.Join(restored, pubFileName)); got != backedUp+1 {
		t.Fatalf("fsck checked size %d, want %d", got, backedUp+1)
	}
	r.stop()
}

// TestFreezeAndReadOnlyMedia freezes a log, checks that it refuses writes for good, and serves it
// from read-only media: a read-only bind mount when running as root (who writes through file
// modes), a directory without write permission otherwise.
func TestFreezeAndReadOnlyMedia(t *testing.T) {
	work := t.TempDir()
	dataDir := filepath.Join(work, defaultDataDir)
	s := startServe(t, work)
	k := newECDSA(t)
	for i := range 5 {
		if status, body := s.post(hashedRekord(t, k, fmt.Appendf(nil, "before the freeze %d", i))); status != http.StatusCreated {
			t.Fatalf("status %d: %s", status, body)
		}
	}
	vkey, _ := readVerifier(t, dataDir)
	t.Run("freeze refuses while the log is served", func(t *testing.T) {
		if code, _, stderr := runQuire(t, work, "freeze", "--data-dir", dataDir); code == 0 || !strings.Contains(stderr, "stop it first") {
			t.Fatalf("exit %d: %s", code, stderr)
		}
	})
	s.stop()
	code, stdout, stderr := runQuire(t, work, "freeze", "--data-dir", dataDir)
	if code != 0 || !strings.Contains(stdout, "at size 5") {
		t.Fatalf("freeze: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, stderr := runQuire(t, work, "freeze", "--data-dir", dataDir); code == 0 || !strings.Contains(stderr, "already frozen") {
		t.Fatalf("a second freeze: exit %d: %s", code, stderr)
	}

	t.Run("a frozen log refuses writes even without --read-only and says it is frozen", func(t *testing.T) {
		f := startServe(t, work)
		if status, body := f.post(hashedRekord(t, k, []byte("after the freeze"))); status != http.StatusMethodNotAllowed {
			t.Fatalf("status %d, want 405: %s", status, body)
		}
		status, body := f.get("/quire/v1/status")
		var st struct {
			Frozen    bool    `json:"frozen"`
			FinalSize *uint64 `json:"finalSize"`
			ReadOnly  bool    `json:"readOnly"`
		}
		if err := json.Unmarshal(body, &st); status != http.StatusOK || err != nil {
			t.Fatalf("status %d %v: %s", status, err, body)
		}
		if !st.Frozen || !st.ReadOnly || st.FinalSize == nil || *st.FinalSize != 5 {
			t.Fatalf("status of a frozen log: %s", body)
		}
		if size, _ := f.checkpointOf(t, vkey); size != 5 {
			t.Fatalf("frozen log serves size %d", size)
		}
		f.stop()
	})

	t.Run("--read-only serves the frozen log from read-only media", func(t *testing.T) {
		media := filepath.Join(work, "media")
		var wrap []string
		if os.Geteuid() == 0 {
			if err := os.Mkdir(media, 0o755); err != nil {
				t.Fatal(err)
			}
			wrap = []string{"unshare", "-m", "sh", "-c", `mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" && shift 2 && exec "$@"`, "sh", dataDir, media}
		} else {
			media = dataDir
			if out, err := exec.Command("chmod", "-R", "a-w", dataDir).CombinedOutput(); err != nil {
				t.Fatalf("chmod: %v\n%s", err, out)
			}
			t.Cleanup(func() { _ = exec.Command("chmod", "-R", "u+w", dataDir).Run() })
		}
		ro := startServeWrapped(t, work, wrap, "--read-only", "--data-dir", media)
		if size, _ := ro.checkpointOf(t, vkey); size != 5 {
			t.Fatalf("read-only log serves size %d", size)
		}
		if status, body := ro.get("/quire/v1/entries/4"); status != http.StatusOK {
			t.Fatalf("entry 4: %d %s", status, body)
		}
		digest := sha256.Sum256([]byte("before the freeze 4"))
		status, body := ro.get("/quire/v1/search?digest=sha256:" + hex.EncodeToString(digest[:]))
		found := &quirev1.SearchResponse{}
		if status != http.StatusOK || protojson.Unmarshal(body, found) != nil || !slices.Equal(found.GetIndices(), []uint64{4}) {
			t.Fatalf("search on read-only media: %d %s", status, body)
		}
		if status, body := ro.post(hashedRekord(t, k, []byte("on read-only media"))); status != http.StatusMethodNotAllowed {
			t.Fatalf("status %d, want 405: %s", status, body)
		}
		if !strings.Contains(ro.stderr.String(), "frozen=true") {
			t.Errorf("the server does not say the log is frozen:\n%s", ro.stderr)
		}
		ro.stop()
	})
}

// TestTrustRootAppendRotatesShards runs three logs, makes a trusted root for the first, appends the
// second as a new shard with `quire trust-root --append`, and has sigstore-go verify bundles from
// both against the merged root, and refuse one from the third, which it does not list.
func TestTrustRootAppendRotatesShards(t *testing.T) {
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var logs [3]*serveProc
	var bundles [3]*sigstoreBundle
	artifact := []byte("one artifact, logged in three logs")
	for i := range logs {
		logs[i] = startServe(t, work, "--data-dir", filepath.Join(work, fmt.Sprint("log", i)))
		bundles[i] = sigstoreSign(ctx, t, logs[i].baseURL, artifact)
	}
	trust := filepath.Join(work, "trust")
	if code, _, stderr := runQuire(t, work, "trust-root", "--url", logs[0].baseURL, "--data-dir", filepath.Join(work, "log0"), "--out", trust, "--valid-from", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)); code != 0 {
		t.Fatalf("trust-root: %s", stderr)
	}
	if code, _, stderr := runQuire(t, work, "trust-root", "--url", logs[1].baseURL, "--data-dir", filepath.Join(work, "log1"), "--append", trust); code != 0 {
		t.Fatalf("trust-root --append: %s", stderr)
	}
	tr, err := root.NewTrustedRootFromPath(filepath.Join(trust, trustedRootFile))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tr.RekorLogs()); n != 2 {
		t.Fatalf("merged trusted root has %d logs, want 2", n)
	}
	for _, l := range tr.RekorLogs() {
		if ended := !l.ValidityPeriodEnd.IsZero(); ended != (l.BaseURL == logs[0].baseURL) {
			t.Errorf("%s: validity ends %v; only the first shard's should", l.BaseURL, l.ValidityPeriodEnd)
		}
	}
	sc, err := root.NewSigningConfigFromPath(filepath.Join(trust, signingConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	picked, err := root.SelectServices(sc.RekorLogURLs(), sc.RekorLogURLsConfig(), []uint32{2}, time.Now().Add(time.Minute))
	if err != nil || len(picked) != 1 || picked[0].URL != logs[1].baseURL {
		t.Fatalf("signers are sent to %v (%v), want only the new shard %s", picked, err, logs[1].baseURL)
	}
	for i, want := range []bool{true, true, false} {
		err := bundles[i].verify(tr, artifact)
		if (err == nil) != want {
			t.Errorf("bundle from log %d: verification error %v, want success %t", i, err, want)
		}
	}
	if code, _, stderr := runQuire(t, work, "trust-root", "--url", logs[1].baseURL, "--data-dir", filepath.Join(work, "log1"), "--append", trust); code == 0 || !strings.Contains(stderr, "already has the log") {
		t.Errorf("appending the same log twice: exit %d: %s", code, stderr)
	}
	for _, l := range logs {
		l.stop()
	}
}

// TestImportARekorTilesStyleLog imports the storage directory rekor-tiles' POSIX server writes:
// Tessera's POSIX driver with checkpoints signed by rekor-tiles' own note signer (pkg/note) over an
// ECDSA P-256 PEM key made by openssl, named by its PEM public key and origin as a rekor-tiles
// operator holds them; then continues it with `quire serve --key` on the same PEM file.
func TestImportARekorTilesStyleLog(t *testing.T) {
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	keyPath, pubPath := filepath.Join(work, "rekor.pem"), filepath.Join(work, "rekor.pub.pem")
	openssl(t, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", keyPath)
	openssl(t, "pkey", "-in", keyPath, "-pubout", "-out", pubPath)
	if err := os.Chmod(keyPath, 0o600); err != nil {
		t.Fatal(err)
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey([]byte(mustRead(t, keyPath)), nil)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadDefaultSignerVerifier(priv)
	if err != nil {
		t.Fatal(err)
	}
	// What rekor-tiles' POSIX server does with --signer-filepath and --hostname.
	signer, err := rekornote.NewNoteSigner(ctx, "127.0.0.1", sv)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := rekornote.NewNoteVerifier("127.0.0.1", sv)
	if err != nil {
		t.Fatal(err)
	}
	storageDir := filepath.Join(work, "rekor-tiles-storage")
	src, err := testlog.OpenSigned(ctx, storageDir, signer, verifier)
	if err != nil {
		t.Fatal(err)
	}
	k := newECDSA(t)
	var entries [][]byte
	for i := range 300 {
		entries = append(entries, hashedRekord(t, k, fmt.Appendf(nil, "logged by rekor-tiles %d", i)))
	}
	if err := src.Add(ctx, entries); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(ctx); err != nil {
		t.Fatal(err)
	}
	source := openCheckpoint(t, verifier, []byte(mustRead(t, filepath.Join(storageDir, "checkpoint"))))

	dataDir := filepath.Join(work, "imported")
	if code, stdout, stderr := runQuire(t, work, "import", "--from", storageDir, "--log-key", pubPath, "--origin", "127.0.0.1", "--data-dir", dataDir); code != 0 {
		t.Fatalf("import: exit %d\n%s\n%s", code, stdout, stderr)
	}
	s := startServe(t, work, "--data-dir", dataDir, "--key", keyPath)
	if status, body := s.post(hashedRekord(t, k, []byte("logged by quire"))); status != http.StatusCreated {
		t.Fatalf("status %d: %s", status, body)
	}
	_, raw := s.get("/checkpoint")
	next := openCheckpoint(t, verifier, raw)
	status, body := s.get(fmt.Sprintf("/quire/v1/proof/consistency?first=%d&second=%d", source.Size, next.Size))
	p := &quirev1.ConsistencyProof{}
	if status != http.StatusOK || protojson.Unmarshal(body, p) != nil {
		t.Fatalf("consistency proof: %d %s", status, body)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, source.Size, next.Size, p.GetHashes(), source.Hash, next.Hash); err != nil {
		t.Fatalf("quire's checkpoint (checked with rekor-tiles' verifier) is not consistent with the imported one: %v", err)
	}
	s.stop()
}
