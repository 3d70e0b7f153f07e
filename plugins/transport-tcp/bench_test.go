package transporttcp

import (
	"context"
	"io"
	"net"
	"testing"

	"github.com/tarnfs/tarn/sdk/transport"
	"github.com/tarnfs/tarn/sdk/transport/transporttest"
)

// benchBytes go through the connection per op.
const benchBytes = 64 << 20

// baselineMBs is the in-process MB/s, measured by the first sub-benchmark,
// so that the plugin paths report their ratio to it.
var baselineMBs float64

// BenchmarkConnThroughput sends 64 MiB per op through one connection, made
// by the transport in process, by a plugin process that hands the socket
// over (fast), and by one that carries the bytes over gRPC (fallback).
// Run with -benchtime=3x: each op is 64 MiB.
func BenchmarkConnThroughput(b *testing.B) {
	for _, bp := range []struct {
		name string
		tr   func(b *testing.B) transport.Transport
	}{
		{"inprocess", func(*testing.B) transport.Transport { return New() }},
		{"fast", func(b *testing.B) transport.Transport {
			c, _ := transporttest.StartPlugin(b, pluginCmd(), true)
			return c
		}},
		{"fallback", func(b *testing.B) transport.Transport {
			c, _ := transporttest.StartPlugin(b, pluginCmd(), false)
			return c
		}},
	} {
		b.Run(bp.name, func(b *testing.B) {
			tr := bp.tr(b)
			ctx := context.Background()
			ln, err := tr.Listen(ctx, "tcp:127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				a, err := ln.Accept()
				if err != nil {
					b.Error(err)
				}
				accepted <- a
			}()
			d, err := tr.Dial(ctx, ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			a := <-accepted
			if a == nil {
				b.FailNow()
			}
			defer a.Close()
			buf := make([]byte, 1<<20)
			b.SetBytes(benchBytes)
			b.ResetTimer()
			for b.Loop() {
				done := make(chan error, 1)
				go func() {
					_, err := io.CopyBuffer(io.Discard, io.LimitReader(a, benchBytes), make([]byte, 1<<20))
					done <- err
				}()
				for sent := 0; sent < benchBytes; sent += len(buf) {
					if _, err := d.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			mbs := float64(b.N) * benchBytes / 1e6 / b.Elapsed().Seconds()
			if bp.name == "inprocess" {
				baselineMBs = mbs
			} else if baselineMBs > 0 {
				b.ReportMetric(mbs/baselineMBs, "x-inprocess")
			}
		})
	}
}
