package main

// The KMS providers sigstore/sigstore ships register themselves for their URI schemes (awskms://,
// gcpkms://, azurekms://, hashivault://) when linked, as rekor-tiles links each for its own
// cloud; --kms then reaches any of them through kms.Get.
import (
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/azure"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
)
