// Package accounts is who may use a node's frontends (WebDAV, SFTP): the
// [[accounts]] of a profile, loaded once, with their root directory caps,
// password checks against argon2id or bcrypt hashes (constant time, slowed
// down after failures per account and per remote address) and public keys
// from OpenSSH authorized_keys lines. Frontends map ErrDenied to their
// protocol's refusal and open each account's root with vdrive.New(store,
// acct.RootCap).
package accounts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"github.com/tarnfs/tarn/host/identity"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/cap"
)

// Sentinel errors.
var (
	// ErrDenied: wrong name, password or key. The message never says
	// which, so it does not tell an attacker which names exist.
	ErrDenied = errors.New("access denied")
	// ErrAliasUnsupported: an account names its root by root_alias, which
	// needs an alias resolver (WithAliasResolver) this node does not have.
	ErrAliasUnsupported = errors.New("root_alias is not supported yet: use root_cap_file")
	// ErrRoot: an account's root cap cannot be read or is not a directory
	// cap.
	ErrRoot = errors.New("account root")
)

// Account is one person the frontends let in.
type Account struct {
	// Name is the login name.
	Name string
	// RootCap is the account's root directory cap: a write cap
	// (tarn:dir:) or, for a read-only account, a read cap (tarn:dir-ro:).
	RootCap string
	// ReadOnly: the account may not change anything (the profile says so,
	// or its root cap is a read cap).
	ReadOnly bool

	hash verifier
	keys []ssh.PublicKey
}

// HasPassword reports whether the account can log in with a password.
func (a *Account) HasPassword() bool { return a.hash != nil }

// PublicKeys are the account's authorized keys.
func (a *Account) PublicKeys() []ssh.PublicKey { return slices.Clone(a.keys) }

// Option adjusts Load and New.
type Option func(*options)

type options struct {
	resolve  func(alias string) (string, error)
	create   func(account string) (string, error)
	throttle *Throttle
}

// WithCreateRoot makes Load create a missing root_cap_file: fn makes a new
// empty root directory for the account and returns its write cap, which
// is written to the file (mode 0600, never over an existing file). A node
// passes it so that a fresh profile (tarn dev's) needs no separate step;
// without it a missing file is an error.
func WithCreateRoot(fn func(account string) (string, error)) Option {
	return func(o *options) { o.create = fn }
}

// WithAliasResolver resolves root_alias names to caps (the CLI's aliases).
func WithAliasResolver(fn func(alias string) (string, error)) Option {
	return func(o *options) { o.resolve = fn }
}

// WithThrottle sets the login throttle (default NewThrottle()).
func WithThrottle(t *Throttle) Option { return func(o *options) { o.throttle = t } }

// Set is a profile's accounts, or the ones one frontend allows (Only). It
// is safe for concurrent use.
type Set struct {
	byName map[string]*Account
	names  []string
	sh     *shared
}

// shared is the state all views of one Set share: failures, the success
// cache and the verification slots.
type shared struct {
	throttle *Throttle
	slots    chan struct{} // bounds concurrent hash verifications
	secret   [32]byte      // keys the success cache

	mu    sync.Mutex
	cache map[[32]byte]time.Time
	now   func() time.Time
}

// MaxConcurrentVerify bounds password hashes computed at once (each
// argon2id verification takes its memory parameter, 19 MiB by default).
const MaxConcurrentVerify = 4

// Successful logins are remembered (as an HMAC of name and password under
// a per-process key) for CacheTTL, so a WebDAV client that sends Basic
// credentials with every request does not pay a hash per request.
const (
	CacheTTL     = 5 * time.Minute
	cacheEntries = 1024
)

// maxRootFile bounds a root_cap_file.
const maxRootFile = 4096

// Load reads the accounts of a profile: each account's root cap (from its
// root_cap_file, or root_alias through WithAliasResolver), password hash
// and authorized keys. Every problem is reported, one per line.
func Load(p *conf.Profile, opts ...Option) (*Set, error) {
	return New(p.Accounts, opts...)
}

// New is Load over a list of accounts.
func New(list []conf.Account, opts ...Option) (*Set, error) {
	o := options{}
	for _, fn := range opts {
		fn(&o)
	}
	if o.throttle == nil {
		o.throttle = NewThrottle()
	}
	sh := &shared{throttle: o.throttle, slots: make(chan struct{}, MaxConcurrentVerify),
		cache: map[[32]byte]time.Time{}, now: time.Now}
	if _, err := rand.Read(sh.secret[:]); err != nil {
		return nil, fmt.Errorf("accounts: cache key: %w", err)
	}
	s := &Set{byName: map[string]*Account{}, sh: sh}
	var errs []error
	for i := range list {
		a, err := load(&list[i], &o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := s.byName[a.Name]; dup {
			errs = append(errs, fmt.Errorf("account %q: defined twice", a.Name))
			continue
		}
		s.byName[a.Name] = a
		s.names = append(s.names, a.Name)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

func load(c *conf.Account, o *options) (*Account, error) {
	if c.Name == "" {
		return nil, errors.New("account with no name")
	}
	a := &Account{Name: c.Name, ReadOnly: c.ReadOnly}
	if c.PasswordHash != "" {
		v, err := parseHash(c.PasswordHash)
		if err != nil {
			return nil, fmt.Errorf("account %q password_hash: %w", c.Name, err)
		}
		a.hash = v
	}
	for i, line := range c.AuthorizedKeys {
		k, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("account %q authorized_keys[%d]: %w", c.Name, i, err)
		}
		if len(bytes.TrimSpace(rest)) > 0 {
			return nil, fmt.Errorf("account %q authorized_keys[%d]: one key per entry, found more", c.Name, i)
		}
		if len(options) > 0 {
			// Options such as from= restrict a key; silently ignoring one
			// would let in what the operator meant to keep out.
			return nil, fmt.Errorf("account %q authorized_keys[%d]: key options (%s) are not supported: remove them", c.Name, i, short(strings.Join(options, ",")))
		}
		a.keys = append(a.keys, k)
	}
	root, err := rootCap(c, o)
	if err != nil {
		return nil, err
	}
	pc, err := cap.Parse(root)
	if err != nil {
		return nil, fmt.Errorf("account %q root: %w: %w", c.Name, ErrRoot, err)
	}
	switch pc.(type) {
	case cap.DirWrite:
	case cap.DirRead:
		a.ReadOnly = true
	default:
		return nil, fmt.Errorf("account %q root: %w: a %s cap, want a directory cap (tarn:dir: or tarn:dir-ro:)", c.Name, ErrRoot, pc.Kind())
	}
	if a.ReadOnly {
		if pc, err = cap.ReadOnly(pc); err != nil {
			return nil, fmt.Errorf("account %q root: %w: %w", c.Name, ErrRoot, err)
		}
	}
	a.RootCap = pc.String()
	return a, nil
}

func rootCap(c *conf.Account, o *options) (string, error) {
	switch {
	case c.RootCapFile != "" && c.RootAlias != "":
		return "", fmt.Errorf("account %q: %w: set root_cap_file or root_alias, not both", c.Name, ErrRoot)
	case c.RootCapFile != "":
		f, err := os.Open(c.RootCapFile)
		if errors.Is(err, os.ErrNotExist) && o.create != nil {
			return createRoot(c, o.create)
		}
		if err != nil {
			return "", fmt.Errorf("account %q root: %w: %w", c.Name, ErrRoot, err)
		}
		defer f.Close()
		// A root cap is the account's whole drive: keep it as private as a key.
		if st, err := f.Stat(); err != nil {
			return "", fmt.Errorf("account %q root: %w: %w", c.Name, ErrRoot, err)
		} else if err := identity.CheckPrivate(c.RootCapFile, st); err != nil {
			return "", fmt.Errorf("account %q root: %w: %w", c.Name, ErrRoot, err)
		}
		b, err := io.ReadAll(io.LimitReader(f, maxRootFile+1))
		if err != nil {
			return "", fmt.Errorf("account %q root: %w: read %s: %w", c.Name, ErrRoot, c.RootCapFile, err)
		}
		if len(b) > maxRootFile {
			return "", fmt.Errorf("account %q root: %w: %s is over %d bytes, want one cap", c.Name, ErrRoot, c.RootCapFile, maxRootFile)
		}
		return strings.TrimSpace(string(b)), nil
	case c.RootAlias != "":
		if o.resolve == nil {
			return "", fmt.Errorf("account %q root_alias %q: %w", c.Name, short(c.RootAlias), ErrAliasUnsupported)
		}
		s, err := o.resolve(c.RootAlias)
		if err != nil {
			return "", fmt.Errorf("account %q root_alias %q: %w: %w", c.Name, short(c.RootAlias), ErrRoot, err)
		}
		return s, nil
	default:
		return "", fmt.Errorf("account %q: %w: needs root_cap_file or root_alias", c.Name, ErrRoot)
	}
}

// createRoot makes a root for c and writes its cap to c.RootCapFile.
func createRoot(c *conf.Account, create func(string) (string, error)) (string, error) {
	s, err := create(c.Name)
	if err != nil {
		return "", fmt.Errorf("account %q root: %w: create a root for the missing %s: %w", c.Name, ErrRoot, c.RootCapFile, err)
	}
	f, err := os.OpenFile(c.RootCapFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("account %q root: %w: write the new root's cap: %w", c.Name, ErrRoot, err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("account %q root: %w: write %s: %w", c.Name, ErrRoot, c.RootCapFile, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", fmt.Errorf("account %q root: %w: write %s: %w", c.Name, ErrRoot, c.RootCapFile, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("account %q root: %w: write %s: %w", c.Name, ErrRoot, c.RootCapFile, err)
	}
	return s, nil
}

// Names lists the accounts in profile order.
func (s *Set) Names() []string { return slices.Clone(s.names) }

// Len is the number of accounts.
func (s *Set) Len() int { return len(s.names) }

// Account returns the account of that name.
func (s *Set) Account(name string) (*Account, bool) {
	a, ok := s.byName[name]
	return a, ok
}

// Only is the view of the accounts a frontend allows (empty: all of them);
// it shares the throttle and cache of s. A name s lacks is an error.
func (s *Set) Only(names []string) (*Set, error) {
	if len(names) == 0 {
		return s, nil
	}
	v := &Set{byName: map[string]*Account{}, sh: s.sh}
	for _, n := range names {
		a, ok := s.byName[n]
		if !ok {
			return nil, fmt.Errorf("no account %q", short(n))
		}
		if _, dup := v.byName[n]; !dup {
			v.byName[n] = a
			v.names = append(v.names, n)
		}
	}
	return v, nil
}

// Throttle is the login throttle (for a frontend that checks logins of its
// own, such as SSH keyboard-interactive).
func (s *Set) Throttle() *Throttle { return s.sh.throttle }

// dummy is verified for unknown names and accounts without a password, so
// the time taken does not tell which names exist.
var dummy = sync.OnceValue(func() verifier {
	h, err := HashPassword("tarn: no such account")
	if err != nil {
		return bcryptHash(nil)
	}
	v, _ := parseHash(h)
	return v
})

// CheckPassword logs name in with pw from remote ("host:port" or a host):
// the account, or ErrDenied (any mismatch), ErrThrottled, or ctx's error
// while the attempt waits out earlier failures.
func (s *Set) CheckPassword(ctx context.Context, name, pw, remote string) (*Account, error) {
	a, known := s.byName[name]
	key := s.sh.cacheKey(name, pw)
	if known && a.hash != nil && s.sh.cached(key) {
		return a, nil
	}
	tkey := name
	if !known {
		tkey = "" // unknown names share one entry, so they cannot fill the table
	}
	if err := s.sh.throttle.Wait(ctx, tkey, remote); err != nil {
		return nil, err
	}
	v := dummy()
	if known && a.hash != nil {
		v = a.hash
	}
	select {
	case s.sh.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	ok := v.verify(pw)
	<-s.sh.slots
	if !ok || !known || a.hash == nil {
		s.sh.throttle.Fail(tkey, remote)
		return nil, ErrDenied
	}
	s.sh.throttle.Succeed(tkey, remote)
	s.sh.remember(key)
	return a, nil
}

// CheckPublicKey logs name in with an SSH public key: the account when
// key is one of its authorized keys, else ErrDenied. SSH clients offer
// several keys in turn, so a refused key is not counted as a failure.
func (s *Set) CheckPublicKey(name string, key ssh.PublicKey) (*Account, error) {
	a, ok := s.byName[name]
	if !ok || key == nil {
		return nil, ErrDenied
	}
	want := key.Marshal()
	found := 0
	for _, k := range a.keys {
		found |= subtle.ConstantTimeCompare(k.Marshal(), want)
	}
	if found != 1 {
		return nil, ErrDenied
	}
	return a, nil
}

func (sh *shared) cacheKey(name, pw string) [32]byte {
	m := hmac.New(sha256.New, sh.secret[:])
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write([]byte(pw))
	var k [32]byte
	m.Sum(k[:0])
	return k
}

func (sh *shared) cached(k [32]byte) bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	exp, ok := sh.cache[k]
	if !ok {
		return false
	}
	if sh.now().After(exp) {
		delete(sh.cache, k)
		return false
	}
	return true
}

func (sh *shared) remember(k [32]byte) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	now := sh.now()
	if len(sh.cache) >= cacheEntries {
		for c, exp := range sh.cache {
			if now.After(exp) || len(sh.cache) >= cacheEntries {
				delete(sh.cache, c)
			}
		}
	}
	sh.cache[k] = now.Add(CacheTTL)
}
