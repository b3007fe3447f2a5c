//go:build !unix

package loadgen

import "time"

// processCPU is not measured outside Unix; reports then leave the generator's CPU at zero.
func processCPU() (time.Duration, bool) { return 0, false }
