package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/backends"
	"github.com/demurhq/demur/chaos"
	"github.com/demurhq/demur/internal/fakeupstream"
	"github.com/demurhq/demur/job"
	"github.com/demurhq/demur/storeurl"
)

// prose writes varied, on-task text: a real model's output as far as the
// detector can tell, and different on every call so that no agent looks
// like it is repeating itself.
func prose(r *rand.Rand, words int) string {
	adj := strings.Fields("quiet steady ancient modern narrow broad local civic hidden public careful shared durable seasonal rural urban coastal upland")
	noun := strings.Fields("wells pipes pumps reservoirs channels valves meters gauges aqueducts cisterns mains filters towers springs ditches culverts tanks")
	verb := strings.Fields("supply connect protect measure drain feed balance serve guide carry store filter raise lower route")
	who := strings.Fields("engineers residents surveyors councils plumbers farmers inspectors neighbours builders crews")
	var b strings.Builder
	n := 0
	for n < words {
		s := fmt.Sprintf("%s %s %s the %s %s that %s rely on every %s. ",
			strings.ToUpper(adj[r.IntN(len(adj))][:1])+adj[r.IntN(len(adj))][1:], noun[r.IntN(len(noun))],
			verb[r.IntN(len(verb))], adj[r.IntN(len(adj))], noun[r.IntN(len(noun))], who[r.IntN(len(who))],
			[]string{"morning", "season", "winter", "week", "storm", "dry spell"}[r.IntN(6)])
		b.WriteString(s)
		n += len(strings.Fields(s))
	}
	return strings.TrimSpace(b.String())
}

// TestOpenAIJobWithChaos runs a job whose agents use the openai backend
// against a conformant test upstream, with chaos injecting 20% refusals and
// 10% transport faults, and checks that every section is written and that
// every injection is in the log, turn by turn.
func TestOpenAIJobWithChaos(t *testing.T) {
	var calls atomic.Int64
	up := fakeupstream.New(func(r *fakeupstream.Request) fakeupstream.Reply {
		rng := rand.New(rand.NewPCG(uint64(calls.Add(1)), 7))
		return fakeupstream.Reply{Text: prose(rng, 220), Logprob: -0.8}
	})
	defer up.Close()
	dir := t.TempDir()
	path := writeOpenAIJob(t, dir, openAIJob{name: "openai-chaos", seed: 11, chapters: 3, sections: 5, agents: 4,
		model: "fake-model", url: up.URL, retries: 2, timeout: "5s", chaos: "{refusal_rate: 0.2, fault_rate: 0.1, retry_after: 1ms}"})
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	if code := execute([]string{"run", path, "--out", out, "--json"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d\nstderr: %s\nstdout: %s", code, stderr.String(), stdout.String())
	}
	var sum runSummary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout.String())
	}
	if sum.Status != "completed" || sum.SectionsDone != 15 {
		t.Fatalf("status %s, %d of %d sections", sum.Status, sum.SectionsDone, sum.SectionsTotal)
	}
	checkDocument(t, sum.Document, 15)
	if up.Count() == 0 {
		t.Fatal("no request reached the upstream")
	}

	// Replay each agent's injector: its k-th draw must match its k-th turn
	// in the log. A fault must be a turn with an injected error, an
	// injected refusal a turn marked injected with a verdict of source
	// "injected", and a turn with no draw must be genuine.
	spec, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := job.Parse(path, spec)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := backends.ChaosConfig(parsed.Agents[0].Chaos, parsed.Seed)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := storeurl.Open(ctx, sum.Store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Records(ctx, demur.Query{Job: sum.JobID, Kinds: []demur.RecordKind{demur.RecTurn, demur.RecVerdict}})
	if err != nil {
		t.Fatal(err)
	}
	verdicts := map[string]demur.Verdict{}
	for _, r := range recs {
		if r.Kind == demur.RecVerdict {
			var p demur.VerdictPayload
			if err := json.Unmarshal(r.Payload, &p); err != nil {
				t.Fatal(err)
			}
			verdicts[fmt.Sprintf("%s/%d", p.Task, p.Attempt)] = p.Verdict
		}
	}
	injectors := map[string]*chaos.Injector{}
	var faults, refusals int
	for _, r := range recs {
		if r.Kind != demur.RecTurn {
			continue
		}
		var p demur.TurnPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			t.Fatal(err)
		}
		in := injectors[p.Agent]
		if in == nil {
			in = chaos.NewInjector(cc, p.Agent)
			injectors[p.Agent] = in
		}
		k := in.Next()
		key := fmt.Sprintf("%s/%d", p.Task, p.Attempt)
		switch {
		case k.IsFault():
			faults++
			if !strings.Contains(p.Error, "injected "+string(k)) || !strings.Contains(p.Error, "source: injected") {
				t.Errorf("%s turn %s: drew fault %s, recorded error %q", p.Agent, key, k, p.Error)
			}
		case k != "":
			refusals++
			if p.Injected != string(k) {
				t.Errorf("%s turn %s: drew %s, recorded injected=%q", p.Agent, key, k, p.Injected)
			}
			// A provider-shaped refusal is decided by its field; text-shaped
			// ones are up to the detector, and a verdict it calls comply
			// stays the model's (coord marks only non-comply verdicts).
			v, ok := verdicts[key]
			provider := k == chaos.OpenAIRefusal || k == chaos.AnthropicRefusal || k == chaos.ContentFilter
			if !ok || (provider || v.Kind != demur.KindComply) && v.Source != demur.SourceInjected {
				t.Errorf("%s turn %s: injected %s, verdict %s with source %q", p.Agent, key, k, v.Kind, v.Source)
			}
		default:
			if p.Error != "" || p.Injected != "" {
				t.Errorf("%s turn %s: genuine turn recorded error %q injected %q", p.Agent, key, p.Error, p.Injected)
			}
		}
	}
	if faults == 0 || refusals == 0 {
		t.Fatalf("%d faults and %d refusals injected; the rates should give some of each", faults, refusals)
	}
	t.Logf("%d turns: %d injected faults, %d injected refusals, %d upstream calls", sum.Turns, faults, refusals, up.Count())
	if strings.Contains(stdout.String()+stderr.String(), fakeAPIKey) {
		t.Fatal("the API key reached the output")
	}
	all, err := st.Records(ctx, demur.Query{Job: sum.JobID})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if bytes.Contains(r.Payload, []byte(fakeAPIKey)) {
			t.Fatalf("the API key is in a %s record", r.Kind)
		}
	}
}

// fakeAPIKey is the key writeOpenAIJob's agents send; it must never reach
// the log or the output.
const fakeAPIKey = "sk-fake-test-key-0001"

// openAIJob is a job of openai agents against a test upstream, with chaos.
type openAIJob struct {
	name                             string
	seed, chapters, sections, agents int
	model, url, timeout, chaos       string
	retries                          int
}

// writeOpenAIJob writes j as DIR/spec.yaml, sets the fake key its agents
// read, and returns the spec's path.
func writeOpenAIJob(t *testing.T, dir string, j openAIJob) string {
	t.Helper()
	spec := fmt.Sprintf(`name: %s
seed: %d
document:
  title: The Water Works
  chapters: %d
  sections_per_chapter: %d
  words_per_section: 200
agents:
  - count: %d
    backend: openai
    model: %s
    base_url: %s/v1
    api_key_env: DEMUR_TEST_FAKE_KEY
    retries: %d
    timeout: %s
    chaos: %s
policy: {retire_after: 1000, max_attempts: 40}
`, j.name, j.seed, j.chapters, j.sections, j.agents, j.model, j.url, j.retries, j.timeout, j.chaos)
	path := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(path, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DEMUR_TEST_FAKE_KEY", fakeAPIKey)
	return path
}
