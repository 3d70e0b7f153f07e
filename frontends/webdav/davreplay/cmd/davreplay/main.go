// Command davreplay copies a local folder of files to a WebDAV server and
// back with the requests rclone 1.60 sends per file, without rclone's
// pacer (package davreplay), and prints files/s each way:
//
//	davreplay -url http://127.0.0.1:8080/ -user dev -password-env PW -folder small ./files
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tarnfs/tarn/frontends/webdav/davreplay"
)

func main() {
	cfg := davreplay.Config{}
	flag.StringVar(&cfg.URL, "url", "", "the server's root collection")
	flag.StringVar(&cfg.User, "user", "", "Basic user")
	pwEnv := flag.String("password-env", "DAVREPLAY_PASSWORD", "environment variable holding the password")
	flag.StringVar(&cfg.Folder, "folder", "davreplay", "collection the files go to")
	flag.IntVar(&cfg.Workers, "workers", 4, "files in flight (rclone's --transfers)")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after this long")
	flag.Parse()
	if flag.NArg() != 1 || cfg.URL == "" {
		fmt.Fprintln(os.Stderr, "usage: davreplay -url URL -user USER [-password-env VAR] [-folder F] [-workers N] LOCAL-FOLDER")
		os.Exit(2)
	}
	cfg.Password = os.Getenv(*pwEnv)
	files, err := load(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "davreplay:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	up, err := davreplay.Up(ctx, cfg, files)
	if err != nil {
		fmt.Fprintln(os.Stderr, "davreplay: up:", err)
		os.Exit(1)
	}
	down, err := davreplay.Down(ctx, cfg, files)
	if err != nil {
		fmt.Fprintln(os.Stderr, "davreplay: down:", err)
		os.Exit(1)
	}
	n := float64(len(files))
	fmt.Printf("%d files: up %.1f files/s, down %.1f files/s\n", len(files), n/up.Seconds(), n/down.Seconds())
}

// load reads the regular files of dir (not its subfolders).
func load(dir string) ([]davreplay.File, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	var out []davreplay.File
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", e.Name(), err)
		}
		out = append(out, davreplay.File{Name: e.Name(), Data: b})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no files", dir)
	}
	return out, nil
}
