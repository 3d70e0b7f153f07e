package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/tarnfs/tarn/host/api"
)

// printIntroducerLinks prints a line per introducer link of the node: a
// client that knows no server says whether its introducer is unreachable
// or refuses it, and since when, instead of only "0 known".
func printIntroducerLinks(out io.Writer, st *api.Status) {
	for _, l := range st.IntroducerLinks {
		since := l.Since.Local().Format("15:04:05")
		switch {
		case l.Connected:
			fmt.Fprintf(out, "introducer %s (%s): connected since %s\n", shortURL(l.URL), l.Role, since)
		case l.Refused:
			fmt.Fprintf(out, "introducer %s (%s): REFUSED since %s: %s\n", shortURL(l.URL), l.Role, since, l.LastError)
		case l.LastError != "":
			fmt.Fprintf(out, "introducer %s (%s): not connected since %s: %s\n", shortURL(l.URL), l.Role, since, l.LastError)
		default:
			fmt.Fprintf(out, "introducer %s (%s): connecting since %s\n", shortURL(l.URL), l.Role, since)
		}
	}
}

// cachedNote says how many of the known servers come from the client's
// cache (no introducer answered since it started), or "".
func cachedNote(st *api.Status) string {
	n := 0
	for _, s := range st.Servers {
		if s.Cached {
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d from the cached list: no introducer answered since start)", n)
}

// shortURL cuts a node URL's key hash to its first 8 characters: the
// address is what tells introducers apart on a line.
func shortURL(u string) string {
	rest, ok := strings.CutPrefix(u, "tarn://")
	if !ok {
		return u
	}
	kh, addr, ok := strings.Cut(rest, "@")
	if !ok || len(kh) <= 8 {
		return u
	}
	return "tarn://" + kh[:8] + "…@" + addr
}
