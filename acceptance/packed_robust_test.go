//go:build acceptance

package acceptance

// Bit rot in a packed record's header (docs/formats.md, "Packed small
// shares"): the scan at a node's restart must find the records after it
// (resyncing through the damaged record's share bytes, which come from a
// client and must never be taken for records), drop only the damaged
// share, and log it with its pack and offset.

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestPackedHeaderRot flips one byte in the record header of a packed
// share in the middle of a node's pack, kills the node (-9) and starts it
// again: the node logs the damage with the pack's name and offset; every
// other packed share it held is still there (the scan found the records
// after the damage); the damaged one is missing, not corrupt, and repair
// puts it back; every file then verifies healthy.
func TestPackedHeaderRot(t *testing.T) {
	g := startGrid(t, GridOptions{Manual: true, ServerTimeout: "5s"})
	st := g.Storage()
	warm := stored{g.mustPut(t, g.Client, newGen(6999, 4<<10)), 6999, 4 << 10}
	files := []stored{warm}
	for i, size := range []int64{4 << 10, 100 << 10, 4 << 10, 100 << 10, 4 << 10} {
		files = append(files, stored{g.mustPut(t, g.Client, newGen(uint64(7000+i), size)), uint64(7000 + i), size})
	}
	node := st[1]
	victim := files[2]
	s := packedShareOf(t, g, node, storageIndex(t, victim.Cap))
	before := len(g.shares(node, ""))
	// Byte 6 of the header is in the data length: the header no longer
	// checks, so the scan must look for the next record.
	f, err := os.OpenFile(s.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{0}
	at := s.Offset - 40 + 6
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x04
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
	f.Close()

	logBefore := len(packLogLines(g, node))
	g.restartNode(t, node)
	g.reachAll(t, warm.Cap)
	lines := packLogLines(g, node)
	if len(lines) <= logBefore {
		t.Errorf("%s logged no damage at open", node.Name)
	} else {
		l := lines[len(lines)-1]
		t.Logf("%s at open: %s", node.Name, l)
		if want := fmt.Sprintf("damaged bytes at %d ", s.Offset-40); !strings.Contains(l, want) || !strings.Contains(l, ".pack") {
			t.Errorf("log line %q: want the pack and %q", l, want)
		}
	}
	if !s.gone() {
		t.Error("the share whose header rotted is still listed")
	}
	if after := len(g.shares(node, "")); after != before-1 {
		t.Errorf("%s held %d packed shares before, %d after the restart; want one fewer", node.Name, before, after)
	}
	rep, res := g.checkJSON(t, g.Client, "--verify", victim.Cap)
	if res.Code != 1 || rep.Outcome != outUnhealthy || rep.Good != 4 || len(rep.Corrupt) != 0 {
		t.Errorf("check --verify: exit %d, outcome %s, %d good, corrupt %+v; want 1, unhealthy, 4 good, none corrupt",
			res.Code, rep.Outcome, rep.Good, rep.Corrupt)
	}
	rep, res = g.checkJSON(t, g.Client, "--repair", victim.Cap)
	if res.Code != 0 || rep.Outcome != outRepaired {
		t.Fatalf("check --repair: exit %d, outcome %s: %v", res.Code, rep.Outcome, res)
	}
	g.verifyHealthy(t, "after the repair", files)
	g.verifyAll(t, g.Client, files)
}
