package setsum

import (
	"fmt"
	"testing"
)

func TestSum(t *testing.T) {
	records := [][2]string{{"a", "1"}, {"b", "2"}, {"c", "3"}, {"a", "1"}}
	add := func(s *Sum, order []int, recs [][2]string) {
		for _, i := range order {
			s.Add([]byte(recs[i][0]), []byte(recs[i][1]))
		}
	}
	var forward, backward Sum
	add(&forward, []int{0, 1, 2, 3}, records)
	add(&backward, []int{3, 2, 1, 0}, records)
	if !forward.Equal(&backward) || forward.Count() != 4 {
		t.Fatalf("the same records in another order differ")
	}
	for _, tc := range []struct {
		name  string
		order []int
		recs  [][2]string
	}{
		{"a changed record", []int{0, 1, 2, 3}, [][2]string{{"a", "1"}, {"b", "2"}, {"c", "4"}, {"a", "1"}}},
		{"a missing record", []int{0, 1, 2}, records},
		{"an extra copy of a record", []int{0, 1, 2, 3, 3}, records},
		{"parts split elsewhere", []int{0, 1, 2, 3}, [][2]string{{"a1", ""}, {"b", "2"}, {"c", "3"}, {"a", "1"}}},
	} {
		t.Run(fmt.Sprint(tc.name, " changes the sum"), func(t *testing.T) {
			var s Sum
			add(&s, tc.order, tc.recs)
			if s.Equal(&forward) {
				t.Error("the sums are equal")
			}
		})
	}
}
