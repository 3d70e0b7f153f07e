package storage

import (
	"context"
	"testing"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tarnfs/tarn/sdk/pluginkit"
	"github.com/tarnfs/tarn/sdk/storage/storagepb"
)

// oldServer is a plugin built before PutBatch: its Info does not say
// put_batch and the call is UNIMPLEMENTED. With liar set its Info says
// put_batch anyway, to put the client's UNIMPLEMENTED fallback to work.
type oldServer struct {
	*server
	liar bool
}

func (o oldServer) Info(ctx context.Context, req *storagepb.InfoRequest) (*storagepb.InfoResponse, error) {
	r, err := o.server.Info(ctx, req)
	if r != nil {
		r.PutBatch = o.liar
	}
	return r, err
}

func (oldServer) PutBatch(context.Context, *storagepb.PutBatchRequest) (*storagepb.PutBatchResponse, error) {
	return nil, status.Error(codes.Unimplemented, "method PutBatch not implemented")
}

type preBatchPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	srv oldServer
}

func (p *preBatchPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	storagepb.RegisterStorageServer(s, p.srv)
	return nil
}

func (p *preBatchPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, nil
}

// ServeOld serves b as a plugin built before PutBatch would.
func ServeOld(b Backend, liar bool) {
	dp, err := pluginkit.PluginDataPlane()
	srv := newServer(b, dp, err)
	pluginkit.Serve(pluginkit.ServeConfig{Kind: pluginkit.KindStorage, Version: ProtocolVersion,
		Plugin: &preBatchPlugin{srv: oldServer{server: srv, liar: liar}}})
}

// TestServerPutBatchLimits: the plugin side refuses a PutBatch call over
// the limits as a whole (INVALID_ARGUMENT), whoever sent it, and answers
// a share with a bad ref or region alone.
func TestServerPutBatchLimits(t *testing.T) {
	s, _ := newTestServer(t)
	s.b = stubBackend{}
	ctx := context.Background()
	ref := &storagepb.Ref{Index: make([]byte, StorageIndexSize)}
	many := make([]*storagepb.PutRequest, MaxBatchPuts+1)
	for i := range many {
		many[i] = &storagepb.PutRequest{Ref: ref}
	}
	big := &storagepb.PutRequest{Ref: ref, Payload: &storagepb.PutRequest_Data{Data: make([]byte, MaxBatchBytes/2+1)}}
	for _, tc := range []struct {
		name string
		puts []*storagepb.PutRequest
	}{
		{"none", nil},
		{"too many", many},
		{"too many bytes", []*storagepb.PutRequest{big, big}},
		{"region too long", []*storagepb.PutRequest{{Ref: ref, Payload: &storagepb.PutRequest_Region{Region: &storagepb.Region{Len: MaxBatchBytes + 1}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.PutBatch(ctx, &storagepb.PutBatchRequest{Puts: tc.puts})
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("%v, want INVALID_ARGUMENT", err)
			}
		})
	}
	r, err := s.PutBatch(ctx, &storagepb.PutBatchRequest{Puts: []*storagepb.PutRequest{
		{Ref: &storagepb.Ref{Index: []byte{1}}},
		{Ref: ref, Payload: &storagepb.PutRequest_Region{Region: &storagepb.Region{Off: 1 << 40, Len: 1}}},
	}})
	if err != nil || len(r.Results) != 2 {
		t.Fatalf("bad shares: %v, %v", r, err)
	}
	for i, res := range r.Results {
		if codes.Code(res.Code) != codes.InvalidArgument {
			t.Fatalf("share %d: %v, want INVALID_ARGUMENT alone", i, res)
		}
	}
}
