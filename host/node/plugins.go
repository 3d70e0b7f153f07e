package node

import (
	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/pluginhost"
	"github.com/tarnfs/tarn/sdk/pluginkit"
)

// PluginSpecs returns the plugins a node with profile p runs: the transport
// always, the storage plugin only for the storage role and the codec only
// for the client role. `tarn plugin list` uses it too, so that listing a
// client's plugins does not start a disk plugin that creates shares/.
func PluginSpecs(p *conf.Profile) ([]pluginhost.Spec, error) {
	specs, err := pluginhost.SpecsFromProfile(p)
	if err != nil {
		return nil, err
	}
	if !p.Storage.Enabled {
		specs = dropKind(specs, pluginkit.KindStorage)
	}
	if !p.Client.Enabled {
		specs = dropKind(specs, pluginkit.KindCodec)
	}
	return specs, nil
}
