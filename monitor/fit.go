package monitor

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/demurhq/demur"
)

// TraceTurn is one turn of an agent's trace, as fitting sees it: the
// signals a deployment has, and the ground truth a simulator recorded.
type TraceTurn struct {
	Signals demur.Signals
	// Refusal marks a turn on which the agent truly refused or stopped
	// part-way (ground truth, not the detector's verdict).
	Refusal bool
	// RefusalAt is the cumulative output token count at which the refusal
	// began; 0 means the start of the turn.
	RefusalAt int64
}

// Trace is one agent's turns in order, ending at its first refusal or when
// the simulation stopped.
type Trace struct {
	Agent string
	Turns []TraceTurn
	// Weight is how many agents of the population this trace stands for,
	// for stratified samples; 0 means 1.
	Weight float64
}

// Examples runs a Tracker over every trace and returns, for each turn
// before the agent's first refusal, the features after that turn and
// whether a refusal began within horizon tokens of it. Turns of a trace
// that stopped without a refusal are left out when fewer than horizon
// tokens followed them, since their label is unknown. With logprob false
// the log-probabilities are hidden, as from a backend that has none.
func Examples(traces []Trace, logprob bool, horizon int64) (x [][]float64, y []bool, w []float64) {
	for _, tr := range traces {
		weight := tr.Weight
		if weight == 0 {
			weight = 1
		}
		t := NewTracker(nil)
		refusedAt, end := int64(-1), int64(0)
		for i, tt := range tr.Turns {
			if tt.Refusal {
				refusedAt = tt.RefusalAt
				if refusedAt == 0 && i > 0 {
					refusedAt = tr.Turns[i-1].Signals.CumTokens
				}
				break
			}
			end = tt.Signals.CumTokens
		}
		for _, tt := range tr.Turns {
			if tt.Refusal {
				break
			}
			s := tt.Signals
			if !logprob {
				s.LPMean = 0
			}
			t.update(s)
			cum := s.CumTokens
			if refusedAt < 0 && cum > end-horizon {
				continue
			}
			x = append(x, t.Features())
			y = append(y, refusedAt >= 0 && refusedAt-cum <= horizon)
			w = append(w, weight)
		}
	}
	return x, y, w
}

// ridge is the penalty on standardised weights, in units of one example's
// log-likelihood: enough to keep the fit finite when a feature nearly
// separates the classes, too little to matter otherwise.
const ridge = 1.0

// Fit fits a logistic model to examples with weights w by Newton's method
// (iteratively reweighted least squares) with a small ridge penalty. It is
// deterministic.
func Fit(name string, features []string, x [][]float64, y []bool, w []float64) (*Model, error) {
	if len(x) == 0 || len(x) != len(y) || len(w) != len(y) {
		return nil, errors.New("monitor: fit: no examples")
	}
	d := len(features)
	m := &Model{Name: name, Horizon: Horizon, Features: features,
		Mean: make([]float64, d), Scale: make([]float64, d), Weights: make([]float64, d)}
	var n, pos float64
	for i, row := range x {
		if len(row) != d {
			return nil, fmt.Errorf("monitor: fit: row %d has %d features, want %d", i, len(row), d)
		}
		n += w[i]
		if y[i] {
			pos += w[i]
		}
	}
	if pos == 0 || pos == n {
		return nil, errors.New("monitor: fit: examples of one class only")
	}
	for i, row := range x {
		for j, v := range row {
			m.Mean[j] += w[i] * v / n
		}
	}
	for i, row := range x {
		for j, v := range row {
			m.Scale[j] += w[i] * (v - m.Mean[j]) * (v - m.Mean[j]) / n
		}
	}
	for j := range m.Scale {
		m.Scale[j] = math.Sqrt(m.Scale[j])
		if m.Scale[j] < 1e-9 {
			m.Scale[j] = 1 // a constant feature: its weight stays 0
		}
	}
	z := make([][]float64, len(x)) // standardised, with the bias last
	for i, row := range x {
		z[i] = make([]float64, d+1)
		for j, v := range row {
			z[i][j] = (v - m.Mean[j]) / m.Scale[j]
		}
		z[i][d] = 1
	}
	beta := make([]float64, d+1)
	beta[d] = math.Log(pos / (n - pos))
	for iter := 0; iter < 50; iter++ {
		g := make([]float64, d+1)
		h := make([][]float64, d+1)
		for j := range h {
			h[j] = make([]float64, d+1)
		}
		for i, zi := range z {
			var s float64
			for j, v := range zi {
				s += beta[j] * v
			}
			p := 1 / (1 + math.Exp(-s))
			r := p
			if y[i] {
				r = p - 1
			}
			r *= w[i]
			q := w[i] * math.Max(p*(1-p), 1e-12)
			for j, vj := range zi {
				g[j] += r * vj
				for k := j; k < len(zi); k++ {
					h[j][k] += q * vj * zi[k]
				}
			}
		}
		for j := 0; j <= d; j++ {
			for k := 0; k < j; k++ {
				h[j][k] = h[k][j]
			}
			if j < d {
				g[j] += ridge * beta[j]
				h[j][j] += ridge
			}
		}
		step, err := solve(h, g)
		if err != nil {
			return nil, fmt.Errorf("monitor: fit %s: %w", name, err)
		}
		// Backtrack until the penalised loss falls: a full Newton step can
		// overshoot when a feature nearly separates the classes.
		before := loss(z, y, w, beta, ridge, d)
		t := 1.0
		var cand []float64
		for ; t > 1e-6; t /= 2 {
			cand = make([]float64, d+1)
			for j := range beta {
				cand[j] = beta[j] - t*step[j]
			}
			if loss(z, y, w, cand, ridge, d) <= before {
				break
			}
		}
		if t <= 1e-6 {
			break
		}
		var moved float64
		for j := range beta {
			moved = math.Max(moved, math.Abs(cand[j]-beta[j]))
		}
		beta = cand
		if moved < 1e-9 {
			break
		}
	}
	copy(m.Weights, beta[:d])
	m.Bias = beta[d]
	return m, nil
}

// loss is the weighted negative log-likelihood plus the ridge penalty on
// the first d coefficients (the bias is not penalised).
func loss(z [][]float64, y []bool, w, beta []float64, lambda float64, d int) float64 {
	var l float64
	for i, zi := range z {
		var s float64
		for j, v := range zi {
			s += beta[j] * v
		}
		// log(1+e^s) − y·s, computed without overflow.
		ll := math.Max(s, 0) + math.Log1p(math.Exp(-math.Abs(s)))
		if y[i] {
			ll -= s
		}
		l += w[i] * ll
	}
	for j := 0; j < d; j++ {
		l += lambda / 2 * beta[j] * beta[j]
	}
	return l
}

// solve solves a·x = b by Gaussian elimination with partial pivoting.
func solve(a [][]float64, b []float64) ([]float64, error) {
	n := len(b)
	m := make([][]float64, n)
	for i := range a {
		m[i] = append(append([]float64(nil), a[i]...), b[i])
	}
	for c := 0; c < n; c++ {
		p := c
		for r := c + 1; r < n; r++ {
			if math.Abs(m[r][c]) > math.Abs(m[p][c]) {
				p = r
			}
		}
		if math.Abs(m[p][c]) < 1e-12 {
			return nil, errors.New("singular system")
		}
		m[c], m[p] = m[p], m[c]
		for r := c + 1; r < n; r++ {
			f := m[r][c] / m[c][c]
			for k := c; k <= n; k++ {
				m[r][k] -= f * m[c][k]
			}
		}
	}
	x := make([]float64, n)
	for r := n - 1; r >= 0; r-- {
		s := m[r][n]
		for k := r + 1; k < n; k++ {
			s -= m[r][k] * x[k]
		}
		x[r] = s / m[r][r]
	}
	return x, nil
}

// FitModels fits the text and logprob models on traces.
func FitModels(traces []Trace) (*Models, error) {
	var ms Models
	for _, lp := range []bool{false, true} {
		x, y, w := Examples(traces, lp, Horizon)
		name := "text"
		if lp {
			name = "logprob"
		}
		m, err := Fit(name, featureNames(lp), x, y, w)
		if err != nil {
			return nil, err
		}
		if lp {
			ms.Logprob = m
		} else {
			ms.Text = m
		}
	}
	return &ms, nil
}

// AUROC is the area under the ROC curve of scores against labels, each
// example counting with its weight (nil weights count 1): the probability
// that a random positive scores above a random negative, ties counting
// half. It is NaN without both classes.
func AUROC(scores []float64, labels []bool, weights []float64) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
	wt := func(i int) float64 {
		if weights == nil {
			return 1
		}
		return weights[i]
	}
	// Sweep from the lowest score: each positive wins against the negative
	// weight below it and half the negative weight tied with it.
	var pos, neg, wins float64
	for i := 0; i < len(idx); {
		j := i
		var gp, gn float64
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			if labels[idx[j]] {
				gp += wt(idx[j])
			} else {
				gn += wt(idx[j])
			}
			j++
		}
		wins += gp * (neg + gn/2)
		pos += gp
		neg += gn
		i = j
	}
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	return wins / (pos * neg)
}
