package pluginkit

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/tarnfs/tarn/sdk/dataplane"
)

// DefaultArenaSize is the shared memory offered to each plugin process.
const DefaultArenaSize = 64 << 20

// HostDataPlane is the host's side of what it offered a plugin process.
// Fields are nil when the fast path was not offered.
type HostDataPlane struct {
	Arena   *dataplane.Arena
	Mailbox *dataplane.Mailbox
}

// StartOptions says how to launch one plugin process.
type StartOptions struct {
	Kind    Kind
	Version uint   // the major protocol version this host speaks for Kind
	Name    string // for logs and errors, e.g. "reedsolomon"
	Cmd     *exec.Cmd
	// SHA256, when set, pins the plugin binary: a binary with another hash
	// is refused before it runs.
	SHA256 []byte
	Logger hclog.Logger
	// FastPath offers the shared-memory arena and the fd channel.
	FastPath  bool
	ArenaSize int
	// NewPlugin builds the kind's host-side go-plugin Plugin around the data
	// plane, so that its GRPCClient can use the arena and the mailbox.
	NewPlugin func(HostDataPlane) plugin.Plugin
}

// Process is one running plugin and its RPC client.
type Process struct {
	Client    *plugin.Client
	Raw       interface{} // what the kind's GRPCClient returned
	DataPlane HostDataPlane
	Pid       int
}

// ErrPinMismatch is returned when a pinned plugin binary has another hash.
var ErrPinMismatch = errors.New("plugin binary does not match its pinned sha256")

// Start launches the plugin, checks its pin and protocol version, and
// dispenses the kind's client.
func Start(o StartOptions) (*Process, error) {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	what := fmt.Sprintf("%s plugin %q", o.Kind, o.Name)
	hdp, child, err := offerDataPlane(&o, what)
	if err != nil {
		return nil, err
	}
	if child != nil {
		defer child.Close() // the child has its own copy once started
	}
	cleanup := func() {
		if hdp.Arena != nil {
			hdp.Arena.Close()
		}
		if hdp.Mailbox != nil {
			hdp.Mailbox.Close()
		}
	}
	// The plugin must die with its host, even when the host is killed with
	// SIGKILL; go-plugin does not arrange that.
	dieWithHost(o.Cmd)

	var secure *plugin.SecureConfig
	if len(o.SHA256) > 0 {
		secure = &plugin.SecureConfig{Checksum: o.SHA256, Hash: sha256.New()}
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake(o.Version),
		Plugins:          plugin.PluginSet{string(o.Kind): o.NewPlugin(hdp)},
		Cmd:              o.Cmd,
		SecureConfig:     secure,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           o.Logger,
		GRPCDialOptions: []grpc.DialOption{
			grpc.WithDefaultCallOptions(
				grpc.MaxCallRecvMsgSize(MaxMessageSize),
				grpc.MaxCallSendMsgSize(MaxMessageSize)),
			grpc.WithInitialWindowSize(WindowSize),
			grpc.WithInitialConnWindowSize(ConnWindowSize),
		},
	})
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		cleanup()
		return nil, fmt.Errorf("%s: %w", what, explainStartError(err, o.Version))
	}
	raw, err := rpc.Dispense(string(o.Kind))
	if err != nil {
		client.Kill()
		cleanup()
		return nil, fmt.Errorf("%s: does not serve the %s contract: %w", what, o.Kind, err)
	}
	p := &Process{Client: client, Raw: raw, DataPlane: hdp}
	if rc := client.ReattachConfig(); rc != nil {
		p.Pid = rc.Pid
	}
	return p, nil
}

var pluginVersionRE = regexp.MustCompile(`Plugin version: (\d+)`)

// explainStartError turns go-plugin's start errors into ones that say what
// to do.
func explainStartError(err error, ours uint) error {
	msg := err.Error()
	switch {
	case errors.Is(err, plugin.ErrChecksumsDoNotMatch) || strings.Contains(msg, plugin.ErrChecksumsDoNotMatch.Error()):
		return fmt.Errorf("%w (check the sha256 in the profile, or rebuild the plugin)", ErrPinMismatch)
	case strings.Contains(msg, "incompatible API version"):
		theirs := "another"
		if m := pluginVersionRE.FindStringSubmatch(msg); m != nil {
			theirs = "v" + m[1]
		}
		return fmt.Errorf("plugin speaks protocol %s, this tarn speaks v%d: use a plugin built for v%d", theirs, ours, ours)
	}
	return err
}

// Exited reports whether the plugin process has ended.
func (p *Process) Exited() bool { return p.Client.Exited() }

// Kill stops the plugin process and releases the data plane.
func (p *Process) Kill() {
	p.Client.Kill()
	if p.DataPlane.Mailbox != nil {
		p.DataPlane.Mailbox.Close()
	}
	if p.DataPlane.Arena != nil {
		p.DataPlane.Arena.Close()
	}
}

// offerDataPlane makes the arena and the fd channel when o.FastPath asks for
// them and adds them to o.Cmd as extra files named in its environment. It
// returns the host's side and the plugin's end of the fd channel, which the
// caller closes once the plugin has started. Where the system has no data
// plane (Windows), or TARN_DATAPLANE=off, nothing is offered and the plugin
// serves on the gRPC path.
func offerDataPlane(o *StartOptions, what string) (HostDataPlane, *os.File, error) {
	var hdp HostDataPlane
	if !o.FastPath {
		return hdp, nil, nil
	}
	if DataPlaneOff() {
		o.Logger.Debug("data plane not offered", "plugin", what, EnvDataPlane, os.Getenv(EnvDataPlane))
		return hdp, nil, nil
	}
	size := o.ArenaSize
	if size == 0 {
		size = DefaultArenaSize
	}
	a, err := dataplane.NewArena("tarn-"+string(o.Kind)+"-"+o.Name, size)
	if err != nil {
		if dataPlaneOptional(err) {
			noDataPlane(o.Logger, what, err)
			return hdp, nil, nil
		}
		return hdp, nil, fmt.Errorf("%s: %w", what, err)
	}
	conn, child, err := dataplane.NewFdPair()
	if err != nil {
		a.Close()
		if dataPlaneOptional(err) {
			noDataPlane(o.Logger, what, err)
			return hdp, nil, nil
		}
		return hdp, nil, fmt.Errorf("%s: %w", what, err)
	}
	hdp = HostDataPlane{Arena: a, Mailbox: dataplane.NewMailbox(conn)}
	base := 3 + len(o.Cmd.ExtraFiles)
	o.Cmd.ExtraFiles = append(o.Cmd.ExtraFiles, a.File(), child)
	o.Cmd.Env = append(o.Cmd.Env,
		fmt.Sprintf("%s=%d", EnvArenaFD, base),
		fmt.Sprintf("%s=%d", EnvFdChanFD, base+1))
	return hdp, child, nil
}
