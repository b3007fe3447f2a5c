package pebble

import (
	"bytes"
	"testing"
)

func TestEdgeCacheStaysWithinItsBudget(t *testing.T) {
	for _, tc := range []struct {
		name    string
		limit   int64
		puts    []int // value sizes, keyed by position
		touch   int   // key read before the last put, so it survives eviction; -1 for none
		present []int
		absent  []int
	}{
		{name: "everything fits", limit: 100, puts: []int{10, 20, 30}, touch: -1, present: []int{0, 1, 2}},
		{name: "the oldest goes first", limit: 50, puts: []int{20, 20, 20}, touch: -1, present: []int{1, 2}, absent: []int{0}},
		{name: "a recently read value survives", limit: 50, puts: []int{20, 20, 20}, touch: 0, present: []int{0, 2}, absent: []int{1}},
		{name: "a value over the budget is not kept", limit: 50, puts: []int{10, 60}, touch: -1, present: []int{0}, absent: []int{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newEdgeCache(tc.limit)
			for i, n := range tc.puts {
				if i == len(tc.puts)-1 && tc.touch >= 0 {
					c.get(cacheKey{index: uint64(tc.touch)})
				}
				c.put(cacheKey{index: uint64(i)}, bytes.Repeat([]byte{byte(i)}, n))
			}
			if c.used > tc.limit {
				t.Fatalf("cache holds %d bytes, budget %d", c.used, tc.limit)
			}
			for _, i := range tc.present {
				if v, ok := c.get(cacheKey{index: uint64(i)}); !ok || len(v) != tc.puts[i] {
					t.Errorf("key %d missing or wrong (%d bytes, %v)", i, len(v), ok)
				}
			}
			for _, i := range tc.absent {
				if _, ok := c.get(cacheKey{index: uint64(i)}); ok {
					t.Errorf("key %d still cached", i)
				}
			}
		})
	}
}
