package introducer_test

import (
	"context"

	"github.com/tarnfs/tarn/host/identity"
	"github.com/tarnfs/tarn/host/introducer"
	"github.com/tarnfs/tarn/host/nodelink"
	"github.com/tarnfs/tarn/sdk/transport"
)

// How a node wires the three parts. Errors are ignored for brevity.
func Example() {
	var (
		ctx      context.Context     // the node's lifetime
		tr       transport.Transport // the transport plugin
		id       *identity.Identity  // identity.Load(stateDir)
		secret   []byte              // the grid secret
		introURL string              // grid.introducers[0]
	)
	if ctx == nil {
		return // the example only shows the calls
	}
	cert, _ := id.TLSCertificate()

	// Introducer node: serve the service on the node's gRPC server.
	svc, _ := introducer.NewService(introducer.ServiceConfig{Grid: "my-grid", GridSecret: secret})
	srv := nodelink.NewServer(cert)
	svc.Register(srv)
	ln, _ := tr.Listen(ctx, "tcp:0.0.0.0:3458")
	go srv.Serve(ln)

	// Storage node: announce ourselves.
	pub, _ := introducer.NewPublisher(introducer.PublisherConfig{
		Identity:   id,
		Introducer: introducer.NodelinkDialer(tr, introURL, cert, secret),
		Grid:       "my-grid",
		Addresses:  []string{"tarn://" + id.KeyHash() + "@tcp:203.0.113.5:3457"},
		FreeSpace:  func() uint64 { return 1 << 40 },
	})
	go pub.Run(ctx)

	// Client node: follow the grid, plus a static server from the profile.
	static, _ := introducer.StaticServer("s1", "tcp:203.0.113.9:3457", "KEYHASH-FROM-PROFILE")
	list := introducer.NewServerList([]introducer.Server{static})
	sub, _ := introducer.NewSubscriber(introducer.SubscriberConfig{
		Grid:        "my-grid",
		Introducers: []introducer.Dialer{introducer.NodelinkDialer(tr, introURL, cert, secret)},
		List:        list,
	})
	go sub.Run(ctx)
	_ = list.WaitFor(ctx, 4) // e.g. H servers before the first upload
	for ctx.Err() == nil {
		changed := list.Changed()
		_ = list.Servers() // hand the snapshot to the uploader
		select {
		case <-changed:
		case <-ctx.Done():
		}
	}
}
