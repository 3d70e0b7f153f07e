package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSFTPQuote runs OpenSSH's sftp against a local sftp-server (`-D`, no
// SSH) with batch lines quoted by sftpQuote, on names that a bare line
// would split or unescape, and checks each file arrives under its name.
func TestSFTPQuote(t *testing.T) {
	server := "/usr/lib/openssh/sftp-server"
	if _, err := os.Stat(server); err != nil {
		t.Skip("no OpenSSH sftp-server to run against")
	}
	if _, err := exec.LookPath("sftp"); err != nil {
		t.Skip("no OpenSSH sftp")
	}
	for _, tc := range []struct{ name, file string }{
		{"plain", "plain.bin"},
		{"space", "with space.bin"},
		{"double quote", `say "hi".bin`},
		{"single quote", "it's.bin"},
		{"backslash", `back\slash.bin`},
		{"glob characters", "star*and?.bin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := filepath.Join(t.TempDir(), "src dir"), t.TempDir()
			if err := os.MkdirAll(src, 0o755); err != nil {
				t.Fatal(err)
			}
			want := []byte("bytes of " + tc.file)
			if err := os.WriteFile(filepath.Join(src, tc.file), want, 0o644); err != nil {
				t.Fatal(err)
			}
			batch := filepath.Join(t.TempDir(), "batch")
			line := "put " + sftpQuote(filepath.Join(src, tc.file)) + " " + sftpQuote(filepath.Join(dst, tc.file)) + "\n"
			if err := os.WriteFile(batch, []byte(line), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("sftp", "-b", batch, "-D", server).CombinedOutput()
			if err != nil {
				t.Fatalf("sftp %q: %v\n%s", line, err, out)
			}
			got, err := os.ReadFile(filepath.Join(dst, tc.file))
			if err != nil || !bytes.Equal(got, want) {
				ents, _ := os.ReadDir(dst)
				t.Fatalf("%q did not arrive as itself (%v); the folder holds %v", tc.file, err, ents)
			}
		})
	}
}

// TestRunClientCountsChildren checks that the CPU time runClient reports
// includes what the client's children spent (sshpass runs sftp, which
// runs ssh: the cipher's work is in ssh).
func TestRunClientCountsChildren(t *testing.T) {
	// The parent shell only waits; its child counts to 200,000 (~0.25 s
	// of CPU here, however loaded the machine: a fixed amount of work).
	spin := `sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done'`
	_, cpu, err := runClient(context.Background(), nil, "sh", "-c", spin+"; true")
	if err != nil {
		t.Fatal(err)
	}
	if cpu < 80*time.Millisecond {
		t.Fatalf("cpu %v: the child's CPU time was not counted", cpu)
	}
}

func TestRunClientErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"exit status with its output", []string{"-c", "echo refused by server >&2; exit 3"}, "refused by server"},
		{"long output keeps its end", []string{"-c", "i=0; while [ $i -lt 400 ]; do echo line $i; i=$((i+1)); done; echo the last line; exit 1"}, "the last line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runClient(context.Background(), nil, "sh", tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "sh: ") {
				t.Fatalf("err = %v, want the tool's name and %q", err, tc.want)
			}
			if len(err.Error()) > 1700 {
				t.Fatalf("error of %d bytes: want the end of the output only", len(err.Error()))
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := runClient(ctx, nil, "sleep", "5"); err == nil {
		t.Fatal("a cancelled run did not fail")
	}
}

// TestSFTPBigClientsWithoutTools checks that missing external clients are
// left out with a note, and the in-process ones kept.
func TestSFTPBigClientsWithoutTools(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	r := &Report{}
	cs := sftpBigClients(r, sftpEndpoint{Addr: "127.0.0.1:1"}, t.TempDir())
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.cpu)
	}
	if strings.Join(ids, ",") != "pkgsftp32,pkgsftp255" {
		t.Fatalf("clients %v, want pkg/sftp's two only", ids)
	}
	notes := strings.Join(r.Notes, "\n")
	if !strings.Contains(notes, "OpenSSH's sftp not found") || !strings.Contains(notes, "rclone not found") {
		t.Fatalf("notes %q do not say which tools are missing", notes)
	}
}

func TestVsCLICost(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cli       []Figure
		value     float64
		wantRatio float64
	}{
		{"half as costly as the CLI reads 2", []Figure{{Key: "e2e.cpu.put.8MiB", Value: 8, Unit: "CPU ns/B"}}, 4, 2},
		{"twice as costly reads 0.5", []Figure{{Key: "e2e.cpu.put.8MiB", Value: 8, Unit: "CPU ns/B"}}, 16, 0.5},
		{"no CLI figure", nil, 16, 0},
		{"a CLI figure of 0", []Figure{{Key: "e2e.cpu.put.8MiB", Unit: "CPU ns/B"}}, 16, 0},
		{"a measured 0", []Figure{{Key: "e2e.cpu.put.8MiB", Value: 8, Unit: "CPU ns/B"}}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Report{Figures: tc.cli}
			f := vsCLICost(r, Figure{Key: "e2e.cpu.sftp.x.put.8MiB", Value: tc.value, Unit: "CPU ns/B"}, "e2e.cpu.put.8MiB")
			if f.Ratio != tc.wantRatio {
				t.Fatalf("ratio %v, want %v (%+v)", f.Ratio, tc.wantRatio, f)
			}
			if (f.Ceiling != "") != (tc.wantRatio != 0) {
				t.Fatalf("ceiling %q with ratio %v", f.Ceiling, f.Ratio)
			}
		})
	}
}
