//go:build unix && !(linux || freebsd || netbsd || openbsd || dragonfly)

package dataplane

// socketpair makes a close-on-exec stream socketpair where SOCK_CLOEXEC does
// not exist (macOS).
func socketpair() ([2]int, error) { return socketpairForkLock() }
