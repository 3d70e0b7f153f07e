// Package storageserverpb is the generated gRPC code of the node-to-node
// storage protocol tarn.storageserver.v1 (storageserver.proto).
package storageserverpb

//go:generate env PATH=$HOME/go/bin:$PATH protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative storageserver.proto
