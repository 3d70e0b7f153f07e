package pluginhost_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"

	"github.com/tarnfs/tarn/host/pluginhost"
	"github.com/tarnfs/tarn/sdk/pluginkit"
	"github.com/tarnfs/tarn/sdk/storage"
)

// With TARN_DATAPLANE=off a real codec and a real disk storage plugin whose
// specs ask for the fast path are started without it, and data round-trips
// through both over gRPC alone: the path plugins take on Windows, where
// there is no data plane, proven here on Linux.
func TestDataPlaneOffRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  string
		fast bool // what the plugins must be offered
	}{
		{"offered", "", true},
		{"TARN_DATAPLANE=off", "off", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(pluginkit.EnvDataPlane, tc.env)
			dir := t.TempDir()
			h := newHost(t, pluginhost.Options{},
				pluginhost.Spec{Kind: pluginkit.KindCodec, Name: "reedsolomon", FastPath: true},
				pluginhost.Spec{Kind: pluginkit.KindStorage, Name: "disk", FastPath: true,
					Config: []byte(`{"path":"` + dir + `"}`)})
			ctx := context.Background()

			c, err := h.Codec()
			if err != nil {
				t.Fatal(err)
			}
			seg := make([]byte, 3<<20+5)
			rand.Read(seg)
			if err := encodeOnce(ctx, c, seg); err != nil {
				t.Fatalf("codec round trip: %v", err)
			}

			b, err := h.Storage()
			if err != nil {
				t.Fatal(err)
			}
			ref := storage.Ref{Index: [16]byte{7}, Num: 2}
			data := make([]byte, 5<<20+3)
			rand.Read(data)
			w, err := b.Create(ctx, ref, int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WriteAt(ctx, data, 0); err != nil {
				t.Fatal(err)
			}
			if err := w.Seal(ctx); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(data))
			if n, err := b.ReadAt(ctx, ref, got, 0); err != nil || n != len(data) || !bytes.Equal(got, data) {
				t.Fatalf("storage round trip: %d bytes, %v, equal=%v", n, err, bytes.Equal(got, data))
			}

			for _, st := range h.List() {
				if st.Health != "ok" || st.FastPath != tc.fast {
					t.Errorf("%s plugin: health %q, fast_path %v; want ok, %v", st.Kind, st.Health, st.FastPath, tc.fast)
				}
			}
		})
	}
}
