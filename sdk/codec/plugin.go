package codec

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/tarnfs/tarn/sdk/codec/codecpb"
	"github.com/tarnfs/tarn/sdk/pluginkit"
)

// GRPCPlugin is the go-plugin Plugin of the codec kind. In a plugin process
// Impl is the codec served; in the host DataPlane is what was offered to the
// process, and GRPCClient returns a *Client.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl      Codec
	DataPlane pluginkit.HostDataPlane
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers tarn.codec.v1 around Impl. It maps the arena the host
// offered, if any; when that fails the plugin serves on the streaming path
// only and its Info says so.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	dp, _ := pluginkit.PluginDataPlane() // an error leaves dp.Arena nil: fallback
	codecpb.RegisterCodecServer(s, NewServer(p.Impl, dp.Arena))
	return nil
}

// GRPCClient returns the host's *Client for the plugin.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (interface{}, error) {
	return NewClient(codecpb.NewCodecClient(conn), p.DataPlane.Arena), nil
}

// NewHostPlugin is pluginkit.StartOptions.NewPlugin for codec plugins.
func NewHostPlugin(dp pluginkit.HostDataPlane) plugin.Plugin {
	return &GRPCPlugin{DataPlane: dp}
}

// Serve runs c as a codec plugin until the host goes away. Call it from the
// plugin's main.
func Serve(c Codec) {
	pluginkit.Serve(pluginkit.ServeConfig{
		Kind:    pluginkit.KindCodec,
		Version: ProtocolVersion,
		Plugin:  &GRPCPlugin{Impl: c},
	})
}

// StartOptions fills the codec-specific fields of pluginkit.StartOptions
// (Kind, Version, NewPlugin); the caller sets Name, Cmd, SHA256, FastPath.
func StartOptions(o pluginkit.StartOptions) pluginkit.StartOptions {
	o.Kind = pluginkit.KindCodec
	o.Version = ProtocolVersion
	o.NewPlugin = NewHostPlugin
	return o
}
