package otel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/backends"
	"github.com/demurhq/demur/coord"
	"github.com/demurhq/demur/job"
	"github.com/demurhq/demur/natsbus"
	"github.com/demurhq/demur/otel"
	"github.com/demurhq/demur/policy"
	"github.com/demurhq/demur/refusal"
	"github.com/demurhq/demur/sqlite"
)

// spec is a small simulated job whose chaos layer turns some turns into
// Anthropic-style refusals (finish reason "refusal"), so that the policy
// reframes and hands work over.
const spec = `name: traced
seed: 7
document:
  title: Tracing
  chapters: 2
  sections_per_chapter: 4
  words_per_section: 120
agents:
  - {count: 3, backend: sim, profile: experimental-70b, chaos: {refusal_rate: 0.35, refusals: [anthropic_refusal]}}
policy: {retire_after: 1000, max_attempts: 40}
`

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "demur.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// runJob runs spec to its end with the coordinator writing through st.
func runJob(t *testing.T, st demur.Store, src string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sp, err := job.Parse("spec.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	bus, err := natsbus.Embedded(ctx, natsbus.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	jobID := sp.JobID()
	var entries []demur.AgentEntry
	var agents []*coord.Agent
	for _, g := range sp.Agents {
		for range g.Count {
			id := fmt.Sprintf("agent-%02d", len(entries)+1)
			b, err := backends.New(ctx, g, id, sp.Seed)
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries, demur.AgentEntry{ID: id, Backend: g.Backend, Model: backends.Model(g)})
			agents = append(agents, &coord.Agent{ID: id, Job: jobID, Model: backends.Model(g), Bus: bus, Backend: b})
		}
	}
	for _, a := range agents {
		a.Agents = len(agents)
	}
	actx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Run(actx) }()
	}
	pol := *policy.DefaultFile().Rules(sp.TaskType)
	pol.RetireAfter, pol.MaxAttempts = sp.Policy.RetireAfter, sp.Policy.MaxAttempts
	pol.Storm = nil // a storm would pause the job for a person
	det := refusal.New()
	c := coord.New(coord.Config{Job: jobID, Spec: []byte(src), Seed: sp.Seed, Tasks: coord.Plan(sp), Agents: entries,
		Bus: bus, Store: st, Policy: &pol,
		// The refusal ladder ends in escalate: nobody answers in a test.
		EscalateTimeout: 50 * time.Millisecond, EscalateDefault: demur.ActionReassign,
		NewDetector: func(string) demur.Detector { return refusal.NewStream(det, 8) }})
	_, err = c.Run(ctx)
	stop()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return jobID
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func records(t *testing.T, st demur.Store, job string, kind demur.RecordKind) []*demur.Record {
	t.Helper()
	recs, err := st.Records(context.Background(), demur.Query{Stream: job, Kinds: []demur.RecordKind{kind}})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func flush(t *testing.T, tr *otel.Tracer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func key(task, agent string, attempt int64) string {
	return fmt.Sprintf("%s/%s/%d", task, agent, attempt)
}

// TestTraceOfSimulatedRun runs a small simulated job with the coordinator
// writing through a traced store and checks the spans against the log:
// one invoke_workflow root, an invoke_agent per hand-out, a chat per turn
// whose tokens, finish reasons and times are the turn record's, and an
// apply_guardrail per decision under its turn, a refusal's with a modify
// decision and a security finding.
func TestTraceOfSimulatedRun(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr := otel.New(otel.Options{}, sdktrace.WithSyncer(exp))
	defer tr.Shutdown(context.Background())
	st := openStore(t)
	jobID := runJob(t, tr.Store(st), spec)
	flush(t, tr)
	spans := exp.GetSpans().Snapshots()

	byName := map[string][]sdktrace.ReadOnlySpan{}
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	opOf := func(s sdktrace.ReadOnlySpan) string { return attrs(s)["gen_ai.operation.name"].AsString() }
	want := otel.JobTraceID(jobID)
	for _, s := range spans {
		byName[opOf(s)] = append(byName[opOf(s)], s)
		if _, dup := byID[s.SpanContext().SpanID()]; dup {
			t.Fatalf("span ID %s used twice", s.SpanContext().SpanID())
		}
		byID[s.SpanContext().SpanID()] = s
		if s.SpanContext().TraceID() != want {
			t.Fatalf("span %q in trace %s, want the job's %s", s.Name(), s.SpanContext().TraceID(), want)
		}
		if s.EndTime().Before(s.StartTime()) {
			t.Errorf("span %q ends before it starts", s.Name())
		}
	}
	roots := byName["invoke_workflow"]
	if len(roots) != 1 || roots[0].Parent().IsValid() || roots[0].Name() != "invoke_workflow "+jobID {
		t.Fatalf("%d workflow spans: %v", len(roots), roots)
	}
	root := roots[0]
	if a := attrs(root); a["demur.job.status"].AsString() != "completed" || a["gen_ai.conversation.id"].AsString() != jobID {
		t.Errorf("workflow attributes %v", a)
	}
	starts, ends := records(t, st, jobID, demur.RecJobStart), records(t, st, jobID, demur.RecJobEnd)
	if !root.StartTime().Equal(starts[0].Time) || !root.EndTime().Equal(ends[0].Time) {
		t.Errorf("workflow %v–%v, log %v–%v", root.StartTime(), root.EndTime(), starts[0].Time, ends[0].Time)
	}

	assigns := records(t, st, jobID, demur.RecAssign)
	turns := records(t, st, jobID, demur.RecTurn)
	decisions := records(t, st, jobID, demur.RecDecision)
	if n := len(byName["invoke_agent"]); n != len(assigns) {
		t.Errorf("%d invoke_agent spans, %d assignments", n, len(assigns))
	}
	if n := len(byName["chat"]); n != len(turns) {
		t.Errorf("%d chat spans, %d turns", n, len(turns))
	}
	if n := len(byName["apply_guardrail"]); n != len(decisions) {
		t.Errorf("%d apply_guardrail spans, %d decisions", n, len(decisions))
	}
	for _, s := range byName["invoke_agent"] {
		if s.Parent().SpanID() != root.SpanContext().SpanID() || s.SpanKind() != trace.SpanKindInternal {
			t.Fatalf("invoke_agent %q: parent %s kind %s", s.Name(), s.Parent().SpanID(), s.SpanKind())
		}
		if a := attrs(s); a["gen_ai.agent.name"].AsString() == "" || a["gen_ai.agent.id"].AsString() == "" || a["gen_ai.conversation.id"].AsString() != jobID {
			t.Fatalf("invoke_agent attributes %v", a)
		}
	}

	chats := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range byName["chat"] {
		a := attrs(s)
		chats[key(a["demur.task.id"].AsString(), a["gen_ai.agent.id"].AsString(), a["demur.task.attempt"].AsInt64())] = s
		p, ok := byID[s.Parent().SpanID()]
		if !ok || opOf(p) != "invoke_agent" || attrs(p)["demur.task.id"] != a["demur.task.id"] {
			t.Fatalf("chat %q has parent %v", s.Name(), p)
		}
		if s.SpanKind() != trace.SpanKindClient || s.Name() != "chat experimental-70b" || a["gen_ai.provider.name"].AsString() != "demur.sim" {
			t.Fatalf("chat span %q kind %s attrs %v", s.Name(), s.SpanKind(), a)
		}
	}
	refused, tokens := 0, int64(0)
	for _, r := range turns {
		var p demur.TurnPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			t.Fatal(err)
		}
		s := chats[key(p.Task, p.Agent, int64(p.Attempt))]
		if s == nil {
			t.Fatalf("no chat span for turn %s/%s/%d", p.Task, p.Agent, p.Attempt)
		}
		a := attrs(s)
		tokens += a["gen_ai.usage.output_tokens"].AsInt64()
		if got := a["gen_ai.usage.output_tokens"].AsInt64(); got != int64(p.Usage.CompletionTokens) {
			t.Errorf("turn %s: output tokens %d, record %d", p.Task, got, p.Usage.CompletionTokens)
		}
		if got := a["gen_ai.usage.input_tokens"].AsInt64(); got != int64(p.Usage.PromptTokens) {
			t.Errorf("turn %s: input tokens %d, record %d", p.Task, got, p.Usage.PromptTokens)
		}
		if got := a["gen_ai.response.finish_reasons"].AsStringSlice(); !slices.Equal(got, []string{p.FinishReason}) {
			t.Errorf("turn %s: finish reasons %v, record %q", p.Task, got, p.FinishReason)
		}
		if !s.StartTime().Equal(p.Started) || !s.EndTime().Equal(p.Started.Add(p.Elapsed)) {
			t.Errorf("turn %s: span %v–%v, record started %v for %v", p.Task, s.StartTime(), s.EndTime(), p.Started, p.Elapsed)
		}
		if p.FinishReason != "refusal" {
			continue
		}
		refused++
		if a["demur.verdict.kind"].AsString() != "refuse" || a["demur.verdict.confidence"].AsFloat64() <= 0 || a["demur.turn.injected"].AsString() == "" {
			t.Errorf("refused turn's verdict attributes %v", a)
		}
	}
	if refused == 0 || tokens == 0 {
		t.Fatalf("the job had %d refused turns and %d output tokens; the test proves nothing", refused, tokens)
	}

	modified := 0
	for _, s := range byName["apply_guardrail"] {
		a := attrs(s)
		p, ok := byID[s.Parent().SpanID()]
		if a["demur.decision.rule"].AsString() == "escalate.timeout" {
			// Nobody answered an escalation: no turn led to this decision.
			if p != root {
				t.Errorf("a timed-out escalation's decision under %v, want the workflow", p)
			}
			continue
		}
		if !ok || opOf(p) != "chat" || attrs(p)["demur.task.id"] != a["demur.task.id"] {
			t.Fatalf("apply_guardrail under %v, want its turn's chat", p)
		}
		if s.Name() != "apply_guardrail demur router" || a["gen_ai.security.target.type"].AsString() != "llm_output" || a["gen_ai.guardian.name"].AsString() != "demur router" {
			t.Fatalf("guardrail %q %v", s.Name(), a)
		}
		typ, action := a["gen_ai.security.decision.type"].AsString(), a["demur.action"].AsString()
		switch {
		case action == "accept" && typ != "allow" && typ != "warn":
			t.Errorf("accept decided as %s", typ)
		case action == "reframe" || action == "retry" || action == "reassign" || action == "refresh_context":
			if typ != "modify" || a["gen_ai.security.decision.reason"].AsString() == "" || a["gen_ai.security.policy.id"].AsString() == "" {
				t.Errorf("%s decided as %s: %v", action, typ, a)
			}
			if attrs(p)["demur.verdict.kind"].AsString() == "refuse" {
				modified++
				ev := s.Events()
				if len(ev) != 1 || ev[0].Name != "gen_ai.security.finding" {
					t.Errorf("refusal's guardrail events %v", ev)
				}
			}
		}
	}
	if modified == 0 {
		t.Error("no refusal led to a modify decision")
	}

	// The same log, folded by another process (a serve following the
	// store, a run resumed from it), gives the same spans.
	exp2 := tracetest.NewInMemoryExporter()
	tr2 := otel.New(otel.Options{}, sdktrace.WithSyncer(exp2))
	defer tr2.Shutdown(context.Background())
	all, err := st.Records(context.Background(), demur.Query{Stream: jobID})
	if err != nil {
		t.Fatal(err)
	}
	tr2.Observe(all)
	flush(t, tr2)
	if a, b := summary(spans), summary(exp2.GetSpans().Snapshots()); !slices.Equal(a, b) {
		t.Fatalf("trace rebuilt from the log differs:\nlive   %d spans\nreplay %d spans\nfirst difference: %s", len(a), len(b), firstDiff(a, b))
	}
}

// summary renders what makes two traces the same: IDs, parents, names,
// times, attributes and events.
func summary(spans []sdktrace.ReadOnlySpan) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		kvs := s.Attributes()
		sort.Slice(kvs, func(a, b int) bool { return kvs[a].Key < kvs[b].Key })
		out[i] = fmt.Sprintf("%s %s<-%s %q %d %v-%v %v %v %v", s.SpanContext().TraceID(), s.SpanContext().SpanID(), s.Parent().SpanID(),
			s.Name(), s.SpanKind(), s.StartTime().UnixNano(), s.EndTime().UnixNano(), kvs, s.Events(), s.Status())
	}
	sort.Strings(out)
	return out
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return a[i] + "\n   vs " + b[i]
		}
	}
	return "(one is a prefix of the other)"
}
