package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/internal/fakeupstream"
	"github.com/demurhq/demur/sla"
	"github.com/demurhq/demur/storeurl"
)

// TestServeSLA: `demur serve --sla` shows the objectives' status at
// /api/sla (the dashboard's SLA panel) and their burn rates in /metrics.
func TestServeSLA(t *testing.T) {
	store := runSmallJob(t, "  - {count: 3, backend: sim, profile: experimental-70b, chaos: {refusal_rate: 0.9, refusals: [text_refusal]}}", "--policy", "none")
	file := filepath.Join(t.TempDir(), "sla.yaml")
	if err := os.WriteFile(file, []byte("objectives: [{name: refusals, sli: refusal_rate, max: 0.02}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, serveOptions{store: store, listen: "127.0.0.1:0", sla: file}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no listening line: %v", err)
	}
	go io.Copy(io.Discard, pr)
	_, base, _ := strings.Cut(strings.TrimSpace(line), "listening on ")

	var statuses []sla.Status
	for deadline := time.Now().Add(10 * time.Second); len(statuses) == 0; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(base + "/api/sla")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&statuses)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no SLA status")
		}
	}
	s := statuses[0]
	if s.Objective.Name != "refusals" || s.Bad == 0 || len(s.Firing) == 0 {
		t.Fatalf("status %+v", s)
	}
	// How many page rules fire depends on how many of the chaos refusals
	// the run drew (the sections each agent gets vary with timing): the
	// metrics must show as many as the status.
	pages := 0
	for _, f := range s.Firing {
		if f.Severity == "page" {
			pages++
		}
	}
	if pages == 0 {
		t.Fatalf("no page alert firing at a refusal rate of %.2f: %+v", s.Rate, s.Firing)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`demur_sla_burn_rate{objective="refusals",sli="refusal_rate",window="1h"}`, fmt.Sprintf(`demur_sla_alerts_firing{objective="refusals",severity="page"} %d`, pages), "demur_refusals_total{"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRunUISLA: `demur run --ui ADDR --sla FILE` serves the SLA panel's
// /api/sla and the burn-rate gauges in /metrics as serve --sla does, with
// counts that match the run's log. The upstream holds the job after a few
// turns so that the test reads the dashboard of a running job.
func TestRunUISLA(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	release := make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	var calls atomic.Int64
	up := fakeupstream.New(func(r *fakeupstream.Request) fakeupstream.Reply {
		if n := calls.Add(1); n > 6 {
			<-release
		}
		return fakeupstream.Reply{Text: prose(rand.New(rand.NewPCG(uint64(calls.Load()), 3)), 200), Logprob: -0.8}
	})
	defer up.Close()
	defer free() // before Close, which waits for the blocked handlers

	dir := t.TempDir()
	store := "sqlite://" + filepath.Join(dir, "demur.db")
	path := writeOpenAIJob(t, dir, openAIJob{name: "runsla", seed: 6, chapters: 3, sections: 4, agents: 3,
		model: "experimental-70b", url: up.URL, retries: 1, timeout: "60s", chaos: "{refusal_rate: 0.5, refusals: [text_refusal]}"})
	slaFile := filepath.Join(dir, "sla.yaml")
	if err := os.WriteFile(slaFile, []byte("objectives: [{name: refusals, sli: refusal_rate, max: 0.01}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	var stdout, stderr lockedBuffer
	if code := execute([]string{"run", path, "--out", filepath.Join(dir, "x"), "--store", store, "--sla", slaFile}, &stdout, &stderr); code != exitUsage {
		t.Fatalf("--sla without --ui: exit %d: %s", code, stderr.String())
	}
	run := startUIRun(t, "run", path, "--out", filepath.Join(dir, "out"), "--store", store, "--policy", "none", "--sla", slaFile)
	base := run.base
	st, err := storeurl.Open(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The log's refusal-rate events: every verdict, bad when a refusal.
	logCounts := func() (bad, total int) {
		recs, err := st.Records(context.Background(), demur.Query{Kinds: []demur.RecordKind{demur.RecVerdict}})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			var p demur.VerdictPayload
			if json.Unmarshal(r.Payload, &p) == nil && p.Verdict.Kind.IsRefusal() {
				bad++
			}
		}
		return bad, len(recs)
	}
	// The watcher checks every few seconds; wait for a check that saw the
	// job as it stands while the upstream holds it.
	var s sla.Status
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var statuses []sla.Status
		resp, err := http.Get(base + "/api/sla")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&statuses)
		resp.Body.Close()
		if err != nil || len(statuses) != 1 {
			t.Fatalf("/api/sla: %v %v", statuses, err)
		}
		s = statuses[0]
		bad, total := logCounts()
		if s.Total > 0 && s.Total == total && s.Bad == bad {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SLA status %d bad of %d never matched the log's %d of %d", s.Bad, s.Total, bad, total)
		}
	}
	if s.Objective.Name != "refusals" || s.Bad == 0 || len(s.Firing) == 0 || s.BudgetRemaining >= 0 {
		t.Fatalf("status of a refusal storm: %+v", s)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`demur_sla_burn_rate{objective="refusals",sli="refusal_rate",window="1h"}`,
		`demur_sla_error_budget_remaining{objective="refusals",sli="refusal_rate"}`,
		`demur_sla_alerts_firing{objective="refusals",severity="page"}`, "demur_refusals_total{"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	free()
	run.wait(t, 60*time.Second)
}
