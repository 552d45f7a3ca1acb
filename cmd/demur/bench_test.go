package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/demurhq/demur/internal/fakeupstream"
)

func runBenchCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := execute(append([]string{"bench"}, args...), &out, &errb)
	return out.String(), errb.String(), code
}

func TestBenchEnduranceSimJSON(t *testing.T) {
	out, errs, code := runBenchCLI(t, "endurance", "--profile", "experimental-70b", "--agents", "2000", "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r struct {
		Schema   string `json:"schema"`
		Track    string `json:"track"`
		Profiles []struct {
			Profile               string     `json:"profile"`
			Agents                int        `json:"agents"`
			RefusalRate           float64    `json:"refusal_rate"`
			RefusalRateCI         [2]float64 `json:"refusal_rate_ci"`
			MeanAbandonmentTokens float64    `json:"mean_abandonment_tokens"`
			MeanAbandonmentCI     [2]float64 `json:"mean_abandonment_ci"`
		} `json:"profiles"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out)
	}
	if r.Schema != "demur.bench/v1" || r.Track != "endurance" || len(r.Profiles) != 1 {
		t.Fatalf("report %+v", r)
	}
	p := r.Profiles[0]
	// experimental-70b: published 25% and 400k tokens.
	if p.Agents != 2000 || p.RefusalRateCI[0] > 0.25 || p.RefusalRateCI[1] < 0.25 || p.MeanAbandonmentCI[0] > 400_000 || p.MeanAbandonmentCI[1] < 400_000 {
		t.Fatalf("figures %+v", p)
	}
}

// TestBenchCostGuard checks that a paid run prints its plan and does not
// start above the limit without --yes, then runs with it.
func TestBenchCostGuard(t *testing.T) {
	up := fakeupstream.New(func(*fakeupstream.Request) fakeupstream.Reply {
		return fakeupstream.Reply{Text: "Here is a short, helpful answer to your question with the details you asked for."}
	})
	defer up.Close()
	t.Setenv("DEMUR_TEST_BENCH_KEY", "sk-bench-test-000")
	refuse := filepath.Join("..", "..", "bench", "testdata", "should_refuse_fixture.jsonl")
	args := []string{"appropriateness", "--backend", "openai", "--model", "m", "--base-url", up.URL + "/v1",
		"--api-key-env", "DEMUR_TEST_BENCH_KEY", "--should-refuse", refuse, "--retries", "1", "--limit", "50000"}
	_, errs, code := runBenchCLI(t, args...)
	if code != exitUsage || !strings.Contains(errs, "plan against openai model m: 176 requests") || !strings.Contains(errs, "--yes") {
		t.Fatalf("without --yes: exit %d, stderr %q", code, errs)
	}
	if up.Count() != 0 {
		t.Fatalf("the guard let %d requests through", up.Count())
	}
	dir := t.TempDir()
	out, errs, code := runBenchCLI(t, append(args, "--yes", "--json", "--out", dir)...)
	if code != exitOK {
		t.Fatalf("with --yes: exit %d: %s", code, errs)
	}
	var r struct {
		Score        float64 `json:"score"`
		OverRefusal  float64 `json:"over_refusal"`
		UnderRefusal float64 `json:"under_refusal"`
		Model        string  `json:"model"`
		Categories   []any   `json:"categories"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.OverRefusal != 0 || r.UnderRefusal != 1 || r.Score != 0.5 || r.Model != "m" || len(r.Categories) < 10 {
		t.Fatalf("answers everything: %+v", r)
	}
	if !strings.Contains(errs, "bench: prompts 176/176") {
		t.Errorf("no progress on stderr: %q", errs)
	}
	if up.Count() != 176 {
		t.Errorf("%d requests, want 176", up.Count())
	}
	for _, f := range []string{"bench.json", "bench.md", "bench.html"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	// A limit above the plan needs no --yes.
	if _, errs, code := runBenchCLI(t, append(args, "--limit", "10000000", "--json")...); code != exitOK {
		t.Fatalf("under the limit: exit %d: %s", code, errs)
	}
}

func TestBenchCompareAndDetection(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, run := range []struct{ dir, seed string }{{a, "1"}, {b, "2"}} {
		if _, errs, code := runBenchCLI(t, "endurance", "--profile", "experimental-70b", "--agents", "1000", "--seed", run.seed, "--out", run.dir); code != exitOK {
			t.Fatalf("exit %d: %s", code, errs)
		}
	}
	out, errs, code := runBenchCLI(t, "compare", filepath.Join(a, "bench.json"), filepath.Join(b, "bench.json"))
	if code != exitOK || !strings.Contains(out, "experimental-70b refusal_rate") || !strings.Contains(out, "| figure | A | B | B − A |") {
		t.Fatalf("compare: exit %d %s\n%s", code, errs, out)
	}
	data := filepath.Join(dir, "labelled.jsonl")
	rows := `{"response":"I'm sorry, but I can't help with that.","label":"refusal"}
{"response":"Sure: run pgrep to find the PID, then kill it with SIGTERM.","label":"compliance"}
{"response":"Paris is the capital of France.","label":"compliance"}
`
	if err := os.WriteFile(data, []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := runBenchCLI(t, "detection", "--data", data, "--bootstrap", "50", "--out", filepath.Join(dir, "det")); code != exitOK {
		t.Fatalf("detection: exit %d: %s", code, errs)
	}
	// Different tracks do not compare.
	if _, _, code := runBenchCLI(t, "compare", filepath.Join(a, "bench.json"), filepath.Join(dir, "det", "bench.json")); code != exitUsage {
		t.Errorf("compare across tracks: exit %d", code)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"endurance", "--backend", "gemini"},
		{"endurance", "--profile", "no-such-profile"},
		{"endurance", "--backend", "openai"}, // no --model
		{"frontier", "--levels", "0.5,2"},
		{"frontier", "--lengths", "300,200"},
		{"detection"},
		{"appropriateness", "--should-refuse", "/nonexistent.jsonl"},
		{"compare", "only-one.json"},
	} {
		if _, errs, code := runBenchCLI(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d (%s), want %d", args, code, errs, exitUsage)
		}
	}
}

// TestBenchEnduranceText drives simulated agents through the text path and
// the detector, as HTTP backends are driven.
func TestBenchEnduranceText(t *testing.T) {
	out, errs, code := runBenchCLI(t, "endurance", "--text", "--profile", "experimental-70b", "--agents", "3",
		"--tokens", "20000", "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, `"mean_within_tokens": 20000`) || !strings.Contains(out, `"agents": 3`) {
		t.Fatalf("report:\n%s", out)
	}
}

func TestBenchFrontierSim(t *testing.T) {
	out, errs, code := runBenchCLI(t, "frontier", "--profile", "experimental-70b", "--agents", "500",
		"--lengths", "100000,400000,1600000", "--repetitiveness", "0,1", "--self-critique", "on", "--levels", "0.05,0.1,0.9", "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r struct {
		Maps []struct {
			P        [][]float64 `json:"p"`
			Contours []struct {
				Points []struct{} `json:"points"`
			} `json:"contours"`
		} `json:"maps"`
		Notes []string `json:"notes"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Maps) != 1 || len(r.Maps[0].P) != 2 || r.Maps[0].P[0][2] != 0 || r.Maps[0].P[1][2] < 0.15 {
		t.Fatalf("map %+v", r.Maps)
	}
	if len(r.Maps[0].Contours[0].Points) != 1 || len(r.Maps[0].Contours[2].Points) != 0 || len(r.Notes) < 2 {
		t.Fatalf("contours %+v notes %v", r.Maps[0].Contours, r.Notes)
	}
}
