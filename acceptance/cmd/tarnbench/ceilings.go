package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/klauspost/reedsolomon"
	"github.com/zeebo/blake3"
)

// segSize is the segment size every ceiling and codec figure works on: the
// size tarn's immutable files use.
const segSize = 1 << 20

// windows is how many slices each timed measurement is cut into; a figure
// is its best slice, so a burst of other work on this shared machine costs
// one slice, not the figure.
const windows = 5

// work is one unit of a measured loop: it processes some bytes and says how
// many.
type work func() (int, error)

// meter runs copies of a loop, each on its own goroutine, for timed
// windows.
type meter struct {
	ws   []work
	best float64 // MB/s of the best window so far
}

// newMeter makes par loops with newWork and runs each once, to warm caches
// and lazy set-up.
func newMeter(par int, newWork func() (work, error)) (*meter, error) {
	m := &meter{ws: make([]work, par)}
	for i := range m.ws {
		w, err := newWork()
		if err != nil {
			return nil, err
		}
		if _, err := w(); err != nil {
			return nil, err
		}
		m.ws[i] = w
	}
	return m, nil
}

// window runs every loop for d and keeps the best throughput in MB/s
// (10^6 bytes per second).
func (m *meter) window(d time.Duration) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int64
		first error
	)
	start := time.Now()
	deadline := start.Add(d)
	for _, w := range m.ws {
		wg.Go(func() {
			var n int64
			for time.Now().Before(deadline) {
				k, err := w()
				if err != nil {
					mu.Lock()
					first = cmp(first, err)
					mu.Unlock()
					return
				}
				n += int64(k)
			}
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	m.best = max(m.best, float64(total)/time.Since(start).Seconds()/1e6)
	return nil
}

// rates measures each meter for d in total, in windows taken in turn, so
// that every meter sees the same spread of load, and returns their best
// windows in MB/s.
func rates(ctx context.Context, d time.Duration, ms ...*meter) ([]float64, error) {
	win := d / windows
	for range windows {
		for _, m := range ms {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := m.window(win); err != nil {
				return nil, err
			}
		}
	}
	out := make([]float64, len(ms))
	for i, m := range ms {
		out[i] = m.best
	}
	return out, nil
}

// rate measures par loops made by newWork for d; see rates.
func rate(ctx context.Context, d time.Duration, par int, newWork func() (work, error)) (float64, error) {
	m, err := newMeter(par, newWork)
	if err != nil {
		return 0, err
	}
	r, err := rates(ctx, d, m)
	if err != nil {
		return 0, err
	}
	return r[0], nil
}

// cmp keeps the first error.
func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// randomBytes returns n bytes from crypto/rand.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// ceiling is one in-process limit of the machine.
type ceiling struct {
	key, name string
	newWork   func() (work, error)
}

func aesWork() (work, error) {
	blk, err := aes.NewCipher(randomBytes(32))
	if err != nil {
		return nil, fmt.Errorf("aes-256: %w", err)
	}
	ctr := cipher.NewCTR(blk, randomBytes(aes.BlockSize))
	buf := randomBytes(segSize)
	return func() (int, error) {
		ctr.XORKeyStream(buf, buf)
		return len(buf), nil
	}, nil
}

func hashWork(h hash.Hash) work {
	buf := randomBytes(segSize)
	var sum [64]byte
	return func() (int, error) {
		h.Reset()
		h.Write(buf)
		h.Sum(sum[:0])
		return len(buf), nil
	}
}

// rsWork encodes 1 MiB segments K-of-N on the calling goroutine only, as
// tarn's codec does; the bytes counted are the segment's (input) bytes.
func rsWork(k, n int) func() (work, error) {
	return func() (work, error) {
		enc, err := reedsolomon.New(k, n-k, reedsolomon.WithMaxGoroutines(1))
		if err != nil {
			return nil, fmt.Errorf("reedsolomon %d-of-%d: %w", k, n, err)
		}
		bs := (segSize + k - 1) / k
		shards := make([][]byte, n)
		for i := range shards {
			shards[i] = make([]byte, bs)
			if i < k {
				rand.Read(shards[i])
			}
		}
		return func() (int, error) {
			if err := enc.Encode(shards); err != nil {
				return 0, fmt.Errorf("reedsolomon %d-of-%d encode: %w", k, n, err)
			}
			return segSize, nil
		}, nil
	}
}

var computeCeilings = []ceiling{
	{"aes", "AES-256-CTR", aesWork},
	{"sha256", "SHA-256", func() (work, error) { return hashWork(sha256.New()), nil }},
	{"blake3", "BLAKE3 (zeebo/blake3)", func() (work, error) { return hashWork(blake3.New()), nil }},
	{"rs35", "Reed-Solomon 3-of-5 encode", rsWork(3, 5)},
	{"rs310", "Reed-Solomon 3-of-10 encode", rsWork(3, 10)},
}

// addCeiling measures c on one goroutine and on one goroutine per CPU,
// window by window in turn, for d each.
func addCeiling(ctx context.Context, r *Report, c ceiling, d time.Duration) error {
	cpus := runtime.NumCPU()
	one, err := newMeter(1, c.newWork)
	if err != nil {
		return fmt.Errorf("ceiling %s: %w", c.name, err)
	}
	all, err := newMeter(cpus, c.newWork)
	if err != nil {
		return fmt.Errorf("ceiling %s: %w", c.name, err)
	}
	got, err := rates(ctx, d, one, all)
	if err != nil {
		return fmt.Errorf("ceiling %s: %w", c.name, err)
	}
	r.add(Figure{Key: "ceiling." + c.key + ".1core", Name: c.name + ", one goroutine", Value: got[0], Unit: "MB/s"})
	r.add(Figure{Key: "ceiling." + c.key + ".allcores", Name: fmt.Sprintf("%s, %d goroutines", c.name, cpus), Value: got[1], Unit: "MB/s"})
	return nil
}

// measureCeilings adds each compute ceiling on one goroutine and on one
// goroutine per CPU, then loopback TCP and TLS 1.3 on one connection.
func measureCeilings(ctx context.Context, r *Report, d time.Duration) error {
	for _, c := range computeCeilings {
		if err := addCeiling(ctx, r, c, d); err != nil {
			return err
		}
	}
	tcp, err := loopback(ctx, d, false)
	if err != nil {
		return fmt.Errorf("ceiling loopback tcp: %w", err)
	}
	r.add(Figure{Key: "ceiling.tcp", Name: "loopback TCP, one connection", Value: tcp.mbps, Unit: "MB/s"})
	tl, err := loopback(ctx, d, true)
	if err != nil {
		return fmt.Errorf("ceiling loopback tls: %w", err)
	}
	r.add(Figure{Key: "ceiling.tls", Name: "loopback TLS 1.3, one connection", Value: tl.mbps, Unit: "MB/s",
		Note: "cipher suite " + tl.suite})
	return nil
}

type linkResult struct {
	mbps  float64
	suite string
}

// loopback measures one connection over 127.0.0.1: a goroutine writes 1 MiB
// buffers as fast as it can, the measured loop reads them. With useTLS the
// connection is TLS 1.3 with a fresh ECDSA certificate the client pins.
func loopback(ctx context.Context, d time.Duration, useTLS bool) (linkResult, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return linkResult{}, err
	}
	defer ln.Close()
	var srvConf, cliConf *tls.Config
	if useTLS {
		srvConf, cliConf, err = tlsPair()
		if err != nil {
			return linkResult{}, err
		}
	}
	type accepted struct {
		c   net.Conn
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil && useTLS {
			tc := tls.Server(c, srvConf)
			if err = tc.HandshakeContext(ctx); err != nil {
				c.Close()
			}
			c = tc
		}
		acc <- accepted{c, err}
	}()
	var dialer net.Dialer
	cli, err := dialer.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		return linkResult{}, err
	}
	defer cli.Close()
	res := linkResult{}
	if useTLS {
		tc := tls.Client(cli, cliConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return linkResult{}, fmt.Errorf("tls handshake: %w", err)
		}
		st := tc.ConnectionState()
		if st.Version != tls.VersionTLS13 {
			return linkResult{}, fmt.Errorf("tls handshake: negotiated %s, want TLS 1.3", tls.VersionName(st.Version))
		}
		res.suite = tls.CipherSuiteName(st.CipherSuite)
		cli = tc
	}
	a := <-acc
	if a.err != nil {
		return linkResult{}, fmt.Errorf("accept: %w", a.err)
	}
	srv := a.c
	defer srv.Close()

	// The server sends; the client (the measured loop) receives.
	sendErr := make(chan error, 1)
	go func() {
		buf := randomBytes(segSize)
		for {
			if _, err := srv.Write(buf); err != nil {
				sendErr <- err
				return
			}
		}
	}()
	buf := make([]byte, segSize)
	once := false
	mbps, err := rate(ctx, d, 1, func() (work, error) {
		if once {
			return nil, errors.New("one connection only")
		}
		once = true
		return func() (int, error) {
			n, err := io.ReadFull(cli, buf)
			if err != nil {
				return n, fmt.Errorf("receive: %w", err)
			}
			return n, nil
		}, nil
	})
	cli.Close()
	srv.Close()
	select {
	case <-sendErr: // the close ends the sender; its error is expected
	case <-time.After(5 * time.Second):
		return linkResult{}, errors.New("sender did not stop after close")
	}
	res.mbps = mbps
	return res, err
}

// tlsPair returns a server config with a fresh self-signed ECDSA P-256
// certificate for 127.0.0.1 and a client config that trusts only it. Both
// allow TLS 1.3 only; Go then picks an AES-GCM suite when the CPU has AES
// instructions.
func tlsPair() (srv, cli *tls.Config, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tarnbench"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	srv = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
	}
	cli = &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: "127.0.0.1"}
	return srv, cli, nil
}

// addPipelineCeilings adds the upload pipeline's ceilings: AES-256-CTR,
// the data path's hash (BLAKE3) and Reed-Solomon k-of-n, one after the
// other on each byte.
func addPipelineCeilings(r *Report, rsKey string) {
	for _, v := range []struct{ suffix, what string }{{"1core", "one core"}, {"allcores", "all cores"}} {
		aes, ok1 := r.find("ceiling.aes." + v.suffix)
		hsh, ok2 := r.find("ceiling.blake3." + v.suffix)
		rs, ok3 := r.find("ceiling." + rsKey + "." + v.suffix)
		if !ok1 || !ok2 || !ok3 {
			continue
		}
		r.add(Figure{
			Key:   "ceiling.pipeline." + v.suffix,
			Name:  "upload pipeline ceiling, " + v.what,
			Value: pipelineCeiling(aes.Value, hsh.Value, rs.Value),
			Unit:  "MB/s",
			Note:  fmt.Sprintf("1/(1/aes + 1/blake3 + 1/%s) of the %s figures", rsKey, v.what),
		})
	}
	// Issue 8 states its target against SHA-256 in place of tarn's BLAKE3:
	// a lower ceiling (SHA-256 is the slower hash here), so a gentler bar.
	aes, ok1 := r.find("ceiling.aes.1core")
	sha, ok2 := r.find("ceiling.sha256.1core")
	rs, ok3 := r.find("ceiling." + rsKey + ".1core")
	if ok1 && ok2 && ok3 {
		r.add(Figure{
			Key:   "ceiling.pipeline.sha256.1core",
			Name:  "upload pipeline ceiling with SHA-256 (issue 8's definition), one core",
			Value: pipelineCeiling(aes.Value, sha.Value, rs.Value),
			Unit:  "MB/s",
			Note:  fmt.Sprintf("1/(1/aes + 1/sha256 + 1/%s) of the one core figures: issue 8's ceiling (tarn hashes with BLAKE3)", rsKey),
		})
	}
}
