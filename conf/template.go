package conf

import (
	"bytes"
	"fmt"
	"text/template"
)

// Template is what `tarn init` knows when it writes a profile.
type Template struct {
	Role        string   // "introducer", "storage", "client" or "all"
	Name        string   // node name
	Introducers []string // node URLs of the grid's introducers
}

// Roles that Commented writes.
var TemplateRoles = []string{"introducer", "storage", "client", "all"}

// Commented writes a profile for a role with every key present and
// explained, defaults filled in. Settings that need a choice by the operator
// (frontends, accounts, static servers) are commented out as "#key = value";
// prose comments are "# text". The result loads cleanly.
func Commented(t Template) ([]byte, error) {
	d := map[string]any{
		"Role": t.Role, "Name": t.Name, "Introducers": t.Introducers,
		"Introducer":  t.Role == "introducer" || t.Role == "all",
		"Storage":     t.Role == "storage" || t.Role == "all",
		"Client":      t.Role == "client" || t.Role == "all",
		"Solo":        t.Role == "all",
		"IntroListen": DefaultIntroducerListen, "StorageListen": DefaultStorageListen,
		"APIListen": DefaultAPIListen, "WebDAVListen": DefaultWebDAVListen, "SFTPListen": DefaultSFTPListen,
		"GridName": DefaultGridName, "Segment": DefaultSegmentSize, "Reserved": DefaultReservedSpace,
		"MinSeg": MinSegmentSize, "MaxSeg": MaxSegmentSize,
	}
	switch t.Role {
	case "introducer":
		d["APIListen"] = DefaultIntroducerAPIListen
	case "storage":
		d["APIListen"] = DefaultStorageAPIListen
	case "client":
	case "all":
		// One machine is the whole grid: loopback only, one server.
		d["IntroListen"], d["StorageListen"] = "tcp:127.0.0.1:3458", "tcp:127.0.0.1:3457"
	default:
		return nil, fmt.Errorf("unknown profile %q: want introducer, storage, client or all", t.Role)
	}
	var b bytes.Buffer
	if err := commentedTmpl.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("write %s profile: %w", t.Role, err)
	}
	return b.Bytes(), nil
}

func quoteList(s []string) string {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, x := range s {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", x)
	}
	b.WriteByte(']')
	return b.String()
}

var commentedTmpl = template.Must(template.New("profile").Funcs(template.FuncMap{"list": quoteList}).Parse(
	`# tarn node profile ({{.Role}}), written by ` + "`tarn init`" + `.
# Reference: docs/configuration.md. Check it with ` + "`tarn config check DIR`" + `.
# Relative paths are relative to this file's folder. Sizes are written as
# "10GiB", "512MB" or a number of bytes; durations as "30s", "5m", "1h".
# Lines "#key = value" are settings left out; remove the "#" to use one.

[node]
# Name shown in logs and in the grid's server list.
name = {{printf "%q" .Name}}
# Folder for the node's key, secrets and service data ("." = this folder).
state_dir = "."
# One of trace, debug, info, warn, error.
log_level = "info"
# "text" lines, or "json": one object a line (for log collectors).
log_format = "text"
# HOST:PORT of the node's local HTTP API: the status page (/), /metrics,
# /v1/status and, on a client, the file routes the CLI uses. On loopback
# the page and /metrics need no token; elsewhere every route does. Each
# node of one machine needs its own port.
api_listen = {{printf "%q" .APIListen}}

[grid]
# The grid's name; nodes drop announcements that name another grid.
name = {{printf "%q" .GridName}}
# Introducers to announce to (storage) and learn servers from (client):
# node URLs "tarn://KEYHASH@tcp:HOST:PORT", printed by ` + "`tarn init`" + ` on the
# introducer.
introducers = {{list .Introducers}}
# The 32-byte secret every node of the grid shares; only holders may store
# shares. Copy it to new nodes with ` + "`tarn init --grid-secret FILE`" + `.
secret_file = "private/grid.secret"

# Storage servers known without an introducer, one table each.
#[[grid.servers]]
#name = "storage-1"
#address = "tcp:storage-1.example.net:3457"
#key_hash = "khvtxks67zgjy2mf6n5y27cvyz346zj2yul5zvsjirszj65l4gya"

[introducer]
# Relay announcements of storage servers to clients.
enabled = {{.Introducer}}
# Transport addresses to listen on.
listen = [{{printf "%q" .IntroListen}}]
# Addresses that others dial, written into the introducer's URL; empty:
# the listen addresses.
announce = []

[storage]
# Keep shares for the grid.
enabled = {{.Storage}}
# Transport addresses to listen on.
listen = [{{printf "%q" .StorageListen}}]
# Addresses announced to clients, e.g. ["tcp:storage-1.example.net:3457"].
announce = [{{if .Solo}}"tcp:127.0.0.1:3457"{{end}}]
# Refuse new shares when free space would fall below this.
reserved_space = "{{.Reserved}}"
# Garbage collection: remove shares whose leases have all expired. Clients
# renew leases with ` + "`tarn deep-check --add-lease`" + ` (every alias); leave it off
# until every client does so well within lease_duration.
gc = false
lease_duration = "744h"
gc_interval = "1h"

[client]
# Upload and download files, serve the local API, the vdrive and the
# frontends below.
enabled = {{.Client}}
# Files are cut into segments of this size ({{.MinSeg}} to {{.MaxSeg}}).
segment_size = "{{.Segment}}"
# "secret": the same file gives the same cap (keyed by the convergence
# secret, so only this client can tell); "random": a new key each upload.
convergence = "secret"
# The convergence secret; ` + "`tarn init`" + ` makes it.
convergence_secret_file = "private/convergence.secret"
# Deprecated spelling of node.api_listen (a client's overrides it).
#api_listen = {{printf "%q" .APIListen}}
# Secret token the API requires; made at first start when missing.
api_token_file = "private/api.token"
# Give up on a storage server that does not answer within this.
server_timeout = "30s"
# WebDAV and SFTP answer a new file once its link is journaled on this
# node's disk, and link it into its folder within this (one directory
# change for a burst of files); "0s" links before answering.
link_write_behind = "100ms"

[client.shares]
# Each file is coded into n shares of which any k rebuild it; an upload
# succeeds only when the shares reach h distinct servers.
{{if .Solo}}# A one-machine grid has one server: one share.
k = 1
h = 1
n = 1{{else}}k = 3
h = 7
n = 10{{end}}

# Plugins: each kind is served by a built-in plugin (name) or an external
# binary (path, optionally pinned by sha256).
[plugins.codec]
name = "reedsolomon"
# External binary instead of a built-in; relative to this folder.
#path = "plugins/tarn-codec-example"
# Pin of the external binary (sha256sum); refused when it differs.
#sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
# Pass payloads through shared memory instead of gRPC messages.
fast_path = true
# Settings passed to the plugin as JSON.
config = {}

[plugins.storage]
# "disk" keeps shares in files; "memory" forgets them at exit (tests).
name = "disk"
#path = "plugins/tarn-storage-example"
#sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
fast_path = true
config = {}

[plugins.transport]
name = "tcp"
#path = "plugins/tarn-transport-example"
#sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
fast_path = true
config = {}

# A WebDAV frontend (more than one may be listed). Needs the client and an
# account; remove the "#"s to use it.
#[[webdav]]
#enabled = true
#listen = {{printf "%q" .WebDAVListen}}
#prefix = "/"
# Accounts allowed; empty: all.
#accounts = []
# TLS: a certificate and key, or a self-signed pair made at first start.
#tls_cert = ""
#tls_key = ""
#tls_self_signed = false
#lock_timeout = "10m"
# macOS "._*" and ".DS_Store" files: "keep", "hide" from listings, "refuse".
#apple_double = "keep"

# An SFTP frontend (also serves scp).
#[[sftp]]
#enabled = true
#listen = {{printf "%q" .SFTPListen}}
#accounts = []
# Host key files, made at first start when missing.
#host_keys = ["private/ssh_host_ed25519_key"]
#idle_timeout = "15m"
#max_sessions = 64
# Largest file a client may write ("100GiB"); 0: only the grid's free space.
#max_file_size = 0

# Accounts of the frontends; ` + "`tarn account add`" + ` writes these.
#[[accounts]]
#name = "alice"
# argon2id or bcrypt hash of the password; empty: keys only.
#password_hash = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
# OpenSSH public keys allowed for SFTP.
#authorized_keys = []
# The account's root directory: a file holding its dircap, or an alias.
#root_cap_file = "private/alice.root"
#root_alias = ""
#read_only = false
`))
