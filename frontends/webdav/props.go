package webdav

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/webdav"

	"github.com/tarnfs/tarn/host/vdrive"
)

// Dead properties live in the entry's vdrive metadata (Extra), one key
// per property in Clark notation ("dav:{namespace}local"); the value is
// the xml:lang, a newline and the property's self-contained inner XML.
const propPrefix = "dav:"

func propKey(n xml.Name) string { return propPrefix + "{" + n.Space + "}" + n.Local }

func parsePropKey(k string) (xml.Name, bool) {
	rest, ok := strings.CutPrefix(k, propPrefix+"{")
	if !ok {
		return xml.Name{}, false
	}
	space, local, ok := strings.Cut(rest, "}")
	if !ok || local == "" {
		return xml.Name{}, false
	}
	return xml.Name{Space: space, Local: local}, true
}

func propValue(p webdav.Property) string { return p.Lang + "\n" + string(p.InnerXML) }

func parsePropValue(n xml.Name, v string) webdav.Property {
	lang, inner, _ := strings.Cut(v, "\n")
	return webdav.Property{XMLName: n, Lang: lang, InnerXML: []byte(inner)}
}

// Windows sends these with every file it writes (PROPPATCH); they are
// kept as dead properties, and Win32LastModifiedTime also sets the
// entry's mtime so getlastmodified shows what Explorer set.
const msNamespace = "urn:schemas-microsoft-com:"

var win32Mtime = xml.Name{Space: msNamespace, Local: "Win32LastModifiedTime"}

// Computed properties, served through DeadProps but never stored or set.
var (
	propLockDiscovery = xml.Name{Space: "DAV:", Local: "lockdiscovery"}
	propSupportedLock = xml.Name{Space: "DAV:", Local: "supportedlock"}
	propQuotaAvail    = xml.Name{Space: "DAV:", Local: "quota-available-bytes"}
	propQuotaUsed     = xml.Name{Space: "DAV:", Local: "quota-used-bytes"}
)

var computed = map[xml.Name]bool{propLockDiscovery: true, propSupportedLock: true, propQuotaAvail: true, propQuotaUsed: true}

const supportedLockXML = `<D:lockentry xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>` +
	`<D:lockentry xmlns:D="DAV:"><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>`

// DeadProps are the stored properties of the entry plus the computed
// ones: lockdiscovery, supportedlock and, on collections, the quota.
func (f *file) DeadProps() (map[xml.Name]webdav.Property, error) {
	m := map[xml.Name]webdav.Property{}
	if f.info != nil {
		for k, v := range f.info.Metadata().Extra {
			if n, ok := parsePropKey(k); ok {
				m[n] = parsePropValue(n, v)
			}
		}
	}
	if p, ok := m[win32Mtime]; ok && f.info != nil && !f.info.ModTime().IsZero() {
		// Setting it sets the mtime; reading it shows the mtime, which
		// a later PUT or another client's change may have moved since.
		p.InnerXML = []byte(f.info.ModTime().UTC().Format(http.TimeFormat))
		m[win32Mtime] = p
	}
	if supportedLockOnce(f.ctx, f.name) {
		m[propSupportedLock] = webdav.Property{XMLName: propSupportedLock, InnerXML: []byte(supportedLockXML)}
	}
	m[propLockDiscovery] = webdav.Property{XMLName: propLockDiscovery, InnerXML: []byte(f.fsys.ls.discovery(f.name, time.Now(), f.fsys.prefix))}
	if f.info != nil && f.info.IsDir() && f.fsys.quota != nil {
		if q, ok := f.quota(); ok {
			m[propQuotaAvail] = webdav.Property{XMLName: propQuotaAvail, InnerXML: []byte(strconv.FormatInt(q.Available, 10))}
			if q.Used >= 0 {
				m[propQuotaUsed] = webdav.Property{XMLName: propQuotaUsed, InnerXML: []byte(strconv.FormatInt(q.Used, 10))}
			}
		}
	}
	return m, nil
}

// quota asks for the quota once per request (a Depth 1 listing of many
// directories asks once).
func (f *file) quota() (Quota, bool) {
	c := cacheOf(f.ctx)
	if c == nil {
		q, err := f.fsys.quota(f.ctx)
		return q, err == nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.qdone {
		q, err := f.fsys.quota(f.ctx)
		c.quota, c.qerr, c.qdone = &q, err, true
	}
	return *c.quota, c.qerr == nil
}

// Patch sets and removes dead properties, all or none. Computed
// properties cannot be set (403, the others 424).
func (f *file) Patch(patches []webdav.Proppatch) ([]webdav.Propstat, error) {
	if f.w != nil && f.info == nil {
		// A new file: COPY copies the source's properties, computed ones
		// included, before the file is linked. Keep the stored ones and
		// set them when it is.
		for _, p := range patches {
			q := webdav.Proppatch{Remove: p.Remove}
			for _, pr := range p.Props {
				if !computed[pr.XMLName] {
					q.Props = append(q.Props, pr)
				}
			}
			// Only stored properties cost a change once linked: a
			// file with none is copied with its link alone.
			if len(q.Props) > 0 {
				f.w.props = append(f.w.props, q)
			}
		}
		return okStat(patches), nil
	}
	var bad bool
	for _, p := range patches {
		for _, pr := range p.Props {
			if computed[pr.XMLName] {
				bad = true
			}
		}
	}
	if !bad {
		if out, invalid := badMtimes(patches); invalid {
			return out, nil
		}
	}
	if bad {
		forbidden := webdav.Propstat{Status: http.StatusForbidden, XMLError: `<D:cannot-modify-protected-property xmlns:D="DAV:"/>`}
		dep := webdav.Propstat{Status: webdav.StatusFailedDependency}
		for _, p := range patches {
			for _, pr := range p.Props {
				if computed[pr.XMLName] {
					forbidden.Props = append(forbidden.Props, webdav.Property{XMLName: pr.XMLName})
				} else {
					dep.Props = append(dep.Props, webdav.Property{XMLName: pr.XMLName})
				}
			}
		}
		out := []webdav.Propstat{forbidden}
		if len(dep.Props) > 0 {
			out = append(out, dep)
		}
		return out, nil
	}
	return f.applyPatch(patches)
}

func okStat(patches []webdav.Proppatch) []webdav.Propstat {
	st := webdav.Propstat{Status: http.StatusOK}
	for _, p := range patches {
		for _, pr := range p.Props {
			st.Props = append(st.Props, webdav.Property{XMLName: pr.XMLName})
		}
	}
	return []webdav.Propstat{st}
}

func (f *file) applyPatch(patches []webdav.Proppatch) ([]webdav.Propstat, error) {
	err := f.fsys.d.SetMetadata(f.ctx, f.name, func(m *vdrive.Metadata) error {
		if m.Extra == nil {
			m.Extra = map[string]string{}
		}
		for _, p := range patches {
			for _, pr := range p.Props {
				k := propKey(pr.XMLName)
				if pr.XMLName == propLastModified {
					// ownCloud's mtime setter: sets, is not kept.
					delete(m.Extra, k)
					if !p.Remove {
						t, _ := parseUnixTime(string(pr.InnerXML)) // checked in Patch
						m.Mtime = t
					}
					continue
				}
				if p.Remove {
					delete(m.Extra, k)
					continue
				}
				m.Extra[k] = propValue(pr)
				if pr.XMLName == win32Mtime {
					if t, err := http.ParseTime(strings.TrimSpace(string(pr.InnerXML))); err == nil {
						m.Mtime = t.UTC()
					}
				}
			}
		}
		return nil
	})
	// vdrive refuses metadata over its limits (keys, key and value
	// sizes) as invalid; for the root that means it has no entry.
	if errors.Is(err, fs.ErrInvalid) && clean(f.name) != "/" {
		st := webdav.Propstat{Status: webdav.StatusInsufficientStorage}
		for _, p := range patches {
			for _, pr := range p.Props {
				st.Props = append(st.Props, webdav.Property{XMLName: pr.XMLName})
			}
		}
		return []webdav.Propstat{st}, nil
	}
	if err != nil {
		// The root has no entry to hold properties; a read-only drive
		// cannot change any.
		if errors.Is(err, fs.ErrPermission) || (errors.Is(err, fs.ErrInvalid) && clean(f.name) == "/") {
			st := okStat(patches)
			st[0].Status = http.StatusForbidden
			return st, nil
		}
		return nil, err
	}
	return okStat(patches), nil
}

// badMtimes answers a PROPPATCH that sets {DAV:}lastmodified to what is
// not Unix seconds: 409 for it (RFC 4918 9.2: a value whose semantics do
// not fit the property), 424 for the rest; nothing is set.
func badMtimes(patches []webdav.Proppatch) ([]webdav.Propstat, bool) {
	conflict := webdav.Propstat{Status: http.StatusConflict, ResponseDescription: "lastmodified takes Unix seconds"}
	dep := webdav.Propstat{Status: webdav.StatusFailedDependency}
	for _, p := range patches {
		for _, pr := range p.Props {
			if pr.XMLName == propLastModified && !p.Remove {
				if _, err := parseUnixTime(string(pr.InnerXML)); err != nil {
					conflict.Props = append(conflict.Props, webdav.Property{XMLName: pr.XMLName})
					continue
				}
			}
			dep.Props = append(dep.Props, webdav.Property{XMLName: pr.XMLName})
		}
	}
	if len(conflict.Props) == 0 {
		return nil, false
	}
	out := []webdav.Propstat{conflict}
	if len(dep.Props) > 0 {
		out = append(out, dep)
	}
	return out, true
}

// propfindKind is what a PROPFIND asks for.
type propfindKind int

const (
	propfindProps    propfindKind = iota // named properties
	propfindAllprop                      // allprop, or an empty body
	propfindPropname                     // property names only
)

// propfindKindOf reads what a PROPFIND body asks for (a body that does
// not parse is x/net/webdav's to refuse).
func propfindKindOf(body []byte) propfindKind {
	if len(bytes.TrimSpace(body)) == 0 {
		return propfindAllprop
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	depth := 0
	for {
		t, err := d.Token()
		if err != nil {
			return propfindProps
		}
		switch t := t.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && t.Name.Space == "DAV:" {
				switch t.Name.Local {
				case "allprop":
					return propfindAllprop
				case "propname":
					return propfindPropname
				case "prop":
					return propfindProps
				}
			}
		case xml.EndElement:
			depth--
		}
	}
}

// supportedLockOnce reports whether the dead properties of name, asked
// for now, should carry supportedlock. x/net/webdav lists its live
// supportedlock (exclusive locks only) among the names of allprop and
// propname, and then adds the dead properties' names: with ours there,
// the answer held supportedlock twice. For propname the live name
// alone is listed; for allprop, x/net/webdav asks for the names first
// (left out here) and the values after (ours given, as it takes a dead
// value over the live one), so the property appears once and says that
// shared locks work too.
func supportedLockOnce(ctx context.Context, name string) bool {
	c := cacheOf(ctx)
	if c == nil {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.listAll {
	case propfindPropname:
		return false
	case propfindAllprop:
		if c.listed == nil {
			c.listed = map[string]bool{}
		}
		if !c.listed[name] {
			c.listed[name] = true
			return false
		}
	}
	return true
}
