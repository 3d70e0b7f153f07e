package grid_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/testgrid"
)

func TestRoundTrip(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	conv, _ := newClient(t, g, nil)
	rnd, _ := newClient(t, g, func(c *grid.Config) { c.Convergence = nil })
	cases := []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"one byte", 1},
		{"literal limit", cap.LiteralMax},
		{"literal limit plus one", cap.LiteralMax + 1},
		{"segment minus one", seg - 1},
		{"one segment", seg},
		{"segment plus one", seg + 1},
		{"multi segment 20 MiB (4 MiB under -race)", map[bool]int{false: 20 << 20, true: 4 << 20}[raceEnabled]},
	}
	for _, tc := range cases {
		for _, mode := range []struct {
			name string
			c    *grid.Client
			size func(n int) int64
		}{
			{"convergent", conv, func(n int) int64 { return int64(n) }},
			{"random key streamed", rnd, func(n int) int64 { return int64(n) }},
			{"unknown size", rnd, func(int) int64 { return -1 }},
		} {
			t.Run(tc.name+"/"+mode.name, func(t *testing.T) {
				if tc.size > 1<<20 && mode.name == "unknown size" {
					t.Skip("covered by the smaller sizes")
				}
				data := random(tc.size)
				before := g.Counts()
				cp, err := mode.c.Upload(ctxFor(t, time.Minute), bytes.NewReader(data), mode.size(tc.size), nil)
				if err != nil {
					t.Fatal(err)
				}
				if tc.size <= cap.LiteralMax {
					if cp.Kind() != cap.KindLiteral {
						t.Fatalf("%d bytes gave a %s cap, want lit", tc.size, cp.Kind())
					}
					if after := g.Counts(); after != before {
						t.Fatalf("a literal upload touched the servers: %+v -> %+v", before, after)
					}
				} else {
					v := chkOf(t, cp)
					if v.Size != int64(tc.size) || v.K != 3 || v.N != 5 {
						t.Fatalf("cap says size %d K %d N %d", v.Size, v.K, v.N)
					}
					h := g.Holders(v.StorageIndex())
					if len(h) != 5 {
						t.Fatalf("shares placed: %v, want all 5", h)
					}
				}
				parsed, err := cap.Parse(cp.String())
				if err != nil {
					t.Fatal(err)
				}
				download(t, mode.c, parsed, data)
			})
		}
	}
}
