// Package pluginkit is what every tarn plugin kind shares: the go-plugin
// handshake, the environment through which the host offers the fast data
// plane, the Serve helper a plugin's main calls, and Start, with which a host
// launches one plugin process and gets its RPC client.
//
// The kind packages (sdk/codec, sdk/storage, sdk/transport) build on it; a
// plugin author normally calls only their kind's Serve.
package pluginkit

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/tarnfs/tarn/sdk/dataplane"
)

// Kind names a plugin contract. It is also the go-plugin dispense name.
type Kind string

// The three plugin kinds of the design.
const (
	KindCodec     Kind = "codec"
	KindStorage   Kind = "storage"
	KindTransport Kind = "transport"
)

// Kinds lists every kind, in a stable order for listings.
var Kinds = []Kind{KindCodec, KindStorage, KindTransport}

// The magic cookie only tells a plugin binary that a tarn host started it;
// it is not a security measure (pinning by SHA-256 is).
const (
	MagicCookieKey   = "TARN_PLUGIN_MAGIC_COOKIE"
	MagicCookieValue = "7f3d2c9e-tarn-plugin-v1"
)

// Environment variables through which the host offers the data plane. Each
// holds the number of an inherited file descriptor.
const (
	EnvArenaFD  = "TARN_PLUGIN_ARENA_FD"
	EnvFdChanFD = "TARN_PLUGIN_FDCHAN_FD"
)

// MaxMessageSize is the gRPC message limit both sides use. Bulk data on the
// fallback path is streamed in chunks of at most ChunkSize, far below it.
const (
	MaxMessageSize = 64 << 20
	ChunkSize      = 1 << 20
)

// Flow-control windows of the plugin connection, per stream and per
// connection, raised from gRPC's 64 KiB so that the streaming fallback is
// not bound by round trips.
const (
	WindowSize     = 8 << 20
	ConnWindowSize = 32 << 20
)

// Handshake is the go-plugin handshake for a kind at a major version.
func Handshake(major uint) plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  major,
		MagicCookieKey:   MagicCookieKey,
		MagicCookieValue: MagicCookieValue,
	}
}

// DataPlane is what a plugin process received from its host: either or both
// may be nil, in which case the kind's server answers only on the gRPC path.
type DataPlane struct {
	Arena *dataplane.Arena
	Fds   *dataplane.FdConn
}

var (
	pluginDPOnce sync.Once
	pluginDP     DataPlane
	pluginDPErr  error
)

// PluginDataPlane opens, once per process, what the host offered through
// the environment. An error means an offer was made but could not be used;
// the plugin then serves on the gRPC path only and reports so in its Info.
func PluginDataPlane() (DataPlane, error) {
	pluginDPOnce.Do(func() {
		if f, err := inheritedFile(EnvArenaFD); err != nil {
			pluginDPErr = err
		} else if f != nil {
			a, err := dataplane.OpenArena(f)
			if err != nil {
				pluginDPErr = err
			} else {
				pluginDP.Arena = a
			}
		}
		if f, err := inheritedFile(EnvFdChanFD); err != nil {
			pluginDPErr = err
		} else if f != nil {
			c, err := dataplane.FdConnFromFile(f)
			if err != nil {
				pluginDPErr = err
			} else {
				pluginDP.Fds = c
			}
		}
	})
	return pluginDP, pluginDPErr
}

func inheritedFile(env string) (*os.File, error) {
	v := os.Getenv(env)
	if v == "" {
		return nil, nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q is not an inherited descriptor", env, v)
	}
	return os.NewFile(uintptr(fd), env), nil
}

// ServeConfig is what a kind's Serve passes down.
type ServeConfig struct {
	Kind    Kind
	Version uint
	Plugin  plugin.Plugin
}

// Serve runs a plugin process until the host goes away. It raises gRPC's
// message limits, logs as JSON on stderr so that the host re-logs each line
// under the plugin's name, and exits when the host dies even if the host
// could not kill it (a second guard beside the host's Pdeathsig).
func Serve(c ServeConfig) {
	go exitWithParent()
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       string(c.Kind),
		Level:      hclog.Trace,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake(c.Version),
		Plugins:         plugin.PluginSet{string(c.Kind): c.Plugin},
		Logger:          logger,
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts,
				grpc.MaxRecvMsgSize(MaxMessageSize),
				grpc.MaxSendMsgSize(MaxMessageSize),
				// gRPC's default 64 KiB flow-control windows cap a streamed
				// fallback transfer at a few tens of MB/s on a unix socket.
				grpc.InitialWindowSize(WindowSize),
				grpc.InitialConnWindowSize(ConnWindowSize))
			return grpc.NewServer(opts...)
		},
	})
}

// Configurer is an optional extra of any plugin: it receives the plugin's
// own settings from the node profile (the [plugins.KIND.config] table),
// encoded as a JSON object, once after every start of the process. A plugin
// without settings need not implement it; the host then refuses a profile
// that gives it settings.
type Configurer interface {
	Configure(ctx context.Context, settingsJSON []byte) error
}
