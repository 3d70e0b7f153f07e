// Package transportpb is the generated gRPC code of the transport plugin
// protocol tarn.transport.v1 (transport.proto).
package transportpb

//go:generate env PATH=$HOME/go/bin:$PATH protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative transport.proto
