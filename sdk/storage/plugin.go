package storage

import (
	"context"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/tarnfs/tarn/sdk/pluginkit"
	"github.com/tarnfs/tarn/sdk/storage/storagepb"
)

// GRPCPlugin is the go-plugin glue of the storage kind. A plugin process
// sets Backend; a host sets DataPlane (through NewHostPlugin).
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Backend   Backend
	DataPlane pluginkit.HostDataPlane

	srv *server
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// NewHostPlugin is the NewPlugin of pluginkit.StartOptions for the storage
// kind. The dispensed value (Process.Raw) is a *Client.
func NewHostPlugin(dp pluginkit.HostDataPlane) plugin.Plugin {
	return &GRPCPlugin{DataPlane: dp}
}

// GRPCServer registers the backend on the plugin's gRPC server, with the
// arena the host offered if it could be opened.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.srv == nil {
		dp, err := pluginkit.PluginDataPlane()
		p.srv = newServer(p.Backend, dp, err)
	}
	storagepb.RegisterStorageServer(s, p.srv)
	return nil
}

// GRPCClient returns a *Client over the plugin's connection.
func (p *GRPCPlugin) GRPCClient(ctx context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (interface{}, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return NewClient(ctx, storagepb.NewStorageClient(cc), p.DataPlane.Arena, p.DataPlane.Mailbox)
}

// Serve runs a storage plugin's main until the host goes away; writers
// still open then are aborted.
func Serve(b Backend) {
	dp, err := pluginkit.PluginDataPlane()
	p := &GRPCPlugin{Backend: b, srv: newServer(b, dp, err)}
	pluginkit.Serve(pluginkit.ServeConfig{Kind: pluginkit.KindStorage, Version: ProtocolVersion, Plugin: p})
	p.srv.abortAll()
}
