//go:build !race

package refusal

const raceEnabled = false
