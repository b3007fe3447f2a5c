package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestParseKeys(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "log.example.com")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		text    string
		signer  bool
		wantErr bool
	}{
		{name: "a generated signer key parses and yields its verifier key", text: skey, signer: true},
		{name: "a generated verifier key parses", text: vkey},
		{name: "a signer key with a wrong hash is refused", text: skey[:len("PRIVATE+KEY+log.example.com+")] + "00000000" + skey[len("PRIVATE+KEY+log.example.com+00000000"):], signer: true, wantErr: true},
		{name: "a truncated signer key is refused", text: skey[:len(skey)-4], signer: true, wantErr: true},
		{name: "a verifier key for a non-Ed25519 type is refused", text: "log.example.com+12345678+AgAAAA==", wantErr: true},
		{name: "an empty text is refused", text: "", signer: true, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var k *logKey
			var err error
			if tc.signer {
				k, err = parseSignerKey(tc.text)
			} else {
				k, err = parseVerifierKey(tc.text)
			}
			if tc.wantErr {
				if err == nil {
					t.Fatal("accepted")
				}
				if tc.text != "" && strings.Contains(err.Error(), tc.text) {
					t.Errorf("error %q repeats the key text", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if pub, ok := k.public.(ed25519.PublicKey); k.vkey != vkey || k.origin != "log.example.com" || !ok || len(pub) != ed25519.PublicKeySize {
				t.Errorf("got origin %q vkey %q, want %q", k.origin, k.vkey, vkey)
			}
		})
	}
}

// FuzzParseSignerKey checks that no input crashes the key parsers, that an accepted signer key's
// derived verifier verifies what the signer signs, and that errors never echo the key text.
func FuzzParseSignerKey(f *testing.F) {
	seeds, err := os.ReadFile(filepath.Join("testdata", "keys.txt"))
	if err != nil {
		f.Fatal(err)
	}
	for _, line := range strings.Split(string(seeds), "\n") {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, text string) {
		k, err := parseSignerKey(text)
		if err != nil {
			if len(text) > 16 && strings.Contains(err.Error(), text) {
				t.Fatalf("error echoes the key text")
			}
		} else {
			n, err := note.Sign(&note.Note{Text: "hello\n"}, k.signer)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := note.Open(n, note.VerifierList(k.verifier)); err != nil {
				t.Fatalf("derived verifier rejects the signer's note: %v", err)
			}
		}
		if k, err := parseVerifierKey(text); err == nil && k.public == nil {
			t.Fatalf("accepted a verifier key without a public key")
		}
	})
}

// secretForms are the spellings of a signer key's secret that must never reach a log, an error or
// an answer: the key line, its base64 part, the bare seed in base64, base64url and hex, and the
// 64-byte Ed25519 private key in base64.
func secretForms(t *testing.T, keyFile string) []string {
	t.Helper()
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(b))
	// The base64 part may itself hold '+'.
	parts := strings.SplitN(line, "+", 5)
	if len(parts) != 5 {
		t.Fatalf("key file does not hold a PRIVATE+KEY+name+hash+base64 line")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize {
		t.Fatalf("key's base64 part does not decode to a type byte and a seed: %v", err)
	}
	seed := raw[1:]
	return []string{
		line,
		parts[4],
		base64.StdEncoding.EncodeToString(seed),
		base64.RawStdEncoding.EncodeToString(seed),
		base64.RawURLEncoding.EncodeToString(seed),
		hex.EncodeToString(seed),
		base64.StdEncoding.EncodeToString(ed25519.NewKeyFromSeed(seed)),
	}
}

// leaks reports which secret form appears in text, including any 16-character stretch of the
// key's base64, so a key cut short or mangled in an error still counts.
func leaks(text string, secrets []string) string {
	for _, s := range secrets {
		if strings.Contains(text, s) {
			return s
		}
	}
	b64 := secrets[1]
	for i := 0; i+16 <= len(b64); i++ {
		if strings.Contains(text, b64[i:i+16]) {
			return b64[i : i+16]
		}
	}
	return ""
}

func keygenInto(t *testing.T, dir, origin string) string {
	t.Helper()
	if code, _, stderr := runQuire(t, dir, "keygen", "--origin", origin, "--out", "keys"); code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, stderr)
	}
	return filepath.Join(dir, "keys", keyFileName)
}

func TestServeRefusesKeyFilesOthersCanReach(t *testing.T) {
	tests := []struct {
		name    string
		mode    os.FileMode
		symlink bool
	}{
		{name: "a key readable by its group is refused", mode: 0o640},
		{name: "a key readable by others is refused", mode: 0o604},
		{name: "a world-readable key is refused", mode: 0o644},
		{name: "a key writable by its group is refused", mode: 0o620},
		{name: "a key open to everyone is refused", mode: 0o666},
		{name: "a private symlink to a world-readable key is refused", mode: 0o644, symlink: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			key := keygenInto(t, dir, "log.example")
			secrets := secretForms(t, key)
			if err := os.Chmod(key, tc.mode); err != nil {
				t.Fatal(err)
			}
			arg := key
			if tc.symlink {
				arg = filepath.Join(dir, "link.key")
				if err := os.Symlink(key, arg); err != nil {
					t.Fatal(err)
				}
			}
			code, stdout, stderr := runQuire(t, dir, "serve", "--key", arg, "--origin", "log.example", "--data-dir", "data",
				"--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0")
			if code == 0 {
				t.Fatal("serve started with the key")
			}
			for _, want := range []string{"must not be readable by group or others", fmt.Sprintf("%04o", tc.mode), "chmod 600"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr does not say %q:\n%s", want, stderr)
				}
			}
			if s := leaks(stdout+stderr, secrets); s != "" {
				t.Errorf("output contains key material %q", s)
			}
			if _, err := os.Stat(filepath.Join(dir, "data", logDBDir)); err == nil {
				t.Errorf("serve opened storage before refusing the key")
			}
		})
	}
}

func TestKeyFilesAreWrittenOwnerOnly(t *testing.T) {
	// A umask of 0 would leave a carelessly created file world-readable; the key must not be.
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })

	t.Run("keygen writes a 0600 key in a 0700 directory even with umask 0", func(t *testing.T) {
		dir := t.TempDir()
		key := keygenInto(t, dir, "log.example")
		checkMode(t, key, 0o600)
		checkMode(t, filepath.Dir(key), 0o700)
		checkMode(t, filepath.Join(dir, "keys", pubFileName), 0o644)
	})
	t.Run("serve creates a 0600 key in a 0700 data directory even with umask 0", func(t *testing.T) {
		dir := t.TempDir()
		s := startServe(t, dir)
		s.stop()
		checkMode(t, filepath.Join(dir, defaultDataDir, keyFileName), 0o600)
		checkMode(t, filepath.Join(dir, defaultDataDir), 0o700)
	})
	t.Run("a key only its owner can read is accepted", func(t *testing.T) {
		dir := t.TempDir()
		key := keygenInto(t, dir, "log.example")
		if err := os.Chmod(key, 0o400); err != nil {
			t.Fatal(err)
		}
		s := startServe(t, dir, "--key", key, "--origin", "log.example")
		s.stop()
	})
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %04o, want %04o", filepath.Base(path), got, want)
	}
}

// TestKeyMaterialNeverLeaks runs the real binary through a serving life (start, good and bad
// requests, every read a client can make, shutdown) and through each way a key file can be wrong,
// and looks for the secret in everything it printed and served.
func TestKeyMaterialNeverLeaks(t *testing.T) {
	dir := t.TempDir()
	key := keygenInto(t, dir, "127.0.0.1")
	secrets := secretForms(t, key)

	t.Run("a serving log neither logs nor serves its key", func(t *testing.T) {
		s := startServe(t, dir, "--key", key, "--data-dir", "data")
		k := newECDSA(t)
		var served strings.Builder
		if status, body := s.post(hashedRekord(t, k, []byte("leak check"))); status != http.StatusCreated {
			t.Fatalf("status %d: %s", status, body)
		} else {
			served.Write(body)
		}
		for _, bad := range [][]byte{[]byte(`{"hashedRekordRequestV002":`), []byte(`{"bogus":1}`), hashedRekord(t, k, []byte("leak check"))} {
			_, body := s.post(bad)
			served.Write(body)
		}
		for _, path := range []string{"/checkpoint", "/healthz", "/metrics", "/tile/0/000.p/1", "/tile/entries/000.p/1",
			"/quire/v1/entries/0", "/quire/v1/checkpoints?size=1", "/quire/v1/nothing", "/tile/0/../../log.key", "/log.key", "/data/log.key"} {
			status, body := s.get(path)
			if path == "/log.key" || path == "/data/log.key" {
				if status != http.StatusNotFound {
					t.Errorf("GET %s: status %d, want 404", path, status)
				}
			}
			served.Write(body)
		}
		if status, body := get(t, s.metricsURL+"/metrics"); status != http.StatusOK {
			t.Errorf("GET /metrics on the metrics listener: status %d", status)
		} else {
			served.Write(body)
		}
		s.stop()
		if l := leaks(s.stderr.String(), secrets); l != "" {
			t.Errorf("the server's log contains key material %q", l)
		}
		if l := leaks(served.String(), secrets); l != "" {
			t.Errorf("an answer contains key material %q", l)
		}
		code, stdout, stderr := runQuire(t, dir, "trust-root", "--key", key, "--url", "http://127.0.0.1")
		if code != 0 {
			t.Fatalf("trust-root: exit %d: %s", code, stderr)
		}
		if l := leaks(stdout+stderr, secrets); l != "" {
			t.Errorf("trust-root printed key material %q", l)
		}
	})

	b, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(b))
	flip := []byte(line)
	flip[len(flip)-3] ^= 0x01
	broken := []struct {
		name string
		text string
		want string
	}{
		{name: "a key with one character changed is refused without echoing it", text: string(flip), want: "not a note signer key"},
		{name: "a truncated key is refused without echoing it", text: line[:len(line)-10], want: "not a note signer key"},
		{name: "a key with its hash altered is refused without echoing it", text: strings.Replace(line, strings.SplitN(line, "+", 5)[3], "00000000", 1), want: "not a note signer key"},
		{name: "a key followed by a second line is refused without echoing it", text: line + "\n" + line, want: "not a note signer key"},
		{name: "a key for another origin is refused without echoing it", text: line, want: "key's origin is"},
	}
	for _, tc := range broken {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			path := filepath.Join(d, keyFileName)
			if err := os.WriteFile(path, []byte(tc.text+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runQuire(t, d, "serve", "--key", path, "--origin", "other.example", "--data-dir", "data",
				"--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0")
			if code == 0 {
				t.Fatal("serve started")
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr does not say %q:\n%s", tc.want, stderr)
			}
			if l := leaks(stdout+stderr, secrets); l != "" {
				t.Errorf("the error contains key material %q:\n%s", l, stderr)
			}
		})
	}
}
