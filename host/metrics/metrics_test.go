package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape serves GET /metrics as Prometheus would and parses the text
// format strictly.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, req)
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct == "" || ct[:10] != "text/plain" {
		t.Fatalf("content type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.NopCloser(w.Body))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, w.Body)
	}
	return fams
}

func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no family %s", name)
	}
next:
	for _, m := range f.Metric {
		for _, lp := range m.Label {
			if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("%s%v: no such series", name, labels)
	return 0
}

func TestMetricsText(t *testing.T) {
	m := New()
	m.APIRequests.WithLabelValues("upload", "201").Add(2)
	m.APIBytes.WithLabelValues("in").Add(4096)
	m.UploadDuration.WithLabelValues("ok").Observe(0.2)
	m.UploadDuration.WithLabelValues("ok").Observe(3)
	m.StorageRequests.WithLabelValues(methodName("/tarn.storage.v1.StorageServer/WriteShare"), "OK").Inc()
	m.SFTPSessions.Inc()
	uploads := 7.0
	err := m.Func([]Family{
		{Name: "uploads_total", Help: "Uploads.", Type: prometheus.CounterValue, Labels: []string{"result"}},
		{Name: "plugin_up", Help: "Plugin up.", Type: prometheus.GaugeValue, Labels: []string{"kind", "name"}},
	}, func(emit Emit) {
		emit("uploads_total", uploads, "ok")
		emit("uploads_total", 1, "error")
		emit("plugin_up", 1, "codec", "reedsolomon")
	})
	if err != nil {
		t.Fatal(err)
	}
	fams := scrape(t, m)
	cases := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"tarn_api_requests_total", map[string]string{"op": "upload", "code": "201"}, 2},
		{"tarn_api_file_bytes_total", map[string]string{"direction": "in"}, 4096},
		{"tarn_upload_duration_seconds", map[string]string{"result": "ok"}, 2},
		{"tarn_storage_requests_total", map[string]string{"method": "write_share", "code": "OK"}, 1},
		{"tarn_sftp_sessions_total", nil, 1},
		{"tarn_uploads_total", map[string]string{"result": "ok"}, 7},
		{"tarn_uploads_total", map[string]string{"result": "error"}, 1},
		{"tarn_plugin_up", map[string]string{"kind": "codec", "name": "reedsolomon"}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := value(t, fams, tc.name, tc.labels); got != tc.want {
				t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
			}
		})
	}
	if fams["tarn_uploads_total"].GetType() != dto.MetricType_COUNTER || fams["tarn_upload_duration_seconds"].GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("types: %v %v", fams["tarn_uploads_total"].GetType(), fams["tarn_upload_duration_seconds"].GetType())
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	// Func values are read at each scrape.
	uploads = 9
	if got := value(t, scrape(t, m), "tarn_uploads_total", map[string]string{"result": "ok"}); got != 9 {
		t.Errorf("after a change: %v, want 9", got)
	}
}

func TestMethodName(t *testing.T) {
	for in, want := range map[string]string{
		"/tarn.storage.v1.StorageServer/WriteShare":       "write_share",
		"/tarn.storage.v1.StorageServer/Allocate":         "allocate",
		"/tarn.storage.v1.StorageServer/AdviseCorruption": "advise_corruption",
		"Bare": "bare",
	} {
		if got := methodName(in); got != want {
			t.Errorf("methodName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWindow(t *testing.T) {
	var w Window
	t0 := time.Unix(1000, 0)
	if r, over := w.Rates(); r != nil || over != 0 {
		t.Fatalf("empty window: %v %v", r, over)
	}
	for i := 0; i <= 90; i += 5 {
		// counter a grows 10/s, b 1/s; c restarts at 80s.
		c := float64(i)
		if i >= 80 {
			c = float64(i - 80)
		}
		w.Sample(t0.Add(time.Duration(i)*time.Second), float64(10*i), float64(i), c)
	}
	r, over := w.Rates()
	if over != 60 {
		t.Fatalf("covers %vs, want 60", over)
	}
	if r[0] != 10 || r[1] != 1 {
		t.Errorf("rates %v, want 10 and 1", r[:2])
	}
	if r[2] != 10.0/60 {
		t.Errorf("a counter that restarted: %v, want its new value over the span", r[2])
	}
	if len(w.samples) > 14 {
		t.Errorf("keeps %d samples", len(w.samples))
	}
}
