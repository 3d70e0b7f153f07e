// Package conf is tarn's node profile: the TOML schema of DIR/tarn.toml, its
// loading, its defaults and its validation.
//
// Load reads a profile, applies every default (defaults.go is the one place
// that knows them), and checks it. Every mistake in a file is reported at
// once, sorted by line, as "FILE:LINE: KEY: what is wrong", so an operator can
// fix a profile in one pass. Load only reads the profile itself; the files a
// profile names (keys, secrets, certificates, plugin binaries) are checked by
// the services that open them and by `tarn config check`.
//
// After Load every path in a Profile is absolute: relative paths in the file
// are taken relative to the node folder (the folder holding tarn.toml).
package conf

// FileName is the name of the profile inside a node folder.
const FileName = "tarn.toml"

// Profile is one node's whole configuration. The `toml` tags name the keys;
// `doc` tags are not used: docs/configuration.md is the reference and a test
// keeps the two in step.
type Profile struct {
	// File is the profile's path and Dir the node folder holding it; both
	// are absolute and set by Load, not read from the file.
	File string `toml:"-"`
	Dir  string `toml:"-"`

	Node       Node       `toml:"node"`
	Grid       Grid       `toml:"grid"`
	Introducer Introducer `toml:"introducer"`
	Storage    Storage    `toml:"storage"`
	Client     Client     `toml:"client"`
	Plugins    Plugins    `toml:"plugins"`
	WebDAV     []WebDAV   `toml:"webdav"`
	SFTP       []SFTP     `toml:"sftp"`
	Accounts   []Account  `toml:"accounts"`

	// lines maps a key path ("grid.servers[1].address") to its line in File.
	lines map[string]int
}

// Node is the [node] table: who this node is and where it keeps its state.
type Node struct {
	Name     string `toml:"name"`      // human name; default: the node folder's base name
	StateDir string `toml:"state_dir"` // identity, secrets, shares, logs; default: the node folder
	LogLevel string `toml:"log_level"` // trace, debug, info, warn, error
	// LogFormat is "text" (hclog's lines) or "json" (one object a line).
	LogFormat string `toml:"log_format"`
	// APIListen is host:port of the node's local HTTP API (status page,
	// metrics, and a client's file routes); "" means the role's default
	// (see APIListen on Profile).
	APIListen string `toml:"api_listen"`
}

// Grid is the [grid] table: which grid the node belongs to and how it finds
// the other nodes.
type Grid struct {
	Name        string   `toml:"name"`        // the grid's name; announcements for other grids are dropped
	Introducers []string `toml:"introducers"` // node URLs "tarn://KEYHASH@ADDRESS"
	Servers     []Server `toml:"servers"`     // static storage servers, used as well as or instead of introducers
	SecretFile  string   `toml:"secret_file"` // 32-byte grid membership secret
}

// Server is one [[grid.servers]] entry: a storage server known statically.
type Server struct {
	Name    string `toml:"name"`     // label for logs; optional
	Address string `toml:"address"`  // transport address, e.g. "tcp:10.0.0.5:3457"
	KeyHash string `toml:"key_hash"` // the server's identity.KeyHash, pinned in TLS
}

// Introducer is the [introducer] table.
type Introducer struct {
	Enabled  bool     `toml:"enabled"`
	Listen   []string `toml:"listen"`   // transport addresses to listen on
	Announce []string `toml:"announce"` // addresses written into the introducer's URL; default: derived from listen
}

// Storage is the [storage] table: the storage server.
type Storage struct {
	Enabled       bool     `toml:"enabled"`
	Listen        []string `toml:"listen"`
	Announce      []string `toml:"announce"`
	ReservedSpace Size     `toml:"reserved_space"` // refuse new shares when free space would fall below this
	GC            bool     `toml:"gc"`             // remove shares whose leases have all expired
	LeaseDuration Duration `toml:"lease_duration"` // how long a lease lasts from its last renewal
	GCInterval    Duration `toml:"gc_interval"`    // time between passes of the lease crawler
}

// Client is the [client] table: the client gateway (upload, download, the
// local API, and the vdrive the frontends use).
type Client struct {
	Enabled               bool   `toml:"enabled"`
	Shares                Shares `toml:"shares"`
	SegmentSize           Size   `toml:"segment_size"`
	Convergence           string `toml:"convergence"` // "secret" or "random"
	ConvergenceSecretFile string `toml:"convergence_secret_file"`
	// APIListen is the deprecated spelling of node.api_listen; on a client
	// it overrides node.api_listen when set (see Profile.APIListen).
	APIListen     string   `toml:"api_listen"`
	APITokenFile  string   `toml:"api_token_file"`
	ServerTimeout Duration `toml:"server_timeout"` // give up on a server that does not answer within this
	// LinkWriteBehind is how long the WebDAV and SFTP frontends may wait
	// before linking a new file into its folder (its link journaled on
	// disk meanwhile), so that a burst of files shares one directory
	// change; 0 links before answering.
	LinkWriteBehind Duration `toml:"link_write_behind"`
}

// Shares is [client.shares]: the erasure-coding parameters of new uploads.
type Shares struct {
	K int `toml:"k"` // shares needed to read
	H int `toml:"h"` // servers of happiness: distinct servers an upload must reach
	N int `toml:"n"` // shares written
}

// Plugins is the [plugins.*] tables: which plugin serves each kind.
type Plugins struct {
	Codec     Plugin `toml:"codec"`
	Storage   Plugin `toml:"storage"`
	Transport Plugin `toml:"transport"`
}

// Plugin names a built-in plugin (Name) or an external binary (Path).
type Plugin struct {
	Name     string         `toml:"name"`      // built-in plugin name
	Path     string         `toml:"path"`      // external plugin binary
	SHA256   string         `toml:"sha256"`    // pin of the binary, hex; optional
	FastPath bool           `toml:"fast_path"` // offer the shared-memory / fd-passing data plane
	Config   map[string]any `toml:"config"`    // passed to the plugin as JSON
}

// WebDAV is one [[webdav]] frontend.
type WebDAV struct {
	Enabled       bool     `toml:"enabled"`
	Listen        string   `toml:"listen"` // host:port
	Prefix        string   `toml:"prefix"` // URL path prefix, "/" or "/dav/"
	Accounts      []string `toml:"accounts"`
	TLSCert       string   `toml:"tls_cert"`
	TLSKey        string   `toml:"tls_key"`
	TLSSelfSigned bool     `toml:"tls_self_signed"`
	LockTimeout   Duration `toml:"lock_timeout"` // longest lock a client may hold
	AppleDouble   string   `toml:"apple_double"` // "keep", "hide" or "refuse" for ._* and .DS_Store
}

// SFTP is one [[sftp]] frontend.
type SFTP struct {
	Enabled     bool     `toml:"enabled"`
	Listen      string   `toml:"listen"` // host:port
	Accounts    []string `toml:"accounts"`
	HostKeys    []string `toml:"host_keys"` // files; generated on first start when missing
	IdleTimeout Duration `toml:"idle_timeout"`
	MaxSessions int      `toml:"max_sessions"`
	MaxFileSize Size     `toml:"max_file_size"` // 0: only the grid's free space limits a file
}

// Account is one [[accounts]] entry: a person the frontends let in.
type Account struct {
	Name           string   `toml:"name"`
	PasswordHash   string   `toml:"password_hash"`   // "$argon2id$..." or bcrypt "$2b$..."
	AuthorizedKeys []string `toml:"authorized_keys"` // OpenSSH authorized_keys lines
	RootCapFile    string   `toml:"root_cap_file"`   // file holding the account's root dircap
	RootAlias      string   `toml:"root_alias"`      // or: a CLI alias naming it
	ReadOnly       bool     `toml:"read_only"`
}

// Roles lists the services the profile enables, in a fixed order:
// introducer, storage, client, webdav, sftp.
func (p *Profile) Roles() []string {
	var r []string
	if p.Introducer.Enabled {
		r = append(r, "introducer")
	}
	if p.Storage.Enabled {
		r = append(r, "storage")
	}
	if p.Client.Enabled {
		r = append(r, "client")
	}
	for _, w := range p.WebDAV {
		if w.Enabled {
			r = append(r, "webdav")
			break
		}
	}
	for _, s := range p.SFTP {
		if s.Enabled {
			r = append(r, "sftp")
			break
		}
	}
	return r
}

// APIListen is where the node's local HTTP API listens: the deprecated
// client.api_listen when the client is enabled and it is set, else
// node.api_listen, else the role's default (DefaultAPIListen for a client,
// DefaultStorageAPIListen for a storage server, DefaultIntroducerAPIListen
// for an introducer alone), so the nodes of a one-machine grid do not
// collide.
func (p *Profile) APIListen() string {
	addr, _ := p.apiListen()
	return addr
}

// apiListen is APIListen and the key that set it (for error messages).
func (p *Profile) apiListen() (addr, key string) {
	switch {
	case p.Client.Enabled && p.Client.APIListen != "":
		return p.Client.APIListen, "client.api_listen"
	case p.Node.APIListen != "":
		return p.Node.APIListen, "node.api_listen"
	case p.Client.Enabled:
		return DefaultAPIListen, "node.api_listen"
	case p.Storage.Enabled:
		return DefaultStorageAPIListen, "node.api_listen"
	}
	return DefaultIntroducerAPIListen, "node.api_listen"
}

// APIListenKey is the profile key that sets APIListen, for services that
// report a listen error at the profile's line ("node.api_listen").
func (p *Profile) APIListenKey() string {
	_, key := p.apiListen()
	return key
}

// Line returns the line of a key in the profile ("client.shares.k",
// "webdav[0].listen"), or 0 when the key is not in the file (a default).
// Services use it to point their own errors at the right line.
func (p *Profile) Line(key string) int { return p.lines[key] }

// Errorf makes an *Error about key, located at the key's line, for
// services that find a problem after Load (a missing secret file, say).
func (p *Profile) Errorf(key, format string, args ...any) *Error {
	return &Error{File: p.File, Line: p.lineOrParent(key), Key: key, Msg: sprintf(format, args...)}
}

// Account returns the account of that name.
func (p *Profile) Account(name string) (*Account, bool) {
	for i := range p.Accounts {
		if p.Accounts[i].Name == name {
			return &p.Accounts[i], true
		}
	}
	return nil, false
}
