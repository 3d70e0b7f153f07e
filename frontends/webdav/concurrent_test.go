package webdav

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentPuts: clients that upload several files into one
// directory at once (rclone's --transfers) all succeed, and every file is
// listed and reads back.
func TestConcurrentPuts(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	e := newEnv(t, envOpts{})
	e.must(t, http.StatusCreated, "MKCOL", "/many", nil, "")
	const workers, each = 8, 5
	var wg sync.WaitGroup
	errs := make(chan string, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				name := fmt.Sprintf("/many/w%d-f%d.txt", w, i)
				r := e.alice(t, "PUT", name, nil, strings.Repeat(name, 10))
				if r.status != http.StatusCreated {
					errs <- fmt.Sprintf("PUT %s: %d %s", name, r.status, strings.TrimSpace(r.body))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	r := e.must(t, 207, "PROPFIND", "/many/", map[string]string{"Depth": "1"}, "")
	if n := len(hrefs(t, r.body)) - 1; n != workers*each {
		t.Fatalf("%d files listed, want %d", n, workers*each)
	}
	for w := range workers {
		for i := range each {
			name := fmt.Sprintf("/many/w%d-f%d.txt", w, i)
			if g := e.must(t, http.StatusOK, "GET", name, nil, ""); g.body != strings.Repeat(name, 10) {
				t.Fatalf("%s reads %q", name, g.body)
			}
		}
	}
}
