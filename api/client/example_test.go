package client_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/quirelog/quire/api/client"
)

// A signer submits an artifact digest and tells a duplicate from other failures.
func Example() {
	// A stand-in for a log that already holds the entry, answering as rekor-tiles does.
	logSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set(client.LogIndexHeader, "41")
		w.WriteHeader(http.StatusConflict)
		fmt.Fprint(w, `{"code":6,"message":"an equivalent entry already exists in the transparency log with index 41","details":[]}`)
	}))
	defer logSrv.Close()

	signer, err := client.GenerateKey(client.KeyECDSAP256)
	if err != nil {
		log.Fatal(err)
	}
	digest := sha256.Sum256([]byte("release.tar.gz contents"))
	req, err := client.NewHashedRekordRequest(signer, digest[:])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(req.GetHashedRekordRequestV002().GetSignature().GetVerifier().GetKeyDetails())

	c, err := client.New(logSrv.URL)
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.CreateEntry(context.Background(), req)
	var dup *client.DuplicateError
	if errors.As(err, &dup) {
		fmt.Println("already logged at index", dup.Index)
	}
	// Output:
	// PKIX_ECDSA_P256_SHA_256
	// already logged at index 41
}
