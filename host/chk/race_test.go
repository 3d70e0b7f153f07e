//go:build race

package chk

// raceEnabled: the race detector inflates allocation counts.
const raceEnabled = true
