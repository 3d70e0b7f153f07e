//go:build acceptance

package acceptance

// Real faults on packed shares (the disk backend keeps shares of small
// files as records in pack files: docs/plugins-storage.md, "Packed small
// shares"): bytes flipped in a share's range, its second half zeroed, the
// share deleted; a node restarted over a damaged pack; the pack's disk
// filling up under many small uploads; kill -9 of a node during a burst
// of small uploads, and a torn record at a pack's tail. Every file a
// command reported stored must read back and verify afterwards, and no
// packed share but the damaged one may be lost.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	storagedisk "github.com/tarnfs/tarn/plugins/storage-disk"
)

// packedShareOf is the one share of storage index si on n, which must be
// packed.
func packedShareOf(t testing.TB, g *Grid, n *Node, si string) Share {
	t.Helper()
	ss := g.shares(n, si)
	if len(ss) != 1 || !ss[0].Packed {
		t.Fatalf("%s holds %d shares of %s (%+v), want one packed share", n.Name, len(ss), si, ss)
	}
	return ss[0]
}

// restartNode kills n (-9), runs it again, and waits until the client
// sees every storage server: its backend rebuilds its index from the
// packs.
func (g *Grid) restartNode(t testing.TB, n *Node) {
	t.Helper()
	g.kill(t, n)
	g.restart(t, n)
	g.waitServers(t, g.Client, len(g.Storage()), 60*time.Second)
}

// reachAll waits until a check of the file c through the client reaches
// every storage server: the first request after a server restarted may
// still go to its old address and find it unreachable.
func (g *Grid) reachAll(t testing.TB, c string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, res := g.checkJSON(t, g.Client, c)
		if len(r.Unreachable) == 0 && r.Servers > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("check of %s still finds servers unreachable after 60s: %v", c, res)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// verifyHealthy runs `tarn check --verify` on each file: every one is
// healthy, with every share good.
func (g *Grid) verifyHealthy(t testing.TB, what string, files []stored) {
	t.Helper()
	for _, f := range files {
		r, res := g.checkJSON(t, g.Client, "--verify", f.Cap)
		if res.Code != 0 {
			t.Errorf("%s: check --verify of %s (%d bytes): exit %d: %v", what, f.Cap, f.Size, res.Code, res)
		}
		clean(t, fmt.Sprintf("%s: %d-byte file %s", what, f.Size, storageIndex(t, f.Cap)), r)
	}
}

// packLogLines are the lines of n's logs about its packs (damage skipped,
// torn tails cut).
func packLogLines(g *Grid, n *Node) []string {
	var out []string
	for _, l := range strings.Split(g.logText(n), "\n") {
		if strings.Contains(l, "pack") && (strings.Contains(l, "damaged bytes") || strings.Contains(l, "torn tail")) {
			out = append(out, l)
		}
	}
	return out
}

// TestPackedShareFaults damages packed shares of 4 KiB and 200 KiB files
// in each way the fault suite damages share files: bytes flipped in the
// share's range, its second half zeroed, the share deleted (through its
// stopped node). `tarn get` returns the right bytes, `tarn check
// --verify` names the damaged share, `tarn check --repair` repairs it and
// a later verify is clean. A node restarted over a damaged record drops
// it at open: the share is then missing, not corrupt, and repair puts it
// back. After every damaged node is restarted, every file (the damaged
// ones and the others whose shares share their packs) verifies healthy.
func TestPackedShareFaults(t *testing.T) {
	g := startGrid(t, GridOptions{Manual: true, ServerTimeout: "5s"})
	st := g.Storage()
	ids := map[*Node]string{}
	for _, n := range st {
		ids[n] = nodeID(t, n)
	}
	// A client sends a small file's shares in one call per server (the
	// servers pack them) only once it holds a healthy link to every
	// server: the first upload dials them.
	warm := stored{g.mustPut(t, g.Client, newGen(4999, 4<<10)), 4999, 4 << 10}
	files := []stored{warm}
	put := func(seed uint64, size int64) stored {
		f := stored{g.mustPut(t, g.Client, newGen(seed, size)), seed, size}
		files = append(files, f)
		si := storageIndex(t, f.Cap)
		for _, n := range st {
			packedShareOf(t, g, n, si)
		}
		return f
	}
	// Bystanders: their shares lie in the same packs as the damaged ones.
	for i, size := range []int64{4 << 10, 200 << 10, 4 << 10, 200 << 10} {
		put(uint64(5000+i), size)
	}
	type victim struct {
		f stored
		d damage
	}
	// Each damage on its own node, deletes (which stop their node) first:
	// a node restarted after a flip would drop the damaged record before
	// the check sees it corrupt (that case comes below).
	cases := []struct {
		how  string
		size int64
		node int
	}{
		{"delete", 4 << 10, 4}, {"delete", 200 << 10, 4},
		{"flip", 4 << 10, 0}, {"flip", 200 << 10, 1},
		{"truncate", 4 << 10, 2}, {"truncate", 200 << 10, 3},
	}
	var victims []victim
	for i, c := range cases {
		f := put(uint64(5100+i), c.size)
		s := packedShareOf(t, g, st[c.node], storageIndex(t, f.Cap))
		victims = append(victims, victim{f, damage{How: c.how, Share: s, Server: ids[st[c.node]]}})
	}
	rng := rand.New(rand.NewPCG(51, 7))
	for _, v := range victims {
		v.d.apply(t, rng)
	}

	for _, v := range victims {
		t.Run(fmt.Sprintf("%s %d KiB", v.d.How, v.f.Size>>10), func(t *testing.T) {
			sum, n, r := g.getHash(t, g.Client, v.f.Cap)
			if r.Code != 0 || n != v.f.Size || sum != genHash(v.f.Seed, v.f.Size) {
				t.Fatalf("get with a %s packed share: %d bytes %s: %v", v.d.How, n, sum, r)
			}
			rep, res := g.checkJSON(t, g.Client, "--verify", v.f.Cap)
			if res.Code != 1 || rep.Outcome != outUnhealthy || rep.Good != 4 {
				t.Errorf("check --verify: exit %d, outcome %s, %d good; want 1, unhealthy, 4 good", res.Code, rep.Outcome, rep.Good)
			}
			v.d.named(t, rep)
			if v.d.How != "delete" && !v.d.Share.gone() {
				t.Errorf("the %s packed share is still listed in its pack after the corruption advisory", v.d.How)
			}
			rep, res = g.checkJSON(t, g.Client, "--repair", v.f.Cap)
			if res.Code != 0 || rep.Outcome != outRepaired || rep.Repair == nil || rep.Repair.GoodAfter != 5 {
				t.Fatalf("check --repair: exit %d, outcome %s, repair %+v: %v", res.Code, rep.Outcome, rep.Repair, res)
			}
			rep, res = g.checkJSON(t, g.Client, "--verify", v.f.Cap)
			if res.Code != 0 {
				t.Errorf("check --verify after repair: exit %d", res.Code)
			}
			clean(t, "check --verify", rep)
		})
	}

	// Damage left in place while the node restarts: the scan drops the
	// damaged record, so the share is missing, not corrupt.
	t.Run("restart over a damaged record", func(t *testing.T) {
		for i, c := range []struct {
			how  string
			node int
			file int
		}{{"flip", 2, 1}, {"truncate", 3, 2}} {
			f := files[c.file]
			s := packedShareOf(t, g, st[c.node], storageIndex(t, f.Cap))
			d := damage{How: c.how, Share: s, Server: ids[st[c.node]]}
			d.apply(t, rng)
			before := len(packLogLines(g, st[c.node]))
			g.restartNode(t, st[c.node])
			g.reachAll(t, warm.Cap)
			if lines := packLogLines(g, st[c.node]); len(lines) > before {
				t.Logf("%s at open: %s", st[c.node].Name, lines[len(lines)-1])
			} else {
				t.Errorf("%s logged no damaged record skipped at open", st[c.node].Name)
			}
			if !s.gone() {
				t.Errorf("case %d: the damaged record is still a share after the restart", i)
			}
			rep, res := g.checkJSON(t, g.Client, "--verify", f.Cap)
			if res.Code != 1 || rep.Outcome != outUnhealthy || rep.Good != 4 || len(rep.Corrupt) != 0 {
				t.Errorf("check --verify after the restart: exit %d, outcome %s, %d good, corrupt %+v; want 1, unhealthy, 4 good, none corrupt",
					res.Code, rep.Outcome, rep.Good, rep.Corrupt)
			}
			d.How = "delete" // what the restart made of it
			d.named(t, rep)
			rep, res = g.checkJSON(t, g.Client, "--repair", f.Cap)
			if res.Code != 0 || rep.Outcome != outRepaired {
				t.Fatalf("check --repair: exit %d, outcome %s: %v", res.Code, rep.Outcome, res)
			}
		}
	})

	t.Run("every node restarted: all files healthy", func(t *testing.T) {
		for _, n := range st {
			g.restartNode(t, n)
			for _, l := range packLogLines(g, n) {
				t.Logf("%s: %s", n.Name, l)
			}
		}
		g.reachAll(t, warm.Cap)
		g.verifyHealthy(t, "after restarts", files)
		g.verifyAll(t, g.Client, files)
		for _, n := range st {
			packs := map[string]int{}
			for _, s := range g.shares(n, "") {
				if s.Packed {
					packs[s.Path]++
				}
			}
			t.Logf("%s: live packed shares per pack: %v", n.Name, packs)
		}
	})
}

// packTails checks that every pack under a backend folder ends with a
// whole record: the file's size is the end of its last share record
// (there are no deletes in the tests that call it, so no tombstone may
// follow).
func packTails(t testing.TB, store string) map[string]int64 {
	t.Helper()
	shares, err := storagedisk.PackedShares(store)
	if err != nil {
		t.Fatalf("packed shares of %s: %v", store, err)
	}
	end := map[string]int64{}
	for _, s := range shares {
		end[s.Pack] = max(end[s.Pack], s.Offset+s.Length)
	}
	packs, _ := filepath.Glob(filepath.Join(store, "packs", "*.pack"))
	for _, p := range packs {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != end[p] {
			t.Errorf("pack %s is %d bytes, its last sound record ends at %d: a torn or half-written record is left", p, st.Size(), end[p])
		}
	}
	return end
}

// spaceFree is the free space a storage node reports in `tarn status`.
func (g *Grid) spaceFree(t testing.TB, n *Node) int64 {
	t.Helper()
	r := mustTarn(t, CLI{Timeout: 40 * time.Second}, "status", "--json", "--node", n.Dir)
	var st struct {
		Storage *struct {
			Free int64 `json:"space_free"`
		} `json:"storage"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil || st.Storage == nil {
		t.Fatalf("status --json of %s: %v\n%s", n.Name, err, r.Stdout)
	}
	return st.Storage.Free
}

// statfsFree is what statfs says is free at dir.
func statfsFree(t testing.TB, dir string) int64 {
	t.Helper()
	var s syscall.Statfs_t
	if err := syscall.Statfs(dir, &s); err != nil {
		t.Fatal(err)
	}
	return int64(s.Bavail) * s.Bsize
}

// TestPackedDiskFull puts the store of one storage node on a small tmpfs
// nearly filled by another file, and uploads many small files (their
// shares packed): every put succeeds (the full node's shares go to the
// others once it refuses), the node's free space as it reports it counts
// its packs, no torn or half-written record is left at the pack's tail;
// once space is freed new small uploads land on the node again, and after
// a restart (the packs scanned) every file verifies healthy.
func TestPackedDiskFull(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "full")
	mountTmpfs(t, mnt, "8m")
	store := filepath.Join(mnt, "store")
	g := startGrid(t, GridOptions{Manual: true, ServerTimeout: "5s", StorageEdit: func(i int, p string) string {
		if i == 0 {
			return setTOML(p, "plugins.storage", "config", fmt.Sprintf("{path = %q}", store))
		}
		return p
	}})
	full := g.Storage()[0]
	// Its shares live outside its node folder: look for them on the tmpfs.
	fullStore := &Node{Name: full.Name, Dir: store}
	onFull := func(f stored) bool { return len(g.shares(fullStore, storageIndex(t, f.Cap))) > 0 }
	// The first upload dials the servers; small files go packed after.
	acked := []stored{{g.mustPut(t, g.Client, newGen(5299, 4<<10)), 5299, 4 << 10}}
	first := stored{g.mustPut(t, g.Client, newGen(5300, 200<<10)), 5300, 200 << 10}
	acked = append(acked, first)
	if s := g.shares(fullStore, storageIndex(t, first.Cap)); len(s) != 1 || !s[0].Packed {
		t.Fatalf("the node on the small disk holds %+v of the first file, want one packed share", s)
	}

	// Leave about 1 MiB: room for about 15 shares of a 200 KiB file.
	filler := filepath.Join(mnt, "filler")
	size := fill(t, filler)
	if err := os.Truncate(filler, size-(1<<20)); err != nil {
		t.Fatal(err)
	}
	free0 := g.spaceFree(t, full)
	sfs := statfsFree(t, mnt)
	t.Logf("filler %d KiB; the node reports %d KiB free, statfs %d KiB", size>>10, free0>>10, sfs>>10)
	if free0 > sfs || free0 < sfs-(256<<10) {
		t.Errorf("the node reports %d bytes free, statfs of its disk says %d", free0, sfs)
	}

	packsBefore := packTails(t, store)
	var landed, refused int
	for i := range 30 {
		size := int64(200 << 10)
		if i%3 == 2 {
			size = 4 << 10
		}
		seed := uint64(5310 + i)
		c, r := g.put(t, g.Client, newGen(seed, size))
		if r.Code != 0 {
			t.Fatalf("put %d (%d bytes) with one node filling up and 4 others: %v", i, size, r)
		}
		f := stored{c, seed, size}
		acked = append(acked, f)
		if onFull(f) {
			landed++
		} else {
			refused++
		}
	}
	t.Logf("of 30 uploads, %d placed a share on the filling node, %d did not", landed, refused)
	if landed == 0 || refused == 0 {
		t.Errorf("%d uploads placed a share on the filling node and %d did not; want both", landed, refused)
	}
	packsAfter := packTails(t, store)
	var grew int64
	for p, e := range packsAfter {
		grew += e - packsBefore[p]
	}
	var inPacks, inFiles int
	for _, s := range g.shares(fullStore, "") {
		if s.Packed {
			inPacks++
		} else {
			inFiles++
		}
	}
	t.Logf("the filling node holds %d packed shares and %d share files", inPacks, inFiles)
	if tmp := tmpFiles(store); len(tmp) > 0 {
		t.Errorf("files left in tmp/ of the full disk: %v", tmp)
	}
	free1 := g.spaceFree(t, full)
	t.Logf("packs grew by %d KiB; the node reports %d KiB free (was %d)", grew>>10, free1>>10, free0>>10)
	if free0-free1 < grew-(64<<10) {
		t.Errorf("the node's free space went down by %d bytes while its packs grew by %d: packs are not counted", free0-free1, grew)
	}
	if free1 > 256<<10 {
		t.Errorf("the node reports %d bytes free after refusing shares", free1)
	}
	for _, l := range strings.Split(g.logText(full), "\n") {
		if strings.Contains(l, "no space") || strings.Contains(l, "pack") {
			t.Logf("%s log: %s", full.Name, clip(l))
		}
	}
	g.verifyAll(t, g.Client, acked)

	t.Run("space freed: small uploads land on the node again", func(t *testing.T) {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		var on int
		for i := range 4 {
			seed := uint64(5350 + i)
			size := int64(4<<10) + int64(i)*(60<<10)
			f := stored{g.mustPut(t, g.Client, newGen(seed, size)), seed, size}
			acked = append(acked, f)
			if onFull(f) {
				on++
			}
		}
		// The server's free-space figure may be a second old.
		if on < 3 {
			t.Errorf("%d of 4 uploads after space was freed placed a share on the node", on)
		}
		packTails(t, store)
	})

	t.Run("restart: the packs scan cleanly, every file healthy", func(t *testing.T) {
		g.restartNode(t, full)
		g.reachAll(t, acked[0].Cap)
		if lines := packLogLines(g, full); len(lines) > 0 {
			t.Errorf("%s found damage in its packs at open: %v", full.Name, lines)
		}
		g.verifyHealthy(t, "after the restart", acked)
		g.verifyAll(t, g.Client, acked)
	})
}

// TestPackedKill9Burst kills -9 a storage node while `tarn cp -r` uploads
// 200 files of 4 KiB (every share packed), and appends half of a record
// to its pack's tail as a crash mid-append would leave it: after the
// node runs again, the torn tail is cut (not fatal), new shares land on
// it, every file the directory lists reads back byte for byte and none
// has a corrupt or unrecoverable share.
func TestPackedKill9Burst(t *testing.T) {
	g := startGrid(t, GridOptions{Manual: true, ServerTimeout: "5s"})
	cl := g.Client.Dir
	src := filepath.Join(t.TempDir(), "burst")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	const files, size = 200, 4 << 10
	for i := range files {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%03d", i)), genBytes(uint64(5400+i), size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustTarn(t, CLI{}, "create-alias", "--node", cl, "burst")
	warm := g.mustPut(t, g.Client, newGen(5398, 4<<10)) // dials every server
	victim := g.Storage()[2]
	count := func() int { return len(g.shares(victim, "")) }

	done := make(chan Result, 1)
	go func() {
		done <- tarn(t, CLI{Timeout: 10 * time.Minute}, "cp", "-r", "-q", "--node", cl, src, "burst:")
	}()
	var r Result
	killed := false
	for deadline := time.Now().Add(5 * time.Minute); !killed; time.Sleep(20 * time.Millisecond) {
		select {
		case r = <-done:
			t.Fatalf("cp -r ended before the victim held 40 shares (%d): %v", count(), r)
		default:
		}
		if count() >= 40 {
			g.kill(t, victim)
			killed = true
			t.Logf("killed %s holding %d packed shares", victim.Name, count())
		}
		if time.Now().After(deadline) {
			t.Fatalf("the victim holds %d shares after 5 minutes", count())
		}
	}
	r = <-done
	if r.Code != 0 {
		oneLineError(t, "cp -r with a node killed", r)
		t.Logf("cp -r with a node killed failed: %s", lastLine(r.Stderr))
	}

	// A crash mid-append leaves a record cut short: append the first
	// half of a copy of the pack's last record.
	packs := findFiles(victim.Dir, func(rel string) bool { return packRe.MatchString(filepath.ToSlash(rel)) })
	sort.Strings(packs)
	if len(packs) == 0 {
		t.Fatalf("no pack on %s", victim.Name)
	}
	last := packs[len(packs)-1]
	shares := g.shares(victim, "")
	var tailShare Share
	for _, s := range shares {
		if s.Path == last && s.Offset > tailShare.Offset {
			tailShare = s
		}
	}
	b, err := os.ReadFile(last)
	if err != nil || tailShare.Path == "" {
		t.Fatalf("read the last pack %s: %v (last share %+v)", last, err, tailShare)
	}
	sound := int64(len(b))
	rec := b[tailShare.Offset-40 : tailShare.Offset+tailShare.Length]
	torn := rec[:len(rec)/2]
	pf, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pf.Write(torn)
	pf.Close()
	if err != nil {
		t.Fatal(err)
	}
	before := len(shares)

	g.restart(t, victim)
	g.waitServers(t, g.Client, 5, 60*time.Second)
	g.reachAll(t, warm)
	lines := packLogLines(g, victim)
	if len(lines) == 0 || !strings.Contains(strings.Join(lines, "\n"), "torn tail") {
		t.Errorf("%s logged no torn tail cut at open: %v", victim.Name, lines)
	} else {
		t.Logf("%s: %s", victim.Name, lines[len(lines)-1])
	}
	if st, err := os.Stat(last); err != nil || st.Size() != sound {
		t.Errorf("the pack's torn tail was not cut: %v bytes, want %d (%v)", st.Size(), sound, err)
	}
	if n := len(g.shares(victim, "")); n != before {
		t.Errorf("%s held %d packed shares before the restart, %d after", victim.Name, before, n)
	}

	// New shares land on the restarted node, packed after the cut (the
	// client packs again once its link to the node is healthy).
	var acked []stored
	packedAgain := false
	for i := range 5 {
		f := stored{g.mustPut(t, g.Client, newGen(uint64(5690+i), 8<<10)), uint64(5690 + i), 8 << 10}
		acked = append(acked, f)
		if s := g.shares(victim, storageIndex(t, f.Cap)); len(s) == 1 && s[0].Packed {
			packedAgain = true
			break
		}
	}
	if !packedAgain {
		t.Errorf("none of %d uploads after the restart placed a packed share on %s", len(acked), victim.Name)
	}
	packTails(t, filepath.Dir(filepath.Dir(last)))

	// Every listed file reads back, and none has a corrupt share.
	entries, lr := lsJSON(t, g.Client, "burst:burst")
	if lr.Code != 0 {
		t.Fatalf("ls burst:burst: %v", lr)
	}
	if r.Code == 0 && len(entries) != files {
		t.Errorf("cp -r succeeded but the directory lists %d files, want %d", len(entries), files)
	}
	down := filepath.Join(t.TempDir(), "down")
	mustTarn(t, CLI{Timeout: 10 * time.Minute}, "cp", "-r", "-q", "--node", cl, "burst:burst", down)
	for name := range entries {
		var i int
		if _, err := fmt.Sscanf(name, "f%03d", &i); err != nil {
			t.Errorf("unexpected entry %q", name)
			continue
		}
		got, err := os.ReadFile(filepath.Join(down, name))
		if err != nil || !bytes.Equal(got, genBytes(uint64(5400+i), size)) {
			t.Errorf("%s reads back wrong (%d bytes, %v)", name, len(got), err)
		}
	}
	reps, sum, _ := g.deepJSON(t, g.Client, "--verify", "burst:")
	if sum.Unrecoverable > 0 || sum.Errors > 0 {
		t.Errorf("deep-check --verify after the kill: %+v", *sum)
	}
	for _, rep := range reps {
		if len(rep.Corrupt) > 0 {
			t.Errorf("%s: corrupt shares %+v", rep.Path, rep.Corrupt)
		}
	}
	t.Logf("deep-check --verify: %+v", *sum)
	g.verifyAll(t, g.Client, acked)
}
