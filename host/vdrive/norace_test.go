//go:build !race

package vdrive_test

const raceEnabled = false
