// Package storagepb is the generated gRPC code of the storage-backend
// plugin protocol tarn.storage.v1 (storage.proto).
package storagepb

//go:generate env PATH=$HOME/go/bin:$PATH protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative storage.proto
