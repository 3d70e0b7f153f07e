//go:build race

package pluginhost_test

// raceEnabled: under the race detector a killed plugin often dies between
// two of the (slowed) calls, so no call is in flight at the kill.
const raceEnabled = true
