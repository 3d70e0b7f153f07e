package webdav

import (
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Clients that sync (rclone with vendor owncloud, nextcloud or fastmail,
// the ownCloud and Nextcloud desktop clients) keep a file's mtime with
// one of two ownCloud conventions, both in Unix seconds:
//
//   - the X-OC-Mtime header of the PUT that stores the file, answered
//     with "X-OC-Mtime: accepted" when it was kept;
//   - a PROPPATCH of {DAV:}lastmodified (rclone 1.64 and later).
//
// Without them a sync tool cannot compare times and either re-sends every
// file each run or compares sizes only (and misses same-size changes).
const ocMtimeHeader = "X-OC-Mtime"

// propLastModified is the ownCloud mtime setter; it sets the entry's
// mtime and is not stored (getlastmodified shows it).
var propLastModified = xml.Name{Space: "DAV:", Local: "lastmodified"}

// Unix seconds of years 1 and 9999: the times HTTP dates can carry.
const (
	minUnix = -62135596800
	maxUnix = 253402300799
)

var errBadMtime = errors.New("bad mtime")

// parseUnixTime reads Unix seconds, with an optional fraction
// ("1700000000", "1700000000.25"), as ownCloud clients send them.
func parseUnixTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	whole, frac, hasFrac := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || whole == "" || whole == "+" || whole == "-" {
		return time.Time{}, fmt.Errorf("%w: %q is not Unix seconds", errBadMtime, s)
	}
	if sec < minUnix || sec > maxUnix {
		return time.Time{}, fmt.Errorf("%w: %q is out of range (years 1 to 9999)", errBadMtime, s)
	}
	var ns int64
	if hasFrac {
		if frac == "" || len(frac) > 9 || strings.Trim(frac, "0123456789") != "" {
			return time.Time{}, fmt.Errorf("%w: %q is not Unix seconds", errBadMtime, s)
		}
		n, _ := strconv.ParseInt(frac, 10, 64)
		ns = n * int64(math.Pow10(9-len(frac)))
		if strings.HasPrefix(whole, "-") {
			ns = -ns
		}
	}
	return time.Unix(sec, ns).UTC(), nil
}

// putMtime is the mtime a PUT asks for in X-OC-Mtime (ok false: none).
func putMtime(r *http.Request) (t time.Time, ok bool, err error) {
	v := r.Header.Get(ocMtimeHeader)
	if v == "" {
		return time.Time{}, false, nil
	}
	t, err = parseUnixTime(v)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("%s header: %w", ocMtimeHeader, err)
	}
	return t, true, nil
}
