package identity

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/windows"
)

// CheckPrivate refuses a file holding a key, a secret or a write cap that
// others may read (ErrTooOpen), saying how to fix it. Windows has no mode
// bits (Go reports every writable file as 0666), so the file's access list
// is read instead: a file without one, or one that lets Everyone,
// Authenticated Users or the local Users group read it, is too open. Files
// tarn makes under the user's profile inherit its access list, which is
// the user's, SYSTEM's and the Administrators' alone.
func CheckPrivate(path string, st os.FileInfo) error {
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("%s: read its access list: %w", path, err)
	}
	dacl, _, err := sd.DACL()
	if err != nil || dacl == nil {
		return fmt.Errorf("%s is %w (no access list: anyone may read it): run `icacls \"%s\" /inheritance:r /grant:r \"%%USERNAME%%:F\"`", path, ErrTooOpen, path)
	}
	const readAccess = windows.FILE_READ_DATA | windows.GENERIC_READ | windows.GENERIC_ALL
	for i := uint32(0); i < uint32(dacl.AceCount); i++ {
		var ace *windows.ACCESS_ALLOWED_ACE
		if err := windows.GetAce(dacl, i, &ace); err != nil {
			return fmt.Errorf("%s: read its access list: %w", path, err)
		}
		if ace.Header.AceType != windows.ACCESS_ALLOWED_ACE_TYPE || ace.Mask&readAccess == 0 {
			continue
		}
		sid := (*windows.SID)(unsafe.Pointer(&ace.SidStart))
		for _, who := range []struct {
			t    windows.WELL_KNOWN_SID_TYPE
			name string
		}{
			{windows.WinWorldSid, "Everyone"},
			{windows.WinAuthenticatedUserSid, "Authenticated Users"},
			{windows.WinBuiltinUsersSid, "Users"},
		} {
			if sid.IsWellKnown(who.t) {
				return fmt.Errorf("%s is %w (%s may read it): run `icacls \"%s\" /inheritance:r /grant:r \"%%USERNAME%%:F\"`", path, ErrTooOpen, who.name, path)
			}
		}
	}
	return nil
}
