package pluginhost_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/pluginhost"
	"github.com/tarnfs/tarn/sdk/pluginkit"
	"github.com/tarnfs/tarn/sdk/storage"
)

// TestStorageDiskKilledMidBatch: the disk plugin killed with SIGKILL
// while writers store batches of shares through the supervised backend
// (storage.PutBatch, one PutBatch RPC per batch): the batches in flight
// fail, the next ones restart the plugin and are stored, and every share
// answered stored, before or after the kill, reads back byte for byte.
func TestStorageDiskKilledMidBatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		fast bool
	}{{"fast path", true}, {"grpc fallback", false}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			h := newHost(t, pluginhost.Options{}, pluginhost.Spec{Kind: pluginkit.KindStorage, Name: "disk",
				FastPath: tc.fast, Config: []byte(`{"path":"` + dir + `"}`)})
			b, err := h.Storage()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := any(b).(storage.BatchPutter); !ok {
				t.Fatal("the supervised backend is not a storage.BatchPutter")
			}
			ctx := context.Background()
			share := func(g, i, k int) storage.PutItem {
				r := storage.Ref{Index: [16]byte{byte(g), byte(i >> 8), byte(i)}, Num: uint32(k)}
				return storage.PutItem{Ref: r, Data: bytes.Repeat([]byte(fmt.Sprintf("%d/%d/%d;", g, i, k)), 400+k)}
			}
			var (
				mu       sync.Mutex
				stored   []storage.PutItem
				failed   atomic.Int32
				killed   atomic.Bool
				after    atomic.Int32 // batches wholly stored after the kill
				wg       sync.WaitGroup
				perBatch = 6
			)
			for g := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 2000 && after.Load() < 6; i++ {
						puts := make([]storage.PutItem, perBatch)
						for k := range puts {
							puts[k] = share(g, i, k)
						}
						errs := storage.PutBatch(ctx, b, puts)
						ok := true
						mu.Lock()
						for k, err := range errs {
							if err == nil {
								stored = append(stored, puts[k])
							} else {
								ok = false
								if !errors.Is(err, pluginhost.ErrPluginDied) && !errors.Is(err, storage.ErrExists) {
									t.Errorf("batch %d/%d share %d: %v", g, i, k, err)
								}
							}
						}
						mu.Unlock()
						if !ok {
							failed.Add(1)
						} else if killed.Load() {
							after.Add(1)
						}
					}
				}()
			}
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				mu.Lock()
				n := len(stored)
				mu.Unlock()
				if n >= 60 || time.Now().After(deadline) {
					break
				}
			}
			pid := h.Pid(pluginkit.KindStorage)
			killed.Store(true)
			kill9(t, pid)
			wg.Wait()
			if after.Load() < 6 {
				t.Fatalf("only %d batches stored after the kill", after.Load())
			}
			t.Logf("%d shares stored, %d batches failed", len(stored), failed.Load())
			for _, p := range stored {
				got := make([]byte, len(p.Data)+1)
				n, _ := b.ReadAt(ctx, p.Ref, got, 0)
				if n != len(p.Data) || !bytes.Equal(got[:n], p.Data) {
					t.Fatalf("share %s answered stored reads back %d bytes (want %d)", p.Ref, n, len(p.Data))
				}
			}
			if st := h.List()[0]; st.Restarts < 1 || st.Pid == pid {
				t.Errorf("status %+v: want a restart and a new pid", st)
			}
		})
	}
}
