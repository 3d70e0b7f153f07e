package webdav

import (
	"context"
	"github.com/tarnfs/tarn/host/vdrive/vdrivetest"
	"net/http"
	"strings"
	"testing"
	"time"
)

// plantName links a file holding data at name in the root folder straight
// through the directory format, past vdrive's rule for new names, as an
// older version could (names up to 1,024 bytes).
func plantName(t *testing.T, e *env, name string, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := vdrivetest.PlantFile(ctx, e.store, e.root, name, data); err != nil {
		t.Fatal(err)
	}
}

// TestOverlongNameWrittenInPlace: a file whose name is over 255 bytes (an
// older version's) is overwritten by PUT and replaced by a MOVE onto it,
// in place, where a NEW name that long is still 400 (as TestNewNameTooLong
// checks for every method). A COPY onto it is refused up front (400), the
// file kept: x/net/webdav's file COPY removes the destination first.
func TestOverlongNameWrittenInPlace(t *testing.T) {
	e := newEnv(t, envOpts{})
	long := strings.Repeat("l", 300)
	plantName(t, e, long, []byte("old"))
	e.must(t, http.StatusOK, "GET", "/"+long, nil, "")
	for _, tc := range []struct {
		name, method, src, body string
	}{
		{"put", "PUT", "", "put over it"},
		{"move", "MOVE", "/moved", "moved over it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.src == "" {
				e.must(t, http.StatusNoContent, "PUT", "/"+long, nil, tc.body)
			} else {
				e.must(t, http.StatusCreated, "PUT", tc.src, nil, tc.body)
				if r := e.alice(t, tc.method, tc.src, map[string]string{"Destination": "/" + long}, ""); r.status != http.StatusNoContent {
					t.Fatalf("%s: %d %s", tc.method, r.status, r.body)
				}
			}
			if got := e.must(t, http.StatusOK, "GET", "/"+long, nil, "").body; got != tc.body {
				t.Fatalf("read %q back, want %q", got, tc.body)
			}
		})
	}
	e.must(t, http.StatusCreated, "PUT", "/copied", nil, "copied over it")
	e.must(t, http.StatusBadRequest, "COPY", "/copied", map[string]string{"Destination": "/" + long}, "")
	if got := e.must(t, http.StatusOK, "GET", "/"+long, nil, "").body; got != "moved over it" {
		t.Fatalf("after a refused COPY the file holds %q", got)
	}
	e.must(t, http.StatusBadRequest, "PUT", "/"+strings.Repeat("n", 300), nil, "a new long name")
}
