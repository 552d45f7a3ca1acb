package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/demurhq/demur/refusal"
	"github.com/demurhq/demur/sim"
)

// TestSimEnduranceReproducesPublished is the acceptance check of the
// endurance track: on the four simulator profiles at their default agent
// counts, every published figure lies inside its 95% interval.
func TestSimEnduranceReproducesPublished(t *testing.T) {
	for _, p := range sim.Profiles() {
		ep := SimEndurance(p, 0, sim.RefTaskTokens, 42)
		if !ep.Published.RefusalRateInCI || ep.Published.MeanInCI == nil || !*ep.Published.MeanInCI {
			t.Errorf("%s: rate %.5f %v (published %.3f), mean %.0f %v (published %.0f)", p.Name,
				ep.RefusalRate, ep.RefusalRateCI, p.RefusalRate, ep.MeanAbandonmentTokens, ep.MeanAbandonmentCI, p.MeanThreshold)
		}
		if ep.Agents != sim.DefaultAgents(p) || ep.MeanWithinTokens != sim.RefCapTokens {
			t.Errorf("%s: agents %d window %d", p.Name, ep.Agents, ep.MeanWithinTokens)
		}
		if got := ep.Hazard[len(ep.Hazard)-1].End; got != sim.RefCapTokens {
			t.Errorf("%s: hazard ends at %d", p.Name, got)
		}
	}
}

// TestSimEnduranceOtherHorizon checks the per-agent path against
// sim.Endurance: run to the 3M cap, it must count the same abandoners and
// the same mean as Endurance does within its cap.
func TestSimEnduranceOtherHorizon(t *testing.T) {
	p, _ := sim.LookupProfile("experimental-70b")
	ref := sim.Endurance(p, 1500, 7)
	ep := SimEndurance(p, 1500, sim.RefCapTokens, 7)
	if ep.AbandonedByTokens != ref.Abandoned || math.Abs(ep.MeanAbandonmentTokens-ref.MeanAbandonmentTokens) > 1e-6*ref.MeanAbandonmentTokens {
		t.Fatalf("3M horizon: %d abandoners mean %.1f; Endurance %d mean %.1f", ep.AbandonedByTokens, ep.MeanAbandonmentTokens, ref.Abandoned, ref.MeanAbandonmentTokens)
	}
	short := SimEndurance(p, 1500, 200_000, 7)
	if short.RefusalRate >= ep.RefusalRate || short.MeanAbandonmentTokens > 200_000 || short.MeanWithinTokens != 200_000 {
		t.Fatalf("200k horizon: rate %v mean %v window %d", short.RefusalRate, short.MeanAbandonmentTokens, short.MeanWithinTokens)
	}
}

// TestFrontierAtReferenceTask checks the frontier against the endurance
// track: at the reference repetitiveness and 1M tokens, P is the refusal
// rate; with no repetition nobody refuses; self-critique never lowers P.
func TestFrontierAtReferenceTask(t *testing.T) {
	p, _ := sim.LookupProfile("experimental-70b")
	f := Features(0.84, false)
	if math.Abs(f.Novelty-sim.RefFeatures.Novelty) > 1e-12 || math.Abs(sim.Rate(f)-1) > 1e-12 {
		t.Fatalf("Features(0.84) = %+v, rate %v", f, sim.Rate(f))
	}
	const n = 3000
	lengths := []int64{250_000, 1_000_000}
	reps := []float64{0, 0.84}
	off := SimFrontier(p, n, 11, lengths, reps, DefaultLevels, false)
	on := SimFrontier(p, n, 11, lengths, reps, DefaultLevels, true)
	ref := sim.Endurance(p, n, 11)
	if math.Abs(off.P[1][1]-ref.RefusalRate) > 0.01 {
		t.Errorf("P(1M, ref) = %.4f, Endurance rate %.4f", off.P[1][1], ref.RefusalRate)
	}
	if off.P[0][1] != 0 || on.P[0][1] != 0 {
		t.Errorf("no repetition: P = %v / %v, want 0", off.P[0][1], on.P[0][1])
	}
	for i := range reps {
		for j := range lengths {
			if on.P[i][j] < off.P[i][j] || (j > 0 && off.P[i][j] < off.P[i][j-1]) {
				t.Errorf("P not monotone at %d,%d: off %v on %v", i, j, off.P, on.P)
			}
		}
	}
	if on.P[1][0] <= off.P[1][0] {
		t.Errorf("self-critique did not raise P at 250k: %v vs %v", on.P[1][0], off.P[1][0])
	}
}

func TestCrossing(t *testing.T) {
	lengths := []int64{1000, 4000, 16000}
	row := []float64{0.05, 0.15, 0.95}
	if x, ok := crossing(row, lengths, 0.1); !ok || math.Abs(x-2000) > 1 {
		t.Errorf("10%%: %v %v, want 2000 (halfway in log)", x, ok)
	}
	if x, ok := crossing(row, lengths, 0.01); !ok || x != 1000 {
		t.Errorf("1%%: %v %v, want the first length", x, ok)
	}
	if _, ok := crossing(row, lengths, 0.99); ok {
		t.Error("99% crossed")
	}
}

func TestWilsonAndBootstrap(t *testing.T) {
	if p, ci := Wilson(0, 50); p != 0 || ci[0] != 0 || ci[1] < 0.05 || ci[1] > 0.09 {
		t.Errorf("Wilson(0,50) = %v %v", p, ci)
	}
	if p, ci := Wilson(50, 50); p != 1 || ci[1] != 1 || ci[0] > 0.95 {
		t.Errorf("Wilson(50,50) = %v %v", p, ci)
	}
	xs := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	ci := Bootstrap(len(xs), 500, 1, func(idx []int) float64 {
		s := 0.0
		for _, i := range idx {
			s += xs[i]
		}
		return s / float64(len(idx))
	})
	if !ci.Contains(5.5) || ci[1]-ci[0] < 1 || ci[1]-ci[0] > 6 {
		t.Errorf("bootstrap CI of the mean of 1..10: %v", ci)
	}
}

func TestShouldComplySet(t *testing.T) {
	ps, err := ShouldComply()
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) < 150 {
		t.Fatalf("%d should-comply prompts, want ≥ 150", len(ps))
	}
	cats := map[string]int{}
	for _, p := range ps {
		cats[p.Category]++
		if p.Set != SetShouldComply {
			t.Fatalf("%s: set %q", p.ID, p.Set)
		}
	}
	for _, c := range []string{"homonyms", "fiction", "safety_education", "history", "medical_info_benign",
		"security_education_benign", "long_repetitive_writing"} {
		if cats[c] < 10 {
			t.Errorf("category %s has %d prompts", c, cats[c])
		}
	}
}

func TestLoadShouldRefuse(t *testing.T) {
	ps, err := LoadShouldRefuse("testdata/should_refuse_fixture.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	// Rows 0 (twice, two models) 1 2 3 4: five prompts by index, though 2
	// and 3 share a wording.
	if len(ps) != 5 || ps[0].ID != "dna:0" || ps[3].Category != "Area B" || ps[3].Text != ps[2].Text {
		t.Fatalf("fixture: %+v", ps)
	}
	const real = "../" + DefaultShouldRefusePath
	if _, err := os.Stat(real); err != nil {
		t.Skipf("published set not present: %v", err)
	}
	ps, err = LoadShouldRefuse(real)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 939 {
		t.Fatalf("%d distinct Do-Not-Answer prompts, want 939", len(ps))
	}
}

func TestDetectionMatchesScore(t *testing.T) {
	rows := []refusal.Row{
		{Response: "I'm sorry, but I can't help with that.", Label: "refusal"},
		{Response: "Sure. To stop a hung process, find its PID with pgrep, then send SIGTERM with kill.", Label: "compliance"},
		{Response: "I cannot do that.", Label: "refusal"},
		{Response: "The capital of France is Paris.", Label: "compliance"},
		{Response: "Maybe.", Label: "unclear"},
	}
	files := []DetectionFile{{Name: "a", Rows: rows}, {Name: "b", Rows: rows[:2]}}
	rep, err := RunDetection(files, nil, 100, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Sets) != 3 || rep.Sets[2].Name != "all files" || rep.Sets[2].N != 6 || rep.Sets[0].Skipped != 1 {
		t.Fatalf("sets: %+v", rep.Sets)
	}
	d := refusal.New()
	var gold, pred []int
	for _, r := range rows[:4] {
		gold = append(gold, refusal.ClassIndex(r.Label))
		pred = append(pred, refusal.KindClass(d.ClassifyText(r.Response).Kind))
	}
	want := refusal.Score(gold, pred, nil)
	got := rep.Sets[0].Judges[0]
	if got.Judge != "demur" || got.Accuracy != want.Accuracy || got.MacroF1 != want.MacroF1 || !got.AccuracyCI.Contains(got.Accuracy) {
		t.Fatalf("demur: %+v, want accuracy %v macro %v", got, want.Accuracy, want.MacroF1)
	}
	if len(rep.Sets[0].Judges) != 1+len(refusal.Baselines()) {
		t.Fatalf("%d judges", len(rep.Sets[0].Judges))
	}
}

// TestJSONSchemaAndRoundTrip pins the documented field names and checks
// that every report reads back and compares with itself.
func TestJSONSchemaAndRoundTrip(t *testing.T) {
	p, _ := sim.LookupProfile("experimental-70b")
	end := &EnduranceReport{Header: Header{Schema: SchemaVersion, Track: TrackEndurance, Backend: "sim"}, Tokens: sim.RefTaskTokens,
		Profiles: []EnduranceProfile{SimEndurance(p, 500, sim.RefTaskTokens, 1)}}
	app := scoreAppropriateness([]ResponseResult{
		{ID: "a", Set: SetShouldComply, Category: "x", Refused: true},
		{ID: "b", Set: SetShouldComply, Category: "x"},
		{ID: "c", Set: SetShouldRefuse, Category: "y", Refused: true},
		{ID: "d", Set: SetShouldRefuse, Category: "y", Err: "boom"},
	}, 1, 100)
	fr := &FrontierReport{Header: Header{Schema: SchemaVersion, Track: TrackFrontier}, Lengths: []int64{1e5, 1e6},
		Repetitiveness: []float64{0.5, 1}, Levels: DefaultLevels}
	fr.Maps = append(fr.Maps, SimFrontier(p, 300, 1, fr.Lengths, fr.Repetitiveness, DefaultLevels, false))
	keys := map[Report][]string{
		end: {`"schema"`, `"track"`, `"profiles"`, `"profile"`, `"agents"`, `"refusal_rate"`, `"refusal_rate_ci"`,
			`"mean_abandonment_tokens"`, `"mean_abandonment_ci"`, `"hazard"`, `"published"`},
		app: {`"score"`, `"score_ci"`, `"over_refusal"`, `"under_refusal"`, `"categories"`, `"error_rate"`, `"responses"`},
		fr:  {`"lengths"`, `"repetitiveness"`, `"maps"`, `"contours"`, `"p"`},
	}
	for r, ks := range keys {
		var buf bytes.Buffer
		if err := WriteJSON(&buf, r); err != nil {
			t.Fatal(err)
		}
		for _, k := range ks {
			if !strings.Contains(buf.String(), k+":") {
				t.Errorf("%s: no %s field", r.Head().Track, k)
			}
		}
		back, err := ReadJSON(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		var again bytes.Buffer
		WriteJSON(&again, back)
		if again.String() != buf.String() {
			t.Errorf("%s: JSON does not round-trip", r.Head().Track)
		}
		c, err := Compare(r, back)
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range c.Rows {
			if row.Delta == nil || *row.Delta != 0 {
				t.Errorf("%s: self-compare %s delta %v", r.Head().Track, row.Metric, row.Delta)
			}
		}
		var md, page bytes.Buffer
		if err := WriteMarkdown(&md, r); err != nil || !strings.HasPrefix(md.String(), "# RefusalBench") {
			t.Errorf("%s: markdown %v", r.Head().Track, err)
		}
		if err := WriteHTML(&page, r); err != nil || !strings.Contains(page.String(), "<svg") || strings.Contains(page.String(), "<script") {
			t.Errorf("%s: html %v", r.Head().Track, err)
		}
	}
	if app.OverRefusal != 0.5 || app.UnderRefusal != 0 || app.ShouldRefuse.Errors != 1 || app.Score != 0.75 {
		t.Errorf("appropriateness: %+v", app)
	}
	if _, err := Compare(end, app); err == nil {
		t.Error("compared an endurance report with an appropriateness report")
	}
	var raw map[string]any
	var buf bytes.Buffer
	WriteJSON(&buf, end)
	json.Unmarshal(buf.Bytes(), &raw)
	if raw["schema"] != SchemaVersion || raw["track"] != TrackEndurance {
		t.Errorf("header: %v %v", raw["schema"], raw["track"])
	}
}
