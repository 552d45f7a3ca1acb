package bench

import (
	"math"
	"math/rand/v2"
	"sort"
)

// z95 is the normal quantile of a two-sided 95% interval.
const z95 = 1.96

// CI is a two-sided 95% confidence interval [low, high].
type CI [2]float64

// Wilson returns k/n and its 95% Wilson score interval. Wilson rather than
// the normal approximation because rates here are often 0 or 1 (a scripted
// upstream) or tiny (a well-behaved model), where the normal interval
// collapses to a point.
func Wilson(k, n int) (float64, CI) {
	if n <= 0 {
		return 0, CI{0, 1}
	}
	p := float64(k) / float64(n)
	nn := float64(n)
	den := 1 + z95*z95/nn
	c := (p + z95*z95/(2*nn)) / den
	h := z95 * math.Sqrt(p*(1-p)/nn+z95*z95/(4*nn*nn)) / den
	return p, CI{math.Max(0, c-h), math.Min(1, c+h)}
}

// MeanCI returns the mean of xs and its 95% normal interval; with fewer than
// two values the interval is the point itself.
func MeanCI(xs []float64) (float64, CI) {
	n := float64(len(xs))
	if n == 0 {
		return 0, CI{}
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	m := s / n
	if n < 2 {
		return m, CI{m, m}
	}
	var ss float64
	for _, x := range xs {
		ss += (x - m) * (x - m)
	}
	h := z95 * math.Sqrt(ss/(n-1)) / math.Sqrt(n)
	return m, CI{m - h, m + h}
}

// Bootstrap returns the 2.5th and 97.5th percentiles of stat over reps
// resamples of n row indices drawn with replacement from a PCG stream
// seeded by seed, so that a report is reproducible.
func Bootstrap(n, reps int, seed uint64, stat func(idx []int) float64) CI {
	if n == 0 || reps <= 0 {
		return CI{}
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	idx := make([]int, n)
	vals := make([]float64, reps)
	for b := range vals {
		for i := range idx {
			idx[i] = r.IntN(n)
		}
		vals[b] = stat(idx)
	}
	return percentileCI(vals)
}

// percentileCI sorts vals and returns its 2.5th and 97.5th percentiles.
func percentileCI(vals []float64) CI {
	sort.Float64s(vals)
	q := func(p float64) float64 {
		i := p * float64(len(vals)-1)
		lo := int(math.Floor(i))
		hi := min(lo+1, len(vals)-1)
		return vals[lo] + (i-float64(lo))*(vals[hi]-vals[lo])
	}
	return CI{q(0.025), q(0.975)}
}

// Contains reports whether x lies in the closed interval.
func (c CI) Contains(x float64) bool { return x >= c[0] && x <= c[1] }
