package conf

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Limits on values; see docs/configuration.md.
const (
	MinSegmentSize = Size(4 << 10)
	MaxSegmentSize = Size(64 << 20)
	MaxShares      = 256
)

var (
	gridNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)
	pluginRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	logLevels  = []string{"trace", "debug", "info", "warn", "error"}
)

type validator struct {
	*decoder
	p      *Profile
	failed map[string]bool // keys whose value did not decode (wrong type, bad size...)
}

// errorf reports a mistake about key, unless the key's own value already
// failed to decode (it then holds a default the file never said).
func (v *validator) errorf(key, format string, args ...any) {
	if v.failed[key] {
		return
	}
	v.decoder.errorf(key, format, args...)
}

// anyFailed reports whether one of the keys failed to decode.
func (v *validator) anyFailed(keys ...string) bool {
	for _, k := range keys {
		if v.failed[k] {
			return true
		}
	}
	return false
}

func oneOf(v string, set ...string) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

func (v *validator) validate() {
	p := v.p
	if !(p.Introducer.Enabled || p.Storage.Enabled || p.Client.Enabled) &&
		!v.anyFailed("introducer.enabled", "storage.enabled", "client.enabled", "introducer", "storage", "client") {
		v.errorf("", "no service enabled: set introducer.enabled, storage.enabled or client.enabled to true")
	}

	// [node]
	if strings.ContainsFunc(p.Node.Name, func(r rune) bool { return r < ' ' || r == 0x7f }) || len(p.Node.Name) > 64 {
		v.errorf("node.name", "must be at most 64 printable characters")
	}
	if !oneOf(p.Node.LogLevel, logLevels...) {
		v.errorf("node.log_level", "%q is not one of %s", p.Node.LogLevel, strings.Join(logLevels, ", "))
	}
	if !oneOf(p.Node.LogFormat, "text", "json") {
		v.errorf("node.log_format", "%q is not one of text, json", p.Node.LogFormat)
	}
	if p.Node.APIListen != "" {
		if err := CheckHostPort(p.Node.APIListen); err != nil {
			v.errorf("node.api_listen", "%v", err)
		}
	}

	// [grid]
	if !gridNameRE.MatchString(p.Grid.Name) {
		v.errorf("grid.name", "%q: want 1-64 of a-z 0-9 . _ - starting with a letter or digit", p.Grid.Name)
	}
	for i, u := range p.Grid.Introducers {
		if err := CheckNodeURL(u); err != nil {
			v.errorf(indexKey("grid.introducers", i), "%v", err)
		} else if err := v.dialableURL(u); err != nil {
			v.errorf(indexKey("grid.introducers", i), "%v", err)
		}
	}
	seen := map[string]int{}
	for i := range p.Grid.Servers {
		s := &p.Grid.Servers[i]
		k := indexKey("grid.servers", i)
		if s.Address == "" {
			v.errorf(k+".address", "missing: each server needs an address")
		} else if err := CheckAddress(s.Address, false); err != nil {
			v.errorf(k+".address", "%v", err)
		} else if err := v.transportFor(s.Address); err != nil {
			v.errorf(k+".address", "%v", err)
		}
		kh, err := CanonicalKeyHash(s.KeyHash)
		switch {
		case s.KeyHash == "":
			v.errorf(k+".key_hash", "missing: each server needs its key hash (`tarn init` printed it on that node)")
		case err != nil:
			v.errorf(k+".key_hash", "%v", err)
		default:
			s.KeyHash = kh
			if j, dup := seen[kh]; dup {
				v.errorf(k+".key_hash", "same key hash as grid.servers[%d]", j)
			} else {
				seen[kh] = i
			}
		}
	}

	// [introducer], [storage]
	// Sections of services left off are checked too: an impossible value
	// is a mistake whether or not it is in use yet.
	v.listens("introducer", p.Introducer.Enabled, p.Introducer.Listen, p.Introducer.Announce)
	v.listens("storage", p.Storage.Enabled, p.Storage.Listen, p.Storage.Announce)
	v.positive("storage.lease_duration", p.Storage.LeaseDuration)
	v.positive("storage.gc_interval", p.Storage.GCInterval)

	// [client]
	v.client()

	// [plugins.*]
	v.plugin("plugins.codec", &p.Plugins.Codec)
	v.plugin("plugins.storage", &p.Plugins.Storage)
	v.plugin("plugins.transport", &p.Plugins.Transport)

	// [[accounts]], then the frontends that refer to them.
	v.accounts()
	var claims []claimed
	claim := func(key, addr string) {
		c, ok := parseClaim(key, addr)
		if !ok {
			return // port 0 (any free port), or not a TCP address
		}
		for _, prev := range claims {
			if prev.overlaps(c) {
				if prev.addr == addr {
					v.errorf(key, "%q is already used by %s", addr, prev.key)
				} else {
					v.errorf(key, "%q: port %s is already used by %s = %q", addr, c.port, prev.key, prev.addr)
				}
				return
			}
		}
		claims = append(claims, c)
	}
	// The node's own transport listeners bind too.
	for _, r := range []struct {
		role   string
		on     bool
		listen []string
	}{{"introducer", p.Introducer.Enabled, p.Introducer.Listen}, {"storage", p.Storage.Enabled, p.Storage.Listen}} {
		for i, a := range r.listen {
			if r.on && CheckAddress(a, true) == nil && strings.HasPrefix(a, "tcp:") {
				claim(indexKey(r.role+".listen", i), a)
			}
		}
	}
	// Every node serves its API; the address is checked above (node) or in
	// client() (the deprecated client.api_listen).
	if addr, key := p.apiListen(); CheckHostPort(addr) == nil {
		claim(key, addr)
	}
	for i := range p.WebDAV {
		w := &p.WebDAV[i]
		k := indexKey("webdav", i)
		if err := CheckHostPort(w.Listen); err != nil {
			v.errorf(k+".listen", "%v", err)
		} else if w.Enabled {
			claim(k+".listen", w.Listen)
		}
		if !strings.HasPrefix(w.Prefix, "/") || strings.Contains(w.Prefix, "..") {
			v.errorf(k+".prefix", "%q: want a URL path starting with \"/\"", w.Prefix)
		}
		if (w.TLSCert == "") != (w.TLSKey == "") {
			v.errorf(k+".tls_cert", "set both tls_cert and tls_key, or neither")
		}
		if w.TLSSelfSigned && w.TLSCert != "" {
			v.errorf(k+".tls_self_signed", "set tls_self_signed or tls_cert and tls_key, not both")
		}
		v.positive(k+".lock_timeout", w.LockTimeout)
		if !oneOf(w.AppleDouble, "keep", "hide", "refuse") {
			v.errorf(k+".apple_double", "%q is not one of keep, hide, refuse", w.AppleDouble)
		}
		v.frontend(k, w.Enabled, w.Accounts)
	}
	for i := range p.SFTP {
		s := &p.SFTP[i]
		k := indexKey("sftp", i)
		if err := CheckHostPort(s.Listen); err != nil {
			v.errorf(k+".listen", "%v", err)
		} else if s.Enabled {
			claim(k+".listen", s.Listen)
		}
		if len(s.HostKeys) == 0 {
			v.errorf(k+".host_keys", "needs at least one host key file")
		}
		v.positive(k+".idle_timeout", s.IdleTimeout)
		if s.MaxSessions < 1 || s.MaxSessions > 65536 {
			v.errorf(k+".max_sessions", "%d is out of range 1-65536", s.MaxSessions)
		}
		if s.MaxFileSize < 0 {
			v.errorf(k+".max_file_size", "%s is negative", s.MaxFileSize)
		}
		v.frontend(k, s.Enabled, s.Accounts)
	}
}

func (v *validator) positive(key string, d Duration) {
	if d <= 0 {
		v.errorf(key, "must be more than 0s")
	} else if d.D() > 24*time.Hour*365 {
		v.errorf(key, "%s is longer than a year", d)
	}
}

func (v *validator) listens(role string, enabled bool, listen, announce []string) {
	if enabled && len(listen) == 0 {
		v.errorf(role+".listen", "needs at least one address when %s.enabled is true", role)
	}
	for i, a := range listen {
		if err := CheckAddress(a, true); err != nil {
			v.errorf(indexKey(role+".listen", i), "%v", err)
		} else if err := v.transportFor(a); err != nil {
			v.errorf(indexKey(role+".listen", i), "%v", err)
		}
	}
	for i, a := range announce {
		if err := CheckAddress(a, false); err != nil {
			v.errorf(indexKey(role+".announce", i), "%v", err)
		} else if err := v.transportFor(a); err != nil {
			v.errorf(indexKey(role+".announce", i), "%v", err)
		}
	}
}

// transportFor refuses a well-formed address that the node's transport
// cannot serve: with the built-in tcp transport (no external one), every
// address the node listens on, announces or dials is tcp:HOST:PORT. A node
// given "udp:..." or "quic:..." failed only at start ("does not start with
// tcp:") or, for a server it dials, never reached it. An external
// transport reads its own scheme: not checked here.
func (v *validator) transportFor(addr string) error {
	t := v.p.Plugins.Transport
	if t.Path != "" || t.Name != "tcp" || v.anyFailed("plugins.transport.name", "plugins.transport.path") {
		return nil
	}
	scheme, _, _ := strings.Cut(addr, ":")
	if scheme == "tcp" {
		return nil
	}
	return fmt.Errorf("address %q: no transport serves %q: the built-in transport (plugins.transport.name = \"tcp\") takes tcp:HOST:PORT", addr, scheme+":")
}

// dialableURL refuses a node URL none of whose addresses the node's
// transport can dial (see transportFor). u is a valid node URL.
func (v *validator) dialableURL(u string) error {
	_, addrs, _ := strings.Cut(u, "@")
	var first error
	for _, a := range strings.Split(addrs, ",") {
		err := v.transportFor(a)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}

func (v *validator) client() {
	c := &v.p.Client
	s := c.Shares
	switch {
	case v.anyFailed("client.shares", "client.shares.k", "client.shares.h", "client.shares.n"):
		// One of them is not a number: comparing the others with its
		// default would only mislead.
	case s.K < 1:
		v.errorf("client.shares.k", "k = %d: must be at least 1", s.K)
	case s.N < 1 || s.N > MaxShares:
		v.errorf("client.shares.n", "n = %d: must be 1-%d", s.N, MaxShares)
	case s.K > s.N:
		v.errorf("client.shares.k", "k = %d is more than n = %d", s.K, s.N)
	case s.H > s.N:
		v.errorf("client.shares.h", "h = %d is more than n = %d", s.H, s.N)
	case s.H < s.K:
		v.errorf("client.shares.h", "h = %d is less than k = %d", s.H, s.K)
	}
	if c.SegmentSize < MinSegmentSize || c.SegmentSize > MaxSegmentSize {
		v.errorf("client.segment_size", "%s is out of range %s-%s", c.SegmentSize, MinSegmentSize, MaxSegmentSize)
	}
	if !oneOf(c.Convergence, "secret", "random") {
		v.errorf("client.convergence", "%q is not one of secret, random", c.Convergence)
	}
	if c.APIListen != "" {
		if err := CheckHostPort(c.APIListen); err != nil {
			v.errorf("client.api_listen", "%v", err)
		}
	}
	v.positive("client.server_timeout", c.ServerTimeout)
	if c.LinkWriteBehind < 0 || c.LinkWriteBehind.D() > MaxLinkWriteBehind {
		v.errorf("client.link_write_behind", "%s is out of range 0s-%s", c.LinkWriteBehind, Duration(MaxLinkWriteBehind))
	}
}

// Warnings lists what is valid but probably not meant: the node starts,
// yet some part of it cannot work until the profile is completed.
// `tarn config check` prints them.
func (p *Profile) Warnings() []*Error {
	var w []*Error
	if p.Client.Enabled && len(p.Grid.Introducers) == 0 && len(p.Grid.Servers) == 0 && !p.Introducer.Enabled {
		w = append(w, p.Errorf("client.enabled", "the client knows no storage servers yet: set grid.introducers or grid.servers"))
	}
	if p.Storage.Enabled && len(p.Grid.Introducers) == 0 && !p.Introducer.Enabled {
		w = append(w, p.Errorf("storage.enabled", "the storage server announces to no introducer: clients must list it in grid.servers"))
	}
	if p.Client.APIListen != "" {
		msg := "deprecated: rename it node.api_listen (every node serves the API now)"
		switch {
		case !p.Client.Enabled:
			msg += "; ignored while the client is off"
		case p.Node.APIListen != "" && p.Node.APIListen != p.Client.APIListen:
			msg += fmt.Sprintf("; it overrides node.api_listen = %q", p.Node.APIListen)
		}
		w = append(w, p.Errorf("client.api_listen", "%s", msg))
	}
	if p.Storage.Enabled && len(p.Storage.Announce) == 0 {
		w = append(w, p.Errorf("storage.announce", "%s", unannounced(p.Storage.Listen)))
	}
	return w
}

// unannounced says what clients are told when storage.announce is empty:
// the node announces its listen addresses, with an unspecified host
// (0.0.0.0, ::) replaced by the machine's host name.
func unannounced(listen []string) string {
	const lead = "no announced address: "
	for _, a := range listen {
		host, _, err := net.SplitHostPort(strings.TrimPrefix(a, "tcp:"))
		if err != nil {
			continue
		}
		ip := net.ParseIP(host)
		switch {
		case host == "" || (ip != nil && ip.IsUnspecified()):
			return lead + "clients are told this machine's host name with the listen port; set announce if other machines cannot resolve it"
		case host == "localhost" || (ip != nil && ip.IsLoopback()):
			return lead + "clients are told the loopback listen address, which other machines cannot reach"
		}
	}
	return lead + "clients are told the listen address, which may not be reachable"
}

func (v *validator) plugin(key string, pl *Plugin) {
	switch {
	case pl.Name != "" && pl.Path != "":
		v.errorf(key+".path", "set name (a built-in plugin) or path (an external binary), not both")
	case pl.Name != "" && !pluginRE.MatchString(pl.Name):
		v.errorf(key+".name", "%q: want a built-in plugin name such as \"reedsolomon\"", pl.Name)
	}
	if pl.SHA256 != "" {
		if b, err := hex.DecodeString(pl.SHA256); err != nil || len(b) != 32 {
			v.errorf(key+".sha256", "want 64 hex digits (sha256sum of the binary)")
		} else if pl.Path == "" {
			v.errorf(key+".sha256", "pins an external binary: set path too")
		}
		pl.SHA256 = strings.ToLower(pl.SHA256)
	}
	if _, err := json.Marshal(pl.Config); err != nil {
		v.errorf(key+".config", "cannot pass to the plugin as JSON: %v", err)
	}
}

func (v *validator) accounts() {
	seen := map[string]int{}
	for i := range v.p.Accounts {
		a := &v.p.Accounts[i]
		k := indexKey("accounts", i)
		if !nameRE.MatchString(a.Name) {
			v.errorf(k+".name", "%q: want 1-64 of A-Z a-z 0-9 . _ @ - starting with a letter or digit", a.Name)
		} else if j, dup := seen[a.Name]; dup {
			v.errorf(k+".name", "account %q is already defined as accounts[%d]", a.Name, j)
		} else {
			seen[a.Name] = i
		}
		if a.PasswordHash != "" && !strings.HasPrefix(a.PasswordHash, "$argon2id$") &&
			!strings.HasPrefix(a.PasswordHash, "$2a$") && !strings.HasPrefix(a.PasswordHash, "$2b$") && !strings.HasPrefix(a.PasswordHash, "$2y$") {
			v.errorf(k+".password_hash", "not an argon2id ($argon2id$...) or bcrypt ($2b$...) password hash")
		}
		for j, line := range a.AuthorizedKeys {
			if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err != nil {
				v.errorf(indexKey(k+".authorized_keys", j), "not an OpenSSH public key line such as \"ssh-ed25519 AAAA... user@host\"")
			}
		}
		if a.PasswordHash == "" && len(a.AuthorizedKeys) == 0 {
			v.errorf(k, "account %q has neither password_hash nor authorized_keys: nobody can log in", a.Name)
		}
		switch {
		case a.RootCapFile == "" && a.RootAlias == "":
			v.errorf(k, "account %q needs root_cap_file or root_alias", a.Name)
		case a.RootCapFile != "" && a.RootAlias != "":
			v.errorf(k+".root_alias", "set root_cap_file or root_alias, not both")
		case a.RootAlias != "" && !nameRE.MatchString(a.RootAlias):
			v.errorf(k+".root_alias", "%q is not an alias name", a.RootAlias)
		}
	}
}

func (v *validator) frontend(k string, enabled bool, accounts []string) {
	for j, name := range accounts {
		if _, ok := v.p.Account(name); !ok {
			v.errorf(indexKey(k+".accounts", j), "no account %q in [[accounts]]", name)
		}
	}
	if !enabled {
		return
	}
	if !v.p.Client.Enabled {
		v.errorf(k, "a frontend needs the client: set client.enabled = true")
	}
	if len(v.p.Accounts) == 0 {
		v.errorf(k, "a frontend needs an account: add an [[accounts]] entry (`tarn account add`)")
	}
}

// claimed is a TCP port a node binds, to catch two listeners of one
// profile on the same port before the second fails at start.
type claimed struct {
	key, addr, host, port string
}

func parseClaim(key, addr string) (claimed, bool) {
	hp := addr
	if strings.Contains(key, ".listen[") { // a transport address
		hp = strings.TrimPrefix(addr, "tcp:")
	}
	host, port, err := net.SplitHostPort(hp)
	if err != nil || port == "0" {
		return claimed{}, false
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return claimed{key: key, addr: addr, host: host, port: port}, true
}

// overlaps reports whether binding both would clash: the same port on the
// same host, or on any host when one of them is a wildcard (0.0.0.0, ::,
// or empty).
func (c claimed) overlaps(o claimed) bool {
	if c.port != o.port {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return c.host == o.host || wild(c.host) || wild(o.host)
}
