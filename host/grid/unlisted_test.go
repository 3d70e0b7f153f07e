package grid_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/nodelink"
	"github.com/tarnfs/tarn/host/testgrid"
)

// TestExplainUnlisted: with no servers listed, an upload or download that
// lacked servers names Config.Unlisted's reason (an introducer refusing
// this node), and still matches both its sentinel and ErrNotMember; with
// servers listed, or no reason, the error is the plain one.
func TestExplainUnlisted(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	refusal := fmt.Errorf("introducer 0 refused this node: %w: node x proved another grid secret", nodelink.ErrNotMember)
	for _, tc := range []struct {
		name     string
		servers  grid.ServerSource
		unlisted func() error
		want     bool // the refusal is named
	}{
		{"empty list, refused", grid.ServerFunc(func() []grid.Server { return nil }), func() error { return refusal }, true},
		{"empty list, no reason", grid.ServerFunc(func() []grid.Server { return nil }), func() error { return nil }, false},
		{"empty list, no hook", grid.ServerFunc(func() []grid.Server { return nil }), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newClient(t, g, func(cfg *grid.Config) { cfg.Servers, cfg.Unlisted = tc.servers, tc.unlisted })
			_, err := c.Upload(ctxFor(t, 10*time.Second), bytes.NewReader(random(1000)), 1000, nil)
			if !errors.Is(err, grid.ErrNotHappy) {
				t.Fatalf("upload: %v, want ErrNotHappy", err)
			}
			if named := errors.Is(err, nodelink.ErrNotMember) && strings.HasPrefix(err.Error(), refusal.Error()+": "); named != tc.want {
				t.Fatalf("upload error %q: refusal named %v, want %v", err, named, tc.want)
			}
		})
	}
	// Servers listed: a refusal reported by the hook is not the reason.
	c, _ := newClient(t, g, func(cfg *grid.Config) { cfg.Unlisted = func() error { return refusal } })
	data := random(5000)
	cp := upload(t, c, data)
	download(t, c, cp, data)
}
