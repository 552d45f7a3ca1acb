//go:build !unix

package refusal

// cpuTime is not measured here; the benchmark then reports wall-clock MB/s only.
func cpuTime() float64 { return 0 }
