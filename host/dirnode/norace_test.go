//go:build !race

package dirnode

const raceEnabled = false
