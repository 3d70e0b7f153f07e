package accounts

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"github.com/tarnfs/tarn/host/identity"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/cap"
)

func writeRoot(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "root.cap")
	if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newKey(t *testing.T) (ssh.PublicKey, string) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " alice@laptop"
}

// fastThrottle keeps the tests quick but still measurable.
func fastThrottle() *Throttle {
	t := NewThrottle()
	t.Base, t.Max = 20*time.Millisecond, 80*time.Millisecond
	return t
}

func TestHashPasswordVerify(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q: not the expected argon2id form", h)
	}
	h2, _ := HashPassword("correct horse")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	bc, err := bcrypt.GenerateFromPassword([]byte("correct horse"), 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, hash, pw string
		want           bool
		err            bool
	}{
		{"argon2id right", h, "correct horse", true, false},
		{"argon2id wrong", h, "correct horsE", false, false},
		{"argon2id empty", h, "", false, false},
		{"bcrypt right", string(bc), "correct horse", true, false},
		{"bcrypt wrong", string(bc), "battery staple", false, false},
		{"garbage", "plain", "plain", false, true},
		{"argon2i", strings.Replace(h, "argon2id", "argon2i", 1), "correct horse", false, true},
		{"huge memory", strings.Replace(h, "m=19456", "m=4294967295", 1), "x", false, true},
		{"huge time", strings.Replace(h, "t=2", "t=100000", 1), "x", false, true},
		{"zero lanes", strings.Replace(h, "p=1", "p=0", 1), "x", false, true},
		{"bad version", strings.Replace(h, "v=19", "v=16", 1), "x", false, true},
		{"missing param", strings.Replace(h, "m=19456,", "", 1), "x", false, true},
		{"bcrypt cost 31", "$2b$31$" + string(bc)[7:], "x", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := VerifyPassword(tc.hash, tc.pw)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if tc.err && !errors.Is(err, ErrHashFormat) {
				t.Fatalf("err = %v, want ErrHashFormat", err)
			}
			if ok != tc.want {
				t.Fatalf("ok = %v, want %v", ok, tc.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	w, err := cap.NewDirWrite()
	if err != nil {
		t.Fatal(err)
	}
	rootFile := writeRoot(t, w.String())
	roFile := writeRoot(t, w.ReadCap().String())
	chk := writeRoot(t, "tarn:lit:"+strings.Repeat("a", 8))
	hash, _ := HashPassword("pw")
	_, keyLine := newKey(t)
	missing := filepath.Join(t.TempDir(), "new-root.cap")
	open := writeRoot(t, w.String())
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		acct    conf.Account
		opts    []Option
		wantErr error
		errText string
		check   func(t *testing.T, a *Account)
	}{
		{name: "writable", acct: conf.Account{Name: "alice", PasswordHash: hash, RootCapFile: rootFile},
			check: func(t *testing.T, a *Account) {
				if a.ReadOnly || a.RootCap != w.String() || !a.HasPassword() {
					t.Fatalf("got %+v", a)
				}
			}},
		{name: "read-only flag diminishes", acct: conf.Account{Name: "bob", PasswordHash: hash, RootCapFile: rootFile, ReadOnly: true},
			check: func(t *testing.T, a *Account) {
				if !a.ReadOnly || a.RootCap != w.ReadCap().String() {
					t.Fatalf("read-only account root %q, want the read cap", a.RootCap)
				}
			}},
		{name: "read cap root is read-only", acct: conf.Account{Name: "carol", AuthorizedKeys: []string{keyLine}, RootCapFile: roFile},
			check: func(t *testing.T, a *Account) {
				if !a.ReadOnly || a.HasPassword() || len(a.PublicKeys()) != 1 {
					t.Fatalf("got %+v", a)
				}
			}},
		{name: "alias unsupported", acct: conf.Account{Name: "dan", PasswordHash: hash, RootAlias: "home"}, wantErr: ErrAliasUnsupported},
		{name: "alias resolved", acct: conf.Account{Name: "dan", PasswordHash: hash, RootAlias: "home"},
			opts: []Option{WithAliasResolver(func(a string) (string, error) { return w.String(), nil })},
			check: func(t *testing.T, a *Account) {
				if a.RootCap != w.String() {
					t.Fatalf("root %q", a.RootCap)
				}
			}},
		{name: "missing root file", acct: conf.Account{Name: "eve", PasswordHash: hash, RootCapFile: "/nonexistent/root.cap"}, wantErr: ErrRoot},
		{name: "missing root file created", acct: conf.Account{Name: "fay", PasswordHash: hash, RootCapFile: missing},
			opts: []Option{WithCreateRoot(func(name string) (string, error) { return w.String(), nil })},
			check: func(t *testing.T, a *Account) {
				b, err := os.ReadFile(missing)
				if err != nil || strings.TrimSpace(string(b)) != w.String() || a.RootCap != w.String() {
					t.Fatalf("root %q, file %q (%v)", a.RootCap, b, err)
				}
				if st, _ := os.Stat(missing); st.Mode().Perm() != 0o600 {
					t.Fatalf("cap file mode %v, want 0600", st.Mode().Perm())
				}
			}},
		{name: "create fails", acct: conf.Account{Name: "gus", PasswordHash: hash, RootCapFile: filepath.Join(t.TempDir(), "x.cap")},
			opts: []Option{WithCreateRoot(func(string) (string, error) { return "", errors.New("grid down") })}, wantErr: ErrRoot, errText: "grid down"},
		{name: "root file readable by others", acct: conf.Account{Name: "eve", PasswordHash: hash, RootCapFile: open}, wantErr: identity.ErrTooOpen, errText: "chmod 600"},
		{name: "file cap root", acct: conf.Account{Name: "eve", PasswordHash: hash, RootCapFile: chk}, wantErr: ErrRoot},
		{name: "bad hash", acct: conf.Account{Name: "eve", PasswordHash: "$argon2id$nope", RootCapFile: rootFile}, wantErr: ErrHashFormat},
		{name: "bad key", acct: conf.Account{Name: "eve", AuthorizedKeys: []string{"ssh-ed25519 AAAA"}, RootCapFile: rootFile}, errText: "authorized_keys[0]"},
		{name: "key options", acct: conf.Account{Name: "eve", AuthorizedKeys: []string{`from="10.0.0.1" ` + keyLine}, RootCapFile: rootFile}, errText: "not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New([]conf.Account{tc.acct}, tc.opts...)
			if tc.wantErr != nil || tc.errText != "" {
				if err == nil {
					t.Fatal("no error")
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.errText) || !strings.Contains(err.Error(), tc.acct.Name) {
					t.Fatalf("err = %q, want it to name the account and say %q", err, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			a, ok := s.Account(tc.acct.Name)
			if !ok {
				t.Fatal("account missing")
			}
			tc.check(t, a)
		})
	}
}

func testSet(t *testing.T, th *Throttle) (*Set, ssh.PublicKey) {
	t.Helper()
	w, _ := cap.NewDirWrite()
	root := writeRoot(t, w.String())
	ha, _ := HashPassword("alice-pw")
	hb, _ := bcrypt.GenerateFromPassword([]byte("bob-pw"), 4)
	k, line := newKey(t)
	s, err := New([]conf.Account{
		{Name: "alice", PasswordHash: ha, AuthorizedKeys: []string{line}, RootCapFile: root},
		{Name: "bob", PasswordHash: string(hb), RootCapFile: root, ReadOnly: true},
		{Name: "keyonly", AuthorizedKeys: []string{line}, RootCapFile: root},
	}, WithThrottle(th))
	if err != nil {
		t.Fatal(err)
	}
	return s, k
}

func TestCheckPassword(t *testing.T) {
	s, _ := testSet(t, fastThrottle())
	ctx := context.Background()
	for _, tc := range []struct {
		name, user, pw string
		ok             bool
	}{
		{"argon2id", "alice", "alice-pw", true},
		{"bcrypt", "bob", "bob-pw", true},
		{"cached", "alice", "alice-pw", true},
		{"wrong", "alice", "bob-pw", false},
		{"unknown", "mallory", "alice-pw", false},
		{"no password", "keyonly", "", false},
		{"other's password", "bob", "alice-pw", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := s.CheckPassword(ctx, tc.user, tc.pw, "192.0.2.1:5000")
			if tc.ok {
				if err != nil || a.Name != tc.user {
					t.Fatalf("got %v, %v", a, err)
				}
				return
			}
			if !errors.Is(err, ErrDenied) || a != nil {
				t.Fatalf("got %v, %v; want ErrDenied", a, err)
			}
		})
	}
}

func TestCheckPublicKey(t *testing.T) {
	s, k := testSet(t, fastThrottle())
	other, _ := newKey(t)
	for _, tc := range []struct {
		name, user string
		key        ssh.PublicKey
		ok         bool
	}{
		{"right key", "alice", k, true},
		{"key-only account", "keyonly", k, true},
		{"other key", "alice", other, false},
		{"account without keys", "bob", k, false},
		{"unknown", "mallory", k, false},
		{"nil key", "alice", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := s.CheckPublicKey(tc.user, tc.key)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
			if !tc.ok && !errors.Is(err, ErrDenied) {
				t.Fatalf("err = %v, want ErrDenied", err)
			}
			if tc.ok && a.Name != tc.user {
				t.Fatalf("account %q", a.Name)
			}
		})
	}
}

func TestOnly(t *testing.T) {
	s, _ := testSet(t, fastThrottle())
	v, err := s.Only([]string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.CheckPassword(context.Background(), "alice", "alice-pw", "192.0.2.1"); !errors.Is(err, ErrDenied) {
		t.Fatalf("account outside the view logged in: %v", err)
	}
	if _, err := v.CheckPassword(context.Background(), "bob", "bob-pw", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Only([]string{"nobody"}); err == nil {
		t.Fatal("Only of an unknown account: no error")
	}
	if all, _ := s.Only(nil); all.Len() != 3 {
		t.Fatalf("Only(nil) has %d accounts, want all 3", all.Len())
	}
}

// TestThrottleSlowsFailures: failures make the next attempt of that
// account, and from that address, wait longer, up to the cap; a success
// clears them.
func TestThrottleSlowsFailures(t *testing.T) {
	th := fastThrottle()
	s, _ := testSet(t, th)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		s.CheckPassword(ctx, "alice", "wrong", "198.51.100.7:1")
	}
	if d := th.Delay("alice", "203.0.113.1"); d != th.Max {
		t.Fatalf("delay of the attacked account from elsewhere = %v, want the cap %v", d, th.Max)
	}
	if d := th.Delay("bob", "198.51.100.7:9"); d != th.Max {
		t.Fatalf("delay of the attacking address = %v, want the cap %v", d, th.Max)
	}
	if d := th.Delay("bob", "203.0.113.1"); d != 0 {
		t.Fatalf("delay of an unrelated account and address = %v, want 0", d)
	}
	start := time.Now()
	if _, err := s.CheckPassword(ctx, "alice", "alice-pw", "203.0.113.1:2"); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < th.Max {
		t.Fatalf("login after failures took %v, want at least %v", el, th.Max)
	}
	if d := th.Delay("alice", "203.0.113.1"); d != 0 {
		t.Fatalf("delay after a success = %v, want 0", d)
	}
}

func TestThrottleGrowthAndForget(t *testing.T) {
	now := time.Unix(1000, 0)
	th := NewThrottle()
	th.now = func() time.Time { return now }
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3 * time.Second, 3 * time.Second}
	for i, w := range want {
		th.Fail("alice", "192.0.2.1")
		if d := th.Delay("alice", "192.0.2.1"); d != w {
			t.Fatalf("after %d failures delay %v, want %v", i+1, d, w)
		}
	}
	now = now.Add(DefaultForget + time.Second)
	if d := th.Delay("alice", "192.0.2.1"); d != 0 {
		t.Fatalf("delay after the forget period %v, want 0", d)
	}
	// IPv6 addresses in one /64 share an entry.
	th.Fail("x", "[2001:db8::1]:22")
	if d := th.Delay("y", "[2001:db8::ffff]:80"); d == 0 {
		t.Fatal("an address in the same /64 is not slowed")
	}
}

// TestThrottleBounded: the failure table never passes MaxEntries, and
// callers beyond MaxWaiting are refused at once instead of sleeping.
func TestThrottleBounded(t *testing.T) {
	th := NewThrottle()
	th.MaxEntries = 50
	for i := 0; i < 1000; i++ {
		th.Fail("", "10.0."+strconv.Itoa(i/256)+"."+strconv.Itoa(i%256))
	}
	if n := len(th.fails); n > th.MaxEntries {
		t.Fatalf("table holds %d entries, more than %d", n, th.MaxEntries)
	}

	th = NewThrottle()
	th.Base, th.Max, th.MaxWaiting = time.Second, time.Second, 2
	th.Fail("alice", "192.0.2.1")
	ctx, cancel := context.WithCancel(context.Background())
	var waited atomic.Int32
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() {
			err := th.Wait(ctx, "alice", "192.0.2.1")
			waited.Add(1)
			errs <- err
		}()
	}
	first := <-errs
	if !errors.Is(first, ErrThrottled) {
		t.Fatalf("third waiter got %v, want ErrThrottled at once", first)
	}
	cancel()
	for i := 0; i < 2; i++ {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter got %v", err)
		}
	}
}

func FuzzParseHash(f *testing.F) {
	h, _ := HashPassword("x")
	f.Add(h)
	f.Add("$2b$04$abcdefghijklmnopqrstuuQhVxIrsbbhcwQqmF2Kc1Y5rA8kV/HJm")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5")
	f.Add("$argon2id$v=19$m=8,t=1,p=1,m=9$$")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseHash(s)
		if err != nil {
			if !errors.Is(err, ErrHashFormat) {
				t.Fatalf("error %v is not ErrHashFormat", err)
			}
			return
		}
		if a, ok := v.(*argonHash); ok && (a.memory > maxArgonMemory || a.time > maxArgonTime) {
			t.Fatalf("accepted out-of-bounds parameters %+v", a)
		}
	})
}
