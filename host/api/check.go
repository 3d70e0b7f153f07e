package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/tarnfs/tarn/host/checker"
)

// Checker is what the check routes call: the node's host/checker.Checker.
type Checker interface {
	CheckPath(ctx context.Context, root, p string, opt checker.Options) (*checker.Report, error)
	DeepCheck(ctx context.Context, root, p string, opt checker.Options, progress func(*checker.Report)) (*checker.DeepReport, error)
}

var _ Checker = (*checker.Checker)(nil)

// CheckRequest is the JSON body of POST /v1/check and /v1/deep-check:
// what to check (a cap, or a path under a directory cap) and how deep.
type CheckRequest struct {
	// Root is a cap; Path a slash path under it ("" or "/": Root itself).
	Root     string `json:"root"`
	Path     string `json:"path,omitempty"`
	Verify   bool   `json:"verify,omitempty"`
	Repair   bool   `json:"repair,omitempty"`
	AddLease bool   `json:"add_lease,omitempty"`
}

func (c CheckRequest) options() checker.Options {
	return checker.Options{Verify: c.Verify, Repair: c.Repair, AddLease: c.AddLease}
}

// DeepCheckLine is one line of the newline-delimited JSON answer of POST
// /v1/deep-check: a report per object as it is checked, then one line
// with the summary, or with an error that ended the walk.
type DeepCheckLine struct {
	Report  *checker.Report  `json:"report,omitempty"`
	Summary *checker.Summary `json:"summary,omitempty"`
	Error   string           `json:"error,omitempty"`
}

// mountCheck adds the check routes to mux (when the node gave a Checker).
func (s *Server) mountCheck(mux *http.ServeMux) {
	if s.cfg.Checker == nil {
		return
	}
	mux.HandleFunc("POST /v1/check", s.check)
	mux.HandleFunc("POST /v1/deep-check", s.deepCheck)
}

func readCheckRequest(r *http.Request) (CheckRequest, error) {
	var req CheckRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("%w: check request body: %w", ErrBadCap, err)
	}
	if strings.TrimSpace(req.Root) == "" {
		return req, fmt.Errorf("%w: check request names no cap (root)", ErrBadCap)
	}
	return req, nil
}

// checkStatus maps a checker error to a status code.
func checkStatus(err error) int {
	if errors.Is(err, checker.ErrBadCap) {
		return http.StatusBadRequest
	}
	if errors.Is(err, checker.ErrNoServers) {
		return http.StatusServiceUnavailable
	}
	code, _ := FSStatus(err)
	return code
}

func (s *Server) check(w http.ResponseWriter, r *http.Request) {
	req, err := readCheckRequest(r)
	if err != nil {
		s.log.Warn("check failed", "status", http.StatusBadRequest, "error", err)
		noteError(r, err)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	noteTarget(r, req.Root+"/"+req.Path, 0)
	rep, err := s.cfg.Checker.CheckPath(r.Context(), req.Root, req.Path, req.options())
	if err != nil {
		code := checkStatus(err)
		if code >= 500 {
			s.failures.Add(1)
		}
		noteError(r, err)
		logFailure(s.log, code, "check", "cap", shortCap(req.Root), "path", req.Path, "status", code, "error", err)
		writeError(w, code, err.Error())
		return
	}
	s.log.Info("checked", "cap", shortCap(req.Root), "path", req.Path, "outcome", rep.Outcome)
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) deepCheck(w http.ResponseWriter, r *http.Request) {
	req, err := readCheckRequest(r)
	if err != nil {
		s.log.Warn("deep check failed", "status", http.StatusBadRequest, "error", err)
		noteError(r, err)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	noteTarget(r, req.Root+"/"+req.Path, 0)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	fl, _ := w.(http.Flusher)
	started := false
	send := func(l DeepCheckLine) {
		if !started {
			w.WriteHeader(http.StatusOK)
			started = true
		}
		b, _ := json.Marshal(l)
		w.Write(append(b, '\n'))
		if fl != nil {
			fl.Flush()
		}
	}
	dr, err := s.cfg.Checker.DeepCheck(r.Context(), req.Root, req.Path, req.options(), func(rep *checker.Report) {
		send(DeepCheckLine{Report: rep})
	})
	if err != nil {
		noteError(r, err)
		s.log.Error("deep check failed", "cap", shortCap(req.Root), "path", req.Path, "error", err)
		if !started {
			writeError(w, checkStatus(err), err.Error())
			return
		}
		send(DeepCheckLine{Error: err.Error()})
		return
	}
	s.log.Info("deep-checked", "cap", shortCap(req.Root), "path", req.Path, "objects", dr.Summary.Objects,
		"unhealthy", dr.Summary.Unhealthy, "unrecoverable", dr.Summary.Unrecoverable, "repaired", dr.Summary.Repaired)
	send(DeepCheckLine{Summary: &dr.Summary})
}

// Check asks the node to check (verify, repair, renew) one object.
func (c *Client) Check(ctx context.Context, req CheckRequest) (*checker.Report, error) {
	resp, err := c.postJSON(ctx, "/v1/check", req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var rep checker.Report
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return nil, fmt.Errorf("read check answer: %w", err)
	}
	return &rep, nil
}

// DeepCheck asks the node to check everything under a directory; progress
// is called with each report as it arrives.
func (c *Client) DeepCheck(ctx context.Context, req CheckRequest, progress func(*checker.Report)) (*checker.Summary, error) {
	resp, err := c.postJSON(ctx, "/v1/deep-check", req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var l DeepCheckLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("read deep-check answer: %w", err)
		}
		switch {
		case l.Error != "":
			return nil, &Error{Status: http.StatusInternalServerError, Msg: l.Error}
		case l.Summary != nil:
			return l.Summary, nil
		case l.Report != nil && progress != nil:
			progress(l.Report)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read deep-check answer: %w", err)
	}
	return nil, errors.New("read deep-check answer: the node ended it without a summary (see its log)")
}

func (c *Client) postJSON(ctx context.Context, path string, body any) (*http.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req)
}
