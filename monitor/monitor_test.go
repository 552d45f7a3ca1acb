package monitor_test

import (
	"encoding/json"
	"flag"
	"math"
	"os"
	"testing"

	"github.com/demurhq/demur/monitor"
)

var update = flag.Bool("update", false, "rewrite weights.json from a fresh fit")

// Per seed, how many agents that can refuse and how many that never do
// are simulated: enough refusals to fit and measure, and a test that stays
// within seconds (more under -race).
const (
	suscPerSeed    = 8
	nonSuscPerSeed = 3
)

// aurocFloor is the acceptance bar of issue 5.
const aurocFloor = 0.85

// TestFitMatchesEmbedded re-fits the models on the fit seeds and compares
// them with weights.json, so that the shipped weights are reproducible.
func TestFitMatchesEmbedded(t *testing.T) {
	if raceEnabled && !*update {
		t.Skip("the refit simulates ~12M tokens; under -race that takes minutes (run go test ./monitor)")
	}
	fit := traces(t, fitSeeds, suscPerSeed, nonSuscPerSeed)
	ms, err := monitor.FitModels(fit)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		data, err := json.MarshalIndent(ms, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("weights.json", append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("wrote weights.json")
		return
	}
	emb, err := monitor.Embedded()
	if err != nil {
		t.Fatalf("embedded weights: %v (run go test ./monitor -run TestFit -update)", err)
	}
	for _, pair := range [][2]*monitor.Model{{ms.Text, emb.Text}, {ms.Logprob, emb.Logprob}} {
		got, want := pair[0], pair[1]
		if math.Abs(got.Bias-want.Bias) > 1e-6 {
			t.Errorf("%s: refit bias %.9f, embedded %.9f: weights.json is stale (go test ./monitor -run TestFit -update)", got.Name, got.Bias, want.Bias)
		}
		for i := range got.Weights {
			if math.Abs(got.Weights[i]-want.Weights[i]) > 1e-6 {
				t.Errorf("%s: refit weight %s %.9f, embedded %.9f: weights.json is stale", got.Name, got.Features[i], got.Weights[i], want.Weights[i])
			}
		}
	}
}

// TestHazardAUROC measures the embedded models on seeds not used to fit
// them: AUROC for "refuses within the next 20,000 output tokens" over every
// turn before an agent's first refusal.
func TestHazardAUROC(t *testing.T) {
	emb, err := monitor.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	susc, non := suscPerSeed, nonSuscPerSeed
	if raceEnabled {
		susc, non = 4, 1
	}
	eval := traces(t, evalSeeds, susc, non)
	for _, lp := range []bool{true, false} {
		x, y, w := monitor.Examples(eval, lp, monitor.Horizon)
		m := emb.Text
		if lp {
			m = emb.Logprob
		}
		scores := make([]float64, len(x))
		pos := 0
		for i := range x {
			scores[i] = m.Predict(x[i])
			if y[i] {
				pos++
			}
		}
		auc := monitor.AUROC(scores, y, w)
		var hp, hn, np, nn float64
		var warned int
		for i := range y {
			if y[i] {
				hp += scores[i]
				np++
				if scores[i] >= 0.5 {
					warned++
				}
			} else {
				hn += scores[i] * w[i]
				nn += w[i]
			}
		}
		t.Logf("%s model on held-out seeds %v: %d turns, %d positive, AUROC %.3f; mean hazard %.3f on positive turns, %.4f on negative; %d of %d positive turns ≥ 0.5",
			m.Name, evalSeeds, len(y), pos, auc, hp/np, hn/nn, warned, pos)
		// The harder question: among turns whose output already looks
		// degraded, which are the last before the refusal?
		var ds []float64
		var dy []bool
		var dw []float64
		for i := range x {
			if x[i][5] >= 0.3 { // rep_last
				ds, dy, dw = append(ds, scores[i]), append(dy, y[i]), append(dw, w[i])
			}
		}
		t.Logf("%s model, degraded-looking turns only: %d turns, AUROC %.3f", m.Name, len(dy), monitor.AUROC(ds, dy, dw))
		if pos < 20 {
			t.Errorf("only %d positive turns in the evaluation: too few to measure", pos)
		}
		if !(auc >= aurocFloor) {
			t.Errorf("%s model: AUROC %.3f below %.2f", m.Name, auc, aurocFloor)
		}
	}
}
