// Package api is a node's local HTTP API. Every node serves the read-only
// routes: the status page (GET /), GET /v1/status (the same as JSON) and
// GET /metrics (Prometheus). A client node also serves the file routes the
// CLI uses to reach the grid: upload a file, download one (with Range),
// path operations under directory caps, check and repair.
//
// Access: a request that arrives over loopback may read the page,
// /v1/status and /metrics without a token; every other request must carry
// the node's secret token as "Authorization: Bearer TOKEN", and the file
// routes answer only requests that arrive over loopback (the token would
// travel in the clear, and it opens every file).
//
// The server knows nothing of erasure coding or placement: it streams
// request bodies into a Files (the node's grid client) and serves a File's
// bytes with http.ServeContent, so neither direction buffers a whole file.
// Client is the Go side of the same API.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/metrics"
	"github.com/tarnfs/tarn/host/placement"
	"github.com/tarnfs/tarn/host/vdrive"
)

// Sentinel errors a Files implementation wraps (alongside its own) so the
// API answers with the right status code.
var (
	// ErrBadCap: the cap is malformed or of a kind that cannot be read (400).
	ErrBadCap = errors.New("bad cap")
	// ErrNotFound: no share of the file was found on any server (404).
	ErrNotFound = errors.New("file not found")
	// ErrUnavailable: not enough servers or shares right now (503).
	ErrUnavailable = errors.New("grid unavailable")
	// ErrUnauthorized: a missing or wrong token (401); returned by Client.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrTruncated: a download's body ended before its last byte; the
	// error carries the node's reason (the Tarn-Error trailer).
	ErrTruncated = errors.New("download ended early")
)

// Files is what the API reads and writes files through: the node's grid
// client, adapted.
type Files interface {
	// Upload stores r's bytes (size of them, or until EOF when size < 0)
	// and returns the read cap's string.
	Upload(ctx context.Context, r io.Reader, size int64) (string, error)
	// Open returns the file a cap names. The cap has been parsed already.
	Open(ctx context.Context, c cap.Cap) (File, error)
}

// File is an immutable file's bytes.
type File interface {
	io.ReaderAt
	Size() int64
}

// Config configures a Server.
type Config struct {
	// Listen is host:port; port 0 picks a free port. On a loopback address
	// the read-only routes need no token; see the package comment.
	Listen string
	// Token is the secret requests must present (all but the read-only
	// routes over loopback).
	Token string
	// Files, when set, serves the file routes (a client node); without it
	// the server has only the read-only routes.
	Files Files
	// Store, when set, serves the vdrive routes (/v1/fs, /v1/dir; see
	// vdrive.go): path operations under directory caps.
	Store vdrive.Store
	// Checker, when set, serves POST /v1/check and /v1/deep-check (see
	// check.go).
	Checker Checker
	// Status fills the node-level part of GET /v1/status; the server adds
	// its own counters and uptime.
	Status func(ctx context.Context) Status
	// Metrics, when set, is served on GET /metrics and counts the API's
	// requests, bytes and durations.
	Metrics *metrics.Metrics
	// Counters, when set, are sampled every few seconds; GET /v1/status
	// and the page show how fast each grew over the last minute (Rates).
	// The names must not change between calls.
	Counters func() map[string]float64
	Logger   hclog.Logger
}

// Server is the running API.
type Server struct {
	cfg     Config
	log     hclog.Logger
	ln      net.Listener
	srv     *http.Server
	started time.Time
	done    chan struct{}

	stopSampler, samplerDone chan struct{}

	uploads, downloads, failures atomic.Int64
	bytesIn, bytesOut            atomic.Int64

	fd *fdServer // uploads by descriptor; nil when off

	window metrics.Window
	names  []string // Counters' names, sorted, as the window holds them
	recent recentOps
}

// Start listens and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Token == "" {
		return nil, errors.New("api: a token is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if err := registerWriteBehind(cfg); err != nil {
		return nil, fmt.Errorf("api: write-behind metrics: %w", err)
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return nil, fmt.Errorf("api: listen address %q: %w", cfg.Listen, err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("api: listen on %s: %w", cfg.Listen, err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger.Named("api"), ln: ln, started: time.Now(), done: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          s.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	s.stopSampler = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("api server stopped", "error", err)
		}
	}()
	if cfg.Files != nil {
		s.startFd()
	}
	if cfg.Counters != nil {
		s.sample()
		s.samplerDone = make(chan struct{})
		go s.sampler()
	}
	return s, nil
}

// sampleEvery is how often Counters are sampled for Rates.
const sampleEvery = 2 * time.Second

func (s *Server) sampler() {
	defer close(s.samplerDone)
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.sample()
		case <-s.stopSampler:
			return
		}
	}
}

func (s *Server) sample() {
	c := s.cfg.Counters()
	if s.names == nil {
		for k := range c {
			s.names = append(s.names, k)
		}
		sort.Strings(s.names)
	}
	v := make([]float64, len(s.names))
	for i, k := range s.names {
		v[i] = c[k]
	}
	s.window.Sample(time.Now(), v...)
}

// isLoopback reports whether a host (name or address) is the loopback.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// URL is the base URL clients use, "http://127.0.0.1:PORT" (an
// unspecified listen address is reached through the loopback).
func (s *Server) URL() string {
	host, port, _ := net.SplitHostPort(s.ln.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Close stops accepting, waits up to a few seconds for requests in flight,
// then drops them.
func (s *Server) Close() error {
	if s.samplerDone != nil {
		close(s.stopSampler)
		<-s.samplerDone
	}
	if s.fd != nil {
		s.fd.close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = s.srv.Close()
	}
	<-s.done
	return err
}

// Handler is the API's routes behind the access check.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.page) // also HEAD
	mux.HandleFunc("GET /v1/status", s.status)
	if s.cfg.Metrics != nil {
		mux.Handle("GET /metrics", s.cfg.Metrics.Handler())
	}
	if s.cfg.Files != nil {
		mux.HandleFunc("PUT /v1/file", s.put)
		mux.HandleFunc("POST /v1/file", s.put)
		mux.HandleFunc("GET /v1/file/{cap}", s.get) // also HEAD
	}
	s.mountFS(mux)
	s.mountCheck(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		allow := ""
		switch {
		case r.URL.Path == "/v1/file" && s.cfg.Files != nil:
			allow = "PUT, POST"
		case strings.HasPrefix(r.URL.Path, "/v1/file/") && s.cfg.Files != nil, readOnlyPath(r.URL.Path):
			allow = "GET, HEAD"
		}
		if allow != "" {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: method not allowed (allowed: %s)", r.Method, r.URL.Path, allow))
			return
		}
		if s.cfg.Files == nil && strings.HasPrefix(r.URL.Path, "/v1/") {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s (this node runs no client: it serves /, /v1/status and /metrics)", r.Method, r.URL.Path))
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return s.observe(s.auth(mux))
}

// readOnlyPath: the routes every node serves, which change nothing.
func readOnlyPath(p string) bool {
	return p == "/" || p == "/v1/status" || p == "/metrics"
}

// overLoopback reports whether the request came in on a loopback
// connection (both ends on the loopback), which only this machine's
// processes can open.
func overLoopback(r *http.Request) bool {
	la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	lh, _, err1 := net.SplitHostPort(la.String())
	rh, _, err2 := net.SplitHostPort(r.RemoteAddr)
	return err1 == nil && err2 == nil && isLoopback(lh) && isLoopback(rh)
}

// plainHost reports whether a Host header names this machine directly:
// an IP address or "localhost", with or without a port.
func plainHost(h string) bool {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return h == "localhost" || net.ParseIP(h) != nil
}

func (s *Server) auth(next http.Handler) http.Handler {
	want := []byte("Bearer " + s.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local := overLoopback(r)
		readOnly := readOnlyPath(r.URL.Path) && (r.Method == http.MethodGet || r.Method == http.MethodHead)
		// A page fetched by a browser under another host name pointed at
		// the loopback (DNS rebinding) must not read the status freely.
		if readOnly && local && plainHost(r.Host) {
			next.ServeHTTP(w, r)
			return
		}
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			s.log.Warn("request refused: missing or wrong API token", "method", r.Method, "path", shortCap(r.URL.Path), "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="tarn"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong API token (see the node's api.token file)")
			return
		}
		if !readOnly && !local {
			s.log.Warn("request refused: file routes answer only over loopback", "method", r.Method, "path", shortCap(r.URL.Path), "remote", r.RemoteAddr)
			writeError(w, http.StatusForbidden, "the file routes answer only over loopback; this address serves /, /v1/status and /metrics")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// UploadResult is the JSON answer of PUT /v1/file?format=json.
type UploadResult struct {
	Cap  string `json:"cap"`
	Size int64  `json:"size"`
}

func (s *Server) put(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	cr := &countingReader{r: r.Body}
	c, err := s.cfg.Files.Upload(r.Context(), cr, r.ContentLength)
	s.bytesIn.Add(cr.n)
	if m := s.cfg.Metrics; m != nil {
		m.APIBytes.WithLabelValues("in").Add(float64(cr.n))
		m.UploadDuration.WithLabelValues(result(err)).Observe(time.Since(start).Seconds())
	}
	noteTarget(r, c, cr.n)
	if err == nil && r.ContentLength >= 0 && cr.n != r.ContentLength {
		err = fmt.Errorf("upload: %w: body ended after %d of %d bytes", grid.ErrSize, cr.n, r.ContentLength)
	}
	if err != nil {
		s.failures.Add(1)
		s.fail(w, r, "upload", err)
		return
	}
	s.uploads.Add(1)
	s.log.Info("uploaded", "size", cr.n, "cap", shortCap(c))
	if r.URL.Query().Get("format") == "json" {
		writeJSON(w, http.StatusCreated, UploadResult{Cap: c, Size: cr.n})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, c+"\n")
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("cap")
	c, err := cap.Parse(raw)
	if err != nil {
		s.failures.Add(1)
		s.fail(w, r, "parse cap", fmt.Errorf("%w: %w", ErrBadCap, err))
		return
	}
	f, err := s.cfg.Files.Open(r.Context(), c)
	if err != nil {
		s.failures.Add(1)
		s.fail(w, r, "open", err)
		return
	}
	if c, ok := f.(io.Closer); ok {
		defer c.Close()
	}
	start := time.Now()
	// The cap names these exact bytes forever: its hash is a strong ETag,
	// and If-None-Match / If-Range work through ServeContent.
	sum := sha256.Sum256([]byte(raw))
	w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:16])+`"`)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	rd := &errReaderAt{r: f}
	cw := &countingWriter{w: w}
	if wt, ok := f.(io.WriterTo); ok && plainGet(r) {
		// Read (and so verify) the first segment before the status line
		// goes out: a file that cannot be read at all gets an error that
		// says why, not a 200 with an empty body.
		if f.Size() > 0 {
			var probe [1]byte
			if _, err := f.ReadAt(probe[:], 0); err != nil && err != io.EOF {
				s.failures.Add(1)
				s.fail(w, r, "download", err)
				return
			}
		}
		// A whole-file read: stream segment by segment, which the file
		// does faster than ServeContent's small ReadAt calls.
		streamWhole(w, r, cw, wt, f.Size(), rd)
	} else {
		http.ServeContent(cw, r, "", time.Time{}, io.NewSectionReader(rd, 0, f.Size()))
	}
	s.bytesOut.Add(cw.n)
	noteTarget(r, raw, cw.n)
	if m := s.cfg.Metrics; m != nil && r.Method != http.MethodHead {
		m.APIBytes.WithLabelValues("out").Add(float64(cw.n))
		m.DownloadDuration.WithLabelValues(result(rd.err)).Observe(time.Since(start).Seconds())
	}
	if rd.err != nil {
		// The status line is gone: the client sees a short body, and a
		// client that took trailers the reason (Tarn-Error).
		s.failures.Add(1)
		noteError(r, rd.err)
		s.log.Error("download failed mid-stream", "cap", shortCap(raw), "sent", cw.n, "size", f.Size(), "error", rd.err)
		return
	}
	if r.Method != http.MethodHead {
		s.downloads.Add(1)
	}
}

// Trailer and headers of a whole-file GET by a client that takes
// trailers ("TE: trailers"): the body is chunked rather than
// Content-Length framed, TarnSize gives its length, and TarnError, when
// present, why it ended early.
const (
	TarnSize  = "Tarn-Size"
	TarnError = "Tarn-Error"
)

// streamWhole writes a file's bytes with a 200. A client that said it
// takes trailers gets the reason of a failure mid-stream in the Tarn-Error
// trailer (a Content-Length framed body has no room for one; its short
// body is the only sign, which every client notices).
func streamWhole(w http.ResponseWriter, r *http.Request, cw *countingWriter, wt io.WriterTo, size int64, rd *errReaderAt) {
	trailers := strings.Contains(strings.ToLower(r.Header.Get("TE")), "trailers") && r.ProtoAtLeast(1, 1)
	if trailers {
		w.Header().Set("Trailer", TarnError)
		w.Header().Set(TarnSize, strconv.FormatInt(size, 10))
	} else {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	}
	w.Header().Set("Accept-Ranges", "bytes")
	w.WriteHeader(http.StatusOK)
	if _, err := wt.WriteTo(cw); err != nil && rd.err == nil && r.Context().Err() == nil {
		rd.err = err
	}
	if rd.err == nil && cw.n != size && r.Context().Err() == nil {
		rd.err = fmt.Errorf("sent %d of %d bytes", cw.n, size)
	}
	if trailers && rd.err != nil {
		w.Header().Set(TarnError, oneLine(rd.err.Error()))
	}
}

// oneLine keeps a header value to one line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// plainGet: a GET of the whole file with no conditions.
func plainGet(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	for _, h := range []string{"Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range"} {
		if r.Header.Get(h) != "" {
			return false
		}
	}
	return true
}

// Status is GET /v1/status.
type Status struct {
	NodeID   string         `json:"node_id"`
	Name     string         `json:"name"`
	Roles    []string       `json:"roles"`
	Grid     string         `json:"grid"`
	Shares   Shares         `json:"shares"`
	Servers  []ServerStatus `json:"servers"`
	Known    int            `json:"servers_known"`
	Conn     int            `json:"servers_connected"`
	Plugins  []PluginStatus `json:"plugins"`
	Started  time.Time      `json:"started"`
	Uptime   float64        `json:"uptime_seconds"`
	Counters Counters       `json:"counters"`
	// Grid is the grid client's own counters (grid.Stats).
	GridStats any `json:"grid_stats,omitempty"`

	Version string `json:"version,omitempty"`
	// Storage is the storage server's figures (storage nodes).
	Storage *StorageStatus `json:"storage,omitempty"`
	// Introducer is the introducer's figures (introducer nodes); its
	// announced servers are in Servers.
	Introducer *IntroducerStatus `json:"introducer,omitempty"`
	// IntroducerLinks is this node's link to each of its introducers
	// (status_introducer.go).
	IntroducerLinks []IntroducerLink `json:"introducer_links,omitempty"`
	// Rates is how fast the node's counters grew over the last minute,
	// per second, by name (see Config.Counters); RatesOver the seconds
	// they cover.
	Rates     map[string]float64 `json:"rates,omitempty"`
	RatesOver float64            `json:"rates_over_seconds,omitempty"`
	// Recent is the API's last operations, newest first.
	Recent []Operation `json:"recent,omitempty"`
	// WriteBehind is the client's write-behind of directory links
	// (writebehind.go).
	WriteBehind *WriteBehindStatus `json:"write_behind,omitempty"`
}

// StorageStatus is a storage server's figures since the node started,
// and its backend's space now.
type StorageStatus struct {
	SpaceTotal       int64  `json:"space_total"`
	SpaceFree        int64  `json:"space_free"`
	Reserved         int64  `json:"reserved"`
	SpaceError       string `json:"space_error,omitempty"`
	OpenUploads      int    `json:"open_uploads"`
	OpenBytes        int64  `json:"open_bytes"`
	SharesSealed     int64  `json:"shares_sealed"`
	UploadsAborted   int64  `json:"uploads_aborted"`
	CorruptionAdvice int64  `json:"corruption_advisories"`
	CorruptRemoved   int64  `json:"corrupt_removed"`
	// Requests counts calls by method since start (allocate, write_share,
	// read_share, read_slot, write_slot, ...).
	Requests map[string]int64 `json:"requests,omitempty"`
	// SharesHeld and BytesHeld are the shares the server holds (mutable
	// slots aside) and their bytes: counted from the backend in the
	// background at start, plus what was sealed and removed since.
	// HeldCounting: that count runs still (the figures are partial);
	// HeldError: why it failed or cannot be made (the figures are then
	// the changes since start).
	SharesHeld   int64  `json:"shares_held"`
	BytesHeld    int64  `json:"bytes_held"`
	HeldCounting bool   `json:"held_counting,omitempty"`
	HeldError    string `json:"held_error,omitempty"`
}

// IntroducerStatus is an introducer's figures.
type IntroducerStatus struct {
	Held     int               `json:"announcements_held"`
	Accepted uint64            `json:"announcements_accepted"`
	Dropped  map[string]uint64 `json:"announcements_dropped,omitempty"`
}

// Shares are the encoding parameters of new uploads.
type Shares struct {
	K int `json:"k"`
	H int `json:"h"`
	N int `json:"n"`
}

// ServerStatus is one storage server the client knows.
type ServerStatus struct {
	NodeID   string `json:"node_id"`
	Nickname string `json:"nickname,omitempty"`
	Address  string `json:"address"`
	Static   bool   `json:"static"`
	// Cached: known from the client's cache of the announcements it last
	// verified (private/servers.cache), as no introducer answered yet
	// since the node started.
	Cached bool `json:"cached,omitempty"`
	// Connected: the server is announced (or static) and its last contact
	// with this client, if any, was an answer, not a fault.
	Connected bool `json:"connected"`
	// LastAnswer and LastFailure are this client's last answer from the
	// server and last fault with it (timeout, refused, link lost), with
	// the fault's reason; zero when it has not been used yet.
	LastAnswer  time.Time `json:"last_answer,omitzero"`
	LastFailure time.Time `json:"last_failure,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	FreeSpace   uint64    `json:"free_space"`
	Version     string    `json:"version,omitempty"`
	LastSeen    time.Time `json:"last_seen,omitzero"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
}

// PluginStatus is one plugin process.
type PluginStatus struct {
	Kind     string    `json:"kind"`
	Name     string    `json:"name"`
	Version  string    `json:"version"`
	Pid      int       `json:"pid"`
	Health   string    `json:"health"`
	Restarts int       `json:"restarts"`
	Started  time.Time `json:"started,omitzero"`
	LastErr  string    `json:"last_error,omitempty"`
}

// Counters count the API's work since the node started.
type Counters struct {
	Uploads   int64 `json:"uploads"`
	Downloads int64 `json:"downloads"`
	Failures  int64 `json:"failures"`
	BytesIn   int64 `json:"bytes_in"`
	BytesOut  int64 `json:"bytes_out"`
}

// Status is what GET /v1/status answers.
func (s *Server) Status(ctx context.Context) Status {
	var st Status
	if s.cfg.Status != nil {
		st = s.cfg.Status(ctx)
	}
	st.Known = len(st.Servers)
	st.Conn = 0
	for _, sv := range st.Servers {
		if sv.Connected {
			st.Conn++
		}
	}
	st.Started = s.started.UTC()
	st.Uptime = time.Since(s.started).Seconds()
	st.Counters = Counters{
		Uploads: s.uploads.Load(), Downloads: s.downloads.Load(), Failures: s.failures.Load(),
		BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(),
	}
	if rates, over := s.window.Rates(); rates != nil {
		st.Rates = map[string]float64{}
		for i, k := range s.names {
			if i < len(rates) {
				st.Rates[k] = rates[i]
			}
		}
		st.RatesOver = over
	}
	st.Recent = s.recent.list()
	st.WriteBehind = writeBehindStatus(s.cfg.Store)
	return st
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Status(r.Context()))
}

// StatusCode maps an error to the API's status code.
func StatusCode(err error) int {
	switch {
	case errors.Is(err, ErrBadCap), errors.Is(err, cap.ErrSyntax), errors.Is(err, cap.ErrUnknownKind),
		errors.Is(err, grid.ErrNotReadable), errors.Is(err, grid.ErrSize):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound), errors.Is(err, fs.ErrNotExist), errors.Is(err, grid.ErrNoShares):
		return http.StatusNotFound
	case errors.Is(err, ErrUnavailable), errors.Is(err, chk.ErrNotEnoughShares), errors.Is(err, placement.ErrNotHappy):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled):
		return 499 // client gone; nobody reads it
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// fail answers a failed operation and logs it: one line, at error for
// the node's or the grid's failures (5xx) and warn for the caller's
// (4xx), naming the operation, the path (caps shortened) and the reason.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, op string, err error) {
	code := StatusCode(err)
	logFailure(s.log, code, op, "method", r.Method, "path", shortCap(r.URL.Path), "status", code, "error", err)
	noteError(r, err)
	writeError(w, code, err.Error())
}

func logFailure(log hclog.Logger, code int, op string, args ...any) {
	if code >= 500 {
		log.Error(op+" failed", args...)
	} else {
		log.Warn(op+" failed", args...)
	}
}

// ErrorBody is the JSON of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, ErrorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// shortCap keeps logs free of whole read caps: a cap in a log is a leak.
// shortCap names a cap in a log line or on the status page without its
// secret part: the start of a read or write cap is key material (a literal
// cap is the file itself), and the page is open to every local user. It
// keeps the kind and the start of the storage index, which servers see
// anyway: "…/v1/file/tarn:chk si=abcdefghij…".
func shortCap(s string) string {
	i := strings.Index(s, cap.Prefix)
	if i < 0 {
		return s
	}
	token, rest, _ := strings.Cut(s[i:], "/")
	kind, _, _ := strings.Cut(strings.TrimPrefix(token, cap.Prefix), ":")
	name := cap.Prefix + kind
	if c, err := cap.Parse(token); err == nil {
		var si cap.StorageIndex
		switch v := c.(type) {
		case cap.CHKVerify:
			si = v.StorageIndex
		case interface{ StorageIndex() cap.StorageIndex }:
			si = v.StorageIndex()
		default:
			return s[:i] + name
		}
		name += " si=" + si.String()[:10] + "…"
	} else {
		name += ":(bad cap)"
	}
	if rest != "" {
		name += "/" + rest
	}
	return s[:i] + name
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type countingWriter struct {
	w http.ResponseWriter
	n int64
}

func (c *countingWriter) Header() http.Header  { return c.w.Header() }
func (c *countingWriter) WriteHeader(code int) { c.w.WriteHeader(code) }
func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// errReaderAt keeps the first read error, which ServeContent swallows.
type errReaderAt struct {
	r   io.ReaderAt
	err error
}

func (e *errReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := e.r.ReadAt(p, off)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}
