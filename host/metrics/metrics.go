// Package metrics is a node's Prometheus registry: the counters and
// histograms other packages update as things happen (API requests,
// storage-server calls, frontend sessions, bytes per server), collectors
// that read counters kept elsewhere at scrape time (the grid client's
// Stats, the storage server's Stats, the plugin host), and Window, the
// per-second rates of the last minute that the status page shows.
//
// One Metrics belongs to one node; its Handler serves GET /metrics in the
// Prometheus text format. docs/monitoring.md lists every name.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Namespace prefixes every metric name.
const Namespace = "tarn"

// durationBuckets fit file operations: from a literal cap (under a
// millisecond) to a large file over a slow link (minutes).
var durationBuckets = []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// Metrics is a node's registry and the instruments updated in place.
type Metrics struct {
	reg *prometheus.Registry

	// APIRequests counts the local API's requests by op (upload,
	// download, status, page, metrics, fs, check) and status code.
	APIRequests *prometheus.CounterVec
	// APIBytes counts file bytes through the API: direction "in"
	// (uploads) and "out" (downloads).
	APIBytes *prometheus.CounterVec
	// UploadDuration and DownloadDuration time whole API uploads and
	// downloads, successful or not (label result "ok" or "error").
	UploadDuration, DownloadDuration *prometheus.HistogramVec
	// StorageRequests counts the storage server's calls by method
	// (allocate, write_share, read_share, read_slot, ...) and gRPC code;
	// StorageDuration times them.
	StorageRequests *prometheus.CounterVec
	StorageDuration *prometheus.HistogramVec
	// ServerBytes counts the client's bytes to and from each storage
	// server (label server: its node id; direction "sent" or "received"),
	// ServerConnections the links it opened to each.
	ServerBytes       *prometheus.CounterVec
	ServerConnections *prometheus.CounterVec
	// WebDAVRequests counts WebDAV requests by method; SFTPSessions the
	// SFTP sessions opened.
	WebDAVRequests *prometheus.CounterVec
	SFTPSessions   prometheus.Counter

	storageCalls sync.Map // method -> *atomic.Int64, for StorageCalls
}

// StorageCalls is the storage server's calls by method since start (what
// StorageRequests counts, summed over codes), for the status page.
func (m *Metrics) StorageCalls() map[string]int64 {
	out := map[string]int64{}
	m.storageCalls.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// New makes a registry with tarn's instruments, Go's runtime metrics and
// the process's (CPU, memory, open files).
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		APIRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "api_requests_total", Help: "Requests to the node's local API, by operation and HTTP status code.",
		}, []string{"op", "code"}),
		APIBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "api_file_bytes_total", Help: "File bytes through the local API: in (uploads) and out (downloads).",
		}, []string{"direction"}),
		UploadDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "upload_duration_seconds", Help: "Time of whole uploads through the local API.", Buckets: durationBuckets,
		}, []string{"result"}),
		DownloadDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "download_duration_seconds", Help: "Time of downloads through the local API, to the last byte sent.", Buckets: durationBuckets,
		}, []string{"result"}),
		StorageRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "storage_requests_total", Help: "Calls to this node's storage server, by method and gRPC code.",
		}, []string{"method", "code"}),
		StorageDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "storage_request_duration_seconds", Help: "Time of calls to this node's storage server, by method.", Buckets: durationBuckets,
		}, []string{"method"}),
		ServerBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "server_bytes_total", Help: "Bytes the client sent to and received from each storage server (after TLS).",
		}, []string{"server", "direction"}),
		ServerConnections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "server_connections_total", Help: "Links the client opened to each storage server.",
		}, []string{"server"}),
		WebDAVRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "webdav_requests_total", Help: "WebDAV requests, by method.",
		}, []string{"method"}),
		SFTPSessions: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "sftp_sessions_total", Help: "SFTP (and scp) sessions opened.",
		}),
	}
	reg.MustRegister(m.APIRequests, m.APIBytes, m.UploadDuration, m.DownloadDuration,
		m.StorageRequests, m.StorageDuration, m.ServerBytes, m.ServerConnections,
		m.WebDAVRequests, m.SFTPSessions,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format (or
// OpenMetrics when the scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Registry is the underlying registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Family describes one metric a Func collector emits.
type Family struct {
	Name   string // without the namespace: "uploads_total"
	Help   string
	Type   prometheus.ValueType // prometheus.CounterValue or GaugeValue
	Labels []string
}

// Emit reports one value of a family (by its Name) with its label values.
type Emit func(name string, v float64, labels ...string)

// Func registers a collector that reads its values at scrape time: read
// calls emit once per value. Counters kept by other packages (grid.Stats,
// storageserver.Stats, the plugin host) reach Prometheus this way,
// without those packages knowing of it.
func (m *Metrics) Func(fams []Family, read func(emit Emit)) error {
	c := &funcCollector{descs: map[string]*prometheus.Desc{}, types: map[string]prometheus.ValueType{}, read: read}
	for _, f := range fams {
		c.descs[f.Name] = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", f.Name), f.Help, f.Labels, nil)
		c.types[f.Name] = f.Type
	}
	return m.reg.Register(c)
}

type funcCollector struct {
	descs map[string]*prometheus.Desc
	types map[string]prometheus.ValueType
	read  func(Emit)
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *funcCollector) Collect(ch chan<- prometheus.Metric) {
	c.read(func(name string, v float64, labels ...string) {
		d, ok := c.descs[name]
		if !ok {
			ch <- prometheus.NewInvalidMetric(prometheus.NewDesc("tarn_invalid", "", nil, nil), errUnknown(name))
			return
		}
		m, err := prometheus.NewConstMetric(d, c.types[name], v, labels...)
		if err != nil {
			m = prometheus.NewInvalidMetric(d, err)
		}
		ch <- m
	})
}

type errUnknown string

func (e errUnknown) Error() string { return "metrics: unknown family " + strconv.Quote(string(e)) }

// GRPCServerOptions count and time every call of a gRPC server (the
// storage server's) in StorageRequests and StorageDuration, by method
// name in snake case.
func (m *Metrics) GRPCServerOptions() []grpc.ServerOption {
	observe := func(full string, start time.Time, err error) {
		method := methodName(full)
		c, _ := m.storageCalls.LoadOrStore(method, new(atomic.Int64))
		c.(*atomic.Int64).Add(1)
		m.StorageRequests.WithLabelValues(method, status.Code(err).String()).Inc()
		m.StorageDuration.WithLabelValues(method).Observe(time.Since(start).Seconds())
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			start := time.Now()
			resp, err := h(ctx, req)
			observe(info.FullMethod, start, err)
			return resp, err
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			start := time.Now()
			err := h(srv, ss)
			observe(info.FullMethod, start, err)
			return err
		}),
	}
}

var methodNames sync.Map // full method -> snake case

// methodName turns "/tarn.storage.v1.StorageServer/WriteShare" into
// "write_share".
func methodName(full string) string {
	if v, ok := methodNames.Load(full); ok {
		return v.(string)
	}
	name := full
	for i := len(full) - 1; i >= 0; i-- {
		if full[i] == '/' {
			name = full[i+1:]
			break
		}
	}
	var b []byte
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'A' && c <= 'Z' {
			if i > 0 {
				b = append(b, '_')
			}
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	methodNames.Store(full, string(b))
	return string(b)
}
