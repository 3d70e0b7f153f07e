package storageserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	"github.com/tarnfs/tarn/internal/proctest"
	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	"github.com/tarnfs/tarn/sdk/storage"
)

func putReq(idx []byte, size int64, nums ...uint32) *pb.PutSharesRequest {
	req := &pb.PutSharesRequest{StorageIndex: idx, ShareSize: size, LeaseSecret: bytes.Repeat([]byte{3}, LeaseSecretSize)}
	for _, n := range nums {
		req.Shares = append(req.Shares, &pb.ShareData{ShareNum: n, Data: bytes.Repeat([]byte{byte(n + 1)}, int(size))})
	}
	return req
}

// TestPutShares: shares stored in one call are sealed, readable and
// leased; a second put of them answers already held; a share another
// upload holds open is answered in progress and left alone.
func TestPutShares(t *testing.T) {
	be := storagememory.NewLimit(1 << 20)
	cl, srv := rawClient(t, Config{Backend: be})
	ctx := context.Background()
	idx := bytes.Repeat([]byte{5}, storage.StorageIndexSize)
	ref := func(n uint32) storage.Ref { return storage.Ref{Index: [16]byte(idx), Num: n} }

	r, err := cl.PutShares(ctx, putReq(idx, 1000, 3, 1))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(r.Stored, r.AlreadyHave, r.InProgress) != "[1 3] [] []" {
		t.Fatalf("first put answered stored %v, held %v, in progress %v", r.Stored, r.AlreadyHave, r.InProgress)
	}
	for _, n := range []uint32{1, 3} {
		got := make([]byte, 1000)
		if _, err := be.ReadAt(ctx, ref(n), got, 0); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{byte(n + 1)}, 1000)) {
			t.Fatalf("share %d reads back wrong: %v", n, err)
		}
	}
	if ls, _ := srv.Leases([16]byte(idx)); len(ls) != 1 || ls[0].OwnerHash != sha256.Sum256(bytes.Repeat([]byte{3}, LeaseSecretSize)) {
		t.Fatalf("leases after put: %v", ls)
	}
	if st := srv.Stats(); st.Sealed != 2 || st.OpenUploads != 0 || st.OpenBytes != 0 {
		t.Fatalf("stats after put: %+v", st)
	}

	// Held already, and one new share beside them.
	a, err := cl.Allocate(ctx, &pb.AllocateRequest{StorageIndex: idx, ShareNums: []uint32{7}, ShareSize: 1000, LeaseSecret: bytes.Repeat([]byte{4}, LeaseSecretSize)})
	if err != nil || len(a.Allocated) != 1 {
		t.Fatalf("allocate share 7: %v %v", a, err)
	}
	r, err = cl.PutShares(ctx, putReq(idx, 1000, 1, 3, 5, 7))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(r.Stored, r.AlreadyHave, r.InProgress) != "[5] [1 3] [7]" {
		t.Fatalf("second put answered stored %v, held %v, in progress %v", r.Stored, r.AlreadyHave, r.InProgress)
	}
	if _, err := be.Stat(ctx, ref(7)); status.Code(err) == codes.OK && err == nil {
		t.Fatal("a share in progress elsewhere was stored by put")
	}
	// The open upload still seals its own bytes.
	if _, err := cl.Seal(ctx, &pb.SealRequest{Handle: a.Allocated[0].Handle}); err != nil {
		t.Fatalf("seal of the upload put left alone: %v", err)
	}
	// Allocate sees what put stored.
	a, err = cl.Allocate(ctx, &pb.AllocateRequest{StorageIndex: idx, ShareNums: []uint32{5}, ShareSize: 1000, LeaseSecret: bytes.Repeat([]byte{4}, LeaseSecretSize)})
	if err != nil || len(a.AlreadyHave) != 1 {
		t.Fatalf("allocate of a put share: %v %v, want already held", a, err)
	}
}

// TestPutSharesRefused: bad requests are refused in one line with
// InvalidArgument; no room is ResourceExhausted, and nothing is stored.
func TestPutSharesRefused(t *testing.T) {
	idx := bytes.Repeat([]byte{6}, storage.StorageIndexSize)
	short := putReq(idx, 100, 1)
	short.Shares[0].Data = short.Shares[0].Data[:99]
	dup := putReq(idx, 100, 1, 1)
	lease := putReq(idx, 100, 1)
	lease.LeaseSecret = lease.LeaseSecret[:5]
	cases := []struct {
		name string
		cfg  Config
		req  *pb.PutSharesRequest
		code codes.Code
	}{
		{"short index", Config{}, putReq(idx[:3], 100, 1), codes.InvalidArgument},
		{"bad lease secret", Config{}, lease, codes.InvalidArgument},
		{"no shares", Config{}, putReq(idx, 100), codes.InvalidArgument},
		{"data not share size", Config{}, short, codes.InvalidArgument},
		{"share twice", Config{}, dup, codes.InvalidArgument},
		{"share number too big", Config{}, putReq(idx, 100, 300), codes.InvalidArgument},
		{"negative size", Config{}, &pb.PutSharesRequest{StorageIndex: idx, ShareSize: -1, LeaseSecret: lease.LeaseSecret[:0]}, codes.InvalidArgument},
		{"more than one message", Config{}, putReq(idx, 360<<10, 0, 1, 2), codes.InvalidArgument},
		{"past max share size", Config{MaxShareSize: 50}, putReq(idx, 100, 1), codes.InvalidArgument},
		{"reserve", Config{Reserved: 1 << 30}, putReq(idx, 100, 1), codes.ResourceExhausted},
		{"backend full", Config{Backend: storagememory.NewLimit(150)}, putReq(idx, 100, 1, 2), codes.ResourceExhausted},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl, srv := rawClient(t, tc.cfg)
			_, err := cl.PutShares(context.Background(), tc.req)
			if status.Code(err) != tc.code {
				t.Fatalf("put: %v, want %v", err, tc.code)
			}
			if msg := status.Convert(err).Message(); strings.Contains(msg, "\n") || msg == "" {
				t.Fatalf("error %q is not one line", msg)
			}
			if st := srv.Stats(); st.OpenUploads != 0 || st.OpenBytes != 0 {
				t.Fatalf("a refused put left claims: %+v", st)
			}
			if tc.code == codes.ResourceExhausted && tc.name == "reserve" {
				if nums, _ := srv.cfg.Backend.List(context.Background(), [16]byte(idx)); len(nums) != 0 {
					t.Fatalf("a put over the reserve stored shares %v", nums)
				}
			}
		})
	}
}

// TestLeaseGroupCommit: concurrent lease puts all land, in fewer commits
// than puts, and survive closing and reopening the store.
func TestLeaseGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.db")
	ls, _, err := openLeases(path, DefaultLeaseDuration, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	b := ls.(*boltLeases)
	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	exp := time.Unix(2_000_000_000, 0)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.put([16]byte{byte(i)}, sha256.Sum256([]byte{byte(i)}), exp)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	commits := b.commits.Load()
	t.Logf("%d puts in %d commits", n, commits)
	if commits < 1 || commits > n {
		t.Fatalf("%d commits for %d puts", commits, n)
	}
	if err := ls.close(); err != nil {
		t.Fatal(err)
	}
	ls, _, err = openLeases(path, DefaultLeaseDuration, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.close()
	for i := range n {
		l, err := ls.list([16]byte{byte(i)})
		if err != nil || len(l) != 1 || !l[0].Expires.Equal(exp) {
			t.Fatalf("lease %d after reopen: %v %v", i, l, err)
		}
	}
}

// envLeaseWriter makes the test binary a process that puts leases from
// many goroutines and prints the number of each one acknowledged.
const envLeaseWriter = "TARN_TEST_LEASE_WRITER"

func leaseWriter(path string) {
	ls, _, err := openLeases(path, DefaultLeaseDuration, time.Now)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ; i += 8 {
				if err := ls.put([16]byte{byte(i >> 8), byte(i)}, sha256.Sum256(nil), time.Unix(int64(i), 0)); err != nil {
					return
				}
				mu.Lock()
				fmt.Fprintln(out, i)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestLeaseKill9: every lease put acknowledged before a kill -9 of the
// process that made it is in the store afterwards (commits are not
// fsynced, but the page cache outlives the process), and the reopen knows
// the stop was unclean and sets a floor.
func TestLeaseKill9(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envLeaseWriter+"="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	var acked []int
	for sc.Scan() {
		i, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("writer said %q", sc.Text())
		}
		acked = append(acked, i)
		if len(acked) == 300 {
			proctest.Kill(cmd.Process.Pid)
			break
		}
	}
	cmd.Wait()
	if len(acked) < 300 {
		t.Fatalf("writer acknowledged only %d puts", len(acked))
	}
	ls, info, err := openLeases(path, DefaultLeaseDuration, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.close()
	if !info.unclean || info.floor.Before(time.Now().Add(DefaultLeaseDuration)) {
		t.Fatalf("reopen after kill -9: unclean %v, floor %v: want unclean and a floor past now + the lease duration", info.unclean, info.floor)
	}
	for _, i := range acked {
		l, err := ls.list([16]byte{byte(i >> 8), byte(i)})
		if err != nil || len(l) != 1 || l[0].Expires.Unix() != int64(i) {
			t.Fatalf("lease %d acknowledged before the kill: %v %v", i, l, err)
		}
	}
}

// TestImpliedLeaseNotRewritten: slot writes and puts of one index by one
// owner write its lease once; a day later the next write extends it.
func TestImpliedLeaseNotRewritten(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_900_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cl, srv := rawClient(t, Config{LeasePath: filepath.Join(t.TempDir(), "leases.db"), Now: clock})
	ctx := context.Background()
	idx := bytes.Repeat([]byte{8}, storage.StorageIndexSize)
	secret := bytes.Repeat([]byte{3}, LeaseSecretSize)
	commits := func() int64 { return srv.leases.(*boltLeases).commits.Load() }
	tok := ""
	write := func() {
		t.Helper()
		r, err := cl.WriteSlot(ctx, &pb.WriteSlotRequest{StorageIndex: idx, SlotNum: 1, ExpectToken: tok, Value: []byte("v"), LeaseSecret: secret})
		if err != nil {
			t.Fatal(err)
		}
		tok = r.Token
	}
	write()
	if _, err := cl.PutShares(ctx, putReq(idx, 10, 0)); err != nil {
		t.Fatal(err)
	}
	write()
	if c := commits(); c != 1 {
		t.Fatalf("%d lease commits for three writes by one owner, want 1", c)
	}
	mu.Lock()
	now = now.Add(25 * time.Hour)
	mu.Unlock()
	write()
	if c := commits(); c != 2 {
		t.Fatalf("%d lease commits after a day, want 2", c)
	}
	ls, err := srv.Leases([16]byte(idx))
	if err != nil || len(ls) != 1 || !ls[0].Expires.Equal(clock().Add(DefaultLeaseDuration)) {
		t.Fatalf("lease after a day: %v %v, want one expiring %v", ls, err, clock().Add(DefaultLeaseDuration))
	}
}
