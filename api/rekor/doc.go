// Package rekor holds the Rekor v2 and Sigstore formats that both the log and its clients need, so
// that the two sides cannot drift apart: the canonical entry body (its construction and parsing,
// kind and version), the table of accepted key details and artifact digest algorithms, the log ID
// of a checkpoint key, and the TrustedRoot and SigningConfig that describe a log to Sigstore
// clients. It imports neither the log personality nor the client.
//
// Specs: the Rekor v2 API as rekor-tiles v2.3.0 implements it (the entry in
// internal/server/service.go, key details in internal/algorithmregistry, the log ID in pkg/note);
// RFC 8785 (JCS) for the canonical body; protobuf-specs v0.5 (dev.sigstore.common.v1,
// dev.sigstore.rekor.v1, dev.sigstore.trustroot.v1) for the messages; C2SP signed-note for key
// hashes. TestHashedRekordBodyMatchesRekorTiles checks the canonical body against vectors made by
// rekor-tiles' own code, TestKeyIDMatchesRekorTiles the log ID, and
// TestTrustMaterialIsAcceptedBySigstoreGo the trust material against sigstore-go.
package rekor
