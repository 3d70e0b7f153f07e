package transporttcp

import (
	"testing"

	"github.com/tarnfs/tarn/sdk/transport"
	"github.com/tarnfs/tarn/sdk/transport/transporttest"
)

func TestConformance(t *testing.T) {
	for _, tc := range []struct{ name, addr string }{
		{"ipv4", "tcp:127.0.0.1:0"},
		{"ipv6", "tcp:[::1]:0"},
		{"name", "tcp:localhost:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			transporttest.Run(t, func(t *testing.T) transport.Transport { return New() }, tc.addr)
		})
	}
}
