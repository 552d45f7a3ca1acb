package monitor

import (
	"math"

	"github.com/demurhq/demur"
)

// Trend parameters. alpha weighs the newest turn in the moving averages;
// slopeTurns is the window of the slopes; baseTurns the turns that set an
// agent's own log-probability baseline, since fluency differs by model.
const (
	alpha      = 0.3
	slopeTurns = 8
	baseTurns  = 5
	// A moving repetition above onsetRep marks the start of degraded work,
	// below recoverRep its end (a refresh can bring an agent back).
	onsetRep   = 0.25
	recoverRep = 0.1
)

var textFeatures = []string{
	"rep_ewma", "meta_ewma", "novelty_loss_ewma", "length_drop_ewma", "rep_slope",
	"rep_last", "log_tokens", "degraded_share", "log_degraded_turns", "log_onset_tokens",
}

var logprobFeatures = []string{"lp_drop", "lp_drop_sqrt", "lp_slope", "lp_pressure_logit"}

func featureNames(logprob bool) []string {
	if !logprob {
		return textFeatures
	}
	return append(append([]string(nil), textFeatures...), logprobFeatures...)
}

// FeatureNames lists the features of the text model, or of the logprob
// model when logprob is true, in model order.
func FeatureNames(logprob bool) []string { return append([]string(nil), featureNames(logprob)...) }

// Tracker follows one agent's turns. It is not safe for concurrent use.
type Tracker struct {
	models *Models
	n      int
	rep    float64 // moving averages
	meta   float64
	novel  float64
	short  float64
	lp     float64
	lpN    int
	lpBase float64
	reps   []float64 // the last slopeTurns values
	lps    []float64
	last   demur.Signals
	cum    int64
	// onset is the cumulative token count when degradation began, 0 when
	// the agent is not degraded; degTurns counts turns since.
	onset    int64
	degTurns int
	hazard   float64
}

// NewTracker returns a tracker using models; nil models give hazard 0.
func NewTracker(models *Models) *Tracker { return &Tracker{models: models} }

// Observe feeds one turn's signals and returns the updated hazard.
func (t *Tracker) Observe(s demur.Signals) float64 {
	t.update(s)
	t.hazard = 0
	if t.models != nil {
		m := t.models.Text
		if t.lpN > 0 {
			m = t.models.Logprob
		}
		if m != nil {
			t.hazard = m.Predict(t.Features())
		}
	}
	return t.hazard
}

// Hazard returns the latest hazard.
func (t *Tracker) Hazard() float64 { return t.hazard }

func ewma(prev, x float64, first bool) float64 {
	if first {
		return x
	}
	return prev + alpha*(x-prev)
}

func push(xs []float64, x float64) []float64 {
	xs = append(xs, x)
	if len(xs) > slopeTurns {
		xs = xs[1:]
	}
	return xs
}

func (t *Tracker) update(s demur.Signals) {
	first := t.n == 0
	t.n++
	t.last = s
	if s.CumTokens > 0 {
		t.cum = s.CumTokens
	}
	t.rep = ewma(t.rep, s.Repetition, first)
	t.meta = ewma(t.meta, s.MetaRatio, first)
	// Novelty is 1 with no history to compare against; that says nothing.
	if !first {
		t.novel = ewma(t.novel, 1-s.Novelty, t.n == 2)
	}
	short := 0.0
	if s.LengthRatio > 0 {
		short = math.Max(0, 1-s.LengthRatio)
	}
	t.short = ewma(t.short, short, first)
	t.reps = push(t.reps, s.Repetition)
	if s.LPMean != 0 {
		t.lpN++
		t.lp = ewma(t.lp, s.LPMean, t.lpN == 1)
		if t.lpN <= baseTurns {
			t.lpBase += (s.LPMean - t.lpBase) / float64(t.lpN)
		}
		t.lps = push(t.lps, s.LPMean)
	}
	switch {
	case t.onset == 0 && t.rep >= onsetRep:
		t.onset = max(1, t.cum)
		t.degTurns = 0
	case t.onset != 0 && t.rep < recoverRep:
		t.onset = 0
	}
	if t.onset != 0 {
		t.degTurns++
	}
}

// Features returns the current feature vector, in FeatureNames order (the
// logprob model's when the agent's backend reports log-probabilities).
func (t *Tracker) Features() []float64 {
	degShare := 0.0
	if t.onset != 0 && t.cum > 0 {
		degShare = float64(t.cum-t.onset) / float64(t.cum)
	}
	onsetTokens := 0.0
	if t.onset != 0 {
		onsetTokens = math.Log1p(float64(t.onset) / 1e5)
	}
	x := []float64{
		t.rep, t.meta, t.novel, t.short, slope(t.reps),
		t.last.Repetition, math.Log1p(float64(t.cum) / 1e5), degShare,
		math.Log1p(float64(t.degTurns)), onsetTokens,
	}
	if t.lpN == 0 {
		return x
	}
	drop := math.Max(0, t.lpBase-t.lp)
	// An agent whose fluency falls is under pressure; logit of a pressure
	// estimate in 0.5–1 from the drop, with the remaining-budget reading
	// log(cum) + log((1−p)/p) left to the weights.
	p := 0.5 + 0.5*math.Min(1, math.Sqrt(drop/1.6))
	p = math.Min(p, 0.999)
	return append(x, drop, math.Sqrt(drop), slope(t.lps), math.Log((1-p)/p))
}

// slope is the least-squares slope of xs against their index.
func slope(xs []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i, y := range xs {
		x := float64(i)
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	return (n*sxy - sx*sy) / (n*sxx - sx*sx)
}
