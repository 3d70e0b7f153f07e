package grid

import (
	"reflect"
	"testing"
)

// TestLeaveOut: an upload leaves out hung and full servers while H others
// remain, the hung alone when only that leaves H, else nobody.
func TestLeaveOut(t *testing.T) {
	set := func(is ...int) map[int]bool {
		if len(is) == 0 {
			return nil
		}
		m := map[int]bool{}
		for _, i := range is {
			m[i] = true
		}
		return m
	}
	cases := []struct {
		name       string
		n, h       int
		hung, full map[int]bool
		gone       []int
		want       map[int]bool
	}{
		{"nothing to leave out", 5, 4, nil, nil, nil, nil},
		{"full only", 5, 4, nil, set(2), nil, set(2)},
		{"hung and full", 6, 4, set(0), set(3), nil, set(0, 3)},
		{"both too many: hung alone", 5, 4, set(0), set(3), nil, set(0)},
		{"hung too many: none", 5, 4, set(0, 1), nil, nil, nil},
		{"gone servers count against", 5, 4, nil, set(2), []int{4}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gone := func(i int) bool {
				for _, g := range tc.gone {
					if g == i {
						return true
					}
				}
				return false
			}
			if got := leaveOut(tc.n, tc.h, tc.hung, tc.full, gone); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("leaveOut = %v, want %v", got, tc.want)
			}
		})
	}
}
