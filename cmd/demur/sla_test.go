package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/demurhq/demur/sla"
)

// runSmallJob runs a sim job of agents (a spec fragment) into a fresh store
// and returns the store's URL.
func runSmallJob(t *testing.T, agents string, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	spec := `name: sla
seed: 4
document:
  title: Budgets
  chapters: 3
  sections_per_chapter: 4
  words_per_section: 200
agents:
` + agents + `
policy: {retire_after: 1000, max_attempts: 40}
`
	path := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(path, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	store := "sqlite://" + filepath.Join(dir, "demur.db")
	var stdout, stderr bytes.Buffer
	args = append([]string{"run", path, "--out", filepath.Join(dir, "out"), "--store", store}, args...)
	if code := execute(args, &stdout, &stderr); code != exitOK && code != exitProblem {
		t.Fatalf("run exit %d: %s", code, stderr.String())
	}
	return store
}

// TestSLABurnRateAlerts: a chaos-injected refusal storm fires the
// burn-rate alert, delivered to the webhook (through one failed delivery);
// a clean run fires nothing; the report of the storm's period shows the
// breach and its credit.
func TestSLABurnRateAlerts(t *testing.T) {
	var mu sync.Mutex
	var got []sla.Alert
	fail := 1
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if fail > 0 {
			fail--
			http.Error(w, "try again", http.StatusBadGateway)
			return
		}
		var a sla.Alert
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			t.Error(err)
		}
		got = append(got, a)
	}))
	defer hook.Close()
	file := filepath.Join(t.TempDir(), "sla.yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(`
objectives:
  - {name: refusals, sli: refusal_rate, max: 0.02}
  - {name: refusals-70b, sli: refusal_rate, max: 0.02, model: experimental-70b}
  - {name: abandonment, sli: abandonment_rate, max: 0.05}
alerts: {webhook: %s, retries: 2}
credits: [{below: 0.999, percent: 10}]
`, hook.URL)), 0o644); err != nil {
		t.Fatal(err)
	}

	// No refusal management: the shipped policy's storm breaker would
	// rightly escalate this storm to a person and wait. Each agent draws
	// its own fixed sequence, but which agent gets how many of the 12
	// sections depends on timing: at a rate of 0.5 some runs refused only
	// 3 (25%, under the fast page rule's 28.8%); at 0.9 every run is a storm.
	storm := runSmallJob(t, "  - {count: 3, backend: sim, profile: experimental-70b, chaos: {refusal_rate: 0.9, refusals: [text_refusal]}}", "--policy", "none")
	var out, errb bytes.Buffer
	if code := execute([]string{"sla", "check", "--sla", file, "--store", storm}, &out, &errb); code != exitProblem {
		t.Fatalf("storm: exit %d, want %d\n%s%s", code, exitProblem, out.String(), errb.String())
	}
	mu.Lock()
	fired := map[string]bool{}
	for _, a := range got {
		if a.State != "firing" {
			t.Errorf("alert %+v", a)
		}
		if a.Severity == "page" && a.Long == "1h" {
			fired[a.Objective] = true
		}
	}
	mu.Unlock()
	if !fired["refusals"] || !fired["refusals-70b"] {
		t.Fatalf("storm: alerts %+v\n%s", got, out.String())
	}
	if !strings.Contains(out.String(), "page 1h/5m") {
		t.Errorf("check output lacks the firing rule:\n%s", out.String())
	}

	out.Reset()
	if code := execute([]string{"sla", "report", "--sla", file, "--store", storm, "--json"}, &out, &errb); code != exitOK {
		t.Fatalf("report: exit %d: %s", code, errb.String())
	}
	var rp sla.Report
	if err := json.Unmarshal(out.Bytes(), &rp); err != nil {
		t.Fatal(err)
	}
	if c := rp.Objectives[0]; c.Bad == 0 || c.Compliance != 0 || c.Credit != 10 || rp.Credit != 10 {
		t.Fatalf("report: %+v", rp)
	}

	mu.Lock()
	got = nil
	mu.Unlock()
	clean := runSmallJob(t, "  - {count: 2, backend: sim, profile: gpt-4-class}")
	out.Reset()
	if code := execute([]string{"sla", "check", "--sla", file, "--store", clean}, &out, &errb); code != exitOK {
		t.Fatalf("clean: exit %d\n%s%s", code, out.String(), errb.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 0 {
		t.Fatalf("clean run: alerts %+v", got)
	}

	if code := execute([]string{"sla", "check", "--store", clean}, &out, &errb); code != exitUsage {
		t.Errorf("no --sla: exit %d", code)
	}
}
