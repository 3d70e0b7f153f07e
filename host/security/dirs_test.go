package security

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/dirnode"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/hashtree"
	"github.com/tarnfs/tarn/host/mutable"
	"github.com/tarnfs/tarn/host/storageclient"
	"github.com/tarnfs/tarn/host/storageserver"
	"github.com/tarnfs/tarn/host/tagged"
	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/host/vdrive"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/storage"
)

// TestDirReadCapGivesNoWriteCaps builds a tree (nested directories, CHK
// and literal files, a mutable file, a linked directory) with the root's
// write cap, then walks it with only the root's read cap through a real
// grid: every entry lists, every child cap it yields is a read cap, no
// write cap string appears anywhere in what it sees, and every change
// through the read-only drive fails with ErrReadOnly. The servers refuse
// writes to the directory's slot forged with what the read cap gives (the
// read key to encrypt, but no signing key), and the directory is unchanged
// afterwards.
func TestDirReadCapGivesNoWriteCaps(t *testing.T) {
	g := testgrid.New(t, 5, &testgrid.Options{Server: func(_ int, cfg *storageserver.Config) {
		cfg.ValidateSlotWrite = mutable.ValidateSlotWrite
	}})
	c := newClient(t, g)
	st := vdrive.GridStore(c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root, err := vdrive.NewRoot(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	w, err := vdrive.New(st, root.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/docs/2026/q1", "/empty"} {
		if err := w.MkdirAll(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string][]byte{
		"/tiny.txt":             []byte("lit"),
		"/docs/report.txt":      bytes.Repeat([]byte("report "), 2000),
		"/docs/2026/q1/big.bin": bytes.Repeat([]byte("0123456789abcdef"), 3*seg),
	}
	for p, data := range files {
		if err := w.Put(ctx, p, bytes.NewReader(data), int64(len(data)), nil); err != nil {
			t.Fatal(err)
		}
	}
	mut, err := c.CreateMutable(ctx, []byte("mutable contents"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := vdrive.NewRoot(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.LinkMany(ctx, "/docs", map[string]string{"notes": mut.String(), "shared": other.String()}); err != nil {
		t.Fatal(err)
	}

	// Every write cap the writer sees, with the secrets inside them.
	writeCaps := map[string]string{"/": root.String()} // path -> write cap
	var walkW func(dir string)
	walkW = func(dir string) {
		infos, err := w.ReadDir(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range infos {
			p := strings.TrimSuffix(dir, "/") + "/" + in.Name()
			if wc := in.WriteCap(); wc != "" {
				writeCaps[p] = wc
			}
			if in.IsDir() {
				walkW(p)
			}
		}
	}
	walkW("/")
	if len(writeCaps) < 6 { // root, docs, 2026, q1, empty, notes, shared
		t.Fatalf("the writer sees %d write caps, want the root, 5 directories and a mutable file: %v", len(writeCaps), writeCaps)
	}

	ro, err := vdrive.New(st, root.ReadCap().String())
	if err != nil {
		t.Fatal(err)
	}
	if !ro.ReadOnly() {
		t.Fatal("a drive opened with the read cap is not read-only")
	}
	seen := 0
	var walkR func(dir string)
	walkR = func(dir string) {
		infos, err := ro.ReadDir(ctx, dir)
		if err != nil {
			t.Fatalf("list %s with the read cap: %v", dir, err)
		}
		for _, in := range infos {
			seen++
			p := strings.TrimSuffix(dir, "/") + "/" + in.Name()
			if wc := in.WriteCap(); wc != "" {
				t.Errorf("%s: the read cap yields a write cap", p)
			}
			rc := in.ReadCap()
			parsed, err := cap.Parse(rc)
			if err != nil {
				t.Fatalf("%s: read cap %q: %v", p, rc, err)
			}
			switch parsed.(type) {
			case cap.MutableWrite, cap.DirWrite:
				t.Errorf("%s: the read cap yields a %s cap", p, parsed.Kind())
			}
			for wp, wc := range writeCaps {
				if strings.Contains(rc, wc) || strings.Contains(fmt.Sprintf("%+v", in.Metadata()), wc) {
					t.Errorf("%s: what the read cap shows holds the write cap of %s", p, wp)
				}
			}
			if want, ok := files[p]; ok {
				f, err := ro.Open(ctx, p)
				if err != nil {
					t.Fatalf("open %s with the read cap: %v", p, err)
				}
				got := make([]byte, f.Size())
				if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
					t.Fatalf("read %s with the read cap: %d bytes, %v", p, len(got), err)
				}
			}
			if in.IsDir() {
				walkR(p)
			}
		}
	}
	walkR("/")
	if seen != 9 { // tiny, docs, empty, report, 2026, notes, shared, q1, big
		t.Fatalf("the read cap lists %d entries, want 9", seen)
	}

	writes := []struct {
		name string
		op   func() error
	}{
		{"mkdir", func() error { return ro.Mkdir(ctx, "/docs/new") }},
		{"put", func() error { return ro.Put(ctx, "/docs/new.txt", strings.NewReader("x"), 1, nil) }},
		{"remove a file", func() error { return ro.Remove(ctx, "/tiny.txt") }},
		{"remove a nested file", func() error { return ro.Remove(ctx, "/docs/2026/q1/big.bin") }},
		{"rename", func() error { return ro.Rename(ctx, "/docs/report.txt", "/docs/r.txt") }},
		{"link", func() error { return ro.Link(ctx, "/docs/2026/x", mut.ReadCap().String()) }},
		{"set metadata", func() error {
			return ro.SetMetadata(ctx, "/docs/report.txt", func(m *vdrive.Metadata) error { m.Mtime = time.Unix(1, 0); return nil })
		}},
	}
	for _, tc := range writes {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.op(); !errors.Is(err, vdrive.ErrReadOnly) {
				t.Fatalf("%s through the read cap: %v, want ErrReadOnly", tc.name, err)
			}
		})
	}

	t.Run("verify cap lists nothing", func(t *testing.T) {
		vc := root.ReadCap().Verify().String()
		d, err := vdrive.New(st, vc)
		if err == nil {
			var infos []*vdrive.Info
			infos, err = d.ReadDir(ctx, "/")
			if err == nil {
				t.Fatalf("the verify cap lists %d entries", len(infos))
			}
		}
		t.Logf("verify cap: %v", err)
		if _, _, err := c.ReadMutable(ctx, root.ReadCap().Verify().Slot); !errors.Is(err, grid.ErrNotReadable) {
			t.Fatalf("read of the directory's slot with its verify cap: %v, want ErrNotReadable", err)
		}
	})
	t.Run("forged slot writes", func(t *testing.T) {
		forgeDirWrites(t, ctx, g, root)
	})

	// Nothing changed: the writer still sees the same tree.
	before := len(writeCaps)
	writeCaps = map[string]string{"/": root.String()}
	walkW("/")
	if len(writeCaps) != before {
		t.Fatalf("after the forgeries the writer sees %d write caps, want %d", len(writeCaps), before)
	}
	if _, err := w.Stat(ctx, "/docs/report.txt"); err != nil {
		t.Fatalf("after the forgeries: %v", err)
	}
}

// forgeDirWrites writes to every share of the directory's slot versions a
// read-cap holder can make: an empty directory encrypted under the real read
// key with a higher sequence number, signed by another key, with the real
// public key or with the forger's; and the real share with its sequence
// number raised. Every server must refuse every one. The write cap only
// serves as a control: the same version signed with the real key verifies,
// so the forgeries fail for their signature and nothing else.
func forgeDirWrites(t *testing.T, ctx context.Context, g *testgrid.Grid, root cap.DirWrite) {
	rc := root.ReadCap()
	si := rc.Slot.StorageIndex()
	forger, err := cap.NewMutableWrite()
	if err != nil {
		t.Fatal(err)
	}
	rs := codecreedsolomon.New()
	tried := 0
	for _, s := range g.Servers {
		cl, err := storageclient.Dial(ctx, g.Transport, s.Addr, g.ClientCert(), storageclient.Options{GridSecret: g.Secret})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		for num := uint32(0); num < 5; num++ {
			ref := storage.Ref{Index: si, Num: num}
			cur, tok, err := cl.ReadSlot(ctx, ref)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			real, err := mutable.ParseShare(cur)
			if err != nil {
				t.Fatal(err)
			}
			h := real.Header
			p := codec.Params{K: h.K, N: h.N}
			shares := forgeVersion(t, ctx, rs, rc.Slot.ReadKey, h.Seq+1, p, dirnode.EmptyRoot(), forger)
			control := forgeVersion(t, ctx, rs, rc.Slot.ReadKey, h.Seq+1, p, dirnode.EmptyRoot(), root.Slot)
			if _, err := mutable.VerifyShare(rc.Slot.PublicKeyHash, control[num].Marshal()); err != nil {
				t.Fatalf("control: the version signed with the real key does not verify: %v", err)
			}
			ownKey := *shares[num]
			realKey := ownKey
			realKey.PublicKey = real.PublicKey
			bumped := *real
			bumped.Header.Seq = h.Seq + 1
			bumpedID := bumped.Header.ID()
			copy(bumped.Signature[:], ed25519.Sign(forger.SigningKey(), bumpedID[:]))
			for _, tc := range []struct {
				name  string
				value []byte
			}{
				{"empty directory under the real key, signed by another", realKey.Marshal()},
				{"empty directory with the forger's own key", ownKey.Marshal()},
				{"real share with a raised sequence number", bumped.Marshal()},
			} {
				tried++
				_, err := cl.WriteSlot(ctx, ref, tok, tc.value, make([]byte, storageserver.LeaseSecretSize))
				if err == nil {
					t.Fatalf("server %s accepted a forged write to share %d: %s", s.Addr, num, tc.name)
				}
				if !strings.Contains(err.Error(), "refused") {
					t.Fatalf("server %s, share %d, %s: %v, want a refusal", s.Addr, num, tc.name, err)
				}
			}
		}
	}
	if tried < 15 {
		t.Fatalf("tried %d forged writes, want 3 for each of at least 5 shares", tried)
	}
}

// forgeVersion encodes data as version seq of a slot whose read key the
// forger knows, as mutable.Encode does, but signs with the forger's key.
func forgeVersion(t *testing.T, ctx context.Context, c codec.Codec, readKey cap.Key, seq uint64, p codec.Params, data []byte, signer cap.MutableWrite) []*mutable.Share {
	t.Helper()
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := mutable.Header{Seq: seq, K: p.K, N: p.N, Size: int64(len(data)), Codec: info.Name}
	rand.Read(h.Salt[:])
	bs := h.BlockSize()
	seg := make([]byte, p.K*bs)
	ctr(mutable.DataKey(readKey, h.Salt), seg[:len(data)], data)
	h.CiphertextHash = tagged.Hash(tagged.MutCiphertext, seg[:len(data)])
	blocks := make([][]byte, p.N)
	for i := range blocks {
		blocks[i] = make([]byte, bs)
	}
	if err := c.Encode(ctx, p, seg, blocks); err != nil {
		t.Fatal(err)
	}
	leaves := make([]hashtree.Hash, p.N)
	for i, b := range blocks {
		leaves[i] = tagged.Hash(tagged.MutBlock, b)
	}
	tree, err := hashtree.Build(tagged.MutShareTreeNode, leaves)
	if err != nil {
		t.Fatal(err)
	}
	h.Root = tree.Root()
	id := h.ID()
	sig := ed25519.Sign(signer.SigningKey(), id[:])
	out := make([]*mutable.Share, p.N)
	for i := range blocks {
		proof, err := tree.Proof(i)
		if err != nil {
			t.Fatal(err)
		}
		s := &mutable.Share{PublicKey: signer.PublicKey(), Header: h, Num: i, Proof: proof, Block: blocks[i]}
		copy(s.Signature[:], sig)
		out[i] = s
	}
	return out
}

// ctr is AES-256-CTR from a zero IV, the mutable format's cipher.
func ctr(key cap.Key, dst, src []byte) {
	blk, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err)
	}
	cipher.NewCTR(blk, make([]byte, aes.BlockSize)).XORKeyStream(dst, src)
}
