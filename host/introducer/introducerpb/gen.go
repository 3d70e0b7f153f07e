// Package introducerpb is the generated gRPC code of the introducer
// protocol tarn.introducer.v1 (introducer.proto).
package introducerpb

//go:generate env PATH=$HOME/go/bin:$PATH protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative introducer.proto
