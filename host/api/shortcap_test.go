package api

import (
	"strings"
	"testing"

	"github.com/tarnfs/tarn/host/cap"
)

// The status page is open to local users and logs travel: a cap is named
// there by kind and storage index, never by a byte of its key or content.
func TestShortCapHidesSecrets(t *testing.T) {
	w, err := cap.NewDirWrite()
	if err != nil {
		t.Fatal(err)
	}
	var key cap.Key
	for i := range key {
		key[i] = byte(i + 1)
	}
	chk := cap.CHK{Key: key, K: 3, N: 5, Size: 1 << 20}
	secretOf := func(s string) string { // the fields after the kind
		_, rest, _ := strings.Cut(strings.TrimPrefix(s, cap.Prefix), ":")
		return rest[:8]
	}
	for _, tc := range []struct {
		name, in, want string
		secret         string // must not appear
	}{
		{"chk read cap", chk.String(), "tarn:chk si=" + chk.StorageIndex().String()[:10] + "…", secretOf(chk.String())},
		{"dir write cap with path", "/v1/fs/" + w.String() + "/docs/a.txt", "/v1/fs/tarn:" + w.Kind() + " si=" + w.ReadCap().Slot.StorageIndex().String()[:10] + "…/docs/a.txt", secretOf(w.String())},
		{"verify cap", chk.Verify().String(), "tarn:chk-verify si=" + chk.StorageIndex().String()[:10] + "…", ""},
		{"bad cap", "tarn:chk:secretsecretsecret", "tarn:chk:(bad cap)", "secretsecret"},
		{"no cap", "/v1/status", "/v1/status", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := shortCap(tc.in)
			if got != tc.want {
				t.Errorf("shortCap(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if tc.secret != "" && strings.Contains(got, tc.secret) {
				t.Errorf("shortCap(%q) = %q shows %q", tc.in, got, tc.secret)
			}
		})
	}
}
