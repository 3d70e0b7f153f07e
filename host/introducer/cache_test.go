package introducer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/tarnfs/tarn/host/introducer/introducerpb"
	"github.com/tarnfs/tarn/host/nodelink"
)

// startCachingSubscriber runs a subscriber with a cache file until stop
// (or the test's end) and returns its list.
func startCachingSubscriber(t *testing.T, grid, cache string, intros ...*introducerNode) (*ServerList, *Subscriber, func()) {
	t.Helper()
	list := NewServerList(nil)
	me := newIdentity(t)
	var ds []Dialer
	for _, in := range intros {
		ds = append(ds, in.dialer(t, me, nil))
	}
	sub, err := NewSubscriber(SubscriberConfig{Grid: grid, Introducers: ds, List: list, Backoff: fast, CacheFile: cache, CacheEvery: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sub.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return list, sub, stop
}

// waitFile waits until the cache file holds n announcements.
func waitCacheFile(t *testing.T, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		var msg introducerpb.SubscribeResponse
		if err == nil && proto.Unmarshal(b, &msg) == nil && len(msg.Announcements) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cache file %s never held %d announcements (err %v, %d)", path, n, err, len(msg.Announcements))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServerCache: a client restarted while its introducer is down knows
// the servers it last verified, from its cache file (mode 0600); once the
// introducer answers, its view replaces the cache: a server it no longer
// announces is gone and the others are live again.
func TestServerCache(t *testing.T) {
	intro := startIntroducer(t, ServiceConfig{Grid: "g"})
	a := startPublisher(t, intro, "g", nil)
	b := startPublisher(t, intro, "g", nil)
	cache := filepath.Join(t.TempDir(), "private", CacheFile)
	if err := os.MkdirAll(filepath.Dir(cache), 0o700); err != nil {
		t.Fatal(err)
	}
	list, _, stop := startCachingSubscriber(t, "g", cache, intro)
	waitList(t, list, "two servers", hasN(2))
	waitCacheFile(t, cache, 2)
	if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	stop()

	// The introducer goes away and the client restarts: without the
	// cache it would know no server.
	intro.stop()
	list2, sub2, _ := startCachingSubscriber(t, "g", cache, intro)
	got := waitList(t, list2, "cached servers", hasN(2))
	for _, s := range got {
		if !s.Cached || (s.NodeID != a.id.NodeID() && s.NodeID != b.id.NodeID()) || len(s.Addresses) != 1 {
			t.Fatalf("cached server %+v", s)
		}
	}
	if l := sub2.Links(); len(l) != 1 || l[0].Connected {
		t.Fatalf("links with the introducer down: %+v", l)
	}

	// The introducer comes back (without state) and the servers announce
	// themselves again: the cache gives way to its view.
	intro.start()
	got = waitList(t, list2, "the introducer's view", func(s []Server) bool {
		for _, x := range s {
			if x.Cached {
				return false
			}
		}
		_, ok := find(s, a.id.NodeID())
		return ok
	})
	for _, s := range got {
		if s.Cached {
			t.Fatalf("cached server left after the introducer answered: %+v", s)
		}
	}
	if l := sub2.Links(); !l[0].Connected || l[0].Since.IsZero() || l[0].LastError != nil {
		t.Fatalf("link after the introducer answered: %+v", l[0])
	}
}

// TestServerCacheReplacedByIntroducer: a cached server the introducer
// does not announce is dropped when its snapshot arrives, and the file is
// rewritten with the introducer's view.
func TestServerCacheReplacedByIntroducer(t *testing.T) {
	gone := newIdentity(t)
	cache := filepath.Join(t.TempDir(), CacheFile)
	if err := SaveCache(cache, []*introducerpb.SignedAnnouncement{mustSignT(t, gone, goodRecord(gone, "g", 1, time.Now()))}); err != nil {
		t.Fatal(err)
	}
	intro := startIntroducer(t, ServiceConfig{Grid: "g"})
	a := startPublisher(t, intro, "g", nil)
	list, _, _ := startCachingSubscriber(t, "g", cache, intro)
	got := waitList(t, list, "only the announced server", func(s []Server) bool {
		return len(s) == 1 && s[0].NodeID == a.id.NodeID()
	})
	if got[0].Cached {
		t.Fatalf("server %+v", got[0])
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		servers, _, err := LoadCache(cache, "g", time.Now())
		if err == nil && len(servers) == 1 && servers[0].NodeID == a.id.NodeID() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cache holds %+v, %v; want only %s", servers, err, a.id.NodeID())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestParseCache: cached announcements are checked as an introducer's
// are (signature, node id, pins, grid, service), expiry aside.
func TestParseCache(t *testing.T) {
	now := time.Now()
	a, b := newIdentity(t), newIdentity(t)
	good := mustSignT(t, a, goodRecord(a, "g", 2, now))
	older := mustSignT(t, a, goodRecord(a, "g", 1, now))
	oldRec := goodRecord(b, "g", 1, now.Add(-48*time.Hour))
	expired := mustSignT(t, b, oldRec)
	forged := proto.Clone(good).(*introducerpb.SignedAnnouncement)
	forged.Signature = bytes.Repeat([]byte{1}, len(forged.Signature))
	other := mustSignT(t, b, goodRecord(b, "other", 1, now))
	for _, tc := range []struct {
		name    string
		in      []*introducerpb.SignedAnnouncement
		want    []string // node ids
		dropped map[string]int
	}{
		{"good", []*introducerpb.SignedAnnouncement{good}, []string{a.NodeID()}, nil},
		{"newest of a node", []*introducerpb.SignedAnnouncement{older, good}, []string{a.NodeID()}, nil},
		{"expired is kept", []*introducerpb.SignedAnnouncement{expired}, []string{b.NodeID()}, nil},
		{"forged", []*introducerpb.SignedAnnouncement{forged}, nil, map[string]int{"bad signature": 1}},
		{"other grid", []*introducerpb.SignedAnnouncement{other}, nil, map[string]int{"announcement for another grid": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := EncodeCache(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got, dropped, err := ParseCache(b, "g", now)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, s := range got {
				if !s.Cached {
					t.Errorf("%s not marked cached", s.NodeID)
				}
				ids = append(ids, s.NodeID)
			}
			if strings.Join(ids, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("servers %v, want %v", ids, tc.want)
			}
			if len(dropped) != len(tc.dropped) {
				t.Fatalf("dropped %v, want %v", dropped, tc.dropped)
			}
			for k, v := range tc.dropped {
				if dropped[k] != v {
					t.Fatalf("dropped %v, want %v", dropped, tc.dropped)
				}
			}
		})
	}
	if _, _, err := ParseCache([]byte("\xff\xff\xff"), "g", now); !errors.Is(err, ErrCache) {
		t.Fatalf("garbage: %v, want ErrCache", err)
	}
}

func FuzzParseCache(f *testing.F) {
	id := newIdentity(f)
	b, err := EncodeCache([]*introducerpb.SignedAnnouncement{mustSignT(f, id, goodRecord(id, "g", 1, time.Now()))})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte("\x0a\x02\x0a\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		servers, _, err := ParseCache(b, "g", time.Now())
		if err != nil && len(servers) > 0 {
			t.Fatalf("servers with an error")
		}
		for _, s := range servers {
			if !s.Cached || s.NodeID == "" || len(s.Addresses) == 0 {
				t.Fatalf("bad server %+v", s)
			}
		}
	})
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// countDials counts a dialer's calls.
func countDials(d Dialer, n *atomic.Int64) Dialer {
	return func(ctx context.Context) (*grpc.ClientConn, error) {
		n.Add(1)
		return d(ctx)
	}
}

// TestIntroducerRefusal: a node with another grid secret is told so, at
// error level, in one line naming the cause, and retries every
// Backoff.Refused rather than on the link-fault back-off; its link state
// says refused. An introducer that is down is a link fault: retried on
// the back-off, logged as unreachable, with the wait as text.
func TestIntroducerRefusal(t *testing.T) {
	secret := make([]byte, nodelink.GridSecretSize)
	secret[0] = 1
	wrong := make([]byte, nodelink.GridSecretSize)
	wrong[0] = 2
	intro := startIntroducer(t, ServiceConfig{Grid: "g", GridSecret: secret})
	down := startIntroducer(t, ServiceConfig{Grid: "g"})
	down.stop()
	const want = "introducer refused this node: not a member of this grid (grid secret differs)"
	for _, tc := range []struct {
		name    string
		intro   *introducerNode
		secret  []byte
		grid    string
		refused bool
		msg     string
	}{
		{"wrong secret", intro, wrong, "g", true, want},
		{"no secret", intro, nil, "g", true, "introducer refused this node: not a member of this grid (this node has no grid secret)"},
		{"another grid", intro, secret, "other", true, "introducer refused this node: "},
		{"introducer down", down, nil, "g", false, "connection refused"},
	} {
		for _, role := range []string{"publisher", "subscriber"} {
			t.Run(tc.name+"/"+role, func(t *testing.T) {
				var logs logBuffer
				log := hclog.New(&hclog.LoggerOptions{Output: &logs, JSONFormat: true, Level: hclog.Debug})
				var dials atomic.Int64
				id := newIdentity(t)
				d := countDials(tc.intro.dialer(t, id, tc.secret), &dials)
				var links func() LinkState
				if role == "publisher" {
					s := startPublisher(t, tc.intro, tc.grid, func(c *PublisherConfig) {
						c.Introducer, c.Logger, c.Name = d, log, tc.intro.addr()
					})
					links = s.pub.Link
				} else {
					sub, err := NewSubscriber(SubscriberConfig{Grid: tc.grid, Introducers: []Dialer{d}, List: NewServerList(nil), Backoff: fast, Logger: log, Names: []string{tc.intro.addr()}})
					if err != nil {
						t.Fatal(err)
					}
					run(t, sub.Run)
					links = func() LinkState { return sub.Links()[0] }
				}
				deadline := time.Now().Add(10 * time.Second)
				for links().LastError == nil {
					if time.Now().After(deadline) {
						t.Fatal("no error in the link state")
					}
					time.Sleep(5 * time.Millisecond)
				}
				time.Sleep(500 * time.Millisecond) // 25 back-off steps of 20 ms
				st := links()
				if st.Connected || st.Refused != tc.refused || !strings.Contains(st.LastError.Error(), tc.msg) || st.Since.IsZero() {
					t.Fatalf("link state %+v, want refused %v, error with %q", st, tc.refused, tc.msg)
				}
				text := logs.String()
				if tc.refused {
					if n := dials.Load(); n != 1 {
						t.Errorf("%d attempts in 0.5 s after a refusal, want 1 (retried every minute)", n)
					}
					if !strings.Contains(text, `"@level":"error","@message":"`+tc.msg) || strings.Contains(text, "unreachable") || !strings.Contains(text, `"retry_in":"1m0s"`) {
						t.Errorf("log:\n%s", text)
					}
					if tc.grid == "g" && !errors.Is(st.LastError, nodelink.ErrNotMember) {
						t.Errorf("%v does not wrap ErrNotMember", st.LastError)
					}
				} else {
					if n := dials.Load(); n < 3 {
						t.Errorf("%d attempts in 0.5 s to an introducer that is down, want several", n)
					}
					if !strings.Contains(text, `"@level":"warn"`) || !strings.Contains(text, `"retry_in":"20ms"`) || strings.Contains(text, "refused this node") {
						t.Errorf("log:\n%s", text)
					}
				}
			})
		}
	}
}

// TestExpiryKeptWhileIntroducersDown: a running client whose introducer
// went away keeps a server whose announcement lapses meanwhile (marked
// cached, as after a restart), instead of forgetting every server one
// lifetime after the introducer died; the introducer's view, when it
// answers again, replaces it.
func TestExpiryKeptWhileIntroducersDown(t *testing.T) {
	intro := startIntroducer(t, ServiceConfig{Grid: "g"})
	id := newIdentity(t)
	p, err := NewPublisher(PublisherConfig{
		Identity: id, Introducer: intro.dialer(t, id, nil), Grid: "g",
		Addresses: []string{addrOf(id, "tcp:127.0.0.1:9")},
		Interval:  300 * time.Millisecond, Lifetime: time.Second, Backoff: fast,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
	list, _, _ := startCachingSubscriber(t, "g", filepath.Join(t.TempDir(), CacheFile), intro)
	waitList(t, list, "server", hasN(1))
	stop()
	<-done
	intro.stop()
	time.Sleep(1500 * time.Millisecond) // past the announcement's lifetime
	got := list.Servers()
	if len(got) != 1 || !got[0].Cached || got[0].NodeID != id.NodeID() {
		t.Fatalf("after the lifetime with the introducer down: %+v, want the server kept as cached", got)
	}
	intro.start() // no state, nobody announcing
	waitList(t, list, "the introducer's empty view", hasN(0))
}
