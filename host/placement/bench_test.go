package placement

import (
	"fmt"
	"testing"
)

func benchServers(n int) []Server {
	s := make([]Server, n)
	for i := range s {
		s[i] = Server{ID: fmt.Sprintf("v1-server%04d", i), Writable: i%7 != 3}
	}
	return PermuteServers([]byte("bench storage index"), s)
}

func BenchmarkPlan(b *testing.B) {
	for _, c := range []struct {
		servers int
		p       Params
	}{
		{10, Params{3, 7, 10}},
		{100, Params{3, 7, 10}},
		{1000, Params{30, 100, 256}},
	} {
		b.Run(fmt.Sprintf("%dservers-%d-of-%d", c.servers, c.p.K, c.p.N), func(b *testing.B) {
			srv := benchServers(c.servers)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Plan(c.p, srv, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
