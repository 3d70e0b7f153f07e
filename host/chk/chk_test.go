package chk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/hashtree"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
	"github.com/tarnfs/tarn/sdk/codec"
)

var rs = codecreedsolomon.New()

func content(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 99))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func testKey(seed byte) cap.Key {
	var k cap.Key
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

// encode writes data in uneven pieces, as a network reader would deliver it.
func encode(t testing.TB, p Params, key cap.Key, data []byte) (cap.CHK, *MemShares) {
	t.Helper()
	size, err := ShareSize(p, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	m := NewMemShares(p.N, size)
	e, err := NewEncoder(context.Background(), p, key, int64(len(data)), rs, m)
	if err != nil {
		t.Fatal(err)
	}
	if e.ShareSize() != size {
		t.Fatalf("encoder share size %d, ShareSize %d", e.ShareSize(), size)
	}
	for rest, i := data, 0; len(rest) > 0; i++ {
		n := min(len(rest), 1+(i*7919)%(3*p.SegmentSize))
		if _, err := e.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	c, err := e.Close()
	if err != nil {
		t.Fatal(err)
	}
	return c, m
}

func decodeAll(t testing.TB, c cap.CHK, src ShareSource, opt *Options) ([]byte, *Decoder, error) {
	t.Helper()
	d, err := NewDecoder(context.Background(), c, rs, src, opt)
	if err != nil {
		return nil, nil, err
	}
	var out bytes.Buffer
	_, err = d.WriteTo(&out)
	return out.Bytes(), d, err
}

func TestRoundTrip(t *testing.T) {
	small := Params{K: 3, N: 10, SegmentSize: 4096}
	for _, tc := range []struct {
		name string
		p    Params
		size int
	}{
		{"1 byte", small, 1},
		{"lit limit", small, cap.LiteralMax},
		{"lit limit+1", small, cap.LiteralMax + 1},
		{"segment-1", small, 4095},
		{"segment", small, 4096},
		{"segment+1", small, 4097},
		{"multi-segment 37.5", small, 37*4096 + 2048},
		{"odd segment size", Params{K: 3, N: 7, SegmentSize: 1000}, 12345},
		{"1 of 1", Params{K: 1, N: 1, SegmentSize: 4096}, 10000},
		{"10 of 10", Params{K: 10, N: 10, SegmentSize: 4096}, 10000},
		{"1 MiB segment-1", DefaultParams, DefaultSegmentSize - 1},
		{"1 MiB segment", DefaultParams, DefaultSegmentSize},
		{"1 MiB segment+1", DefaultParams, DefaultSegmentSize + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := content(tc.size, uint64(tc.size))
			c, m := encode(t, tc.p, testKey(1), data)
			if c.Size != int64(tc.size) || c.K != tc.p.K || c.N != tc.p.N {
				t.Fatalf("cap %v", c)
			}
			parsed, err := cap.Parse(c.String())
			if err != nil || parsed.(cap.CHK) != c {
				t.Fatalf("cap does not round-trip: %v", err)
			}
			// no share holds the plaintext
			if tc.size >= 16 {
				for s, sh := range m.Shares {
					if bytes.Contains(sh, data[:16]) {
						t.Fatalf("share %d holds plaintext", s)
					}
				}
			}
			got, d, err := decodeAll(t, c, m, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("decoded bytes differ")
			}
			if len(d.Problems()) != 0 {
				t.Fatalf("problems on clean shares: %v", d.Problems())
			}
			for s := range m.Shares {
				if err := VerifyShare(context.Background(), c.Verify(), m, s); err != nil {
					t.Fatalf("verify share %d: %v", s, err)
				}
			}
			// random range reads through a fresh decoder
			d2, err := NewDecoder(context.Background(), c, rs, m, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(7, uint64(tc.size)))
			for range 40 {
				off := r.Int64N(int64(tc.size))
				n := r.IntN(3*tc.p.SegmentSize + 1)
				buf := make([]byte, n)
				k, err := d2.ReadAt(buf, off)
				want := data[off:min(off+int64(n), int64(tc.size))]
				if k != len(want) || !bytes.Equal(buf[:k], want) {
					t.Fatalf("read %d at %d: got %d bytes, want %d", n, off, k, len(want))
				}
				if k < n && err != io.EOF {
					t.Fatalf("short read at %d without EOF: %v", off, err)
				}
				if k == n && err != nil {
					t.Fatalf("full read at %d: %v", off, err)
				}
			}
			// io.ReadSeeker access
			rd := d2.Reader()
			if _, err := rd.Seek(int64(tc.size/2), io.SeekStart); err != nil {
				t.Fatal(err)
			}
			tail, err := io.ReadAll(rd)
			if err != nil || !bytes.Equal(tail, data[tc.size/2:]) {
				t.Fatalf("seek and read tail: %v", err)
			}
		})
	}
}

func TestRangeReadFetchesOnlyNeededSegments(t *testing.T) {
	p := Params{K: 3, N: 10, SegmentSize: 4096}
	data := content(100*4096, 5)
	c, m := encode(t, p, testKey(2), data)
	cnt := &countingSource{src: m, l: mustLayout(t, p, int64(len(data)))}
	d, err := NewDecoder(context.Background(), c, rs, cnt, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if _, err := d.ReadAt(buf, 50*4096+10); err != nil || !bytes.Equal(buf, data[50*4096+10:][:100]) {
		t.Fatalf("range read: %v", err)
	}
	if got := cnt.blockBytes; got != int64(3*codec.BlockSize(codec.Params{K: 3, N: 10}, 4096)) {
		t.Fatalf("read %d block bytes for one segment, want K blocks", got)
	}
}

type countingSource struct {
	mu         sync.Mutex
	src        ShareSource
	l          Layout
	blockBytes int64
}

func (c *countingSource) ReadAt(ctx context.Context, s int, p []byte, off int64) (int, error) {
	c.mu.Lock()
	if off >= c.l.BlocksOffset {
		c.blockBytes += int64(len(p))
	}
	c.mu.Unlock()
	return c.src.ReadAt(ctx, s, p, off)
}

func mustLayout(t testing.TB, p Params, size int64) Layout {
	l, err := NewLayout(p, size)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestConvergence(t *testing.T) {
	p := Params{K: 3, N: 10, SegmentSize: 4096}
	data := content(20000, 3)
	key := func(secret string, p Params) cap.Key {
		k, n, err := ConvergentKey([]byte(secret), p, codecreedsolomon.Name, bytes.NewReader(data))
		if err != nil || n != int64(len(data)) {
			t.Fatalf("convergent key: %v, size %d", err, n)
		}
		return k
	}
	k1, k2 := key("secret one", p), key("secret one", p)
	if k1 != k2 {
		t.Fatal("same content and secret give different keys")
	}
	c1, _ := encode(t, p, k1, data)
	c2, _ := encode(t, p, k2, data)
	if c1.String() != c2.String() {
		t.Fatal("same content and secret give different caps")
	}
	k3 := key("secret two", p)
	c3, _ := encode(t, p, k3, data)
	if c3.String() == c1.String() || c3.StorageIndex() == c1.StorageIndex() {
		t.Fatal("other secret gives the same cap or storage index")
	}
	p2 := p
	p2.N = 9
	if key("secret one", p2) == k1 {
		t.Fatal("other parameters give the same key")
	}
	if r1, _ := RandomKey(); r1 == k1 {
		t.Fatal("random key equals convergent key")
	}
	// streaming form agrees with the reader form
	cv, _ := NewConvergence([]byte("secret one"), p, codecreedsolomon.Name)
	cv.Write(data[:5])
	cv.Write(data[5:])
	if cv.Key() != k1 || cv.Key() != k1 {
		t.Fatal("Convergence.Key differs from ConvergentKey or changes when called twice")
	}
}

func TestDecodeFromExactlyK(t *testing.T) {
	p := Params{K: 3, N: 5, SegmentSize: 4096}
	data := content(5*4096+77, 4)
	c, m := encode(t, p, testKey(3), data)
	for a := 0; a < 5; a++ {
		for b := a + 1; b < 5; b++ {
			for e := b + 1; e < 5; e++ {
				t.Run(fmt.Sprint(a, b, e), func(t *testing.T) {
					sub := &MemShares{Shares: make([][]byte, 5)}
					for _, s := range []int{a, b, e} {
						sub.Shares[s] = m.Shares[s]
					}
					got, d, err := decodeAll(t, c, sub, nil)
					if err != nil || !bytes.Equal(got, data) {
						t.Fatalf("decode from %d %d %d: %v", a, b, e, err)
					}
					for _, pr := range d.Problems() {
						if pr.What != "read" || pr.Share == a || pr.Share == b || pr.Share == e {
							t.Fatalf("problem %v, want only missing shares", pr)
						}
					}
				})
			}
		}
	}
	t.Run("K-1", func(t *testing.T) {
		sub := &MemShares{Shares: make([][]byte, 5)}
		sub.Shares[1], sub.Shares[4] = m.Shares[1], m.Shares[4]
		_, _, err := decodeAll(t, c, sub, nil)
		if !errors.Is(err, ErrNotEnoughShares) || !strings.Contains(err.Error(), "2 shares found, 2 good, 3 needed") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("share order", func(t *testing.T) {
		var used []int
		cnt := &orderSource{src: m, seen: map[int]bool{}, order: &used}
		got, _, err := decodeAll(t, c, cnt, &Options{Shares: []int{4, 2, 0, 1, 3}})
		if err != nil || !bytes.Equal(got, data) {
			t.Fatal(err)
		}
		slices.Sort(used) // the K blocks of a segment are fetched concurrently
		if fmt.Sprint(used) != "[0 2 4]" {
			t.Fatalf("shares read %v, want [4 2 0]", used)
		}
	})
}

type orderSource struct {
	mu    sync.Mutex
	src   ShareSource
	seen  map[int]bool
	order *[]int
}

func (o *orderSource) ReadAt(ctx context.Context, s int, p []byte, off int64) (int, error) {
	o.mu.Lock()
	if !o.seen[s] {
		o.seen[s] = true
		*o.order = append(*o.order, s)
	}
	o.mu.Unlock()
	return o.src.ReadAt(ctx, s, p, off)
}

func TestCorruption(t *testing.T) {
	p := Params{K: 3, N: 5, SegmentSize: 4096}
	data := content(5*4096+77, 9) // 6 segments: trees of 8 leaf slots
	c, clean := encode(t, p, testKey(4), data)
	l := mustLayout(t, p, int64(len(data)))
	leaf := func(base int64, i int) int64 { return base + int64(hashtree.LeafIndex(l.Segments, i))*32 }
	blk, _ := l.Block(2)
	type corruption struct {
		name   string
		mutate func(sh [][]byte)
		what   string // the Problem.What the decoder reports for share 0, node by node
		whole  string // the same when it reads the trees whole ("-": as what)
		verify string // the What VerifyShare reports
	}
	cases := []corruption{
		{"header magic", flip(0, 1), "header", "-", "header"},
		{"header offset", flip(0, 40), "header", "-", "header"},
		{"extension block", flip(0, HeaderSize+30), "extension block", "-", "extension block"},
		{"share proof", flip(0, l.ProofOffset+3), "share hash proof", "-", "share hash proof"},
		{"block tree root", flip(0, l.BlockTreeOffset), "share hash proof", "-", "share hash proof"},
		{"block tree leaf", flip(0, leaf(l.BlockTreeOffset, 3)+5), "block or block hash tree", "block hash tree", "block hash tree"},
		{"block tree padding", flip(0, leaf(l.BlockTreeOffset, 6)), "", "block hash tree", "block hash tree"},
		{"ciphertext tree leaf", flip(0, leaf(l.CipherOffset, 1)+9), "ciphertext hash tree", "-", "ciphertext hash tree"},
		{"block", flip(0, blk+100), "block or block hash tree", "block", "block"},
		{"last byte", flip(0, l.ShareSize-1), "block", "-", "block"},
		{"truncated", func(sh [][]byte) { sh[0] = sh[0][:len(sh[0])/2] }, "read", "-", "read"},
		{"truncated to nothing", func(sh [][]byte) { sh[0] = sh[0][:0] }, "read", "-", "read"},
		{"extended", func(sh [][]byte) { sh[0] = append(sh[0], 0) }, "", "-", "read"},
		{"swapped", func(sh [][]byte) { sh[0], sh[1] = sh[1], sh[0] }, "header", "-", "header"},
		{"other file's share", func(sh [][]byte) {
			_, o := encode(t, p, testKey(5), data)
			sh[0] = o.Shares[0]
		}, "extension block", "-", "extension block"},
	}
	for _, mode := range []struct {
		name     string
		prefetch int64
	}{{"node by node", -1}, {"whole trees", 0}} {
		for _, tc := range cases {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				what := tc.what
				if mode.prefetch == 0 && tc.whole != "-" {
					what = tc.whole
				}
				m := &MemShares{Shares: make([][]byte, p.N)}
				for i := range m.Shares {
					m.Shares[i] = append([]byte(nil), clean.Shares[i]...)
				}
				tc.mutate(m.Shares)
				var mu sync.Mutex
				var reported []Problem
				opt := &Options{TreePrefetch: mode.prefetch, OnProblem: func(p Problem) {
					mu.Lock()
					reported = append(reported, p)
					mu.Unlock()
				}}
				got, d, err := decodeAll(t, c, m, opt)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("decode: %v", err)
				}
				slices.SortFunc(reported, func(a, b Problem) int { return a.Share - b.Share })
				if what == "" {
					if len(reported) != 0 {
						t.Fatalf("reported %v", reported)
					}
				} else {
					want := 1
					if strings.HasPrefix(tc.name, "swapped") {
						want = 2 // both shares sit at the wrong number
					}
					if len(reported) != want || reported[0].Share != 0 || reported[0].What != what {
						t.Fatalf("reported %v, want %d problem(s), the first of share 0 with %q", reported, want, what)
					}
					if len(d.Problems()) != want {
						t.Fatalf("Problems() = %v", d.Problems())
					}
				}
				err = VerifyShare(context.Background(), c.Verify(), m, 0)
				var pr Problem
				if !errors.As(err, &pr) || pr.What != tc.verify {
					t.Fatalf("verify share 0: %v, want a %q problem", err, tc.verify)
				}
				for s := 2; s < p.N; s++ {
					if err := VerifyShare(context.Background(), c.Verify(), m, s); err != nil {
						t.Fatalf("verify clean share %d: %v", s, err)
					}
				}
			})
		}
	}
	t.Run("corrupt K of N", func(t *testing.T) {
		m := &MemShares{Shares: make([][]byte, p.N)}
		for i := range m.Shares {
			m.Shares[i] = append([]byte(nil), clean.Shares[i]...)
			if i < 3 {
				m.Shares[i][blk+int64(i)] ^= 1
			}
		}
		got, _, err := decodeAll(t, c, m, nil)
		if !errors.Is(err, ErrNotEnoughShares) || len(got) != 2*4096 {
			t.Fatalf("decode with 3 bad shares: %d bytes, %v", len(got), err)
		}
		if !bytes.Equal(got, data[:len(got)]) {
			t.Fatal("wrong bytes before the error")
		}
		if !strings.Contains(err.Error(), "5 shares found, 2 good, 3 needed") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("wrong cap", func(t *testing.T) {
		for name, mut := range map[string]func(*cap.CHK){
			"ueb hash": func(c *cap.CHK) { c.UEBHash[0] ^= 1 },
			"size":     func(c *cap.CHK) { c.Size++ },
			"K":        func(c *cap.CHK) { c.K = 2 },
		} {
			bad := c
			mut(&bad)
			_, err := NewDecoder(context.Background(), bad, rs, clean, nil)
			if !errors.Is(err, ErrNotEnoughShares) || !strings.Contains(err.Error(), "valid extension block") {
				t.Fatalf("%s: %v", name, err)
			}
		}
		bad := c
		bad.Key[0] ^= 1 // the wrong key: ciphertext checks pass, the plaintext is not this file's
		got, _, err := decodeAll(t, bad, clean, nil)
		if err != nil || bytes.Equal(got, data) {
			t.Fatalf("a wrong key is not caught by the format (it cannot be): %v", err)
		}
	})
}

func flip(share int, off int64) func([][]byte) {
	return func(sh [][]byte) { sh[share][off] ^= 0x40 }
}

func TestEncoderErrors(t *testing.T) {
	p := Params{K: 3, N: 5, SegmentSize: 4096}
	ctx := context.Background()
	m := NewMemShares(5, 1<<20)
	for _, tc := range []struct {
		name string
		run  func() error
		want string
	}{
		{"too many bytes", func() error {
			e, _ := NewEncoder(ctx, p, testKey(1), 10, rs, m)
			_, err := e.Write(make([]byte, 11))
			return err
		}, "more than the declared 10 bytes"},
		{"too few bytes", func() error {
			e, _ := NewEncoder(ctx, p, testKey(1), 10, rs, m)
			e.Write(make([]byte, 9))
			_, err := e.Close()
			return err
		}, "got 9 bytes of the declared 10"},
		{"empty", func() error { _, err := NewEncoder(ctx, p, testKey(1), 0, rs, m); return err }, "lit cap"},
		{"K>N", func() error {
			_, err := NewEncoder(ctx, Params{K: 4, N: 3, SegmentSize: 10}, testKey(1), 5, rs, m)
			return err
		}, "K=4 N=3"},
		{"segment size", func() error {
			_, err := NewEncoder(ctx, Params{K: 1, N: 3, SegmentSize: 0}, testKey(1), 5, rs, m)
			return err
		}, "segment size 0"},
		{"sink fails", func() error {
			e, _ := NewEncoder(ctx, p, testKey(1), 10000, rs, NewMemShares(5, 10))
			_, err := e.Write(make([]byte, 10000))
			return err
		}, "write block 0 of share 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestHeaderAndUEBRoundTrip(t *testing.T) {
	l := mustLayout(t, DefaultParams, 123456789)
	h := l.Header(7)
	got, err := ParseHeader(h.Marshal())
	if err != nil || got != h {
		t.Fatalf("header round trip: %v", err)
	}
	u := UEB{K: 3, N: 10, SegmentSize: 1 << 20, Size: 123456789, Codec: "reedsolomon"}
	u.ShareRoot[0], u.CiphertextRoot[31] = 1, 2
	gu, err := ParseUEB(u.Marshal())
	if err != nil || gu != u {
		t.Fatalf("ueb round trip: %v", err)
	}
}

func FuzzParseHeader(f *testing.F) {
	l, _ := NewLayout(DefaultParams, 5<<20)
	f.Add(l.Header(3).Marshal())
	f.Add([]byte("tarnshr2" + strings.Repeat("\x00", 56)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if !bytes.Equal(h.Marshal(), b[:HeaderSize]) {
			t.Fatal("accepted header does not re-encode to its bytes")
		}
	})
}

func FuzzParseUEB(f *testing.F) {
	u := UEB{K: 3, N: 10, SegmentSize: 1 << 20, Size: 99, Codec: "reedsolomon"}
	f.Add(u.Marshal())
	f.Add(make([]byte, UEBSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := ParseUEB(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if !bytes.Equal(u.Marshal(), b) {
			t.Fatal("accepted extension block does not re-encode to its bytes")
		}
	})
}
