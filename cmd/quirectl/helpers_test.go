package main

import (
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

func witnessKey(t *testing.T) (skey, cosigVKey string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "witness.test")
	if err != nil {
		t.Fatal(err)
	}
	cosigVKey, err = fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return skey, cosigVKey
}

func httptestServeDir(dir string) *httptest.Server {
	return httptest.NewServer(http.FileServer(http.Dir(dir)))
}
