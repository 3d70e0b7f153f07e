package node

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/introducer"
)

// TestGridServersFreeSpace: the grid client sees a server's free space as
// known only from a live announcement; a static server never announced
// and one known from the node's cache are taken as having room.
func TestGridServersFreeSpace(t *testing.T) {
	addr := func(c byte) string { return "tarn://" + string(rune(c)) + "aaa@tcp:127.0.0.1:1" }
	static := introducer.Server{NodeID: "static", Addresses: []string{addr('s')}}
	list := introducer.NewServerList([]introducer.Server{static})
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	if err := list.Update(introducer.Record{NodeID: "live", PublicKey: pub, Addresses: []string{addr('l')},
		FreeSpace: 0, Sequence: 1, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	list.Seed([]introducer.Server{{NodeID: "cached", Addresses: []string{addr('c')}, FreeSpace: 0,
		ExpiresAt: time.Now().Add(time.Hour)}})
	n := &Node{list: list}
	want := map[string]bool{"static": false, "live": true, "cached": false}
	got := n.gridServers()
	if len(got) != len(want) {
		t.Fatalf("%d servers, want %d: %+v", len(got), len(want), got)
	}
	for _, s := range got {
		if s.SpaceKnown != want[s.NodeID] || s.FreeSpace != 0 {
			t.Errorf("server %s: space known %v (free %d), want known %v", s.NodeID, s.SpaceKnown, s.FreeSpace, want[s.NodeID])
		}
	}
}
