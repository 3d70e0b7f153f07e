// Package filelock takes exclusive advisory locks on whole open files, the
// way tarn keeps a second process off a node's state files: flock on Unix,
// LockFileEx on Windows. A lock lasts until its file is closed.
package filelock
