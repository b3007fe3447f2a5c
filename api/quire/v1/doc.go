// Package quirev1 is the generated Go code for the quire.v1.Log gRPC service
// (proto/quire/v1/log.proto) and its REST mapping under /quire/v1/ through
// grpc-gateway: entries by index, RFC 6962 / RFC 9162 inclusion and
// consistency proofs, search by artifact digest, signing key and certificate identity, and past
// signed checkpoints.
// Responses reuse protobuf-specs' dev.sigstore.rekor.v1 types. The OpenAPI v2
// document is api/openapi/quire/v1/log.swagger.json. Regenerate everything
// with scripts/gen-proto; only doc.go and the tests are written by hand.
package quirev1
