package monitor

import (
	"math"
	"sync"
	"testing"

	"github.com/demurhq/demur"
)

func TestAUROC(t *testing.T) {
	y := []bool{false, false, true, true}
	if got := AUROC([]float64{0.1, 0.2, 0.8, 0.9}, y, nil); got != 1 {
		t.Fatalf("perfect ranking: %v", got)
	}
	if got := AUROC([]float64{0.9, 0.8, 0.2, 0.1}, y, nil); got != 0 {
		t.Fatalf("reversed ranking: %v", got)
	}
	if got := AUROC([]float64{0.5, 0.5, 0.5, 0.5}, y, nil); got != 0.5 {
		t.Fatalf("all tied: %v", got)
	}
	// One negative above one positive: 3 of 4 pairs right.
	if got := AUROC([]float64{0.1, 0.85, 0.8, 0.9}, y, nil); got != 0.75 {
		t.Fatalf("one swap: %v", got)
	}
	// Weighting the misplaced negative ×3: 2 + 1·... = (1·2 + 3·1)/(4·2).
	if got := AUROC([]float64{0.1, 0.85, 0.8, 0.9}, y, []float64{1, 3, 1, 1}); got != 5.0/8 {
		t.Fatalf("weighted: %v", got)
	}
	if !math.IsNaN(AUROC([]float64{1}, []bool{true}, nil)) {
		t.Fatal("one class should be NaN")
	}
}

func TestFitRecoversASignal(t *testing.T) {
	var x [][]float64
	var y []bool
	var w []float64
	for i := 0; i < 400; i++ {
		v := float64(i%40) / 40
		x = append(x, []float64{v, float64(i % 7)})
		y = append(y, v > 0.7 && i%5 != 0)
		w = append(w, 1)
	}
	m, err := Fit("t", []string{"signal", "noise"}, x, y, w)
	if err != nil {
		t.Fatal(err)
	}
	if m.Weights[0] < 1 || math.Abs(m.Weights[1]) > 0.5 {
		t.Fatalf("weights %v", m.Weights)
	}
	if m.Predict([]float64{0.95, 3}) < 0.5 || m.Predict([]float64{0.1, 3}) > 0.1 {
		t.Fatalf("predictions %v %v", m.Predict([]float64{0.95, 3}), m.Predict([]float64{0.1, 3}))
	}
	if _, err := Fit("t", []string{"a"}, [][]float64{{1}}, []bool{true}, []float64{1}); err == nil {
		t.Fatal("fit on one class should fail")
	}
}

func TestTrackerRisesWithDegradation(t *testing.T) {
	ms, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	for _, lp := range []bool{false, true} {
		tr := NewTracker(ms)
		var cum int64
		healthy := demur.Signals{Repetition: 0.02, Novelty: 0.9, LengthRatio: 1}
		var calm float64
		for i := 0; i < 60; i++ {
			cum += 3400
			s := healthy
			s.CumTokens = cum
			if lp {
				s.LPMean = -0.9
			}
			calm = tr.Observe(s)
		}
		var worst float64
		for i := 0; i < 30; i++ {
			cum += 900
			s := demur.Signals{Repetition: 0.8, Novelty: 0.5, LengthRatio: 0.9, MetaRatio: 0.08, CumTokens: cum}
			if lp {
				s.LPMean = -0.9 - 1.5*float64(i)/30
			}
			worst = tr.Observe(s)
		}
		if calm > 0.05 || worst < 0.5 || tr.Hazard() != worst {
			t.Errorf("logprob=%v: hazard %.3f when healthy, %.3f after 30 degraded turns", lp, calm, worst)
		}
		if n := len(tr.Features()); n != len(FeatureNames(lp)) {
			t.Errorf("logprob=%v: %d features, names %d", lp, n, len(FeatureNames(lp)))
		}
	}
}

func TestMonitorConcurrent(t *testing.T) {
	m := New()
	var wg sync.WaitGroup
	for a := 0; a < 4; a++ {
		wg.Add(1)
		go func(a int) {
			defer wg.Done()
			for i := 1; i <= 50; i++ {
				m.Observe(string(rune('a'+a)), demur.Signals{Repetition: 0.1, Novelty: 0.8, LengthRatio: 1, CumTokens: int64(i * 3000)})
			}
		}(a)
	}
	wg.Wait()
	if h := m.Hazard("a"); h <= 0 || h >= 1 {
		t.Fatalf("hazard %v", h)
	}
	m.Forget("a")
	if m.Hazard("a") != 0 || m.Hazard("nobody") != 0 {
		t.Fatal("forgotten or unknown agents have hazard 0")
	}
	if NewWith(nil).Observe("x", demur.Signals{}) != 0 {
		t.Fatal("no models: hazard 0")
	}
}
