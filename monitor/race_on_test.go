//go:build race

package monitor_test

// raceEnabled shrinks the simulation under the race detector, which slows
// the simulator about tenfold.
const raceEnabled = true
