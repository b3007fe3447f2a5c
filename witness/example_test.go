package witness_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/quirelog/quire/witness"
)

// A witness for one log: the log's first checkpoint is cosigned, and a
// second request that still claims old size 0 gets 409 with the size the
// witness recorded. Keys come from fixed bytes and the clock is fixed, so the
// output is reproducible; real deployments use crypto/rand and time.Now.
func Example() {
	dir, err := os.MkdirTemp("", "witness-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	logSkey, logVkey, _ := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{1}, 32)), "example.com/log")
	logSigner, _ := note.NewSigner(logSkey)
	wSkey, wVkey, _ := witness.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{2}, 32)), "witness.example/w")
	cosigner, _ := witness.NewCosigner(wSkey, func() time.Time { return time.Unix(1700000000, 0) })
	l, _ := witness.ParseLog(logVkey)

	w, err := witness.New(witness.Config{Path: dir, Signer: cosigner, Logs: []witness.Log{l}})
	if err != nil {
		panic(err)
	}
	defer w.Close()

	root := rfc6962.DefaultHasher.HashLeaf([]byte("first entry"))
	cp, _ := note.Sign(&note.Note{Text: string(log.Checkpoint{Origin: "example.com/log", Size: 1, Hash: root}.Marshal())}, logSigner)

	cosig, err := w.AddCheckpoint(context.Background(), (&witness.Request{OldSize: 0, Checkpoint: cp}).Marshal())
	fmt.Println("witness key:", wVkey)
	fmt.Printf("cosignature: %s", cosig)
	fmt.Println("error:", err)

	_, err = w.AddCheckpoint(context.Background(), (&witness.Request{OldSize: 0, Checkpoint: cp}).Marshal())
	fmt.Println("status:", witness.StatusOf(err))
	fmt.Println("error:", err)
	// Output:
	// witness key: witness.example/w+cb1393dc+BIE5dw6ofRdfVqNUZsNMfszLjYqRtO43ol32D1uPybOU
	// cosignature: — witness.example/w yxOT3AAAAABlU/EAlrmDManSnmTIg85HAW0ow5F4xlicQGSnStClqJgbMfmR491B3/hxEkOPyDtYwNNSWHp2Gkqu4qkwjgtrCKmXDQ==
	// error: <nil>
	// status: 409
	// error: 409 Conflict: old size 0 is not the latest cosigned size 1
}
