package placement

import (
	"strings"
	"testing"

	"github.com/tarnfs/tarn/host/tagged"
)

// TestRingKeyIsLengthPrefixedHash: RingKey is the tagged hash of the
// length-prefixed storage index and node id, as a tagged.Hasher with
// WriteBytes gives it (the ring order every client must agree on), for
// short and long inputs alike.
func TestRingKeyIsLengthPrefixedHash(t *testing.T) {
	cases := []struct {
		name string
		si   []byte
		id   string
	}{
		{"empty", nil, ""},
		{"node id", make([]byte, 16), "ryw3eydjxgqzb6bqd7nuwxbfsvyvb2mo6ypeh7vfbrxmu3qiz2nq"},
		{"long id past the stack buffer", []byte("0123456789abcdef"), strings.Repeat("x", 200)},
		{"shifted boundary", []byte("ab"), "c"},
		{"shifted boundary other side", []byte("a"), "bc"},
	}
	seen := map[tagged.Sum]string{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := tagged.New(RingTag)
			h.WriteBytes(tc.si)
			h.WriteBytes([]byte(tc.id))
			if got, want := RingKey(tc.si, tc.id), h.Sum(); got != want {
				t.Fatalf("RingKey = %x, want %x", got, want)
			}
			if other, dup := seen[RingKey(tc.si, tc.id)]; dup {
				t.Fatalf("same key as %s", other)
			}
			seen[RingKey(tc.si, tc.id)] = tc.name
		})
	}
}

// TestRingKeyAllocs: a ring key allocates nothing for ids that fit the
// stack buffer.
func TestRingKeyAllocs(t *testing.T) {
	si := make([]byte, 16)
	id := strings.Repeat("n", 52)
	RingKey(si, id) // warm the hasher pool
	if n := testing.AllocsPerRun(100, func() { RingKey(si, id) }); n > 0 {
		t.Fatalf("%v allocations per ring key", n)
	}
}
