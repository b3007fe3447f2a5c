package loadgen

import (
	"testing"

	"github.com/quirelog/quire/api/client"
)

func BenchmarkGeneratorSign(b *testing.B) {
	for _, kt := range []client.KeyType{client.KeyECDSAP256, client.KeyEd25519ph} {
		b.Run(string(kt), func(b *testing.B) {
			g, err := NewGenerator(kt, 1)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := g.Sign(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
