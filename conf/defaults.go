package conf

import (
	"path/filepath"
	"time"
)

// Every default of the schema lives in this file: fixed ones in
// defaultProfile and the setDefaults methods of array entries (applied
// before the file is decoded over them), derived ones in derive (applied
// after, because they depend on the node folder or on other keys).

// Default values, exported for `tarn init` and the docs test.
const (
	DefaultIntroducerListen = "tcp:0.0.0.0:3458"
	DefaultStorageListen    = "tcp:0.0.0.0:3457"
	// The node API's default address by role: a client's (also a node
	// with several roles that include the client), a storage server's, an
	// introducer's alone.
	DefaultAPIListen           = "127.0.0.1:3456"
	DefaultStorageAPIListen    = "127.0.0.1:3466"
	DefaultIntroducerAPIListen = "127.0.0.1:3468"
	DefaultWebDAVListen        = "127.0.0.1:8080"
	DefaultSFTPListen          = "127.0.0.1:8022"
	DefaultGridName            = "default"
	DefaultSegmentSize         = Size(1 << 20)
	DefaultReservedSpace       = Size(1 << 30)
	// DefaultLinkWriteBehind is client.link_write_behind's default, and
	// MaxLinkWriteBehind its largest value.
	DefaultLinkWriteBehind = Duration(100 * time.Millisecond)
	MaxLinkWriteBehind     = 10 * time.Second
)

func defaultProfile() *Profile {
	return &Profile{
		Node: Node{LogLevel: "info", LogFormat: "text"},
		Grid: Grid{Name: DefaultGridName},
		Introducer: Introducer{
			Listen: []string{DefaultIntroducerListen},
		},
		Storage: Storage{
			Listen:        []string{DefaultStorageListen},
			ReservedSpace: DefaultReservedSpace,
			LeaseDuration: Duration(31 * 24 * time.Hour),
			GCInterval:    Duration(time.Hour),
		},
		Client: Client{
			Shares:          Shares{K: 3, H: 7, N: 10},
			SegmentSize:     DefaultSegmentSize,
			Convergence:     "secret",
			ServerTimeout:   Duration(30 * time.Second),
			LinkWriteBehind: DefaultLinkWriteBehind,
		},
		Plugins: Plugins{
			Codec:     Plugin{FastPath: true},
			Storage:   Plugin{FastPath: true},
			Transport: Plugin{FastPath: true},
		},
	}
}

// Built-in plugin used for a kind when the profile names neither a name
// nor a path.
var defaultPluginName = map[string]string{"codec": "reedsolomon", "storage": "disk", "transport": "tcp"}

func (w *WebDAV) setDefaults() {
	*w = WebDAV{
		Enabled:     true,
		Listen:      DefaultWebDAVListen,
		Prefix:      "/",
		LockTimeout: Duration(10 * time.Minute),
		AppleDouble: "keep",
	}
}

func (s *SFTP) setDefaults() {
	*s = SFTP{
		Enabled:     true,
		Listen:      DefaultSFTPListen,
		HostKeys:    []string{"private/ssh_host_ed25519_key"},
		IdleTimeout: Duration(15 * time.Minute),
		MaxSessions: 64,
	}
}

// derive fills the defaults that depend on the node folder, and makes every
// path absolute (relative to the node folder).
func (p *Profile) derive() {
	abs := func(s *string) {
		if *s != "" && !filepath.IsAbs(*s) {
			*s = filepath.Join(p.Dir, *s)
		}
	}
	if p.Node.Name == "" {
		p.Node.Name = filepath.Base(p.Dir)
	}
	if p.Node.StateDir == "" {
		p.Node.StateDir = p.Dir
	}
	abs(&p.Node.StateDir)
	inState := func(s *string, name string) {
		if *s == "" {
			*s = filepath.Join(p.Node.StateDir, "private", name)
		}
		abs(s)
	}
	inState(&p.Grid.SecretFile, "grid.secret")
	inState(&p.Client.ConvergenceSecretFile, "convergence.secret")
	inState(&p.Client.APITokenFile, "api.token")
	for kind, pl := range map[string]*Plugin{"codec": &p.Plugins.Codec, "storage": &p.Plugins.Storage, "transport": &p.Plugins.Transport} {
		if pl.Name == "" && pl.Path == "" {
			pl.Name = defaultPluginName[kind]
		}
		abs(&pl.Path)
		if pl.Config == nil {
			pl.Config = map[string]any{}
		}
	}
	for i := range p.WebDAV {
		abs(&p.WebDAV[i].TLSCert)
		abs(&p.WebDAV[i].TLSKey)
	}
	for i := range p.SFTP {
		for j := range p.SFTP[i].HostKeys {
			abs(&p.SFTP[i].HostKeys[j])
		}
	}
	for i := range p.Accounts {
		abs(&p.Accounts[i].RootCapFile)
	}
}
