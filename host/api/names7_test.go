package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/tarnfs/tarn/host/vdrive/vdrivetest"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/vdrive"
)

// setOld sets name in the root directory rootCap straight through
// dirnode, as a version before the 255-byte limit could.
func setOld(ctx context.Context, t *testing.T, st vdrive.Store, rootCap, name, fileCap string, size int64) {
	t.Helper()
	if err := vdrivetest.PlantEntry(ctx, st, rootCap, name, fileCap, size); err != nil {
		t.Fatal(err)
	}
}

// TestOverlongNameOverwriteAPI: PUT over a file whose name is over 255
// bytes (600, written by an older version) replaces its content, which a
// GET then reads, and setmeta changes it; a PUT of a new over-long name is
// still 400 name-too-long and makes nothing.
func TestOverlongNameOverwriteAPI(t *testing.T) {
	cl, st := newFSServerStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dc, err := cl.NewDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	root := dc.WriteCap
	name := strings.Repeat("ö", 300)
	setOld(ctx, t, st, root, name, cap.Literal{Data: []byte("old")}.String(), 3)

	data := bytes.Repeat([]byte("new content "), 100)
	e, err := cl.Write(ctx, root, "/"+name, bytes.NewReader(data), int64(len(data)), time.Time{})
	if err != nil {
		t.Fatalf("PUT over the %d-byte name: %v", len(name), err)
	}
	if e.Name != name || e.Size != int64(len(data)) {
		t.Fatalf("entry %q (%d bytes) of size %d", e.Name[:10], len(e.Name), e.Size)
	}
	body, _, err := cl.Read(ctx, root, "/"+name, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(body)
	body.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GET read %d bytes (%v), not the %d written", len(got), err, len(data))
	}
	mt := time.Date(2023, 3, 4, 5, 6, 7, 0, time.UTC)
	if e, err := cl.SetMetadata(ctx, root, "/"+name, &mt, nil, nil); err != nil || !e.Mtime.Equal(mt) {
		t.Fatalf("setmeta: %v, %v", e, err)
	}

	_, err = cl.Write(ctx, root, "/"+name+"x", strings.NewReader("x"), 1, time.Time{})
	var fe *api.FSError
	if !errors.As(err, &fe) || fe.Kind != api.KindNameTooLong || fe.Status != http.StatusBadRequest || !errors.Is(err, vdrive.ErrNameTooLong) {
		t.Fatalf("PUT of a new 601-byte name: %v (%+v), want 400 name-too-long", err, fe)
	}
	es, err := cl.ReadDir(ctx, root, "/")
	if err != nil || len(es) != 1 || es[0].Name != name {
		t.Fatalf("root lists %d entries (%v)", len(es), err)
	}
}

// TestNamesAPI: names as HTTP clients send them, percent-encoded by hand:
// an NFD name is stored and listed in NFC and found by either spelling
// (one entry, the second PUT replacing the first); "/" inside a name
// (%2F) is 400 bad-name and writes nothing, not a file in another
// folder; ".", "..", NUL and bytes that are not UTF-8 are 400 bad-name; a
// control character, Windows' reserved characters and spaces at either
// end are kept as sent.
func TestNamesAPI(t *testing.T) {
	cl, ctx, root := rootWithFolderA(t)
	do := func(method, rawPath, body string) (int, api.FSErrorBody, api.Entry) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, cl.BaseURL+"/v1/fs/"+root+rawPath, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+cl.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var eb api.FSErrorBody
		var e api.Entry
		if resp.StatusCode >= 300 {
			json.Unmarshal(b, &eb)
		} else {
			json.Unmarshal(b, &e)
		}
		return resp.StatusCode, eb, e
	}
	for _, tc := range []struct {
		name, raw string
		status    int
		kind      string
		stored    string // the entry's name, when made
	}{
		{"nfd", "/caf%65%CC%81", http.StatusCreated, "", "caf\u00e9"},
		{"nfc of the same", "/caf%C3%A9", http.StatusCreated, "", "caf\u00e9"},
		{"slash inside a name", "/a%2Fb", http.StatusBadRequest, api.KindBadName, ""},
		{"slash inside, lower case", "/a%2fb", http.StatusBadRequest, api.KindBadName, ""},
		{"dot dot", "/a/%2E%2E", http.StatusBadRequest, api.KindBadName, ""},
		{"dot", "/%2E", http.StatusBadRequest, api.KindBadName, ""},
		{"nul", "/x%00y", http.StatusBadRequest, api.KindBadName, ""},
		{"not utf-8", "/x%FFy", http.StatusBadRequest, api.KindBadName, ""},
		{"control character", "/tab%09and%01", http.StatusCreated, "", "tab\tand\x01"},
		{"windows reserved", "/a%3Cb%3E%3A%22%5C%7C%3F%2A", http.StatusCreated, "", `a<b>:"\|?*`},
		{"spaces and a dot at the ends", "/%20lead%20trail.%20", http.StatusCreated, "", " lead trail. "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, eb, e := do(http.MethodPut, tc.raw, tc.name)
			if code != tc.status || eb.Kind != tc.kind {
				t.Fatalf("PUT %s: %d %+v, want %d %q", tc.raw, code, eb, tc.status, tc.kind)
			}
			if tc.stored != "" {
				if e.Name != tc.stored {
					t.Fatalf("stored as %+q, want %+q", e.Name, tc.stored)
				}
				body, _, err := cl.Read(ctx, root, "/"+tc.stored, 0, -1)
				if err != nil {
					t.Fatalf("read by its stored name: %v", err)
				}
				b, _ := io.ReadAll(body)
				body.Close()
				if string(b) != tc.name {
					t.Fatalf("read %q, want %q", b, tc.name)
				}
			} else if strings.Contains(eb.Error, "\n") || eb.Error == "" {
				t.Fatalf("error %q is not one line", eb.Error)
			}
		})
	}
	// Found by the NFD spelling too, and one entry of it; nothing in /a.
	if code, _, e := do(http.MethodGet, "/caf%65%CC%81?op=stat", ""); code != http.StatusOK || e.Name != "caf\u00e9" {
		t.Fatalf("stat by the NFD spelling: %d %+q", code, e.Name)
	}
	es, err := cl.ReadDir(ctx, root, "/")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if strings.HasPrefix(e.Name, "caf") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d entries of café", n)
	}
	if es, err := cl.ReadDir(ctx, root, "/a"); err != nil || len(es) != 0 {
		t.Fatalf("/a lists %d entries (%v): a %%2F name went into it", len(es), err)
	}
}

// TestClientSendsDotsAsNames: the Go client sends a path's "." and ".."
// components escaped, so they reach the server as names (refused as bad
// names) instead of being cleaned out of the URL on the way, which let a
// path climb out of the root it was given.
func TestClientSendsDotsAsNames(t *testing.T) {
	cl, ctx, root := rootWithFolderA(t)
	for _, p := range []string{"/a/..", "/../../x", "/a/./b", "/.."} {
		_, err := cl.Stat(ctx, root, p)
		var fe *api.FSError
		if !errors.As(err, &fe) || fe.Kind != api.KindBadName {
			t.Errorf("stat %q: %v, want a bad-name error", p, err)
		}
	}
	if e, err := cl.Stat(ctx, root, "/a"); err != nil || e.Name != "a" {
		t.Fatalf("stat /a: %+v %v", e, err)
	}
}

// rootWithFolderA is an API client on a test grid, a context ended at
// cleanup, and a new root directory (its write cap) holding folder /a.
func rootWithFolderA(t *testing.T) (*api.Client, context.Context, string) {
	t.Helper()
	cl, _ := newFSServerStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	dc, err := cl.NewDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Mkdir(ctx, dc.WriteCap, "/a", false); err != nil {
		t.Fatal(err)
	}
	return cl, ctx, dc.WriteCap
}
