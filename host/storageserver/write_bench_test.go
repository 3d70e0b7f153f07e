package storageserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/tarnfs/tarn/host/identity"
	"github.com/tarnfs/tarn/host/nodelink"
	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	storagedisk "github.com/tarnfs/tarn/plugins/storage-disk"
	transporttcp "github.com/tarnfs/tarn/plugins/transport-tcp"
	"github.com/tarnfs/tarn/sdk/storage"
	"github.com/tarnfs/tarn/sdk/storage/storagetest"
)

// envServeDisk makes the test binary serve the disk backend as a plugin
// process, as a storage node runs it.
const envServeDisk = "TARN_TEST_STORAGESERVER_SERVE_DISK"

func TestMain(m *testing.M) {
	if os.Getenv(envServeDisk) == "1" {
		storagedisk.Serve()
		os.Exit(0)
	}
	if p := os.Getenv(envLeaseWriter); p != "" {
		leaseWriter(p)
		os.Exit(0)
	}
	if p := os.Getenv(envLeaseSyncs); p != "" {
		leaseSyncer(p)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// diskPlugin starts the disk backend in its own process on a fresh
// folder, with the shared-memory data plane as a node uses it.
func diskPlugin(tb testing.TB) storage.Backend {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envServeDisk+"=1")
	settings, err := json.Marshal(storagedisk.Settings{Path: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	c, _ := storagetest.StartPlugin(tb, cmd, true, settings)
	return c
}

// benchClient is rawClient for benchmarks too: a server over real TLS and
// loopback TCP, and a protocol client of a grid member.
func benchClient(tb testing.TB, cfg Config) pb.StorageServerClient {
	tb.Helper()
	tcp := transporttcp.New()
	secret := make([]byte, 32)
	rand.Read(secret)
	cfg.GridSecret = secret
	srv, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	sid, _ := identity.Create(tb.TempDir())
	scert, _ := sid.TLSCertificate()
	ln, err := tcp.Listen(context.Background(), "tcp:127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	g := srv.NewGRPCServer(scert)
	go g.Serve(ln)
	tb.Cleanup(func() { g.Stop(); srv.Close() })
	cid, _ := identity.Create(tb.TempDir())
	ccert, _ := cid.TLSCertificate()
	proof, err := nodelink.GridProof(secret, ccert)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := nodelink.DialGRPC(ctx, tcp, "tarn://"+sid.KeyHash()+"@"+ln.Addr().String(), ccert, grpc.WithPerRPCCredentials(proof))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return pb.NewStorageServerClient(cc)
}

// writeShares allocates n shares of size bytes under a fresh storage index,
// streams each in chunk-sized messages, one stream per share, all at once,
// as an uploader does, and seals them.
func writeShares(tb testing.TB, c pb.StorageServerClient, n int, size int64, chunk []byte) (index [storage.StorageIndexSize]byte) {
	tb.Helper()
	ctx := context.Background()
	rand.Read(index[:])
	si := index[:]
	nums := make([]uint32, n)
	for i := range nums {
		nums[i] = uint32(i)
	}
	a, err := c.Allocate(ctx, &pb.AllocateRequest{StorageIndex: si, ShareNums: nums, ShareSize: size, LeaseSecret: make([]byte, LeaseSecretSize)})
	if err != nil {
		tb.Fatal(err)
	}
	if len(a.Allocated) != n {
		tb.Fatalf("allocated %d of %d shares", len(a.Allocated), n)
	}
	errs := make(chan error, n)
	for _, al := range a.Allocated {
		go func() {
			st, err := c.WriteShare(ctx)
			if err != nil {
				errs <- err
				return
			}
			for off := int64(0); off < size; off += int64(len(chunk)) {
				d := chunk[:min(int64(len(chunk)), size-off)]
				if err := st.Send(&pb.WriteShareRequest{Handle: al.Handle, Offset: off, Data: d}); err != nil {
					errs <- err
					return
				}
			}
			if _, err := st.CloseAndRecv(); err != nil {
				errs <- err
				return
			}
			_, err = c.Seal(ctx, &pb.SealRequest{Handle: al.Handle})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			tb.Fatal(err)
		}
	}
	return index
}

// BenchmarkWriteShares is the storage server's write path on its own: a
// client on real TLS over loopback streams shares in 1 MiB messages to a
// server whose backend is the disk plugin in its own process (shared-memory
// data plane) or in process. MB/s are of share bytes received; profile it
// with -cpuprofile to see where a node's CPU goes during an upload.
func BenchmarkWriteShares(b *testing.B) {
	const (
		shares = 2
		size   = 32 << 20
	)
	chunk := make([]byte, MaxChunk)
	rand.Read(chunk)
	for _, tc := range []struct {
		name    string
		backend func(testing.TB) storage.Backend
	}{
		{"disk-plugin", diskPlugin},
		{"disk-inprocess", func(tb testing.TB) storage.Backend {
			d, err := storagedisk.New(tb.TempDir())
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { d.Close() })
			return d
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := benchClient(b, Config{Backend: tc.backend(b)})
			b.SetBytes(shares * size)
			b.ReportAllocs()
			for b.Loop() {
				writeShares(b, c, shares, size, chunk)
			}
		})
	}
}

// TestWriteSharesDisk runs the benchmark's write path once and reads the
// shares back from the disk plugin: what the benchmark measures works.
func TestWriteSharesDisk(t *testing.T) {
	be := diskPlugin(t)
	c := benchClient(t, Config{Backend: be})
	chunk := make([]byte, 300<<10)
	rand.Read(chunk)
	const size = 1<<20 + 5
	index := writeShares(t, c, 3, size, chunk)
	want := bytes.Repeat(chunk, size/len(chunk)+1)[:size]
	for n := range uint32(3) {
		got := make([]byte, size)
		if k, err := be.ReadAt(context.Background(), storage.Ref{Index: index, Num: n}, got, 0); err != nil || k != size {
			t.Fatalf("read share %d back: %d bytes, %v", n, k, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("share %d came back with other bytes", n)
		}
		// And through the server, which preads the file the plugin hands
		// it: two ranges, the second running past the end.
		st, err := c.ReadShare(context.Background(), &pb.ReadShareRequest{StorageIndex: index[:], ShareNum: n,
			Ranges: []*pb.ByteRange{{Offset: 0, Length: 3 << 20}, {Offset: size - 100, Length: 1000}}})
		if err != nil {
			t.Fatal(err)
		}
		var r0, r1 []byte
		for {
			m, err := st.Recv()
			if err != nil {
				break
			}
			if m.ShareSize != size {
				t.Fatalf("share %d: size %d, want %d", n, m.ShareSize, size)
			}
			if m.Range == 0 {
				r0 = append(r0, m.Data...)
			} else {
				r1 = append(r1, m.Data...)
			}
		}
		if !bytes.Equal(r0, want) || !bytes.Equal(r1, want[size-100:]) {
			t.Fatalf("share %d read through the server: %d and %d bytes, or other bytes", n, len(r0), len(r1))
		}
	}
}
