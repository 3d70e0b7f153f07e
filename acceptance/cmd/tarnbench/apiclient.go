package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// apiClient speaks the three calls of the client node's local API that the
// harness needs (PUT /v1/file, GET /v1/file/CAP, GET /v1/status). It is its
// own small client so that the harness builds from sdk/ and plugins/ alone
// and stays a black-box user of the node.
type apiClient struct {
	base, token string
	http        *http.Client
}

// apiStatus is the part of GET /v1/status the harness reads.
type apiStatus struct {
	Shares struct {
		K int `json:"k"`
		H int `json:"h"`
		N int `json:"n"`
	} `json:"shares"`
	Plugins []struct {
		Kind string `json:"kind"`
		Pid  int    `json:"pid"`
	} `json:"plugins"`
}

func newAPIClient(base, token string) *apiClient {
	// Enough idle connections for the parallel small-file figure.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &apiClient{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Transport: tr}}
}

func (c *apiClient) do(req *http.Request) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("api %s %s: %w", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return nil, fmt.Errorf("api %s %s: %s: %s", req.Method, req.URL.Path, resp.Status, msg)
	}
	return resp, nil
}

// put uploads body and returns the read cap.
func (c *apiClient) put(ctx context.Context, body []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+"/v1/file?format=json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	resp, err := c.do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var ur struct {
		Cap string `json:"cap"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ur); err != nil {
		return "", fmt.Errorf("api put: read answer: %w", err)
	}
	if ur.Cap == "" {
		return "", errors.New("api put: no cap in the answer")
	}
	return ur.Cap, nil
}

// get downloads the file capStr names.
func (c *apiClient) get(ctx context.Context, capStr string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/file/"+url.PathEscape(capStr), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("api get: %w", err)
	}
	return b, nil
}

func (c *apiClient) status(ctx context.Context) (*apiStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st apiStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("api status: %w", err)
	}
	return &st, nil
}
