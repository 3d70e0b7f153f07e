package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Operation is one finished request of the API, as the status page lists
// them: uploads, downloads, path operations, checks (not the status
// routes themselves).
type Operation struct {
	Time     time.Time `json:"time"`
	Op       string    `json:"op"`
	Target   string    `json:"target,omitempty"` // cap (shortened) or path
	Bytes    int64     `json:"bytes"`
	Seconds  float64   `json:"seconds"`
	Status   int       `json:"status"`
	Error    string    `json:"error,omitempty"`
	Duration string    `json:"-"` // Seconds, rounded for the page
}

// recentMax is how many operations the page lists.
const recentMax = 20

// recentOps is a ring of the last operations.
type recentOps struct {
	mu   sync.Mutex
	ops  [recentMax]Operation
	next int
	n    int
}

func (r *recentOps) add(o Operation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops[r.next] = o
	r.next = (r.next + 1) % recentMax
	r.n = min(r.n+1, recentMax)
}

// list returns the operations newest first.
func (r *recentOps) list() []Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Operation, 0, r.n)
	for i := 1; i <= r.n; i++ {
		out = append(out, r.ops[(r.next-i+recentMax)%recentMax])
	}
	return out
}

// opNote is what a handler tells observe about its request: what it
// touched, how many file bytes, and why it failed.
type opNote struct {
	target string
	bytes  int64
	err    string
}

type noteKey struct{}

func noteOf(r *http.Request) *opNote {
	n, _ := r.Context().Value(noteKey{}).(*opNote)
	return n
}

// noteTarget records a request's cap or path and its file bytes.
func noteTarget(r *http.Request, target string, n int64) {
	if o := noteOf(r); o != nil {
		o.target, o.bytes = shortCap(target), n
	}
}

// noteError records why a request failed.
func noteError(r *http.Request, err error) {
	if o := noteOf(r); o != nil && err != nil {
		o.err = oneLine(err.Error())
	}
}

// opName names a request for metrics and the page; the set is small and
// fixed (metric labels must not grow with paths).
func opName(r *http.Request) string {
	p := r.URL.Path
	switch {
	case p == "/":
		return "page"
	case p == "/v1/status":
		return "status"
	case p == "/metrics":
		return "metrics"
	case p == "/v1/file":
		return "upload"
	case strings.HasPrefix(p, "/v1/file/"):
		if r.Method == http.MethodHead {
			return "head"
		}
		return "download"
	case p == "/v1/dir":
		return "new_dir"
	case strings.HasPrefix(p, "/v1/fs/"):
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			switch r.URL.Query().Get("op") {
			case "stat":
				return "fs_stat"
			case "list":
				return "fs_list"
			}
			return "fs_read"
		case http.MethodPut:
			return "fs_write"
		}
		return "fs_change"
	case p == "/v1/check":
		return "check"
	case p == "/v1/deep-check":
		return "deep_check"
	}
	return "other"
}

// observe counts every request (Metrics.APIRequests) and lists the file
// operations among the recent ones.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		note := &opNote{}
		r = r.WithContext(context.WithValue(r.Context(), noteKey{}, note))
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		op := opName(r)
		if m := s.cfg.Metrics; m != nil {
			m.APIRequests.WithLabelValues(op, strconv.Itoa(code)).Inc()
		}
		switch op {
		case "page", "status", "metrics", "other", "head":
			return
		}
		target := note.target
		if target == "" {
			target = shortCap(r.URL.Path)
		}
		d := time.Since(start)
		s.recent.add(Operation{Time: start.UTC(), Op: op, Target: target, Bytes: note.bytes, Seconds: d.Seconds(),
			Status: code, Error: note.err, Duration: d.Round(time.Millisecond).String()})
	})
}

// statusWriter keeps the status code; it passes Flush on (streamed
// answers) and unwraps for http.ResponseController.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
