package placement_test

import (
	"math"
	"reflect"
	"testing"

	"github.com/tarnfs/tarn/host/placement"
)

func TestRoomTooSmall(t *testing.T) {
	cases := []struct {
		name string
		room placement.Room
		need int64
		want bool
	}{
		{"unknown zero has room", placement.Room{}, 100, false},
		{"unknown small has room", placement.Room{Free: 1}, 100, false},
		{"announced full", placement.Room{Known: true}, 0, true},
		{"announced full, size known", placement.Room{Known: true}, 100, true},
		{"below the share size", placement.Room{Free: 99, Known: true}, 100, true},
		{"exactly the share size", placement.Room{Free: 100, Known: true}, 100, false},
		{"size unknown, some room", placement.Room{Free: 1, Known: true}, 0, false},
		{"negative size taken as unknown", placement.Room{Free: 1, Known: true}, -5, false},
		{"announced unknown (the largest figure)", placement.Room{Free: math.MaxUint64, Known: true}, math.MaxInt64, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.room.TooSmall(tc.need); got != tc.want {
				t.Errorf("%+v.TooSmall(%d) = %v, want %v", tc.room, tc.need, got, tc.want)
			}
		})
	}
}

func TestRoomless(t *testing.T) {
	full := placement.Room{Known: true}
	room := placement.Room{Free: 1 << 30, Known: true}
	unknown := placement.Room{}
	cases := []struct {
		name  string
		rooms []placement.Room
		need  int64
		h     int
		want  map[int]bool
	}{
		{"none full", []placement.Room{room, room, unknown}, 10, 2, nil},
		{"one full left out", []placement.Room{room, full, room, unknown}, 10, 3, map[int]bool{1: true}},
		{"too small for the share", []placement.Room{room, {Free: 5, Known: true}, room}, 10, 2, map[int]bool{1: true}},
		{"too few left: none left out", []placement.Room{full, full, room, room}, 10, 3, nil},
		{"just enough left", []placement.Room{full, full, room, room}, 10, 2, map[int]bool{0: true, 1: true}},
		{"empty ring", nil, 10, 0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := placement.Roomless(tc.rooms, tc.need, tc.h); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Roomless = %v, want %v", got, tc.want)
			}
		})
	}
}
