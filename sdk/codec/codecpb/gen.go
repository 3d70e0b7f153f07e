// Package codecpb is the generated Go code of the tarn.codec.v1 protocol
// (codec.proto). Plugin authors use sdk/codec instead of it directly.
package codecpb

//go:generate sh -c "PATH=$HOME/go/bin:$PATH protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative codec.proto"
