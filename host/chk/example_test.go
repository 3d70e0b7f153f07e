package chk_test

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/chk"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
)

// Example shows an upload (convergent key, encoder into a sink) and a
// ranged download (decoder from a source), as the client wires them over
// the grid: the sink and source there write to and read from servers.
func Example() {
	ctx := context.Background()
	rs := codecreedsolomon.New()
	file := bytes.Repeat([]byte("tarn "), 100000) // 500,000 bytes
	p := chk.Params{K: 3, N: 10, SegmentSize: chk.DefaultSegmentSize}

	if len(file) <= cap.LiteralMax {
		fmt.Println(cap.Literal{Data: file}) // small files touch no server
		return
	}
	// First pass: the convergent key. Second pass: encode.
	key, size, _ := chk.ConvergentKey([]byte("convergence secret"), p, codecreedsolomon.Name, bytes.NewReader(file))
	shareSize, _ := chk.ShareSize(p, size) // what storage Create needs
	shares := chk.NewMemShares(p.N, shareSize)
	enc, _ := chk.NewEncoder(ctx, p, key, size, rs, shares)
	io.Copy(enc, bytes.NewReader(file))
	readCap, _ := enc.Close()

	c, _ := cap.Parse(readCap.String())
	shares.Shares[4] = nil // a lost server
	dec, _ := chk.NewDecoder(ctx, c.(cap.CHK), rs, shares, &chk.Options{
		OnProblem: func(p chk.Problem) { fmt.Println("problem:", p) },
	})
	buf := make([]byte, 9)
	dec.ReadAt(buf, 499990)
	fmt.Printf("%q\n", buf)
	fmt.Println(chk.VerifyShare(ctx, readCap.Verify(), shares, 7))
	// Output:
	// "tarn tarn"
	// <nil>
}
