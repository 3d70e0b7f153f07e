//go:build acceptance

package acceptance

// SFTP fast path against real clients and a real `tarn dev` grid: files
// copied through one sshfs mount at once (one SFTP session, reads and
// writes answered in the frontend's read loop), rclone with 8 transfers
// up and multi-thread streams down (one file read at several offsets on
// several handles), and OpenSSH's sftp showing the account as owner of a
// file as of a folder's entries. Every byte compared by sha256.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestSFTPQAClients(t *testing.T) {
	_, ep := sftpGrid(t, "rclone", "sshpass", "sftp")
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	want := map[string]string{}
	for i, n := range []int64{0, 1, 32769, 1 << 20, 3<<20 + 7, 9<<20 + 3, 17 << 20, 200_000} {
		name := fmt.Sprintf("q%d.bin", i)
		b := genBytes(uint64(500+i), n)
		os.WriteFile(filepath.Join(src, name), b, 0o644)
		want[name] = genHash(uint64(500+i), n)
	}

	t.Run("rclone", func(t *testing.T) {
		obscured, err := exec.Command("rclone", "obscure", ep.Password).Output()
		if err != nil {
			t.Fatal(err)
		}
		env := []string{
			"RCLONE_CONFIG=" + filepath.Join(t.TempDir(), "rclone.conf"),
			"RCLONE_CONFIG_TARN_TYPE=sftp",
			"RCLONE_CONFIG_TARN_HOST=" + ep.host(),
			"RCLONE_CONFIG_TARN_PORT=" + ep.port(),
			"RCLONE_CONFIG_TARN_USER=" + ep.User,
			"RCLONE_CONFIG_TARN_PASS=" + strings.TrimSpace(string(obscured)),
			"RCLONE_CONFIG_TARN_SHELL_TYPE=none",
			"RCLONE_CONFIG_TARN_DISABLE_HASHCHECK=true",
		}
		for _, args := range [][]string{
			{"copy", "--transfers", "8", src, "tarn:/qa"},
			{"check", "--download", src, "tarn:/qa"},
			{"copy", "--transfers", "8", "--multi-thread-streams", "4", "--multi-thread-cutoff", "1M", "tarn:/qa", filepath.Join(t.TempDir(), "down")},
		} {
			if out, err := sftpRun(t, env, "rclone", args...); err != nil {
				t.Fatalf("rclone %s: %v\n%s", args[0], err, clip(out))
			}
			if args[0] == "copy" && strings.HasPrefix(args[len(args)-2], "tarn:") {
				got := sftpTreeHashes(t, args[len(args)-1])
				for name, h := range want {
					if got[name] != h {
						t.Errorf("%s downloaded with multi-thread streams: sha256 %.12s, want %.12s", name, got[name], h)
					}
				}
			}
		}
	})

	t.Run("sshfs", func(t *testing.T) {
		for _, tool := range []string{"sshfs", "fusermount"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s is not installed", tool)
			}
		}
		mnt := t.TempDir()
		// password_stdin: sshfs hands the password to ssh itself (under
		// sshpass the mount died with sshpass's terminal).
		args := append([]string{"-p", ep.port(), "-o", "password_stdin"}, sftpSSHOpts...)
		args = append(args, ep.User+"@"+ep.host()+":/", mnt)
		cmd := exec.Command("sshfs", args...)
		cmd.Stdin = strings.NewReader(ep.Password + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sshfs: %v\n%s", err, out)
		}
		t.Cleanup(func() { exec.Command("fusermount", "-u", "-z", mnt).Run() })
		if err := os.Mkdir(filepath.Join(mnt, "fs"), 0o755); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for name := range want {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, _ := os.ReadFile(filepath.Join(src, name))
				if err := os.WriteFile(filepath.Join(mnt, "fs", name), b, 0o644); err != nil {
					t.Errorf("write %s through the mount: %v", name, err)
				}
			}()
		}
		wg.Wait()
		got := sftpTreeHashes(t, filepath.Join(mnt, "fs"))
		for name, h := range want {
			if got[name] != h {
				t.Errorf("%s read back through the mount: sha256 %.12s, want %.12s", name, got[name], h)
			}
		}
	})

	t.Run("ls owner", func(t *testing.T) {
		out, err := sftpBatch(t, ep, ep.User, ep.Password, "ls -l /qa/q1.bin\nls -l /qa\n")
		if err != nil {
			t.Fatalf("sftp: %v\n%s", err, out)
		}
		n := 0
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 9 && strings.HasSuffix(l, "q1.bin") {
				n++
				if f[2] != ep.User || f[3] != ep.User {
					t.Errorf("owner and group of %q, want %s", l, ep.User)
				}
			}
		}
		if n != 2 {
			t.Fatalf("want q1.bin listed twice:\n%s", out)
		}
	})
}
