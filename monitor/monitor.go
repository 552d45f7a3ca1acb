// Package monitor is demur's early warning: from the signals of an agent's
// recent turns it estimates the hazard, the probability that the agent
// refuses within the next Horizon output tokens, so that a policy can act
// before the refusal (rotate, refresh the context, vary the task).
//
// It reads only what a real deployment has: the detector's per-turn
// Signals (repetition, novelty, length ratio, meta-commentary, the mean
// log-probability when the backend gives it) and the cumulative output
// tokens. From them a Tracker keeps trends (moving averages, slopes, how
// long degradation has lasted relative to the healthy run before it) and a
// logistic model turns them into the hazard. The models are fitted on
// simulated agents (see Fit and the package's tests) and embedded; a
// simulator's ground truth is used for fitting and evaluation only, never
// at run time.
//
// The package is pure: no I/O, no goroutines.
package monitor

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"sync"

	"github.com/demurhq/demur"
)

// Horizon is the early warning's horizon in output tokens: the hazard is
// the probability of a refusal within the next Horizon tokens.
const Horizon = 20000

// Model is a logistic model over a Tracker's features. Features are
// standardised with Mean and Scale before the weights apply.
type Model struct {
	// Name says which signals the model needs: "text" or "logprob".
	Name     string    `json:"name"`
	Horizon  int64     `json:"horizon"`
	Features []string  `json:"features"`
	Mean     []float64 `json:"mean"`
	Scale    []float64 `json:"scale"`
	Weights  []float64 `json:"weights"`
	Bias     float64   `json:"bias"`
}

// Predict returns the model's probability for a feature vector.
func (m *Model) Predict(x []float64) float64 {
	z := m.Bias
	for i, w := range m.Weights {
		z += w * (x[i] - m.Mean[i]) / m.Scale[i]
	}
	return 1 / (1 + math.Exp(-z))
}

// Models is the pair of fitted models: Logprob for backends that report
// per-token log-probabilities, Text for those that do not.
type Models struct {
	Text    *Model `json:"text"`
	Logprob *Model `json:"logprob"`
}

//go:embed weights.json
var weightsJSON []byte

var embedded, embeddedErr = decodeModels(weightsJSON)

func decodeModels(data []byte) (*Models, error) {
	var ms Models
	if err := json.Unmarshal(data, &ms); err != nil {
		return nil, fmt.Errorf("monitor: decode weights: %w", err)
	}
	for _, m := range []*Model{ms.Text, ms.Logprob} {
		if m == nil {
			return nil, fmt.Errorf("monitor: weights: a model is missing")
		}
		n := len(featureNames(m.Name == "logprob"))
		if len(m.Features) != n || len(m.Mean) != n || len(m.Scale) != n || len(m.Weights) != n {
			return nil, fmt.Errorf("monitor: weights: model %s has %d features, the tracker computes %d", m.Name, len(m.Weights), n)
		}
	}
	return &ms, nil
}

// Embedded returns the fitted models shipped in the binary, or the error
// that made them unusable.
func Embedded() (*Models, error) { return embedded, embeddedErr }

// Monitor keeps one Tracker per agent. It is safe for concurrent use.
type Monitor struct {
	mu       sync.Mutex
	models   *Models
	trackers map[string]*Tracker
}

// New returns a monitor with the embedded models. With no usable models
// (a broken build) every hazard is 0, so policies simply never fire.
func New() *Monitor { return NewWith(embedded) }

// NewWith returns a monitor with the given models.
func NewWith(ms *Models) *Monitor {
	return &Monitor{models: ms, trackers: map[string]*Tracker{}}
}

// Observe feeds one turn's signals for agent and returns its hazard.
func (m *Monitor) Observe(agent string, s demur.Signals) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.trackers[agent]
	if !ok {
		t = NewTracker(m.models)
		m.trackers[agent] = t
	}
	return t.Observe(s)
}

// Hazard returns agent's latest hazard, 0 for an agent never observed.
func (m *Monitor) Hazard(agent string) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.trackers[agent]; ok {
		return t.Hazard()
	}
	return 0
}

// Forget drops an agent's history, e.g. when it leaves the job.
func (m *Monitor) Forget(agent string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.trackers, agent)
}
