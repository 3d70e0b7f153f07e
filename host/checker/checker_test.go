package checker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/checker"
	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/mutable"
	"github.com/tarnfs/tarn/host/storageclient"
	"github.com/tarnfs/tarn/host/storageserver"
	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/host/vdrive"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
	"github.com/tarnfs/tarn/sdk/storage"
)

// env is a 5-server test grid with a 3-of-5, H=4 grid client and a
// checker sharing its identity and lease secret.
type env struct {
	g     *testgrid.Grid
	gc    *grid.Client
	ck    *checker.Checker
	lease []byte
}

func newEnv(t testing.TB, n int, mod func(i int, cfg *storageserver.Config)) *env {
	t.Helper()
	return newEnvTimeout(t, n, mod, envTimeout)
}

// envTimeout is newEnv's server timeout (grid client and checker): no
// server hangs in the tests that use it, so one no loaded machine reaches
// (calls and dials time out with it). A mutable file's survey also stops
// waiting for a server after a grace of 4 times the slowest answer, at
// least min(1 s, a quarter of the timeout): with 3 s (0.75 s), a -race run
// at load 26 took a slow server's share for missing (TestCheckMutable:
// good 3, want 4).
const envTimeout = 30 * time.Second

// newEnvTimeout is newEnv with the server timeout given (the tests of
// frozen servers wait it out).
func newEnvTimeout(t testing.TB, n int, mod func(i int, cfg *storageserver.Config), timeout time.Duration) *env {
	t.Helper()
	g := testgrid.New(t, n, &testgrid.Options{Server: func(i int, cfg *storageserver.Config) {
		cfg.ValidateSlotWrite = mutable.ValidateSlotWrite
		if mod != nil {
			mod(i, cfg)
		}
	}})
	cert := g.ClientCert()
	lease := make([]byte, 32)
	rand.Read(lease)
	log := hclog.NewNullLogger()
	gc, err := grid.New(grid.Config{
		Transport: g.Transport, Cert: cert, GridSecret: g.Secret, Codec: codecreedsolomon.New(),
		Servers: g.Source(), K: 3, H: 4, N: 5, SegmentSize: 64 << 10, LeaseSecret: lease,
		Convergence: []byte("checker test"), TempDir: t.TempDir(), ServerTimeout: timeout, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gc.Close() })
	ck, err := checker.New(checker.Config{
		Transport: g.Transport, Cert: cert, GridSecret: g.Secret, Servers: g.Source(),
		Codec: codecreedsolomon.New(), LeaseSecret: lease, H: 4, Grid: gc,
		ServerTimeout: timeout, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return &env{g: g, gc: gc, ck: ck, lease: lease}
}

func (e *env) upload(t testing.TB, data []byte) cap.CHK {
	t.Helper()
	c, err := e.gc.Upload(context.Background(), bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.(cap.CHK)
}

func (e *env) readBack(t testing.TB, c cap.Cap, want []byte) {
	t.Helper()
	f, err := e.gc.Open(context.Background(), c)
	if err != nil {
		t.Fatalf("open after repair: %v", err)
	}
	got, err := io.ReadAll(f.Reader())
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read after repair: %d bytes, equal %v, err %v", len(got), bytes.Equal(got, want), err)
	}
}

func (e *env) check(t testing.TB, c cap.Cap, opt checker.Options) *checker.Report {
	t.Helper()
	r, err := e.ck.Check(context.Background(), c, opt)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	return r
}

// holderOf returns the server holding share sh of si (the first one).
func (e *env) holderOf(t testing.TB, si cap.StorageIndex, sh int) *testgrid.Server {
	t.Helper()
	h := e.g.Holders(si)
	if len(h[sh]) == 0 {
		t.Fatalf("no server holds share %d", sh)
	}
	return e.g.Servers[h[sh][0]]
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestCheckImmutable(t *testing.T) {
	data := random(300 << 10) // 5 segments
	tests := []struct {
		name string
		// damage harms the file's shares on the grid.
		damage        func(t *testing.T, e *env, si cap.StorageIndex)
		opt           checker.Options
		want          checker.Outcome
		good          int
		corrupt       int
		wantHappiness int
		// removed: corrupt shares their servers proved bad and removed.
		removed int
		// after: the outcome of a later verify.
		after checker.Outcome
	}{
		{name: "healthy, listed", want: checker.Healthy, good: 5, wantHappiness: 5},
		{name: "healthy, verified", opt: checker.Options{Verify: true}, want: checker.Healthy, good: 5, wantHappiness: 5},
		{name: "header flipped, verified: named and removed",
			damage: func(t *testing.T, e *env, si cap.StorageIndex) { flip(t, e, si, 3, 10) },
			opt:    checker.Options{Verify: true}, want: checker.Unhealthy, good: 4, corrupt: 1, wantHappiness: 4, removed: 1},
		{name: "one block flipped, listed only: looks healthy",
			damage: func(t *testing.T, e *env, si cap.StorageIndex) { flip(t, e, si, 1, -1) },
			want:   checker.Healthy, good: 5, wantHappiness: 5},
		{name: "one block flipped, verified: named",
			damage: func(t *testing.T, e *env, si cap.StorageIndex) { flip(t, e, si, 1, -1) },
			opt:    checker.Options{Verify: true}, want: checker.Unhealthy, good: 4, corrupt: 1, wantHappiness: 4, removed: 1},
		{name: "extension block flipped, verified: named",
			damage: func(t *testing.T, e *env, si cap.StorageIndex) { flip(t, e, si, 2, chk.HeaderSize+10) },
			opt:    checker.Options{Verify: true}, want: checker.Unhealthy, good: 4, corrupt: 1, wantHappiness: 4},
		{name: "extension block flipped, repaired: a good copy elsewhere",
			damage: func(t *testing.T, e *env, si cap.StorageIndex) { flip(t, e, si, 2, chk.HeaderSize+10) },
			opt:    checker.Options{Repair: true}, want: checker.Repaired, good: 4, corrupt: 1, wantHappiness: 4, after: checker.Healthy},
		{name: "share truncated, verified: named",
			damage: func(t *testing.T, e *env, si cap.StorageIndex) { truncate(t, e, si, 0) },
			opt:    checker.Options{Verify: true}, want: checker.Unhealthy, good: 4, corrupt: 1, wantHappiness: 4, removed: 1},
		{name: "two shares deleted, repaired",
			damage: func(t *testing.T, e *env, si cap.StorageIndex) { remove(t, e, si, 0); remove(t, e, si, 3) },
			opt:    checker.Options{Repair: true}, want: checker.Repaired, good: 3, wantHappiness: 3, after: checker.Healthy},
		{name: "block flipped and share deleted, repaired",
			damage: func(t *testing.T, e *env, si cap.StorageIndex) { flip(t, e, si, 4, -1); remove(t, e, si, 2) },
			opt:    checker.Options{Repair: true}, want: checker.Repaired, good: 3, corrupt: 1, wantHappiness: 3, removed: 1, after: checker.Healthy},
		{name: "three shares deleted: unrecoverable",
			damage: func(t *testing.T, e *env, si cap.StorageIndex) {
				remove(t, e, si, 0)
				remove(t, e, si, 1)
				remove(t, e, si, 2)
			},
			opt: checker.Options{Repair: true}, want: checker.Unrecoverable, good: 2, wantHappiness: 2, after: checker.Unrecoverable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 5, nil)
			c := e.upload(t, data)
			si := c.StorageIndex()
			if tc.damage != nil {
				tc.damage(t, e, si)
			}
			// A verify cap is enough for all of it.
			r := e.check(t, c.Verify(), tc.opt)
			if r.Outcome != tc.want || r.Good != tc.good || len(r.Corrupt) != tc.corrupt || r.Happiness != tc.wantHappiness {
				t.Fatalf("outcome %s good %d corrupt %d happiness %d, want %s %d %d %d\n%+v",
					r.Outcome, r.Good, len(r.Corrupt), r.Happiness, tc.want, tc.good, tc.corrupt, tc.wantHappiness, r)
			}
			if r.Needed != 3 || r.Total != 5 || r.HappinessWanted != 4 || r.StorageIndex != si.String() {
				t.Errorf("needed %d total %d wanted %d index %s", r.Needed, r.Total, r.HappinessWanted, r.StorageIndex)
			}
			for _, cr := range r.Corrupt {
				if cr.Server == "" || cr.Problem == "" || cr.State != checker.ShareCorrupt {
					t.Errorf("corrupt share report lacks detail: %+v", cr)
				}
			}
			if tc.corrupt > 0 {
				var advice int64
				for _, s := range e.g.Servers {
					advice += s.Stats().CorruptionAdvice
				}
				if advice < int64(tc.corrupt) {
					t.Errorf("servers were told of %d corrupt shares, want %d", advice, tc.corrupt)
				}
			}
			var removed int64
			for _, s := range e.g.Servers {
				removed += s.Stats().CorruptRemoved
			}
			if removed != int64(tc.removed) {
				t.Errorf("servers removed %d corrupt shares, want %d", removed, tc.removed)
			}
			if tc.after == "" {
				return
			}
			if tc.want == checker.Repaired && (r.Repair == nil || r.Repair.GoodAfter != 5 || r.Repair.HappinessAfter < 4) {
				t.Fatalf("repair report %+v", r.Repair)
			}
			later := e.check(t, c.Verify(), checker.Options{Verify: true})
			if later.Outcome != tc.after {
				t.Fatalf("later verify: %s, want %s\n%+v", later.Outcome, tc.after, later)
			}
			if tc.after == checker.Healthy {
				e.readBack(t, c, data)
			}
		})
	}
}

// flip flips a byte of the first copy of share sh; off < 0 counts from the
// end (a block).
func flip(t *testing.T, e *env, si cap.StorageIndex, sh int, off int64) {
	t.Helper()
	s := e.holderOf(t, si, sh)
	ref := storage.Ref{Index: si, Num: uint32(sh)}
	if off < 0 {
		b, err := s.Backend.Share(ref)
		if err != nil {
			t.Fatal(err)
		}
		off += int64(len(b))
	}
	if err := s.Backend.Corrupt(ref, off, 0x40); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, e *env, si cap.StorageIndex, sh int) {
	t.Helper()
	s := e.holderOf(t, si, sh)
	ref := storage.Ref{Index: si, Num: uint32(sh)}
	b, err := s.Backend.Share(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Backend.Replace(ref, b[:len(b)-100]); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, e *env, si cap.StorageIndex, sh int) {
	t.Helper()
	for _, i := range e.g.Holders(si)[sh] {
		if err := e.g.Servers[i].Backend.DeleteShare(storage.Ref{Index: si, Num: uint32(sh)}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestForgedVerifyCap: a member who knows only the storage index cannot
// make a server remove a good share by advising corruption with a made-up
// verify cap (wrong UEB hash, or the right one with other parameters).
func TestForgedVerifyCap(t *testing.T) {
	e := newEnv(t, 5, nil)
	c := e.upload(t, random(100<<10))
	v := c.Verify()
	forged := []cap.CHKVerify{v, v, v}
	forged[0].UEBHash[0] ^= 1
	forged[1].Size--
	forged[2].K = 2
	cl, err := storageclient.Dial(context.Background(), e.g.Transport, e.g.Servers[0].Addr, e.g.ClientCert(), storageclient.Options{GridSecret: e.g.Secret})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	nums, err := cl.List(context.Background(), v.StorageIndex)
	if err != nil || len(nums) == 0 {
		t.Fatalf("list: %v %v", nums, err)
	}
	ref := storage.Ref{Index: v.StorageIndex, Num: nums[0].Num}
	for i, f := range append(forged, v) {
		removed, err := cl.AdviseCorruptionCap(context.Background(), ref, f.String(), "forged")
		if err != nil || removed {
			t.Fatalf("advice %d: removed %v err %v", i, removed, err)
		}
	}
	if r := e.check(t, v, checker.Options{Verify: true}); r.Outcome != checker.Healthy {
		t.Fatalf("after forged advice: %s", r.Outcome)
	}
}

func TestCheckUnreachableServer(t *testing.T) {
	e := newEnv(t, 5, nil)
	data := random(100 << 10)
	c := e.upload(t, data)
	s := e.holderOf(t, c.StorageIndex(), 0)
	s.Stop()
	r := e.check(t, c, checker.Options{Verify: true})
	if r.Outcome != checker.Unhealthy || len(r.Unreachable) != 1 || r.Unreachable[0] != s.NodeID || r.Good != 4 {
		t.Fatalf("outcome %s unreachable %v good %d", r.Outcome, r.Unreachable, r.Good)
	}
	// Repair places share 0 on a live server: happiness is back to 4.
	r = e.check(t, c, checker.Options{Repair: true})
	if r.Outcome != checker.Repaired || !slices.Equal(r.Repair.Rebuilt, []int{0}) {
		t.Fatalf("repair with a server down: %s %+v", r.Outcome, r.Repair)
	}
	e.readBack(t, c, data)
}

func TestCheckLiteral(t *testing.T) {
	e := newEnv(t, 1, nil)
	r := e.check(t, cap.Literal{Data: []byte("tiny")}, checker.Options{Verify: true, Repair: true})
	if r.Outcome != checker.Healthy {
		t.Fatalf("literal: %s", r.Outcome)
	}
}

func TestAddLease(t *testing.T) {
	e := newEnv(t, 5, nil)
	c := e.upload(t, random(10<<10))
	r := e.check(t, c, checker.Options{AddLease: true})
	if r.LeasesRenewed != 5 {
		t.Fatalf("renewed %d leases, want 5", r.LeasesRenewed)
	}
}

// TestLeaseSecretMatchesGrid: the checker renews the very lease the grid
// client's upload made (one owner per server and file), and each server
// sees a different owner secret for the same client.
func TestLeaseSecretMatchesGrid(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, 5, func(i int, cfg *storageserver.Config) {
		cfg.LeasePath = filepath.Join(dir, fmt.Sprintf("leases%d.db", i))
	})
	c := e.upload(t, random(10<<10))
	si := c.StorageIndex()
	if r := e.check(t, c, checker.Options{AddLease: true}); r.LeasesRenewed != 5 {
		t.Fatalf("renewed %d leases, want 5", r.LeasesRenewed)
	}
	owners := map[[32]byte]bool{}
	for i, s := range e.g.Servers {
		s.Stop() // closes its lease database
		db, err := bolt.Open(filepath.Join(dir, fmt.Sprintf("leases%d.db", i)), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		var n int
		db.View(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("leases")).ForEach(func(k, _ []byte) error {
				if bytes.HasPrefix(k, si[:]) {
					n++
					owners[[32]byte(k[len(si):])] = true
				}
				return nil
			})
		})
		db.Close()
		if n != 1 {
			t.Errorf("server %d holds %d leases on the file, want 1 (upload and renewal are one owner)", i, n)
		}
	}
	if len(owners) != 5 {
		t.Errorf("%d distinct owner hashes over 5 servers, want 5 (servers must not be able to correlate)", len(owners))
	}
}

func TestCheckMutable(t *testing.T) {
	e := newEnv(t, 5, nil)
	ctx := context.Background()
	w, err := e.gc.CreateMutable(ctx, []byte("version one"))
	if err != nil {
		t.Fatal(err)
	}
	vc := w.ReadCap().Verify()
	r := e.check(t, vc, checker.Options{Verify: true})
	if r.Outcome != checker.Healthy || r.Good != 5 || r.Version != 1 || r.Kind != cap.KindMutable {
		t.Fatalf("new mutable file: %+v", r)
	}
	// Damage one slot: overwrite it with garbage on its server.
	si := w.StorageIndex()
	ref := storage.Ref{Index: si, Num: 2}
	var damaged bool
	for _, s := range e.g.Servers {
		if _, tok, err := s.Backend.ReadSlot(ctx, ref); err == nil {
			if _, err := s.Backend.WriteSlot(ctx, ref, tok, []byte("garbage")); err != nil {
				t.Fatal(err)
			}
			damaged = true
		}
	}
	if !damaged {
		t.Fatal("no server holds slot 2")
	}
	r = e.check(t, vc, checker.Options{Verify: true})
	if r.Outcome != checker.Unhealthy || r.Good != 4 || len(r.Problems) == 0 {
		t.Fatalf("damaged mutable file: %+v", r)
	}
	r = e.check(t, vc, checker.Options{Repair: true, AddLease: true})
	if r.Outcome != checker.Repaired || r.LeasesRenewed < 5 {
		t.Fatalf("repair mutable: %s leases %d %+v", r.Outcome, r.LeasesRenewed, r.Repair)
	}
	if r := e.check(t, vc, checker.Options{Verify: true}); r.Outcome != checker.Healthy {
		t.Fatalf("after repair: %+v", r)
	}
}

func TestDeepCheck(t *testing.T) {
	e := newEnv(t, 5, nil)
	ctx := context.Background()
	st := vdrive.GridStore(e.gc)
	root, err := vdrive.NewRoot(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	d, err := vdrive.New(st, root.String())
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"/a.txt": random(100 << 10), "/docs/b.bin": random(70 << 10), "/docs/deeper/c": []byte("literal")}
	if err := d.MkdirAll(ctx, "/docs/deeper"); err != nil {
		t.Fatal(err)
	}
	for p, b := range files {
		if err := d.Put(ctx, p, bytes.NewReader(b), int64(len(b)), nil); err != nil {
			t.Fatal(err)
		}
	}
	info, err := d.Stat(ctx, "/docs/b.bin")
	if err != nil {
		t.Fatal(err)
	}
	bcap, err := cap.Parse(info.ReadCap())
	if err != nil {
		t.Fatal(err)
	}
	remove(t, e, bcap.(cap.CHK).StorageIndex(), 1)

	var seen []string
	dr, err := e.ck.DeepCheck(ctx, root.String(), "/", checker.Options{Verify: true}, func(r *checker.Report) { seen = append(seen, r.Path) })
	if err != nil {
		t.Fatal(err)
	}
	wantPaths := []string{"/", "/a.txt", "/docs", "/docs/b.bin", "/docs/deeper", "/docs/deeper/c"}
	if !slices.Equal(seen, wantPaths) {
		t.Fatalf("progress saw %v, want %v", seen, wantPaths)
	}
	s := dr.Summary
	if s.Objects != 6 || s.Directories != 3 || s.Files != 3 || s.Healthy != 5 || s.Unhealthy != 1 {
		t.Fatalf("summary %+v", s)
	}
	// Resolve a path and check one file.
	c, err := e.ck.Resolve(ctx, root.String(), "/docs/b.bin")
	if err != nil || c.String() != bcap.String() {
		t.Fatalf("resolve: %v %v", c, err)
	}
	r, err := e.ck.CheckPath(ctx, root.String(), "/docs/b.bin", checker.Options{})
	if err != nil || r.Path != "/docs/b.bin" || r.Outcome != checker.Unhealthy || len(r.Missing) != 1 {
		t.Fatalf("check path: %+v %v", r, err)
	}
	if _, err := e.ck.CheckPath(ctx, root.String(), "/nope", checker.Options{}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("check of a missing path: %v", err)
	}
	dr, err = e.ck.DeepCheck(ctx, root.ReadCap().String(), "/docs", checker.Options{Repair: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := dr.Summary; s.Objects != 4 || s.Repaired != 1 || s.Healthy != 3 {
		t.Fatalf("repair summary %+v", s)
	}
	dr, err = e.ck.DeepCheck(ctx, root.String(), "/", checker.Options{Verify: true}, nil)
	if err != nil || dr.Summary.Healthy != 6 {
		t.Fatalf("after repair: %+v %v", dr.Summary, err)
	}
	if _, err := e.ck.DeepCheck(ctx, root.ReadCap().Verify().String(), "/", checker.Options{}, nil); err == nil {
		t.Fatal("deep check with a verify cap worked")
	}
}
