// Package codec is the erasure-coding plugin contract: the Go interface a
// codec implements, the gRPC protocol tarn.codec.v1 that carries it between
// processes, Serve for a plugin's main, and the host-side client.
//
// Block size rule, fixed for every codec so that share layouts never depend
// on the plugin: a segment of L bytes is zero-padded to K*B bytes where
// B = ceil(L/K), and every one of the N blocks is B bytes long.
package codec

import (
	"context"
	"errors"
	"fmt"
)

// ProtocolVersion is the major version of the codec contract.
const ProtocolVersion = 1

// MaxShares is the largest N any codec must support.
const MaxShares = 256

// Params are the encoding parameters: any K of N blocks rebuild a segment.
type Params struct {
	K, N int
}

// Validate checks 1 <= K <= N <= MaxShares.
func (p Params) Validate() error {
	if p.K < 1 || p.N < p.K || p.N > MaxShares {
		return fmt.Errorf("codec: parameters K=%d N=%d: need 1 <= K <= N <= %d", p.K, p.N, MaxShares)
	}
	return nil
}

// BlockSize is the size of each of the N blocks of a segment of segLen bytes.
func BlockSize(p Params, segLen int) int {
	if segLen <= 0 {
		return 0
	}
	return (segLen + p.K - 1) / p.K
}

// Info describes a codec implementation.
type Info struct {
	Name    string // e.g. "reedsolomon"
	Version string // the plugin's own version, free form
	MaxN    int    // largest N it supports (<= MaxShares)
}

// Sentinel errors. The RPC layer carries them across the process boundary,
// so a host branches on them with errors.Is whatever process the codec runs in.
var (
	// ErrTooFewBlocks is returned by Decode when fewer than K blocks are given.
	ErrTooFewBlocks = errors.New("codec: fewer than K blocks")
	// ErrInvalidInput is returned for arguments that break the contract:
	// bad parameters, an empty segment, a wrong number of blocks or a block
	// of the wrong size.
	ErrInvalidInput = errors.New("codec: invalid input")
	// ErrUnsupported is returned for valid parameters this codec does not
	// implement (for example K != 1 for a replication codec, or N > MaxN).
	ErrUnsupported = errors.New("codec: parameters not supported")
)

// Codec is implemented by every codec plugin. It is stateless; the host may
// call it concurrently.
type Codec interface {
	Info(ctx context.Context) (Info, error)
	// Encode fills blocks (N slices, each BlockSize(p, len(segment)) long,
	// allocated by the caller) from segment.
	Encode(ctx context.Context, p Params, segment []byte, blocks [][]byte) error
	// Decode rebuilds the segment into out (len(out) is the segment length)
	// from blocks: N entries, nil where a block is missing, each present one
	// BlockSize(p, len(out)) long. It may overwrite present blocks' bytes.
	Decode(ctx context.Context, p Params, blocks [][]byte, out []byte) error
}
