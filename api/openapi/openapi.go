// Package openapi holds the OpenAPI (Swagger 2.0) documents of the APIs Quire serves, generated
// by scripts/gen-proto from the .proto files, embedded so the server can serve them.
package openapi

import "embed"

// Documents are the documents by their path under this folder: quire/v1/log.swagger.json (the
// quire.v1.Log reads) and rekor/v2/rekor_service.swagger.json (the Rekor v2 service).
//
//go:embed quire/v1/log.swagger.json rekor/v2/rekor_service.swagger.json
var Documents embed.FS
