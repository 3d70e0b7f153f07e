package storageclient

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tarnfs/tarn/host/storageserver"
	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	"github.com/tarnfs/tarn/sdk/storage"
)

// idle is the server's idle timeout in these tests: long enough that a loaded
// 2-core CI machine never trips it by accident, short enough to wait out.
const idle = 2 * time.Second

func TestStalledWriterDoesNotBlockOthers(t *testing.T) {
	ts := startServer(t, storageserver.Config{IdleTimeout: idle}, false)
	stalled := ts.dial(t, ts.secret, Options{})
	ctx := testCtx(t)
	index := randIndex()
	a, err := stalled.Allocate(ctx, index, []uint32{0}, 1<<20, randBytes(32))
	if err != nil {
		t.Fatal(err)
	}
	// Send one chunk on a raw stream, then go silent.
	stream, err := stalled.rpc.WriteShare(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.WriteShareRequest{Handle: a.Writers[0].handle, Offset: 0, Data: make([]byte, 1000)}); err != nil {
		t.Fatal(err)
	}

	// Meanwhile another client uploads and reads at full speed.
	start := time.Now()
	other := ts.dial(t, ts.secret, Options{})
	upload(t, other, randIndex(), map[uint32][]byte{0: randBytes(500000), 1: randBytes(500000)}, randBytes(32))
	if d := time.Since(start); d > idle {
		t.Fatalf("other client took %s while one stalled", d)
	}
	// Another node cannot write into the stalled node's upload.
	_, err = other.rpc.Seal(ctx, &pb.SealRequest{Handle: a.Writers[0].handle})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("seal of another node's upload: %v, want PermissionDenied", err)
	}

	// The server ends the silent stream and aborts the idle upload.
	time.Sleep(3 * idle)
	_, err = stream.CloseAndRecv()
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "no progress") {
		t.Fatalf("silent stream ended with %v, want DeadlineExceeded", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for ts.srv.Stats().IdleAborted == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("idle upload never aborted: %+v", ts.srv.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.Writers[0].Seal(ctx); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("seal after idle abort: %v, want ErrClosed", err)
	}
	b, err := other.Allocate(ctx, index, []uint32{0}, 1<<20, randBytes(32))
	if err != nil || b.Writers[0] == nil {
		t.Fatalf("share not free again after idle abort: %v %+v", err, b)
	}
}

func TestStalledReaderDoesNotBlockOthers(t *testing.T) {
	ts := startServer(t, storageserver.Config{IdleTimeout: idle}, false)
	c := ts.dial(t, ts.secret, Options{})
	ctx := testCtx(t)
	index := randIndex()
	data := randBytes(32 << 20) // more than gRPC's flow-control windows
	upload(t, c, index, map[uint32][]byte{0: data}, randBytes(32))

	stalled := ts.dial(t, ts.secret, Options{})
	stream, err := stalled.rpc.ReadShare(ctx, &pb.ReadShareRequest{StorageIndex: index[:], ShareNum: 0, Ranges: []*pb.ByteRange{{Offset: 0, Length: int64(len(data))}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	// Stop reading; another client still reads the same share.
	start := time.Now()
	got, err := c.Read(ctx, index, 0, 1000, 1<<20)
	if err != nil || !bytes.Equal(got, data[1000:1000+1<<20]) {
		t.Fatalf("other reader: %v", err)
	}
	if d := time.Since(start); d > idle {
		t.Fatalf("other reader took %s", d)
	}
	time.Sleep(3 * idle)
	// The server gave up on the stalled reader: draining ends in an error.
	for {
		_, err := stream.Recv()
		if err == io.EOF {
			t.Fatal("stalled reader got the whole share; the server never timed out")
		}
		if err != nil {
			if status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("stalled reader ended with %v, want DeadlineExceeded", err)
			}
			break
		}
	}
}

func TestSlowWriterIsNotTakenForStalledServer(t *testing.T) {
	// A caller that pauses between writes longer than CallTimeout (waiting
	// on other servers, say) keeps its stream.
	ts := startServer(t, storageserver.Config{}, false)
	c := ts.dial(t, ts.secret, Options{CallTimeout: 100 * time.Millisecond, ChunkSize: 1000})
	ctx := testCtx(t)
	index := randIndex()
	data := randBytes(3000)
	a, err := c.Allocate(ctx, index, []uint32{0}, int64(len(data)), randBytes(32))
	if err != nil {
		t.Fatal(err)
	}
	w := a.Writers[0]
	for off := 0; off < len(data); off += 1000 {
		if err := w.WriteAt(ctx, data[off:off+1000], int64(off)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err := w.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := c.Read(ctx, index, 0, 0, int64(len(data)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
}
