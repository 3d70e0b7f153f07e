package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tarnfs/tarn/sdk/dataplane"
	"github.com/tarnfs/tarn/sdk/pluginkit"
	"github.com/tarnfs/tarn/sdk/storage/storagepb"
)

// TestErrorsCrossTheBoundary: every sentinel, wrapped with context by a
// backend, comes back from a status error as itself, message intact.
func TestErrorsCrossTheBoundary(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"not found", fmt.Errorf("stat share x: %w", ErrNotFound), ErrNotFound},
		{"exists", fmt.Errorf("create share x: %w", ErrExists), ErrExists},
		{"no space", fmt.Errorf("create share x: %w", ErrNoSpace), ErrNoSpace},
		{"conflict", fmt.Errorf("write slot x: %w", ErrConflict), ErrConflict},
		{"range", fmt.Errorf("write share x: %w", ErrRange), ErrRange},
		{"closed", fmt.Errorf("seal share x: %w", ErrClosed), ErrClosed},
		{"canceled", fmt.Errorf("read: %w", context.Canceled), context.Canceled},
		{"deadline", fmt.Errorf("read: %w", context.DeadlineExceeded), context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			back := fromStatus(toStatus(tc.err))
			if !errors.Is(back, tc.want) {
				t.Fatalf("%v came back as %v", tc.err, back)
			}
			if back.Error() != tc.err.Error() {
				t.Fatalf("message %q came back as %q", tc.err, back)
			}
			for _, other := range []error{ErrNotFound, ErrExists, ErrNoSpace, ErrConflict, ErrRange, ErrClosed} {
				if other != tc.want && errors.Is(back, other) {
					t.Fatalf("%v also matches %v", back, other)
				}
			}
		})
	}
	// A plain error matches no sentinel; a status without detail maps by code.
	if back := fromStatus(toStatus(errors.New("disk on fire"))); !strings.Contains(back.Error(), "disk on fire") || errors.Is(back, ErrNotFound) {
		t.Fatalf("plain error came back as %v", back)
	}
	if back := fromStatus(status.Error(codes.NotFound, "gone")); !errors.Is(back, ErrNotFound) {
		t.Fatalf("bare NotFound status came back as %v", back)
	}
	if fromStatus(nil) != nil || toStatus(nil) != nil {
		t.Fatal("nil did not stay nil")
	}
}

// stubBackend answers every call with its fields; it only exists to put
// the server's bounds checks under test without a real backend's logic.
type stubBackend struct{ Backend }

func (stubBackend) ReadAt(_ context.Context, _ Ref, p []byte, _ int64) (int, error) {
	clear(p)
	return len(p), nil
}

func newTestServer(t testing.TB) (*server, *dataplane.Arena) {
	a, err := dataplane.NewArena("storage-test", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return newServer(stubBackend{}, pluginkit.DataPlane{Arena: a}, nil), a
}

// TestServerRegionBounds: a request naming memory outside the arena is an
// InvalidArgument error, never a fault.
func TestServerRegionBounds(t *testing.T) {
	s, a := newTestServer(t)
	size := int64(a.Size())
	ref := &storagepb.Ref{Index: make([]byte, StorageIndexSize)}
	for _, tc := range []struct {
		name     string
		off, len int64
		ok       bool
	}{
		{"whole", 0, size, true},
		{"empty at end", size, 0, true},
		{"past end", size - 10, 11, false},
		{"negative offset", -1, 10, false},
		{"negative length", 0, -1, false},
		{"huge", 1 << 62, 1 << 62, false},
		{"overflowing sum", 10, 1<<63 - 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.ReadAt(context.Background(), &storagepb.ReadAtRequest{Ref: ref,
				Region: &storagepb.Region{Off: tc.off, Len: tc.len}})
			if tc.ok && err != nil {
				t.Fatalf("valid region refused: %v", err)
			}
			if !tc.ok && status.Code(err) != codes.InvalidArgument {
				t.Fatalf("bad region: %v, want InvalidArgument", err)
			}
		})
	}
}

// TestServerWithoutArena: a region sent to a plugin that has no arena is
// refused with a message that says to send bytes.
func TestServerWithoutArena(t *testing.T) {
	s := newServer(stubBackend{}, pluginkit.DataPlane{}, nil)
	_, err := s.ReadAt(context.Background(), &storagepb.ReadAtRequest{
		Ref: &storagepb.Ref{Index: make([]byte, StorageIndexSize)}, Region: &storagepb.Region{Len: 1}})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("region without arena: %v", err)
	}
	_, err = s.ReadAt(context.Background(), &storagepb.ReadAtRequest{
		Ref: &storagepb.Ref{Index: make([]byte, StorageIndexSize)}, Len: pluginkit.ChunkSize + 1})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("oversized fallback read: %v", err)
	}
	_, err = s.Stat(context.Background(), &storagepb.Ref{Index: []byte{1, 2}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("short storage index: %v", err)
	}
	_, err = s.Seal(context.Background(), &storagepb.HandleRequest{Handle: 42})
	if !errors.Is(fromStatus(err), ErrClosed) {
		t.Fatalf("seal of an unknown handle: %v, want ErrClosed", err)
	}
}

func FuzzServerRegion(f *testing.F) {
	f.Add(int64(0), int64(1))
	f.Add(int64(-1), int64(1))
	f.Add(int64(1<<20-1), int64(2))
	f.Fuzz(func(t *testing.T, off, n int64) {
		s, a := newTestServer(t)
		r, err := s.ReadAt(context.Background(), &storagepb.ReadAtRequest{
			Ref: &storagepb.Ref{Index: make([]byte, StorageIndexSize)}, Region: &storagepb.Region{Off: off, Len: n}})
		inside := off >= 0 && n >= 0 && off <= int64(a.Size()) && n <= int64(a.Size())-off
		if inside != (err == nil) {
			t.Fatalf("region [%d,+%d): err %v, inside %v", off, n, err, inside)
		}
		if err == nil && r.N != n {
			t.Fatalf("read %d of %d", r.N, n)
		}
	})
}

// oldPlugin is the RPC client of a plugin built before ListSlots existed.
type oldPlugin struct{ storagepb.StorageClient }

func (oldPlugin) ListSlots(context.Context, *storagepb.ListRequest, ...grpc.CallOption) (*storagepb.ListResponse, error) {
	return nil, status.Error(codes.Unimplemented, "unknown method ListSlots for service tarn.storage.v1.Storage")
}

// TestListSlotsBounds: a plugin that predates ListSlots gives
// errors.ErrUnsupported (callers fall back); a short index is refused.
func TestListSlotsBounds(t *testing.T) {
	c := &Client{rpc: oldPlugin{}}
	if _, err := c.ListSlots(context.Background(), [StorageIndexSize]byte{}); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("ListSlots on an old plugin: %v, want ErrUnsupported", err)
	}
	s := newServer(stubBackend{}, pluginkit.DataPlane{}, nil)
	if _, err := s.ListSlots(context.Background(), &storagepb.ListRequest{Index: []byte{1}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("ListSlots of a 1-byte index: %v, want InvalidArgument", err)
	}
}

// oldPutPlugin is the RPC client of a plugin that says it serves Put but
// answers UNIMPLEMENTED (as a plugin built before Put does).
type oldPutPlugin struct{ storagepb.StorageClient }

func (oldPutPlugin) Put(context.Context, *storagepb.PutRequest, ...grpc.CallOption) (*storagepb.Empty, error) {
	return nil, status.Error(codes.Unimplemented, "unknown method Put for service tarn.storage.v1.Storage")
}

// TestPutOldPlugin: a plugin whose Info does not offer Put, or that
// answers UNIMPLEMENTED, gives errors.ErrUnsupported (storage.Put then
// falls back to Create); bad requests to the plugin's Put are refused in
// one line, never a fault.
func TestPutOldPlugin(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		info *storagepb.InfoResponse
	}{
		{"info without put", &storagepb.InfoResponse{}},
		{"unimplemented", &storagepb.InfoResponse{Put: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Client{rpc: oldPutPlugin{}, info: tc.info}
			err := c.Put(ctx, Ref{Num: 1}, []byte("share"))
			if !errors.Is(err, errors.ErrUnsupported) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("put on an old plugin: %v, want one line wrapping ErrUnsupported", err)
			}
		})
	}
	s, a := newTestServer(t)
	for _, tc := range []struct {
		name string
		req  *storagepb.PutRequest
		code codes.Code
	}{
		{"no ref", &storagepb.PutRequest{}, codes.InvalidArgument},
		{"short index", &storagepb.PutRequest{Ref: &storagepb.Ref{Index: []byte{1}}}, codes.InvalidArgument},
		{"region past the arena", &storagepb.PutRequest{Ref: &storagepb.Ref{Index: make([]byte, StorageIndexSize)},
			Payload: &storagepb.PutRequest_Region{Region: &storagepb.Region{Off: int64(a.Size()) - 1, Len: 2}}}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Put(ctx, tc.req); status.Code(err) != tc.code {
				t.Fatalf("put: %v, want %v", err, tc.code)
			}
		})
	}
}
