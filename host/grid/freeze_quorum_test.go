package grid

import "testing"

// TestQuorum pins the number of servers that must answer in full before a
// slot map may leave the others out (docs/formats.md, "Reading while a
// server hangs"), and checks the two properties it rests on for every
// small grid: a read quorum meets every set of W servers (the holders of
// an acknowledged version), and two writer quorums and such a set share a
// server.
func TestQuorum(t *testing.T) {
	cases := []struct {
		name              string
		S, K, N           int
		wantRead, wantMod int
	}{
		{"dev grid 3-of-5", 5, 3, 5, 3, 4},
		{"six servers 3-of-5", 6, 3, 5, 4, 5},
		{"default 3-of-10 on 10", 10, 3, 10, 8, 9},
		{"default on 20 servers", 20, 3, 10, 18, 19},
		{"one server", 1, 1, 1, 1, 1},
		{"fewer servers than K", 2, 3, 10, 1, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := quorum(false, tc.S, tc.K, tc.N); got != tc.wantRead {
				t.Errorf("read quorum %d, want %d", got, tc.wantRead)
			}
			if got := quorum(true, tc.S, tc.K, tc.N); got != tc.wantMod {
				t.Errorf("modify quorum %d, want %d", got, tc.wantMod)
			}
		})
	}
	for S := 1; S <= 30; S++ {
		for K := 1; K <= 6; K++ {
			for N := K; N <= 12; N++ {
				for H := K; H <= N; H++ {
					// A writer with this H reaches w servers: the quorums,
					// made without knowing writers' H, must meet them all.
					w := min(max(K, H), N, S)
					r, m := quorum(false, S, K, N), quorum(true, S, K, N)
					if r < 1 || r > S || m < r || m > S {
						t.Fatalf("S=%d K=%d H=%d N=%d: quorums %d, %d out of range", S, K, H, N, r, m)
					}
					if r+w <= S {
						t.Fatalf("S=%d K=%d H=%d N=%d: %d answers may miss all %d holders", S, K, H, N, r, w)
					}
					if 2*m+w-2*S < 1 {
						t.Fatalf("S=%d K=%d H=%d N=%d: two writers of %d answers may share no holder of %d", S, K, H, N, m, w)
					}
				}
			}
		}
	}
}
