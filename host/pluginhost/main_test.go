package pluginhost_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/pluginhost"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
	storagedisk "github.com/tarnfs/tarn/plugins/storage-disk"
	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	transporttcp "github.com/tarnfs/tarn/plugins/transport-tcp"
	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/pluginkit"
)

// The test binary doubles as the tarn binary: run with "plugin serve KIND
// NAME" it serves a built-in plugin, as tarn does; with EnvServe set it is
// an "external" plugin binary; with EnvMiniHost set it is a small host that
// starts a plugin, prints the plugin's pid and waits to be killed.
const (
	envServe    = "TARN_PLUGINHOST_TEST_SERVE"
	envMiniHost = "TARN_PLUGINHOST_TEST_MINIHOST"
)

var testPlugins = map[string]func(){
	"codec/reedsolomon": codecreedsolomon.Serve,
	"storage/disk":      storagedisk.Serve,
	"storage/memory":    storagememory.Serve,
	"transport/tcp":     transporttcp.Serve,
	// A codec that speaks protocol v2, which this host does not.
	"codec/v2": func() {
		pluginkit.Serve(pluginkit.ServeConfig{Kind: pluginkit.KindCodec, Version: 2,
			Plugin: &codec.GRPCPlugin{Impl: codecreedsolomon.New()}})
	},
}

func TestMain(m *testing.M) {
	if len(os.Args) == 5 && os.Args[1] == "plugin" && os.Args[2] == "serve" {
		serveAndExit(os.Args[3] + "/" + os.Args[4])
	}
	if v := os.Getenv(envServe); v != "" {
		serveAndExit(v)
	}
	if os.Getenv(envMiniHost) != "" {
		miniHost()
	}
	os.Exit(m.Run())
}

func serveAndExit(which string) {
	serve, ok := testPlugins[which]
	if !ok {
		fmt.Fprintf(os.Stderr, "no test plugin %q\n", which)
		os.Exit(2)
	}
	serve()
	os.Exit(0)
}

func miniHost() {
	h, err := pluginhost.New(context.Background(), pluginhost.Options{},
		pluginhost.Spec{Kind: pluginkit.KindCodec, Name: "reedsolomon", FastPath: true})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Printf("PID %d\n", h.Pid(pluginkit.KindCodec))
	time.Sleep(time.Minute)
	os.Exit(0)
}
