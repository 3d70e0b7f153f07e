package introducer

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tarnfs/tarn/host/identity"
	"github.com/tarnfs/tarn/host/introducer/introducerpb"
)

func newIdentity(t testing.TB) *identity.Identity {
	t.Helper()
	id, err := identity.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func addrOf(id *identity.Identity, transport string) string {
	return "tarn://" + id.KeyHash() + "@" + transport
}

func goodRecord(id *identity.Identity, grid string, seq uint64, now time.Time) Record {
	return Record{
		Addresses: []string{addrOf(id, "tcp:127.0.0.1:4410")},
		Grid:      grid,
		Service:   ServiceStorage,
		FreeSpace: 1 << 30,
		Version:   "tarn test",
		Nickname:  "s1",
		Sequence:  seq,
		IssuedAt:  now,
		ExpiresAt: now.Add(time.Hour),
	}
}

func mustSignT(t testing.TB, id *identity.Identity, r Record) *introducerpb.SignedAnnouncement {
	t.Helper()
	sa, err := Sign(id, r)
	if err != nil {
		t.Fatal(err)
	}
	return sa
}

// signRaw signs an arbitrary announcement with key, for forgeries.
func signRaw(t testing.TB, key ed25519.PrivateKey, a *introducerpb.Announcement) *introducerpb.SignedAnnouncement {
	t.Helper()
	b, err := proto.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return &introducerpb.SignedAnnouncement{Announcement: b, Signature: ed25519.Sign(key, append([]byte(SignDomain), b...))}
}

func TestKeyHashOfMatchesIdentity(t *testing.T) {
	id := newIdentity(t)
	if got := KeyHashOf(id.Public()); got != id.KeyHash() {
		t.Fatalf("KeyHashOf = %s, identity says %s", got, id.KeyHash())
	}
}

func TestVerify(t *testing.T) {
	now := time.Now()
	a, b := newIdentity(t), newIdentity(t)
	good := goodRecord(a, "g", 7, now)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)

	cases := []struct {
		name string
		sa   func() *introducerpb.SignedAnnouncement
		want error
		msg  string
	}{
		{"good", func() *introducerpb.SignedAnnouncement { return mustSignT(t, a, good) }, nil, ""},
		{"nil", func() *introducerpb.SignedAnnouncement { return nil }, ErrMalformed, "empty"},
		{"garbage bytes", func() *introducerpb.SignedAnnouncement {
			return &introducerpb.SignedAnnouncement{Announcement: []byte{0xff, 0xff, 0xff}, Signature: make([]byte, 64)}
		}, ErrMalformed, ""},
		{"unsigned", func() *introducerpb.SignedAnnouncement {
			sa := mustSignT(t, a, good)
			sa.Signature = nil
			return sa
		}, ErrBadSignature, "signature is 0 bytes"},
		{"flipped signature", func() *introducerpb.SignedAnnouncement {
			sa := mustSignT(t, a, good)
			sa.Signature[3] ^= 1
			return sa
		}, ErrBadSignature, ""},
		{"tampered free space", func() *introducerpb.SignedAnnouncement {
			sa := mustSignT(t, a, good)
			var ann introducerpb.Announcement
			proto.Unmarshal(sa.Announcement, &ann)
			ann.FreeSpace++
			sa.Announcement, _ = proto.Marshal(&ann)
			return sa
		}, ErrBadSignature, ""},
		{"a's id and key signed by another key", func() *introducerpb.SignedAnnouncement {
			sa := mustSignT(t, a, good)
			var ann introducerpb.Announcement
			proto.Unmarshal(sa.Announcement, &ann)
			return signRaw(t, otherKey, &ann)
		}, ErrBadSignature, ""},
		{"a's id with b's key, signed by b", func() *introducerpb.SignedAnnouncement {
			sa := mustSignT(t, b, good)
			var ann introducerpb.Announcement
			proto.Unmarshal(sa.Announcement, &ann)
			ann.NodeId = a.NodeID()
			return signRaw(t, b.PrivateKey(), &ann)
		}, ErrIDMismatch, "the key's node id is " + b.NodeID()},
		{"address pinned to another key", func() *introducerpb.SignedAnnouncement {
			r := good
			r.Addresses = []string{addrOf(b, "tcp:127.0.0.1:1")}
			return mustSignT(t, a, r)
		}, ErrIDMismatch, "pinned to another key"},
		{"bad address", func() *introducerpb.SignedAnnouncement {
			r := good
			r.Addresses = []string{"tcp:127.0.0.1:1"}
			return mustSignT(t, a, r)
		}, ErrMalformed, "bad node address"},
		{"other grid", func() *introducerpb.SignedAnnouncement {
			r := good
			r.Grid = "other"
			return mustSignT(t, a, r)
		}, ErrOtherGrid, `another grid "other" (this is "g")`},
		{"expired", func() *introducerpb.SignedAnnouncement {
			r := good
			r.IssuedAt, r.ExpiresAt = now.Add(-2*time.Hour), now.Add(-time.Second)
			return mustSignT(t, a, r)
		}, ErrExpired, ""},
		{"issued in the future", func() *introducerpb.SignedAnnouncement {
			r := good
			r.IssuedAt, r.ExpiresAt = now.Add(time.Hour), now.Add(2*time.Hour)
			return mustSignT(t, a, r)
		}, ErrMalformed, "in the future"},
		{"lifetime too long", func() *introducerpb.SignedAnnouncement {
			r := good
			r.ExpiresAt = now.Add(MaxLifetime + time.Hour)
			return mustSignT(t, a, r)
		}, ErrMalformed, "lifetime"},
		{"no service", func() *introducerpb.SignedAnnouncement {
			r := good
			r.Service = ""
			return mustSignT(t, a, r)
		}, ErrMalformed, "no service"},
		{"too big", func() *introducerpb.SignedAnnouncement {
			r := good
			r.Nickname = strings.Repeat("x", MaxRecordSize)
			return mustSignT(t, a, r)
		}, ErrMalformed, "limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Verify(tc.sa(), "g", now)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if r.NodeID != a.NodeID() || r.Sequence != 7 || r.FreeSpace != 1<<30 || r.KeyHash() != a.KeyHash() {
					t.Fatalf("record %+v", r)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err %q does not say %q", err, tc.msg)
			}
			if Reason(err) != tc.want.Error() {
				t.Fatalf("Reason = %q", Reason(err))
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	id, err := identity.New(ed25519.NewKeyFromSeed(make([]byte, 32)))
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	sa, err := Sign(id, goodRecord(id, "g", 1, now))
	if err != nil {
		f.Fatal(err)
	}
	b, _ := proto.Marshal(sa)
	f.Add(b)
	f.Add([]byte{})
	f.Add(b[:len(b)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b, "g", now)
		if err != nil {
			if Reason(err) == "other" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		// Whatever verifies must belong to its key.
		if r.NodeID != identity.NodeIDOf(KeyHashOf(r.PublicKey)) {
			t.Fatalf("accepted %s for key %s", r.NodeID, KeyHashOf(r.PublicKey))
		}
	})
}

func protoUnmarshal(b []byte, m proto.Message) error { return proto.Unmarshal(b, m) }
