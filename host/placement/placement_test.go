package placement

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func TestPermute(t *testing.T) {
	ids := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	si1, si2 := []byte("storage index one"), []byte("storage index two")
	p1 := Permute(si1, ids)
	if got := append([]string(nil), p1...); !sameSet(got, ids) {
		t.Fatalf("Permute is not a permutation: %v", p1)
	}
	shuffled := []string{"h", "c", "a", "g", "e", "b", "f", "d"}
	if p := Permute(si1, shuffled); !reflect.DeepEqual(p, p1) {
		t.Fatalf("order depends on input order: %v vs %v", p, p1)
	}
	if p := Permute(si2, ids); reflect.DeepEqual(p, p1) {
		t.Fatalf("two storage indexes give the same order %v", p)
	}
	if !reflect.DeepEqual(ids, []string{"a", "b", "c", "d", "e", "f", "g", "h"}) {
		t.Fatal("Permute changed its input")
	}
	// The ring is a format: every client must compute the same order.
	if got, want := fmt.Sprintf("%x", RingKey([]byte("si"), "node")), goldenRingKey; got != want {
		t.Fatalf("RingKey(si, node) = %s, want %s", got, want)
	}
	srv := PermuteServers(si1, []Server{{ID: "c"}, {ID: "a", Writable: true}, {ID: "b"}})
	if got := []string{srv[0].ID, srv[1].ID, srv[2].ID}; !reflect.DeepEqual(got, Permute(si1, []string{"a", "b", "c"})) {
		t.Fatalf("PermuteServers order %v", got)
	}
	for _, s := range srv {
		if s.ID == "a" && !s.Writable {
			t.Fatal("PermuteServers lost a field")
		}
	}
}

const goldenRingKey = "c17ee7aa94982657a22c9db8b6b9a98bd55c52f9922a7c76057fe2420bccc867"

func sameSet(a, b []string) bool {
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	return reflect.DeepEqual(a, b)
}

// Cases where a greedy share-by-share matching finds less than the maximum,
// in the spirit of Tahoe-LAFS's servers-of-happiness examples.
func TestHappiness(t *testing.T) {
	cases := []struct {
		name    string
		holders map[int][]string
		want    int
	}{
		{"empty", nil, 0},
		{"one server holds everything", map[int][]string{0: {"A"}, 1: {"A"}, 2: {"A"}}, 1},
		{"one share everywhere", map[int][]string{0: {"A", "B", "C"}}, 1},
		{"greedy trap: A takes 0, then 1 has nowhere", map[int][]string{0: {"A", "B"}, 1: {"A"}}, 2},
		{"tahoe: A holds 0-2, B and C hold 0", map[int][]string{0: {"A", "B", "C"}, 1: {"A"}, 2: {"A"}}, 2},
		{"chain needing a two-step augment", map[int][]string{0: {"A", "B"}, 1: {"B", "C"}, 2: {"A"}}, 3},
		{"long chain", map[int][]string{0: {"A", "B"}, 1: {"B", "C"}, 2: {"C", "D"}, 3: {"A"}}, 4},
		{"spread 10 over 10", func() map[int][]string {
			m := map[int][]string{}
			for i := 0; i < 10; i++ {
				m[i] = []string{fmt.Sprint("S", i)}
			}
			return m
		}(), 10},
		{"duplicate server names count once", map[int][]string{0: {"A", "A"}, 1: {"A"}}, 1},
		{"tahoe: 4 servers, share 0 on all, 1-3 on one", map[int][]string{0: {"A", "B", "C", "D"}, 1: {"A"}, 2: {"A"}, 3: {"A"}}, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Happiness(tc.holders); got != tc.want {
				t.Fatalf("Happiness = %d, want %d", got, tc.want)
			}
			if got := bruteHappiness(tc.holders); got != tc.want {
				t.Fatalf("brute force = %d, want %d (test bug)", got, tc.want)
			}
		})
	}
}

// bruteHappiness computes a maximum matching by exhaustive search over
// shares and sets of used servers (memoised on a bitmask of servers):
// independent of the augmenting-path code. It handles up to 64 servers.
func bruteHappiness(holders map[int][]string) int {
	var shares []int
	idx := map[string]uint{}
	for sh, srvs := range holders {
		shares = append(shares, sh)
		for _, s := range srvs {
			if _, ok := idx[s]; !ok {
				idx[s] = uint(len(idx))
			}
		}
	}
	sort.Ints(shares)
	type key struct {
		i    int
		used uint64
	}
	memo := map[key]int{}
	var best func(i int, used uint64) int
	best = func(i int, used uint64) int {
		if i == len(shares) {
			return 0
		}
		if v, ok := memo[key{i, used}]; ok {
			return v
		}
		b := best(i+1, used)
		for _, s := range holders[shares[i]] {
			bit := uint64(1) << idx[s]
			if used&bit == 0 {
				if v := 1 + best(i+1, used|bit); v > b {
					b = v
				}
			}
		}
		memo[key{i, used}] = b
		return b
	}
	return best(0, 0)
}

func ring(spec string) []Server {
	// "A B c D": upper case is writable, lower case is full.
	var out []Server
	for _, f := range strings.Fields(spec) {
		out = append(out, Server{ID: strings.ToUpper(f), Writable: f == strings.ToUpper(f)})
	}
	return out
}

func TestPlan(t *testing.T) {
	cases := []struct {
		name     string
		p        Params
		ring     string
		existing map[int][]string
		// writes: server -> shares, exactly; "" means do not check.
		writes  map[string][]int
		happy   int
		wantErr string
	}{
		{name: "fresh 3-of-10 on 10 servers", p: Params{3, 7, 10}, ring: "A B C D E F G H I J",
			writes: map[string][]int{"A": {0}, "B": {1}, "C": {2}, "D": {3}, "E": {4}, "F": {5}, "G": {6}, "H": {7}, "I": {8}, "J": {9}}, happy: 10},
		{name: "more servers than shares uses the first on the ring", p: Params{2, 3, 3}, ring: "A B C D E",
			writes: map[string][]int{"A": {0}, "B": {1}, "C": {2}}, happy: 3},
		{name: "dev grid 3-4-5 on 4 servers doubles up the first", p: Params{3, 4, 5}, ring: "A B C D",
			writes: map[string][]int{"A": {0, 4}, "B": {1}, "C": {2}, "D": {3}}, happy: 4},
		{name: "full servers are skipped", p: Params{2, 3, 3}, ring: "a B c D E",
			writes: map[string][]int{"B": {0}, "D": {1}, "E": {2}}, happy: 3},
		{name: "existing shares are kept and not rewritten", p: Params{2, 3, 4}, ring: "A B C D",
			existing: map[int][]string{0: {"C"}, 1: {"D"}},
			writes:   map[string][]int{"A": {2}, "B": {3}}, happy: 4},
		{name: "shares on a full server still count", p: Params{2, 3, 3}, ring: "a B C",
			existing: map[int][]string{2: {"A"}},
			writes:   map[string][]int{"B": {0}, "C": {1}}, happy: 3},
		{name: "all shares on one server: spread out", p: Params{2, 3, 3}, ring: "A B C",
			existing: map[int][]string{0: {"A"}, 1: {"A"}, 2: {"A"}},
			writes:   map[string][]int{"B": {1}, "C": {2}}, happy: 3},
		{name: "all shares on one full server: two rewrites", p: Params{2, 3, 3}, ring: "a B C",
			existing: map[int][]string{0: {"A"}, 1: {"A"}, 2: {"A"}},
			writes:   map[string][]int{"B": {1}, "C": {2}}, happy: 3},
		{name: "augmenting path through existing shares", p: Params{1, 3, 3}, ring: "a b C",
			existing: map[int][]string{0: {"A", "B"}, 1: {"A"}},
			writes:   map[string][]int{"C": {2}}, happy: 3},
		{name: "shares beyond N and unknown servers ignored", p: Params{1, 2, 2}, ring: "A B",
			existing: map[int][]string{5: {"A"}, 0: {"Z"}},
			writes:   map[string][]int{"A": {0}, "B": {1}}, happy: 2},
		{name: "already happy with no writable server", p: Params{1, 2, 3}, ring: "a b",
			existing: map[int][]string{0: {"A"}, 1: {"B"}},
			writes:   map[string][]int{}, happy: 2},
		{name: "too few servers", p: Params{3, 7, 10}, ring: "A B c D E",
			wantErr: "upload needs shares on 7 distinct servers (happiness), only 4 usable: 5 answered, 1 full"},
		{name: "no servers", p: Params{3, 7, 10}, ring: "",
			wantErr: "upload needs shares on 7 distinct servers (happiness), only 0 usable: 0 answered, 0 full"},
		{name: "full servers with one share each help", p: Params{2, 4, 4}, ring: "a b C",
			existing: map[int][]string{0: {"A"}, 1: {"A"}},
			wantErr:  "upload needs shares on 4 distinct servers (happiness), only 2 usable: 3 answered, 2 full"},
		{name: "k above h", p: Params{4, 3, 5}, ring: "A", wantErr: "bad placement parameters: k=4 is more than h=3"},
		{name: "h above n", p: Params{1, 6, 5}, ring: "A", wantErr: "bad placement parameters: h=6 is more than n=5"},
		{name: "n too big", p: Params{1, 1, 257}, ring: "A", wantErr: "bad placement parameters: n=257 is more than 256"},
		{name: "duplicate server", p: Params{1, 1, 1}, ring: "A A", wantErr: "bad placement parameters: server A is listed twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pl, err := Plan(tc.p, ring(tc.ring), tc.existing)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(tc.wantErr, "happiness") {
					var he *HappinessError
					if !errors.As(err, &he) || !errors.Is(err, ErrNotHappy) {
						t.Fatalf("err %v is not a *HappinessError wrapping ErrNotHappy", err)
					}
				} else if !errors.Is(err, ErrBadParams) {
					t.Fatalf("err %v does not wrap ErrBadParams", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if pl.Happiness != tc.happy {
				t.Fatalf("happiness %d, want %d", pl.Happiness, tc.happy)
			}
			got := map[string][]int{}
			for _, w := range pl.ByServer() {
				got[w.ID] = w.Shares
			}
			if !reflect.DeepEqual(got, tc.writes) {
				t.Fatalf("writes %v, want %v", got, tc.writes)
			}
			checkPlacement(t, pl, ring(tc.ring))
		})
	}
}

// checkPlacement asserts the invariants of every successful plan.
func checkPlacement(t *testing.T, pl *Placement, servers []Server) {
	t.Helper()
	writable := map[string]bool{}
	for _, s := range servers {
		writable[s.ID] = s.Writable && !pl.Failed(s.ID)
	}
	h := pl.Holders()
	if got := bruteHappiness(h); got != pl.Happiness {
		t.Fatalf("plan says happiness %d, brute force on its holders says %d", pl.Happiness, got)
	}
	if pl.Happiness < pl.Params.H {
		t.Fatalf("happiness %d below H=%d without an error", pl.Happiness, pl.Params.H)
	}
	homeless := map[int]bool{}
	for _, sh := range pl.Homeless {
		homeless[sh] = true
	}
	for sh := 0; sh < pl.Params.N; sh++ {
		if len(h[sh]) == 0 && !homeless[sh] {
			t.Fatalf("share %d is placed nowhere", sh)
		}
	}
	for sh, id := range pl.Writes {
		if !writable[id] {
			t.Fatalf("share %d written to unwritable server %s", sh, id)
		}
		if contains(pl.Existing[sh], id) {
			t.Fatalf("share %d rewritten to %s which holds it", sh, id)
		}
	}
	if len(pl.Homeless) > 0 {
		for _, w := range writable {
			if w {
				t.Fatalf("homeless shares %v while a server is writable", pl.Homeless)
			}
		}
	}
}

func TestFail(t *testing.T) {
	cases := []struct {
		name    string
		p       Params
		ring    string
		fail    []string
		moved   map[int]string // after the last Fail
		wantErr string
	}{
		{name: "spare server takes the share", p: Params{3, 4, 4}, ring: "A B C D E", fail: []string{"B"},
			moved: map[int]string{1: "E"}},
		{name: "next on the ring after the failed one", p: Params{1, 2, 2}, ring: "A B C D", fail: []string{"A"},
			moved: map[int]string{0: "C"}},
		{name: "no spare: double up, keep happiness", p: Params{2, 3, 4}, ring: "A B C D", fail: []string{"D"},
			moved: map[int]string{3: "A"}},
		{name: "second failure on the replacement", p: Params{1, 2, 2}, ring: "A B C D", fail: []string{"A", "C"},
			moved: map[int]string{0: "D"}},
		{name: "failing twice is a no-op", p: Params{1, 2, 2}, ring: "A B C", fail: []string{"A", "A"},
			moved: map[int]string{}},
		{name: "below happiness", p: Params{3, 4, 5}, ring: "A B C D", fail: []string{"C"},
			wantErr: "upload needs shares on 4 distinct servers (happiness), only 3 usable: 4 answered, 0 full, 1 failed"},
		{name: "unknown server", p: Params{1, 1, 1}, ring: "A", fail: []string{"Q"},
			wantErr: "fail server Q: bad placement parameters: not in the placement"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pl, err := Plan(tc.p, ring(tc.ring), nil)
			if err != nil {
				t.Fatal(err)
			}
			var moved map[int]string
			for _, id := range tc.fail {
				moved, err = pl.Fail(id)
				if err != nil {
					break
				}
			}
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(moved, tc.moved) {
				t.Fatalf("moved %v, want %v", moved, tc.moved)
			}
			for _, id := range tc.fail {
				for _, w := range pl.ByServer() {
					if w.ID == id {
						t.Fatalf("failed server %s still has writes %v", id, w.Shares)
					}
				}
			}
			checkPlacement(t, pl, ring(tc.ring))
		})
	}
}

// Fail must not move writes of live servers: their uploads are streaming.
func TestFailKeepsOtherWrites(t *testing.T) {
	pl, err := Plan(Params{3, 7, 10}, ring("A B C D E F G H I J K L"), nil)
	if err != nil {
		t.Fatal(err)
	}
	before := map[int]string{}
	for sh, id := range pl.Writes {
		before[sh] = id
	}
	moved, err := pl.Fail("D")
	if err != nil {
		t.Fatal(err)
	}
	for sh, id := range before {
		if id == "D" {
			if moved[sh] == "" || pl.Writes[sh] != moved[sh] {
				t.Fatalf("share %d of failed D not moved: %v", sh, moved)
			}
			continue
		}
		if pl.Writes[sh] != id {
			t.Fatalf("share %d moved from live %s to %s", sh, id, pl.Writes[sh])
		}
	}
}

// randomCase builds a random grid from r.
func randomCase(r *rand.Rand) (Params, []Server, map[int][]string) {
	nsrv := r.IntN(9)
	n := 1 + r.IntN(8)
	h := 1 + r.IntN(n)
	k := 1 + r.IntN(h)
	servers := make([]Server, nsrv)
	for i := range servers {
		servers[i] = Server{ID: fmt.Sprint("s", i), Writable: r.IntN(3) != 0}
	}
	existing := map[int][]string{}
	if nsrv > 0 {
		for i := r.IntN(2 * n); i > 0; i-- {
			sh := r.IntN(n + 1) // sometimes out of range
			existing[sh] = append(existing[sh], servers[r.IntN(nsrv)].ID)
		}
	}
	return Params{k, h, n}, servers, existing
}

// bestPossible is the happiness of the richest placement allowed: existing
// shares plus every share on every writable server.
func bestPossible(p Params, servers []Server, existing map[int][]string) int {
	known := map[string]bool{}
	for _, s := range servers {
		known[s.ID] = true
	}
	all := map[int][]string{}
	for sh := 0; sh < p.N; sh++ {
		for _, id := range existing[sh] {
			if known[id] {
				all[sh] = append(all[sh], id)
			}
		}
		for _, s := range servers {
			if s.Writable {
				all[sh] = append(all[sh], s.ID)
			}
		}
	}
	return bruteHappiness(all)
}

func TestPlanRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		p, servers, existing := randomCase(r)
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkCase(t, p, servers, existing, r) })
	}
}

func checkCase(t *testing.T, p Params, servers []Server, existing map[int][]string, r *rand.Rand) {
	best := bestPossible(p, servers, existing)
	pl, err := Plan(p, servers, existing)
	if best < p.H {
		var he *HappinessError
		if !errors.As(err, &he) || he.Usable != best {
			t.Fatalf("%+v %v %v: best possible %d < H, got err %v", p, servers, existing, best, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("%+v %v %v: best possible %d >= H=%d, got %v", p, servers, existing, best, p.H, err)
	}
	if pl.Happiness != best {
		t.Fatalf("%+v %v %v: happiness %d, best possible %d", p, servers, existing, pl.Happiness, best)
	}
	checkPlacement(t, pl, servers)
	if len(servers) == 0 || r == nil {
		return
	}
	victim := servers[r.IntN(len(servers))].ID
	if _, err := pl.Fail(victim); err != nil {
		var he *HappinessError
		if !errors.As(err, &he) || he.Usable != bruteHappiness(pl.Holders()) || he.Usable >= p.H {
			t.Fatalf("fail %s: %v", victim, err)
		}
		return
	}
	checkPlacement(t, pl, servers)
	for _, id := range pl.Holders() {
		if contains(id, victim) {
			t.Fatalf("failed server %s still holds shares", victim)
		}
	}
}

func FuzzPlan(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Add(uint64(42), uint64(7))
	f.Fuzz(func(t *testing.T, a, b uint64) {
		r := rand.New(rand.NewPCG(a, b))
		p, servers, existing := randomCase(r)
		checkCase(t, p, servers, existing, r)
	})
}
