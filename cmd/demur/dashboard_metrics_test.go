package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/storeurl"
	"github.com/demurhq/demur/web"
)

// TestMetricsMatchLog runs a small job with injected refusals, serves
// /metrics over its store as `demur serve` does, parses it with the
// Prometheus text parser and checks every counter against counts taken from
// the log directly.
func TestMetricsMatchLog(t *testing.T) {
	dir := t.TempDir()
	spec := `name: metrics
seed: 9
document:
  title: Counting
  chapters: 4
  sections_per_chapter: 5
  words_per_section: 200
agents:
  - count: 3
    backend: sim
    profile: experimental-70b
    chaos: {refusal_rate: 0.3, refusals: [text_refusal, partial_refusal]}
policy: {retire_after: 1000, max_attempts: 40}
`
	path := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(path, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	store := "sqlite://" + filepath.Join(dir, "demur.db")
	var stdout, stderr bytes.Buffer
	if code := execute([]string{"run", path, "--out", filepath.Join(dir, "out"), "--store", store, "--json"}, &stdout, &stderr); code != exitOK && code != exitProblem {
		t.Fatalf("run exit %d: %s", code, stderr.String())
	}
	var sum runSummary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("--json: %v", err)
	}
	ctx := context.Background()
	st, err := storeurl.Open(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// What the log says.
	recs, err := st.Records(ctx, demur.Query{Stream: sum.JobID})
	if err != nil {
		t.Fatal(err)
	}
	var turns, refusals int
	kinds := map[string]int{}
	actions := map[string]int{}
	for _, r := range recs {
		switch r.Kind {
		case demur.RecTurn:
			turns++
		case demur.RecVerdict:
			var p demur.VerdictPayload
			if err := json.Unmarshal(r.Payload, &p); err != nil {
				t.Fatal(err)
			}
			if p.Verdict.Kind.IsRefusal() {
				refusals++
				kinds[string(p.Verdict.Kind)]++
			}
		case demur.RecDecision:
			var p demur.DecisionPayload
			if err := json.Unmarshal(r.Payload, &p); err != nil {
				t.Fatal(err)
			}
			actions[string(p.Decision.Action)]++
		}
	}
	if refusals == 0 || turns == 0 {
		t.Fatalf("the run has %d turns and %d refusals; the test needs both", turns, refusals)
	}

	// What /metrics says.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts, stop, err := withDashboard(sctx, st, nil, web.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	select {
	case <-opts.Feed.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("feed never polled")
	}
	srv := httptest.NewServer(web.Handler(opts))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	sumBy := func(name, label string) (float64, map[string]float64) {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Fatalf("/metrics has no %s", name)
		}
		total, by := 0.0, map[string]float64{}
		for _, m := range f.GetMetric() {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			total += v
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					by[l.GetValue()] += v
				}
				if l.GetName() == "model" && l.GetValue() != "experimental-70b" {
					t.Errorf("%s: model label %q", name, l.GetValue())
				}
				if l.GetName() == "task_type" && l.GetValue() == "" {
					t.Errorf("%s: empty task_type", name)
				}
			}
		}
		return total, by
	}
	if got, _ := sumBy("demur_turns_total", ""); got != float64(turns) {
		t.Errorf("demur_turns_total %v, log has %d turns", got, turns)
	}
	got, byKind := sumBy("demur_refusals_total", "kind")
	if got != float64(refusals) {
		t.Errorf("demur_refusals_total %v, log has %d refusals", got, refusals)
	}
	for k, n := range kinds {
		if byKind[k] != float64(n) {
			t.Errorf("refusals of kind %s: /metrics %v, log %d", k, byKind[k], n)
		}
	}
	_, byAction := sumBy("demur_decisions_total", "action")
	if len(byAction) != len(actions) {
		t.Errorf("decisions by action: /metrics %v, log %v", byAction, actions)
	}
	for a, n := range actions {
		if byAction[a] != float64(n) {
			t.Errorf("decisions %s: /metrics %v, log %d", a, byAction[a], n)
		}
	}
	if _, byStatus := sumBy("demur_jobs", "status"); byStatus[sum.Status] != 1 {
		t.Errorf("demur_jobs %v, want one %s", byStatus, sum.Status)
	}
	if h := fams["demur_hazard"]; h == nil || h.GetMetric()[0].GetHistogram().GetSampleCount() == 0 {
		t.Errorf("no hazard histogram")
	}
	t.Logf("log: %d turns, %d refusals %v, decisions %v — /metrics agrees", turns, refusals, kinds, actions)
}
