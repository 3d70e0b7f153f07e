package api

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/tarnfs/tarn/host/introducer"
)

// PageRefresh is how often the status page reloads itself.
const PageRefresh = 5 * time.Second

// page serves the status page: GET / renders what GET /v1/status answers
// as one self-contained HTML page (inline CSS, no scripts, no other
// requests), reloaded every PageRefresh by a meta tag.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	st := s.Status(r.Context())
	var b bytes.Buffer
	if err := pageTmpl.Execute(&b, pageData{Status: st, Now: time.Now(), Refresh: int(PageRefresh / time.Second)}); err != nil {
		s.log.Error("render status page failed", "error", err)
		writeError(w, http.StatusInternalServerError, "render status page: "+err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// Nothing but this page's own inline style; no scripts, no frames.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.WriteHeader(http.StatusOK)
	w.Write(b.Bytes())
}

type pageData struct {
	Status
	Now     time.Time
	Refresh int
}

// RateRow is one line of the page's rates table.
type RateRow struct {
	Name  string
	Value string
}

// RateRows are the rates, sorted by name, with units.
func (d pageData) RateRows() []RateRow {
	var out []RateRow
	for k, v := range d.Rates {
		val := fmt.Sprintf("%.2f/s", v)
		if strings.Contains(k, "bytes") {
			val = humanBytes(int64(v)) + "/s"
		}
		out = append(out, RateRow{Name: k, Value: val})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// RequestRows are the storage server's calls by method, sorted.
func (d pageData) RequestRows() []RateRow {
	if d.Storage == nil {
		return nil
	}
	var out []RateRow
	for k, v := range d.Storage.Requests {
		out = append(out, RateRow{Name: k, Value: fmt.Sprint(v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit || m <= -unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

func shortID(id string) string {
	if len(id) > 16 {
		return id[:16] + "…"
	}
	return id
}

// FreeSpaceText is the server's announced free space as the status page
// and tarn status show it: "unknown" for a server never announced
// (static) or that cannot read its own (it announces the largest figure,
// introducer.FreeSpaceUnknown).
func (s ServerStatus) FreeSpaceText() string {
	if !introducer.FreeSpaceKnown(s.FreeSpace, s.Static, s.ExpiresAt) {
		return "unknown"
	}
	return humanBytes(int64(min(s.FreeSpace, 1<<62)))
}

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"bytes":  humanBytes,
	"ago":    ago,
	"short":  shortID,
	"join":   strings.Join,
	"uptime": func(s float64) string { return time.Duration(s * float64(time.Second)).Round(time.Second).String() },
	"clock":  func(t time.Time) string { return t.UTC().Format("15:04:05") },
	"address": func(a string) string {
		_, rest, ok := strings.Cut(a, "@")
		if ok {
			return rest
		}
		return a
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{{.Refresh}}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tarn · {{.Name}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eee}dl{display:grid;grid-template-columns:max-content auto;gap:.15em 1em;margin:0}dt{color:#666}dd{margin:0}
.ok{color:#176b1a;font-weight:600}.bad{color:#b00020;font-weight:600}.mono{font-family:ui-monospace,monospace;font-size:.92em}
.role{display:inline-block;background:#dde8f5;border-radius:3px;padding:0 .4em;margin-right:.3em}.muted{color:#777}
</style>
</head>
<body>
<h1 id="node-name">{{.Name}}</h1>
<div id="roles">{{range .Roles}}<span class="role">{{.}}</span>{{end}}</div>
<dl>
<dt>node id</dt><dd class="mono" id="node-id">{{.NodeID}}</dd>
<dt>version</dt><dd id="version">{{.Version}}</dd>
<dt>grid</dt><dd>{{.Grid}}</dd>
<dt>uptime</dt><dd id="uptime">{{uptime .Uptime}} (since {{.Started.UTC.Format "2006-01-02 15:04:05"}} UTC)</dd>
</dl>

<h2>Plugins</h2>
<table id="plugins">
<tr><th>kind</th><th>name</th><th>version</th><th>pid</th><th>health</th><th>restarts</th><th>last error</th></tr>
{{range .Plugins}}<tr class="plugin"><td>{{.Kind}}</td><td>{{.Name}}</td><td>{{.Version}}</td><td>{{.Pid}}</td><td class="{{if eq .Health "ok"}}ok{{else}}bad{{end}}">{{.Health}}</td><td>{{.Restarts}}</td><td>{{.LastErr}}</td></tr>
{{else}}<tr><td colspan="7" class="muted">no plugins</td></tr>{{end}}
</table>
{{if or .Servers (.Shares.N) .Introducer}}
<h2>Storage servers: <span id="servers-known">{{.Known}}</span> known, <span id="servers-connected">{{.Conn}}</span> connected</h2>
<table id="servers">
<tr><th>name</th><th>node id</th><th>address</th><th>connected</th><th>free</th><th>last seen</th><th>version</th></tr>
{{range .Servers}}<tr class="server"><td>{{.Nickname}}</td><td class="mono" title="{{.NodeID}}">{{short .NodeID}}</td><td class="mono">{{address .Address}}</td><td class="{{if .Connected}}ok">yes{{else}}bad"{{with .LastError}} title="{{.}}"{{end}}>{{if .LastError}}failing{{else}}no{{end}}{{end}}</td><td>{{.FreeSpaceText}}</td><td>{{if .Static}}static{{else}}{{ago $.Now .LastSeen}}{{end}}{{if .Cached}} (cached){{end}}</td><td>{{.Version}}</td></tr>
{{else}}<tr><td colspan="7" class="muted">no storage servers known yet</td></tr>{{end}}
</table>
{{end}}
{{if .IntroducerLinks}}
<h2>Introducers</h2>
<table id="introducer-links">
<tr><th>introducer</th><th>role</th><th>state</th><th>since (UTC)</th><th>last error</th></tr>
{{range .IntroducerLinks}}<tr class="introducer-link"><td class="mono" title="{{.URL}}">{{address .URL}}</td><td>{{.Role}}</td><td class="{{if .Connected}}ok">connected{{else}}bad">{{if .Refused}}refused{{else}}not connected{{end}}{{end}}</td><td>{{clock .Since}}</td><td>{{.LastError}}</td></tr>
{{end}}
</table>
{{end}}
<h2>Activity</h2>
<table id="counters">
<tr><th>uploads</th><th>downloads</th><th>bytes in</th><th>bytes out</th><th>failures</th></tr>
<tr><td id="uploads">{{.Counters.Uploads}}</td><td id="downloads">{{.Counters.Downloads}}</td><td>{{bytes .Counters.BytesIn}}</td><td>{{bytes .Counters.BytesOut}}</td><td id="failures">{{.Counters.Failures}}</td></tr>
</table>
<p class="muted">Through this node's API since it started. Rates over the last {{printf "%.0f" .RatesOver}} s:</p>
<table id="rates">
<tr><th>counter</th><th>per second</th></tr>
{{range .RateRows}}<tr><td>{{.Name}}</td><td>{{.Value}}</td></tr>
{{else}}<tr><td colspan="2" class="muted">not measured yet</td></tr>{{end}}
</table>
<h2>Recent operations</h2>
<table id="ops">
<tr><th>time (UTC)</th><th>operation</th><th>target</th><th>bytes</th><th>took</th><th>status</th><th>error</th></tr>
{{range .Recent}}<tr class="op"><td>{{clock .Time}}</td><td>{{.Op}}</td><td class="mono">{{.Target}}</td><td>{{bytes .Bytes}}</td><td>{{.Duration}}</td><td class="{{if lt .Status 400}}ok{{else}}bad{{end}}">{{.Status}}</td><td>{{.Error}}</td></tr>
{{else}}<tr><td colspan="7" class="muted">none yet</td></tr>{{end}}
</table>
{{with .WriteBehind}}
<h2>Write-behind of new files' links</h2>
<table id="write-behind">
<tr><th>links not yet made</th><td id="wb-pending">{{.Pending}} in {{.Folders}} folders{{if .Pending}}, oldest {{printf "%.0f" .OldestAge}} s{{end}}</td></tr>
<tr><th>folders failing</th><td id="wb-failing" class="{{if .Failing}}bad{{else}}ok{{end}}">{{.Failing}}{{if .Failing}} ({{.FailingLinks}} links, retried until made){{end}}</td></tr>
<tr><th>failed links to re-link</th><td id="wb-failed" class="{{if .Failed}}bad{{else}}ok{{end}}">{{.Failed}}{{if .Failed}} (tarn links){{end}}{{if .FailedError}} {{.FailedError}}{{end}}</td></tr>
</table>
{{end}}
{{with .Storage}}
<h2>Storage server</h2>
<table id="storage">
<tr><th>space</th><td>{{bytes .SpaceFree}} free of {{bytes .SpaceTotal}} ({{bytes .Reserved}} reserved){{if .SpaceError}} <span class="bad">{{.SpaceError}}</span>{{end}}</td></tr>
<tr><th>shares held</th><td id="shares-held">{{if .HeldCounting}}counting… {{end}}{{.SharesHeld}} ({{bytes .BytesHeld}}){{if .HeldError}} <span class="bad">{{.HeldError}}</span>{{end}}</td></tr>
<tr><th>shares sealed since start</th><td id="shares-sealed">{{.SharesSealed}}</td></tr>
<tr><th>uploads open</th><td>{{.OpenUploads}} ({{bytes .OpenBytes}})</td></tr>
<tr><th>uploads aborted</th><td>{{.UploadsAborted}}</td></tr>
<tr><th>corruption advisories received</th><td id="corruption-advisories">{{.CorruptionAdvice}}</td></tr>
<tr><th>corrupt shares removed</th><td>{{.CorruptRemoved}}</td></tr>
{{range $.RequestRows}}<tr><th>calls: {{.Name}}</th><td>{{.Value}}</td></tr>{{end}}
</table>
{{end}}
{{with .Introducer}}
<h2>Introducer</h2>
<table id="introducer">
<tr><th>announcements held</th><td>{{.Held}}</td></tr>
<tr><th>accepted</th><td>{{.Accepted}}</td></tr>
{{range $k, $v := .Dropped}}<tr><th>dropped: {{$k}}</th><td>{{$v}}</td></tr>{{end}}
</table>
{{end}}
<p class="muted">Reloads every {{.Refresh}} s · <a href="/v1/status">JSON</a> · <a href="/metrics">metrics</a> · {{.Now.UTC.Format "2006-01-02 15:04:05"}} UTC</p>
</body>
</html>
`))
