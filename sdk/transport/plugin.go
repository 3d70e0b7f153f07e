package transport

import (
	"context"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/tarnfs/tarn/sdk/pluginkit"
	"github.com/tarnfs/tarn/sdk/transport/transportpb"
)

// GRPCPlugin is the go-plugin glue of the transport kind. A plugin process
// sets Transport; a host sets DataPlane (through NewHostPlugin).
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Transport Transport
	DataPlane pluginkit.HostDataPlane

	srv *server
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// NewHostPlugin is the NewPlugin of pluginkit.StartOptions for the
// transport kind. The dispensed value (Process.Raw) is a *Client.
func NewHostPlugin(dp pluginkit.HostDataPlane) plugin.Plugin {
	return &GRPCPlugin{DataPlane: dp}
}

// GRPCServer registers the transport on the plugin's gRPC server, with the
// fd channel the host offered if it could be opened.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.srv == nil {
		dp, err := pluginkit.PluginDataPlane()
		p.srv = newServer(p.Transport, dp, err)
	}
	transportpb.RegisterTransportServer(s, p.srv)
	return nil
}

// GRPCClient returns a *Client over the plugin's connection.
func (p *GRPCPlugin) GRPCClient(ctx context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (interface{}, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return NewClient(ctx, transportpb.NewTransportClient(cc), p.DataPlane.Mailbox)
}

// Serve runs a transport plugin's main until the host goes away; its
// listeners and unclaimed connections are closed then.
func Serve(t Transport) {
	dp, err := pluginkit.PluginDataPlane()
	p := &GRPCPlugin{Transport: t, srv: newServer(t, dp, err)}
	pluginkit.Serve(pluginkit.ServeConfig{Kind: pluginkit.KindTransport, Version: ProtocolVersion, Plugin: p})
	p.srv.closeAll()
}
