// Package builtin is the one registry of tarn's built-in plugins. Adding a
// built-in plugin is one line in All plus its folder under plugins/.
//
// The host runs a built-in plugin by re-executing its own binary as
// "tarn plugin serve KIND NAME", which looks the entry up here and calls its
// Serve; so a built-in plugin runs out of process exactly as a third-party
// one does.
package builtin

import (
	"fmt"
	"os"

	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
	storagedisk "github.com/tarnfs/tarn/plugins/storage-disk"
	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	transporttcp "github.com/tarnfs/tarn/plugins/transport-tcp"
	"github.com/tarnfs/tarn/sdk/pluginkit"
)

// Entry is one built-in plugin.
type Entry struct {
	Kind  pluginkit.Kind
	Name  string
	Serve func() // serves the plugin on stdin/stdout until the host is gone
}

// All lists the built-in plugins.
var All = []Entry{
	{pluginkit.KindCodec, "reedsolomon", codecreedsolomon.Serve},
	{pluginkit.KindStorage, "disk", storagedisk.Serve},
	{pluginkit.KindStorage, "memory", storagememory.Serve},
	{pluginkit.KindTransport, "tcp", transporttcp.Serve},
}

// Lookup finds a built-in plugin by kind and name.
func Lookup(kind pluginkit.Kind, name string) (Entry, bool) {
	for _, e := range All {
		if e.Kind == kind && e.Name == name {
			return e, true
		}
	}
	return Entry{}, false
}

// ServeIfAsked serves a built-in plugin and exits when args (os.Args) are
// "BINARY plugin serve KIND NAME" — how a host re-executes its own binary
// for a built-in plugin — and returns otherwise. A test binary that starts
// real nodes calls it first in TestMain, so that it can stand in for tarn.
func ServeIfAsked(args []string) {
	if len(args) != 5 || args[1] != "plugin" || args[2] != "serve" {
		return
	}
	kind, name := pluginkit.Kind(args[3]), args[4]
	if e, ok := Lookup(kind, name); ok {
		e.Serve()
		os.Exit(0)
	}
	fmt.Fprintf(os.Stderr, "no built-in plugin %s %s\n", kind, name)
	os.Exit(2)
}
