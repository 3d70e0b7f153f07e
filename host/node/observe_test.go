package node_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/node"
)

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// sum adds the values of a family's series whose labels include want.
func sum(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var total float64
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		for _, lp := range m.Label {
			if v, ok := want[lp.GetName()]; ok && v != lp.GetValue() {
				continue next
			}
		}
		total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return total
}

// TestEveryNodeServesStatus: after an upload, the introducer, each storage
// node and the client answer /v1/status and /metrics over loopback with no
// token, each with its own figures.
func TestEveryNodeServesStatus(t *testing.T) {
	g := newGrid(t, 3, io.Discard)
	ctx := context.Background()
	data := randomBytes(300 << 10)
	if _, err := g.api.Put(ctx, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	// The introducer: the three servers it relays.
	var ist api.Status
	getJSON(t, g.intro.Info().APIURL+"/v1/status", &ist)
	if ist.Introducer == nil || ist.Introducer.Held != 3 || len(ist.Servers) != 3 || ist.Storage != nil {
		t.Errorf("introducer status: %+v", ist)
	}
	// Storage nodes: three shares sealed in all (k=2, n=3), allocate calls.
	var sealed int64
	for _, s := range g.storage {
		var st api.Status
		getJSON(t, s.Info().APIURL+"/v1/status", &st)
		if st.Storage == nil || st.Storage.SpaceTotal <= 0 || len(st.Plugins) == 0 || st.Version == "" {
			t.Fatalf("storage status: %+v", st)
		}
		sealed += st.Storage.SharesSealed
		fams := scrape(t, s.Info().APIURL)
		if got := sum(fams, "tarn_storage_requests_total", map[string]string{"method": "allocate", "code": "OK"}); got < 1 {
			t.Errorf("%s: allocate calls %v", st.Name, got)
		}
		if got := sum(fams, "tarn_storage_shares_sealed_total", nil); int64(got) != st.Storage.SharesSealed {
			t.Errorf("%s: metric sealed %v, status %d", st.Name, got, st.Storage.SharesSealed)
		}
	}
	if sealed != 3 {
		t.Errorf("shares sealed on all servers: %d, want 3", sealed)
	}
	// The client: the upload, bytes to each server, its plugins.
	fams := scrape(t, g.client.Info().APIURL)
	cases := []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"tarn_uploads_total", map[string]string{"result": "ok"}, 1},
		{"tarn_api_requests_total", map[string]string{"op": "upload", "code": "201"}, 1},
		{"tarn_api_file_bytes_total", map[string]string{"direction": "in"}, float64(len(data))},
		{"tarn_share_bytes_total", map[string]string{"direction": "sent"}, float64(len(data))},
		{"tarn_servers_known", nil, 3},
		{"tarn_plugin_up", map[string]string{"kind": "codec"}, 1},
		{"tarn_node_info", map[string]string{"roles": "client"}, 1},
	}
	for _, s := range g.storage {
		cases = append(cases, struct {
			name   string
			labels map[string]string
			min    float64
		}{"tarn_server_bytes_total", map[string]string{"server": s.Info().NodeID, "direction": "sent"}, 1})
	}
	for _, tc := range cases {
		if got := sum(fams, tc.name, tc.labels); got < tc.min {
			t.Errorf("%s%v = %v, want at least %v", tc.name, tc.labels, got, tc.min)
		}
	}
	if h := fams["tarn_upload_duration_seconds"]; h == nil || h.Metric[0].GetHistogram().GetSampleCount() != 1 {
		t.Errorf("upload duration histogram: %v", h)
	}
}

// TestLogLevelAndFormat: node.log_level filters the node's lines and its
// plugins' (re-logged through the node's logger), node.log_format json
// makes every line a JSON object.
func TestLogLevelAndFormat(t *testing.T) {
	cases := []struct {
		level        string
		wantPlugin   bool // a line from a plugin process (its debug "plugin address")
		wantInfoLine bool // "node running"
	}{
		{"warn", false, false},
		{"info", false, true},
		{"trace", true, true},
	}
	for _, tc := range cases {
		t.Run(tc.level, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "s")
			p, err := conf.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			p.Storage.Enabled = true
			p.Storage.Listen = []string{"tcp:127.0.0.1:0"}
			p.Storage.ReservedSpace = 0
			p.Node.APIListen = "127.0.0.1:0"
			p.Node.LogLevel, p.Node.LogFormat = tc.level, "json"
			secret := make([]byte, 32)
			rand.Read(secret)
			if _, err := node.Prepare(p, secret); err != nil {
				t.Fatal(err)
			}
			if err := node.WriteProfile(p); err != nil {
				t.Fatal(err)
			}
			logs := &logSink{}
			n, err := node.Start(context.Background(), dir, node.Options{LogOutput: logs})
			if err != nil {
				t.Fatal(err)
			}
			n.Stop()
			var plugin, info bool
			for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				if line == "" {
					continue
				}
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("not a JSON line: %q", line)
				}
				lvl, _ := m["@level"].(string)
				if tc.level == "warn" && lvl != "warn" && lvl != "error" {
					t.Errorf("a %s line at level warn: %q", lvl, line)
				}
				// go-plugin re-logs a plugin process's JSON line with the
				// plugin's own time as "timestamp".
				if _, ok := m["timestamp"]; ok {
					plugin = true
				}
				if m["@message"] == "node running" {
					info = true
				}
			}
			if plugin != tc.wantPlugin || info != tc.wantInfoLine {
				t.Errorf("plugin lines %v (want %v), info line %v (want %v):\n%s", plugin, tc.wantPlugin, info, tc.wantInfoLine, logs)
			}
		})
	}
}
