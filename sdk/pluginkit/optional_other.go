//go:build !linux

package pluginkit

// dataPlaneOptional reports whether Start may go on without the data plane
// after err made it fail. Off Linux it always may: the arena is a file in
// the temporary directory, which can be full or read-only, and a node must
// still start then; the plugin serves on the gRPC path.
func dataPlaneOptional(err error) bool { return true }
