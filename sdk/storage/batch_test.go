package storage_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"

	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	"github.com/tarnfs/tarn/sdk/storage"
	"github.com/tarnfs/tarn/sdk/storage/storagetest"
)

// envServeOld makes the test binary serve the memory backend as a plugin
// built before PutBatch ("old"), one whose Info claims it ("liar"), or
// as today ("new").
const envServeOld = "TARN_TEST_SERVE_OLD_STORAGE"

func TestMain(m *testing.M) {
	switch os.Getenv(envServeOld) {
	case "old":
		storage.ServeOld(storagememory.New(), false)
		os.Exit(0)
	case "new":
		storage.Serve(storagememory.New())
		os.Exit(0)
	case "liar":
		storage.ServeOld(storagememory.New(), true)
		os.Exit(0)
	case "noopen":
		storage.Serve(noOpen{storagememory.New()})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestPutBatchOldPlugin: against a plugin without PutBatch (its Info
// says so, or it answers UNIMPLEMENTED) the client's PutBatch says
// unsupported and storage.PutBatch puts each share by Put: every share
// stored reads back, one sealed already fails alone; on the fast path
// and the fallback.
func TestPutBatchOldPlugin(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []string{"old", "liar"} {
		for _, fast := range []bool{true, false} {
			name := mode + map[bool]string{true: " fast", false: " fallback"}[fast]
			t.Run(name, func(t *testing.T) {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), envServeOld+"="+mode)
				c, _ := storagetest.StartPlugin(t, cmd, fast, nil)
				one := storage.Ref{Index: [16]byte{9}, Num: 1}
				if err := storage.Put(ctx, c, one, []byte("first")); err != nil {
					t.Fatal(err)
				}
				var puts []storage.PutItem
				for k := range 6 {
					puts = append(puts, storage.PutItem{Ref: storage.Ref{Index: [16]byte{9}, Num: uint32(k + 2)}, Data: bytes.Repeat([]byte{byte(k)}, 4096)})
				}
				puts = append(puts, storage.PutItem{Ref: one, Data: []byte("second")})
				for try := range 2 { // the liar is found out once, then not asked again
					if _, err := c.PutBatch(ctx, puts); !errors.Is(err, errors.ErrUnsupported) {
						t.Fatalf("try %d: client PutBatch: %v, want ErrUnsupported", try, err)
					}
				}
				errs := storage.PutBatch(ctx, c, puts)
				for k, p := range puts[:6] {
					got := make([]byte, len(p.Data))
					if errs[k] != nil {
						t.Fatalf("share %d: %v", k, errs[k])
					}
					if n, _ := c.ReadAt(ctx, p.Ref, got, 0); n != len(got) || !bytes.Equal(got, p.Data) {
						t.Fatalf("share %d reads back other bytes", k)
					}
				}
				if !errors.Is(errs[6], storage.ErrExists) {
					t.Fatalf("put over a sealed share: %v, want ErrExists", errs[6])
				}
			})
		}
	}
}

// TestPutBatchNew: a plugin with PutBatch takes a batch in one call: one
// outcome per share, a sealed share refused alone (ErrExists comes back
// as itself over the wire), a call over the limits refused whole.
func TestPutBatchNew(t *testing.T) {
	ctx := context.Background()
	for _, fast := range []bool{true, false} {
		t.Run(map[bool]string{true: "fast", false: "fallback"}[fast], func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), envServeOld+"=new")
			c, _ := storagetest.StartPlugin(t, cmd, fast, nil)
			one := storage.Ref{Index: [16]byte{7}, Num: 0}
			if err := storage.Put(ctx, c, one, []byte("first")); err != nil {
				t.Fatal(err)
			}
			puts := []storage.PutItem{
				{Ref: storage.Ref{Index: [16]byte{7}, Num: 1}, Data: []byte("a")},
				{Ref: one, Data: []byte("b")},
				{Ref: storage.Ref{Index: [16]byte{8}, Num: 2}, Data: nil},
			}
			errs, err := c.PutBatch(ctx, puts)
			if err != nil || len(errs) != 3 || errs[0] != nil || !errors.Is(errs[1], storage.ErrExists) || errs[2] != nil {
				t.Fatalf("batch: %v, %v; want [nil ErrExists nil]", errs, err)
			}
			if _, err := c.PutBatch(ctx, make([]storage.PutItem, storage.MaxBatchPuts+1)); !errors.Is(err, storage.ErrBatchLimit) {
				t.Fatalf("over the count: %v, want ErrBatchLimit", err)
			}
		})
	}
}
