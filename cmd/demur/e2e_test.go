package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/storeurl"
)

// buildBinary compiles the real demur command once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "demur")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build demur: %v\n%s", err, out)
	}
	return bin
}

// TestSeedExperimentEndToEnd runs the README's main command on the real
// binary and checks the job against the log and the simulator's truth.
func TestSeedExperimentEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the full seed experiment (≈4M words); skipped with -short")
	}
	bin := buildBinary(t)
	out := t.TempDir()
	cmd := exec.Command(bin, "run", filepath.Join("..", "..", "examples", "seed-experiment.yaml"), "--out", out, "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("demur run: %v\nstderr: %s", err, stderr.String())
	}
	var sum runSummary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("--json output is not one object: %v\n%s", err, stdout.String())
	}
	if sum.Status != "completed" || sum.SectionsDone != sum.SectionsTotal || sum.SectionsTotal != 1600 {
		t.Fatalf("status %s, %d of %d sections", sum.Status, sum.SectionsDone, sum.SectionsTotal)
	}
	checkDocument(t, sum.Document, sum.SectionsTotal)
	for _, a := range sum.Agents {
		if a.Words <= 0 && !a.Refused {
			t.Errorf("agent %s wrote nothing and did not refuse", a.ID)
		}
	}
	checkRefusalsRecorded(t, sum)
	truth, verdicts := turnKinds(t, sum)
	checkDetectorAgainstTruth(t, truth, verdicts)
}

// checkDocument checks every section heading is present, once, in order,
// and no section is marked missing.
func checkDocument(t *testing.T, path string, sections int) {
	t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(doc, []byte("missing: not written")) {
		t.Fatal("document has a missing section")
	}
	heads := regexp.MustCompile(`(?m)^### (\d+)\.(\d+) `).FindAllSubmatch(doc, -1)
	if len(heads) != sections {
		t.Fatalf("document has %d section headings, want %d", len(heads), sections)
	}
	prev := ""
	for _, h := range heads {
		key := string(h[1]) + "." + string(h[2])
		if prev != "" && !after(key, prev) {
			t.Fatalf("section %s follows %s", key, prev)
		}
		prev = key
	}
}

func after(a, b string) bool {
	var ac, as, bc, bs int
	parse := func(s string, c, x *int) { _, _ = fmt.Sscanf(s, "%d.%d", c, x) }
	parse(a, &ac, &as)
	parse(b, &bc, &bs)
	return ac > bc || (ac == bc && as > bs)
}

// checkRefusalsRecorded compares the report with the simulator's ground
// truth in the log: every agent the truth says refused is reported refused.
func checkRefusalsRecorded(t *testing.T, sum runSummary) {
	t.Helper()
	ctx := context.Background()
	st, err := storeurl.Open(ctx, sum.Store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	truths, err := st.Records(ctx, demur.Query{Job: sum.JobID, Kinds: []demur.RecordKind{demur.RecTruth}})
	if err != nil {
		t.Fatal(err)
	}
	if len(truths) < sum.Turns {
		t.Fatalf("%d truth records for %d turns", len(truths), sum.Turns)
	}
	refusedByTruth := map[string]bool{}
	for _, r := range truths {
		var p demur.TruthPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			t.Fatal(err)
		}
		var tr struct{ Kind string }
		if err := json.Unmarshal(p.Truth, &tr); err != nil {
			t.Fatal(err)
		}
		if tr.Kind == "refuse" || tr.Kind == "partial" {
			refusedByTruth[p.Agent] = true
		}
	}
	if len(refusedByTruth) == 0 {
		t.Fatal("no agent refused in the seed experiment; the study saw 2 of 8")
	}
	for _, a := range sum.Agents {
		if refusedByTruth[a.ID] && !a.Refused {
			t.Errorf("%s refused by the simulator's truth but not in the report", a.ID)
		}
		if a.Refused && !refusedByTruth[a.ID] {
			t.Errorf("%s reported refused but never refused by the truth", a.ID)
		}
	}
	if !strings.HasPrefix(sum.Store, "sqlite://") {
		t.Errorf("default store is %s", sum.Store)
	}
}

// TestSeedExperimentWithoutPolicy reproduces the study's failure: with
// --policy none nothing is handed over, so exactly the sections whose
// agent refused stay unwritten, and the job exits 1 as incomplete.
func TestSeedExperimentWithoutPolicy(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the full seed experiment (≈4M words); skipped with -short")
	}
	bin := buildBinary(t)
	cmd := exec.Command(bin, "run", filepath.Join("..", "..", "examples", "seed-experiment.yaml"),
		"--out", t.TempDir(), "--json", "--policy", "none")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitProblem {
		t.Fatalf("want exit %d for an incomplete job, got %v\nstderr: %s", exitProblem, err, stderr.String())
	}
	var sum runSummary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout.String())
	}
	if sum.Status != "incomplete" || len(sum.Missing) == 0 || sum.SectionsDone+len(sum.Missing) != sum.SectionsTotal {
		t.Fatalf("status %s, %d done, %d missing of %d", sum.Status, sum.SectionsDone, len(sum.Missing), sum.SectionsTotal)
	}
	truth, verdicts := turnKinds(t, sum)
	missing := map[string]bool{}
	for _, id := range sum.Missing {
		missing[id] = true
	}
	// With no policy each section is handed out once: exactly the sections
	// the detector judged refused stay unwritten.
	for key, v := range verdicts {
		task := strings.SplitN(key, "/", 2)[0]
		if refusal := v == "refuse" || v == "partial"; refusal != missing[task] {
			t.Errorf("section %s: verdict %s, missing %v", task, v, missing[task])
		}
	}
	checkDetectorAgainstTruth(t, truth, verdicts)
}

// checkDetectorAgainstTruth holds the detector to the bar on the
// simulator's refusals and degraded sections: precision and recall ≥ 0.98.
func checkDetectorAgainstTruth(t *testing.T, truth, verdicts map[string]string) {
	t.Helper()
	for _, class := range []string{"refusal", "degraded"} {
		in := func(k string) bool {
			if class == "refusal" {
				return k == "refuse" || k == "partial"
			}
			return k == "degraded"
		}
		var tp, fp, fn int
		for key, tr := range truth {
			v, ok := verdicts[key]
			if !ok {
				continue
			}
			switch {
			case in(tr) && in(v):
				tp++
			case in(v):
				fp++
			case in(tr):
				fn++
			}
		}
		if tp == 0 {
			t.Errorf("%s: no true positives (fp %d, fn %d)", class, fp, fn)
			continue
		}
		prec, rec := float64(tp)/float64(tp+fp), float64(tp)/float64(tp+fn)
		t.Logf("%s: precision %.3f recall %.3f (tp %d fp %d fn %d)", class, prec, rec, tp, fp, fn)
		if prec < 0.98 || rec < 0.98 {
			t.Errorf("%s: precision %.3f recall %.3f, want both ≥ 0.98", class, prec, rec)
		}
	}
}

// turnKinds returns, per TASK/ATTEMPT, the simulator's ground-truth kind
// and the detector's verdict kind, from the job's log.
func turnKinds(t *testing.T, sum runSummary) (truth, verdicts map[string]string) {
	t.Helper()
	ctx := context.Background()
	st, err := storeurl.Open(ctx, sum.Store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Records(ctx, demur.Query{Job: sum.JobID, Kinds: []demur.RecordKind{demur.RecTruth, demur.RecVerdict}})
	if err != nil {
		t.Fatal(err)
	}
	truth, verdicts = map[string]string{}, map[string]string{}
	for _, r := range recs {
		if r.Kind == demur.RecVerdict {
			var p demur.VerdictPayload
			if err := json.Unmarshal(r.Payload, &p); err != nil {
				t.Fatal(err)
			}
			verdicts[fmt.Sprintf("%s/%d", p.Task, p.Attempt)] = string(p.Verdict.Kind)
			continue
		}
		var p demur.TruthPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			t.Fatal(err)
		}
		var tr struct{ Kind string }
		if err := json.Unmarshal(p.Truth, &tr); err != nil {
			t.Fatal(err)
		}
		truth[fmt.Sprintf("%s/%d", p.Task, p.Attempt)] = tr.Kind
	}
	return truth, verdicts
}

// TestEarlyWarningCutsRefusals measures the early warning on the seed
// experiment: the preventive policy against the same policy with the early
// warning off, same seed. The preventive one must at least halve refusals.
func TestEarlyWarningCutsRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the full seed experiment twice; skipped with -short")
	}
	bin := buildBinary(t)
	prevent := filepath.Join("..", "..", "examples", "policy-prevent.yaml")
	data, err := os.ReadFile(prevent)
	if err != nil {
		t.Fatal(err)
	}
	off := strings.Replace(string(data), "early_warning: {hazard: 0.3, action: reframe}", "early_warning: {hazard: 0.3, action: accept}", 1)
	if off == string(data) {
		t.Fatal("the preventive policy no longer has the early warning this test turns off")
	}
	offFile := filepath.Join(t.TempDir(), "policy-off.yaml")
	if err := os.WriteFile(offFile, []byte(off), 0o644); err != nil {
		t.Fatal(err)
	}
	refusals := func(policyFile string) int {
		cmd := exec.Command(bin, "run", filepath.Join("..", "..", "examples", "seed-experiment.yaml"),
			"--out", t.TempDir(), "--json", "--policy", policyFile)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("run with %s: %v\nstderr: %s", policyFile, err, stderr.String())
		}
		var sum runSummary
		if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
			t.Fatal(err)
		}
		if sum.Status != "completed" {
			t.Fatalf("run with %s: %s", policyFile, sum.Status)
		}
		n := 0
		for _, a := range sum.Agents {
			n += a.Refusals
		}
		return n
	}
	with, without := refusals(prevent), refusals(offFile)
	t.Logf("refusals: %d with the early warning, %d without", with, without)
	if without == 0 {
		t.Fatal("no refusals without the early warning: nothing to cut")
	}
	if 2*with > without {
		t.Fatalf("early warning cut refusals from %d to %d, less than half", without, with)
	}
}
