package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/job"
	"github.com/demurhq/demur/natsbus"
	"github.com/demurhq/demur/policy"
	"github.com/demurhq/demur/sqlite"
)

func testSpec(t *testing.T, chapters, sections int) *job.Spec {
	t.Helper()
	src := fmt.Sprintf(`name: t
seed: 5
document: {title: T, chapters: %d, sections_per_chapter: %d, words_per_section: 100}
agents: [{count: 3, profile: x}]
`, chapters, sections)
	s, err := job.Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPlan(t *testing.T) {
	s := testSpec(t, 5, 7)
	tasks := Plan(s)
	if len(tasks) != 35 {
		t.Fatalf("%d tasks, want 35", len(tasks))
	}
	ids := map[string]bool{}
	titles := map[string]bool{}
	for i, tk := range tasks {
		if tk.Index != i || ids[tk.ID] {
			t.Fatalf("task %d: index %d id %s (duplicate %v)", i, tk.Index, tk.ID, ids[tk.ID])
		}
		ids[tk.ID] = true
		titles[tk.ChapterTitle+"/"+tk.Title] = true
		if i > 0 && !strings.Contains(tk.PrevSummary, tasks[i-1].Title) {
			t.Errorf("task %s: previous summary %q does not name %q", tk.ID, tk.PrevSummary, tasks[i-1].Title)
		}
	}
	if len(titles) != 35 {
		t.Errorf("%d distinct section titles of 35", len(titles))
	}
	again := Plan(testSpec(t, 5, 7))
	if again[20].Title != tasks[20].Title {
		t.Error("plan is not deterministic for a seed")
	}
}

// scripted is a backend whose behaviour is fixed per agent: it refuses from
// turn refuseFrom on (0: never), and its first degradeOnce turn is degraded.
type scripted struct {
	mu          sync.Mutex
	turns       int
	refuseFrom  int
	refuseWhole bool // refuse whole sections, write parts of split ones
}

func (s *scripted) Generate(_ context.Context, req *demur.Request) (*demur.Response, error) {
	s.mu.Lock()
	s.turns++
	n := s.turns
	s.mu.Unlock()
	prompt := req.Messages[len(req.Messages)-1].Content
	if s.refuseWhole && !strings.Contains(prompt, "Write part ") {
		return &demur.Response{Output: "REFUSE", FinishReason: "stop", Usage: demur.Usage{CompletionTokens: 2}}, nil
	}
	if s.refuseFrom > 0 && n >= s.refuseFrom && !req.Force {
		return &demur.Response{Output: "REFUSE", FinishReason: "stop", Usage: demur.Usage{CompletionTokens: 2}}, nil
	}
	return &demur.Response{Output: "text for " + firstLine(prompt, "Section "), FinishReason: "stop",
		Usage: demur.Usage{CompletionTokens: 100}, Truth: []byte(`{"kind":"comply"}`)}, nil
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.turns
}

func firstLine(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// markerDetector keeps these tests independent of the real detector.
type markerDetector struct{}

func (markerDetector) Classify(t *demur.Turn) demur.Verdict {
	if t.Output == "REFUSE" {
		return demur.Verdict{Kind: demur.KindRefuse, Confidence: 0.9, Reasons: []demur.Reason{demur.ReasonLowUtility}}
	}
	return demur.Verdict{Kind: demur.KindComply, Confidence: 0.9}
}

type harness struct {
	store    *sqlite.Store
	bus      *natsbus.Bus
	spec     *job.Spec
	backends map[string]*scripted
	// direct lists the agents that hand results over (Agent.Direct), and
	// handOff those of them that hand their task's ack over with it
	// (Agent.HandOff); the others publish them on the durable result
	// subject.
	direct, handOff map[string]bool
	// agentBus, when set, is the agents' bus instead of bus.
	agentBus demur.Bus
}

func newHarness(t *testing.T, dir string, spec *job.Spec, refuseFrom map[string]int) *harness {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "demur.db"))
	if err != nil {
		t.Fatal(err)
	}
	bus, err := natsbus.Embedded(ctx, natsbus.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{store: st, bus: bus, spec: spec, backends: map[string]*scripted{}}
	for i := 1; i <= spec.TotalAgents(); i++ {
		id := fmt.Sprintf("agent-%02d", i)
		h.backends[id] = &scripted{refuseFrom: refuseFrom[id]}
	}
	return h
}

func (h *harness) close() {
	h.bus.Close()
	h.store.Close()
}

// run runs the job until it ends or ctx ends.
func (h *harness) run(ctx context.Context, t *testing.T, pol *policy.Policy) (*demur.JobEndPayload, error) {
	t.Helper()
	return h.runWith(ctx, t, pol, nil)
}

func (h *harness) runWith(ctx context.Context, t *testing.T, pol *policy.Policy, tune func(*Config)) (*demur.JobEndPayload, error) {
	t.Helper()
	var entries []demur.AgentEntry
	for i := 1; i <= h.spec.TotalAgents(); i++ {
		entries = append(entries, demur.AgentEntry{ID: fmt.Sprintf("agent-%02d", i), Backend: "scripted"})
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, e := range entries {
		var bus demur.Bus = h.bus
		if h.agentBus != nil {
			bus = h.agentBus
		}
		a := &Agent{ID: e.ID, Job: h.spec.JobID(), Agents: len(entries), Backend: h.backends[e.ID], Bus: bus,
			Direct: h.direct[e.ID], HandOff: h.handOff[e.ID]}
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Run(actx) }()
	}
	cfg := Config{Job: h.spec.JobID(), Tasks: Plan(h.spec), Agents: entries, Bus: h.bus, Store: h.store, Policy: pol,
		NewDetector: func(string) demur.Detector { return markerDetector{} }}
	if tune != nil {
		tune(&cfg)
	}
	c := New(cfg)
	end, err := c.Run(ctx)
	cancel()
	wg.Wait()
	return end, err
}

func TestRefusalsHandedOverAndAgentsRetired(t *testing.T) {
	spec := testSpec(t, 3, 4)
	h := newHarness(t, t.TempDir(), spec, map[string]int{"agent-01": 2})
	defer h.close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rp := runRetiringAfterOne(ctx, t, h, spec, 12)
	a1 := rp.Agents[0]
	if !a1.Refused || !a1.Retired || a1.TokensAtRefusal != 102 || a1.Sections != 1 {
		t.Fatalf("agent-01: %+v", a1)
	}
	if rp.Lost.Turns != 1 || rp.Lost.Tokens != 2 {
		t.Fatalf("lost %+v, want the one refused turn", rp.Lost)
	}
	if rp.RefusalRate != 1.0/3 || rp.MeanAbandonmentTokens != 102 {
		t.Fatalf("rate %v mean %v", rp.RefusalRate, rp.MeanAbandonmentTokens)
	}
	if h.backends["agent-01"].turns != 2 {
		t.Errorf("a retired agent kept working: %d turns", h.backends["agent-01"].turns)
	}
	doc := filepath.Join(t.TempDir(), "doc.md")
	if err := WriteDocument(ctx, h.store, rp, Plan(spec), doc); err != nil {
		t.Fatal(err)
	}
}

// runRetiringAfterOne runs h's job under the default policy with agents
// retired after one refusal, and returns its report once it has checked
// that the job completed with each of its sections written exactly once.
func runRetiringAfterOne(ctx context.Context, t *testing.T, h *harness, spec *job.Spec, sections int) *Report {
	t.Helper()
	pol := policy.Default()
	pol.RetireAfter = 1
	end, err := h.run(ctx, t, pol)
	if err != nil {
		t.Fatal(err)
	}
	if end.Status != StatusCompleted || end.Done != sections {
		t.Fatalf("end %+v", end)
	}
	rp, err := BuildReport(ctx, h.store, spec.JobID())
	if err != nil {
		t.Fatal(err)
	}
	if rp.SectionsDone != sections || len(rp.Sections) != sections {
		t.Fatalf("report: %d sections done, %d listed", rp.SectionsDone, len(rp.Sections))
	}
	seen := map[string]bool{}
	for _, s := range rp.Sections {
		if seen[s.Task] {
			t.Fatalf("section %s written twice", s.Task)
		}
		seen[s.Task] = true
	}
	return rp
}

// resultCounter counts results by the way they reach the coordinator.
type resultCounter struct {
	*natsbus.Bus
	published, sent, handedOff atomic.Int64
}

func (p *resultCounter) Publish(ctx context.Context, subject string, data []byte) error {
	if strings.HasPrefix(subject, "demur.result.") {
		p.published.Add(1)
	}
	return p.Bus.Publish(ctx, subject, data)
}

func (p *resultCounter) Send(ctx context.Context, subject string, data []byte) error {
	p.sent.Add(1)
	return p.Bus.Send(ctx, subject, data)
}

func (p *resultCounter) HandOff(ctx context.Context, subject string, data []byte, d demur.Delivery) error {
	p.handedOff.Add(1)
	return p.Bus.HandOff(ctx, subject, data, d)
}

// TestResultPaths runs a job whose agents hand results over with their
// task's ack (Agent.HandOff), hand them over and ack the task themselves
// (Agent.Direct), or publish them, as a job served by workers of three
// versions would: the coordinator takes all three, and every section is
// written once.
func TestResultPaths(t *testing.T) {
	spec := testSpec(t, 3, 4)
	h := newHarness(t, t.TempDir(), spec, map[string]int{"agent-01": 2})
	defer h.close()
	counter := &resultCounter{Bus: h.bus}
	h.agentBus = counter
	h.direct = map[string]bool{"agent-01": true, "agent-02": true}
	h.handOff = map[string]bool{"agent-01": true}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runRetiringAfterOne(ctx, t, h, spec, 12)
	for _, c := range []struct {
		path  string
		agent string
		n     int64
	}{
		{"handed off", "agent-01", counter.handedOff.Load()},
		{"sent", "agent-02", counter.sent.Load()},
		{"published", "agent-03", counter.published.Load()},
	} {
		if turns := int64(h.backends[c.agent].turns); c.n != turns || turns == 0 {
			t.Errorf("%d results %s, want %s's %d turns", c.n, c.path, c.agent, turns)
		}
	}
	// Every section's task was acked: what is left on the queues are the
	// Stops of agents cancelled before they read them.
	for i := 1; i <= spec.TotalAgents(); i++ {
		id := fmt.Sprintf("agent-%02d", i)
		cons, err := h.bus.Consume(ctx, TaskSubject(spec.JobID(), id), AgentDurable(spec.JobID(), id))
		if err != nil {
			t.Fatal(err)
		}
		for {
			nctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			d, err := cons.Next(nctx)
			cancel()
			if err != nil {
				break
			}
			var as Assignment
			if json.Unmarshal(d.Data(), &as) != nil || !as.Stop {
				t.Errorf("%s: task %s attempt %d left unacked", id, as.Task.ID, as.Task.Attempt)
			}
			_ = d.Ack()
		}
		cons.Close()
	}
}

func TestAllAgentsRefuseJobIncomplete(t *testing.T) {
	spec := testSpec(t, 2, 3)
	h := newHarness(t, t.TempDir(), spec, map[string]int{"agent-01": 1, "agent-02": 1, "agent-03": 2})
	defer h.close()
	pol := policy.Default()
	pol.RetireAfter = 1
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	end, err := h.run(ctx, t, pol)
	if err != nil {
		t.Fatal(err)
	}
	if end.Status != StatusIncomplete || end.Done != 1 || len(end.Missing) != 5 {
		t.Fatalf("end %+v", end)
	}
}

func TestResumeWritesNoSectionTwice(t *testing.T) {
	dir := t.TempDir()
	spec := testSpec(t, 4, 5)
	h := newHarness(t, dir, spec, nil)
	// Interrupt the first run after a few results.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			rp, err := BuildReport(context.Background(), h.store, spec.JobID())
			if err == nil && rp.SectionsDone >= 5 {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	_, err := h.run(ctx, t, policy.Default())
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	h.close()
	h2 := newHarness(t, dir, spec, nil)
	defer h2.close()
	end, err := h2.run(context.Background(), t, policy.Default())
	if err != nil {
		t.Fatal(err)
	}
	if end.Status != StatusCompleted || end.Done != 20 {
		t.Fatalf("resumed end %+v", end)
	}
	rp, err := BuildReport(context.Background(), h2.store, spec.JobID())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range rp.Sections {
		if seen[s.Task] {
			t.Fatalf("section %s written twice", s.Task)
		}
		seen[s.Task] = true
	}
	if len(seen) != 20 {
		t.Fatalf("%d sections", len(seen))
	}
	// A third run finds the job finished and does nothing.
	again, err := h2.run(context.Background(), t, policy.Default())
	if err != nil || again.Status != StatusCompleted {
		t.Fatalf("rerun: %+v %v", again, err)
	}
}

// TestEscalationForcedByOverride: every agent refuses, the policy escalates,
// and an approved force override from the control subject gets the section
// written; an unapproved one is recorded as rejected and changes nothing.
func TestEscalationForcedByOverride(t *testing.T) {
	spec := testSpec(t, 1, 1)
	h := newHarness(t, t.TempDir(), spec, map[string]int{"agent-01": 1, "agent-02": 1, "agent-03": 1})
	defer h.close()
	pol := policy.Default()
	pol.On[demur.KindRefuse] = []demur.Action{demur.ActionEscalate}
	pol.RetireAfter = 100
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	events := make(chan Event, 100)
	go func() {
		// Wait for the escalation, then send a rejected and an approved override.
		for e := range events {
			if e.Type == "turn" && e.Action == demur.ActionEscalate {
				send := func(o demur.Override) {
					data, _ := json.Marshal(o)
					if err := h.bus.Broadcast(fmt.Sprintf(demur.SubjectControl, spec.JobID()), data); err != nil {
						t.Error(err)
					}
				}
				send(demur.Override{ID: "o1", Job: spec.JobID(), Action: demur.ActionForce, Task: "c01s01", Status: demur.OverridePending, Requester: "mallory"})
				send(demur.Override{ID: "o2", Job: spec.JobID(), Action: demur.ActionForce, Task: "c01s01", Agent: e.Agent, Status: demur.OverrideApproved, Requester: "alice"})
				return
			}
		}
	}()
	end, err := h.runWith(ctx, t, pol, func(c *Config) {
		c.OnEvent = func(e Event) {
			select {
			case events <- e:
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if end.Status != StatusCompleted {
		t.Fatalf("end %+v", end)
	}
	recs, err := h.store.Records(ctx, demur.Query{Job: spec.JobID(), Kinds: []demur.RecordKind{demur.RecOverride}})
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]string{}
	for _, r := range recs {
		var p OverridePayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			t.Fatal(err)
		}
		outcomes[p.Override.ID] = p.Outcome
	}
	if outcomes["o2"] != demur.OverrideApplied || !strings.HasPrefix(outcomes["o1"], "rejected") {
		t.Fatalf("override outcomes %v", outcomes)
	}
	assigns, _ := h.store.Records(ctx, demur.Query{Job: spec.JobID(), Kinds: []demur.RecordKind{demur.RecAssign}})
	var forced int
	for _, r := range assigns {
		var p demur.AssignPayload
		_ = json.Unmarshal(r.Payload, &p)
		if p.Force {
			forced++
		}
	}
	if forced != 1 {
		t.Fatalf("%d forced assignments, want 1", forced)
	}
}

// TestEscalationTimesOut: with nobody answering, the default action applies.
func TestEscalationTimesOut(t *testing.T) {
	spec := testSpec(t, 1, 2)
	h := newHarness(t, t.TempDir(), spec, map[string]int{"agent-01": 1})
	defer h.close()
	pol := policy.Default()
	pol.On[demur.KindRefuse] = []demur.Action{demur.ActionEscalate}
	pol.RetireAfter = 1
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	end, err := h.runWith(ctx, t, pol, func(c *Config) { c.EscalateTimeout, c.EscalateDefault = 50*time.Millisecond, demur.ActionReassign })
	if err != nil {
		t.Fatal(err)
	}
	if end.Status != StatusCompleted {
		t.Fatalf("end %+v", end)
	}
	decs, _ := h.store.Records(ctx, demur.Query{Job: spec.JobID(), Kinds: []demur.RecordKind{demur.RecDecision}})
	var timeouts int
	for _, r := range decs {
		var p demur.DecisionPayload
		_ = json.Unmarshal(r.Payload, &p)
		if p.Decision.Rule == "escalate.timeout" && p.Decision.Action == demur.ActionReassign {
			timeouts++
		}
	}
	if timeouts != 1 {
		t.Fatalf("%d escalation timeouts recorded, want 1", timeouts)
	}
}

// TestSplit: a section refused whole is split, its parts are written, and
// the document holds both parts in order at the section's place.
func TestSplit(t *testing.T) {
	dir := t.TempDir()
	spec := testSpec(t, 1, 3)
	h := newHarness(t, dir, spec, nil)
	defer h.close()
	for _, b := range h.backends {
		b.refuseWhole = true
	}
	pol := policy.Default()
	pol.On[demur.KindRefuse] = []demur.Action{demur.ActionSplit}
	pol.RetireAfter = 100
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	end, err := h.run(ctx, t, pol)
	if err != nil {
		t.Fatal(err)
	}
	if end.Status != StatusCompleted || end.Done != 3 || end.Total != 3 {
		t.Fatalf("end %+v", end)
	}
	rp, err := BuildReport(ctx, h.store, spec.JobID())
	if err != nil {
		t.Fatal(err)
	}
	if rp.SectionsDone != 3 || len(rp.Sections) != 6 {
		t.Fatalf("%d sections done from %d section records", rp.SectionsDone, len(rp.Sections))
	}
	doc := filepath.Join(dir, "doc.md")
	if err := WriteDocument(ctx, h.store, rp, Plan(spec), doc); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(doc)
	text := string(data)
	first := strings.Index(text, "Section 1.1:")
	second := strings.Index(text, "Section 1.2:")
	if first < 0 || second < first || strings.Count(text, "text for Section 1.1:") != 2 {
		t.Fatalf("document does not hold both parts of 1.1 before 1.2:\n%s", text)
	}
	// A second coordinator on the same log rebuilds the split and finds the job done.
	again, err := h.run(ctx, t, pol)
	if err != nil || again.Status != StatusCompleted {
		t.Fatalf("rerun %+v %v", again, err)
	}
}

// TestStormPausesJob: when most recent turns are refusals, the storm
// breaker pauses the job instead of retrying; the pause ends when the
// escalation times out.
func TestStormPausesJob(t *testing.T) {
	spec := testSpec(t, 2, 3)
	h := newHarness(t, t.TempDir(), spec, map[string]int{"agent-01": 1, "agent-02": 1})
	defer h.close()
	pol := policy.Default()
	pol.Storm = &policy.Storm{Window: 2, MaxRefusalRate: 0.4, Action: demur.ActionEscalate}
	pol.RetireAfter = 1
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	end, err := h.runWith(ctx, t, pol, func(c *Config) {
		c.EscalateTimeout, c.EscalateDefault = 30*time.Millisecond, demur.ActionReassign
	})
	if err != nil {
		t.Fatal(err)
	}
	if end.Status != StatusCompleted {
		t.Fatalf("end %+v", end)
	}
	decs, _ := h.store.Records(ctx, demur.Query{Job: spec.JobID(), Kinds: []demur.RecordKind{demur.RecDecision}})
	var storms, resumes int
	for _, r := range decs {
		var p demur.DecisionPayload
		_ = json.Unmarshal(r.Payload, &p)
		if p.Decision.Rule == "storm" {
			storms++
		}
		if p.Decision.Action == demur.ActionResume && p.Decision.Rule == "escalate.timeout" {
			resumes++
		}
	}
	if storms == 0 || resumes == 0 {
		t.Fatalf("storm decisions %d, timed-out resumes %d", storms, resumes)
	}
}

func TestRing(t *testing.T) {
	r := newRing(3)
	if r.rate() != 0 {
		t.Fatal("empty ring has a rate")
	}
	for _, b := range []bool{true, true, false, false} {
		r.add(b)
	}
	if r.n != 3 || r.rate() != 1.0/3 {
		t.Fatalf("n %d rate %v", r.n, r.rate())
	}
}

// TestRotateToFallbackModel: a refusal under a rotate ladder goes to an
// agent on the policy's fallback model, started mid-job, which the log
// records and the report lists.
func TestRotateToFallbackModel(t *testing.T) {
	spec := testSpec(t, 1, 3)
	h := newHarness(t, t.TempDir(), spec, map[string]int{"agent-01": 1, "agent-02": 1, "agent-03": 1})
	defer h.close()
	pol := policy.Default()
	pol.On[demur.KindRefuse] = []demur.Action{demur.ActionRotate}
	pol.Fallback = "steady-model"
	pol.RetireAfter = 1
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var spawned []string
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	end, err := h.runWith(ctx, t, pol, func(c *Config) {
		c.Spawn = func(id, model string) error {
			spawned = append(spawned, id+"@"+model)
			a := &Agent{ID: id, Job: spec.JobID(), Agents: 4, Model: model, Backend: &scripted{}, Bus: h.bus}
			wg.Add(1)
			go func() { defer wg.Done(); _ = a.Run(ctx) }()
			return nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if end.Status != StatusCompleted || len(spawned) != 1 || spawned[0] != "fallback-01@steady-model" {
		t.Fatalf("end %+v, spawned %v", end, spawned)
	}
	rp, err := BuildReport(ctx, h.store, spec.JobID())
	if err != nil {
		t.Fatal(err)
	}
	last := rp.Agents[len(rp.Agents)-1]
	if last.ID != "fallback-01" || last.Model != "steady-model" || last.Sections != 3 {
		t.Fatalf("fallback agent in the report: %+v", last)
	}
}
