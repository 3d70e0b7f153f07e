package grid_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/placement"
	"github.com/tarnfs/tarn/host/testgrid"
)

// hungTimeout is the server timeout of the tests of uploads with servers
// frozen before they start: long, so that waiting for a frozen server
// shows; an upload that routes around it takes one grace (about 1 s).
const hungTimeout = 10 * time.Second

// liveHappiness is the happiness of the shares of si held by servers
// other than those in frozen.
func liveHappiness(g *testgrid.Grid, si cap.StorageIndex, frozen ...int) int {
	holders := map[int][]string{}
	for sh, srvs := range g.Holders(si) {
		for _, i := range srvs {
			skip := false
			for _, f := range frozen {
				skip = skip || i == f
			}
			if !skip {
				holders[sh] = append(holders[sh], g.Servers[i].NodeID)
			}
		}
	}
	return placement.Happiness(holders)
}

// TestUploadAroundServerFrozenBefore: with one of 5 servers frozen before
// the upload starts (server timeout 10 s), small (one-call path) and big
// (survey) uploads, convergent and random-key, with links to every server
// already up or none yet, finish within half the timeout, with happiness
// met on the live servers and the bytes read back; the next upload does
// not even wait a grace (the client remembers the server as hung).
func TestUploadAroundServerFrozenBefore(t *testing.T) {
	conv := []byte("hung convergence")
	cases := []struct {
		name string
		conv []byte
		size int
		warm bool // links to every server dialed before the freeze
	}{
		{"small convergent", conv, 4 << 10, true},
		{"small random key", nil, 4 << 10, true},
		{"big convergent", conv, 20*seg + 123, true},
		{"big random key", nil, 20*seg + 123, true},
		{"small convergent, no links yet", conv, 4 << 10, false},
		{"big random key, no links yet", nil, 20 * seg, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := testgrid.New(t, 5, nil)
			c, logs := newClient(t, g, func(cfg *grid.Config) {
				cfg.Convergence = tc.conv
				cfg.ServerTimeout = hungTimeout
			})
			t.Cleanup(func() {
				if t.Failed() {
					t.Log(logs)
				}
			})
			if tc.warm {
				upload(t, c, random(4<<10))
			}
			const frozen = 2
			g.Servers[frozen].Freeze()
			t.Cleanup(g.Servers[frozen].Thaw)
			for n := range 2 {
				data := random(tc.size)
				start := time.Now()
				cp, err := c.Upload(ctxFor(t, time.Minute), bytes.NewReader(data), int64(len(data)), nil)
				elapsed := time.Since(start)
				if err != nil {
					t.Fatalf("upload %d with a server frozen before it: %v", n, err)
				}
				if elapsed > hungTimeout/2 {
					t.Errorf("upload %d took %s with a server frozen before it, want < %s (server timeout %s)", n, elapsed, hungTimeout/2, hungTimeout)
				}
				si := chkOf(t, cp).StorageIndex()
				if h := liveHappiness(g, si, frozen); h < 4 {
					t.Errorf("upload %d: happiness %d on the live servers, want 4", n, h)
				}
				t.Logf("upload %d of %d bytes with a server frozen: %s", n, tc.size, elapsed.Round(time.Millisecond))
				download(t, c, cp, data)
			}
			if !strings.Contains(logs.String(), "skipped servers that hung lately") {
				t.Errorf("the second upload asked the frozen server again; log:\n%s", logs)
			}
		})
	}
}

// TestUploadTwoFrozenNotHappy: with 2 of 5 servers frozen and H=4, an
// upload cannot be happy; it fails with ErrNotHappy after about one
// server timeout (it waits for the frozen ones, as they are needed), not
// two, on the one-call path and on the survey's.
func TestUploadTwoFrozenNotHappy(t *testing.T) {
	cases := []struct {
		name string
		size int
		warm bool
	}{
		{"small, links up", 4 << 10, true},
		{"big, no links yet", 20*seg + 5, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := testgrid.New(t, 5, nil)
			c, logs := newClient(t, g, func(cfg *grid.Config) { cfg.ServerTimeout = hungTimeout })
			if tc.warm {
				upload(t, c, random(4<<10))
			}
			for _, i := range []int{1, 3} {
				g.Servers[i].Freeze()
				t.Cleanup(g.Servers[i].Thaw)
			}
			data := random(tc.size)
			start := time.Now()
			cp, err := c.Upload(ctxFor(t, time.Minute), bytes.NewReader(data), int64(len(data)), nil)
			elapsed := time.Since(start)
			switch {
			case err == nil:
				// Only possible if happiness was met on the live servers.
				if h := liveHappiness(g, chkOf(t, cp).StorageIndex(), 1, 3); h < 4 {
					t.Fatalf("upload succeeded with happiness %d on the live servers", h)
				}
			case !errors.Is(err, grid.ErrNotHappy):
				t.Fatalf("upload with 2 of 5 frozen: %v, want ErrNotHappy\n%s", err, logs)
			}
			if limit := hungTimeout + hungTimeout/2; elapsed > limit {
				t.Errorf("upload with 2 of 5 frozen took %s, want at most %s (one server timeout and slack)", elapsed, limit)
			}
			t.Logf("upload with 2 of 5 frozen: %s: %v", elapsed.Round(time.Millisecond), err)
		})
	}
}

// TestUploadUsesThawedServer: a server frozen before an upload is left out
// of it and of the uploads in the next server timeout; once thawed and
// that timeout past, uploads place shares on it again.
func TestUploadUsesThawedServer(t *testing.T) {
	for _, size := range []int{4 << 10, 20*seg + 7} {
		t.Run(map[bool]string{true: "small", false: "big"}[size < seg], func(t *testing.T) {
			g := testgrid.New(t, 5, nil)
			c, logs := newClient(t, g, func(cfg *grid.Config) { cfg.ServerTimeout = timeout })
			upload(t, c, random(4<<10))
			const frozen = 4
			g.Servers[frozen].Freeze()
			cp := chkOf(t, upload(t, c, random(size)))
			for sh, srvs := range g.Holders(cp.StorageIndex()) {
				for _, i := range srvs {
					if i == frozen {
						t.Errorf("share %d placed on the frozen server", sh)
					}
				}
			}
			g.Servers[frozen].Thaw()
			time.Sleep(timeout + timeout/4) // the client forgets it hung
			data := random(size)
			cp = chkOf(t, upload(t, c, data))
			used := false
			for _, srvs := range g.Holders(cp.StorageIndex()) {
				for _, i := range srvs {
					used = used || i == frozen
				}
			}
			if !used {
				t.Errorf("no share on the thawed server %d: %v\n%s", frozen, g.Holders(cp.StorageIndex()), logs)
			}
			download(t, c, cp, data)
		})
	}
}
