package storageserver

import (
	"context"
	"testing"
	"time"

	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
)

// TestCallsBeyondStreamWorkers: with more share streams held open than
// the server has stream workers, a unary call is still answered at once
// (it gets a goroutine of its own), and every stream still completes.
func TestCallsBeyondStreamWorkers(t *testing.T) {
	cl, _ := rawClient(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var streams []pb.StorageServer_WriteShareClient
	for range StreamWorkers + 4 {
		st, err := cl.WriteShare(ctx)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
	}
	time.Sleep(100 * time.Millisecond) // the handlers start and wait in Recv
	vctx, vcancel := context.WithTimeout(ctx, 2*time.Second)
	defer vcancel()
	if _, err := cl.GetVersion(vctx, &pb.GetVersionRequest{}); err != nil {
		t.Fatalf("get version with %d streams open: %v", len(streams), err)
	}
	for i, st := range streams {
		r, err := st.CloseAndRecv()
		if err != nil || r.BytesWritten != 0 {
			t.Fatalf("stream %d: %v %v", i, r, err)
		}
	}
}
