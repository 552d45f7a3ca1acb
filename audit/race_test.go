//go:build race

package audit_test

// raceEnabled scales the tamper suite down under the race detector, which
// slows the signature arithmetic tenfold and adds no coverage to it.
const raceEnabled = true
