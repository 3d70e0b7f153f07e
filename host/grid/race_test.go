//go:build race

package grid_test

// raceEnabled: the race detector slows everything and inflates memory.
const raceEnabled = true
