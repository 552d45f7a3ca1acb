// Package coord is demur's own coordinator and agent loop: it plans a
// document, hands sections to agents over the bus, runs every turn through
// detect → decide → record, carries out the decision, and merges the
// accepted sections in order. The audit log is its memory: a coordinator
// started on a log that already holds the job resumes it.
package coord

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/policy"
)

// Status values of a finished job.
const (
	StatusCompleted  = "completed"
	StatusIncomplete = "incomplete"
)

// Event tells a progress display what just happened.
type Event struct {
	Type    string // "assign", "turn", "retired", "done"
	Agent   string
	Task    string
	Verdict demur.Kind
	Reason  demur.Reason
	Action  demur.Action
	Words   int64 // the agent's words so far
	Tokens  int64 // the agent's output tokens so far
	Done    int   // sections done in the job
	Total   int
}

// Config is everything a coordinator needs.
type Config struct {
	Job   string
	Spec  []byte // the spec file, recorded in the log
	Seed  int64
	Tasks []demur.Task
	// Agents in dispatch order.
	Agents []demur.AgentEntry
	Bus    demur.Bus
	Store  demur.Store
	// NewDetector returns a detector for one agent's turns; it may keep that
	// agent's history.
	NewDetector func(agent string) demur.Detector
	Policy      *policy.Policy
	// OnEvent, when set, is called from the coordinator's goroutine.
	OnEvent func(Event)
	// Overrides are approved overrides found in the log at start (their
	// broadcast is not durable); the coordinator applies those it has not.
	Overrides []demur.Override
	// OnOverrideApplied, when set, is told of each override carried out,
	// after its record is durable.
	OnOverrideApplied func(demur.Override)
	// Spawn, when set, starts an agent with the given ID and model mid-job:
	// a rotate to the policy's fallback model when no agent of the job runs
	// it. It is called again for such agents when a job resumes.
	Spawn func(id, model string) error
	// NewMonitor, when set, returns the early-warning model of one agent.
	NewMonitor func(agent string) HazardModel
	// EscalateTimeout is how long an escalated work item waits for a person
	// before EscalateDefault applies; both default to the policy's.
	EscalateTimeout time.Duration
	EscalateDefault demur.Action
}

type agentState struct {
	entry    demur.AgentEntry
	live     bool
	busy     bool
	paused   bool
	refusals int
	tokens   int64
	words    int64
	detector demur.Detector
	monitor  HazardModel
	next     demur.Action // early warning: how to hand out this agent's next task
	chapter  int          // chapter of the agent's last task, for variety
}

// HazardModel estimates, from one agent's verdicts in order, the chance
// that the agent refuses soon (package monitor).
type HazardModel interface {
	Observe(v demur.Verdict) float64
}

// queued is a task waiting for an agent.
type queued struct {
	task    int    // index into Config.Tasks
	only    string // only this agent may take it (retry, refresh, reframe)
	avoid   string // prefer any other agent (reassign)
	refresh bool
	force   bool
	frame   string
}

// Coordinator runs one job.
type Coordinator struct {
	cfg       Config
	byID      map[string]int
	agents    map[string]*agentState
	order     []string
	queue     []queued
	done      map[string]bool
	aborted   map[string]bool
	attempts  map[string]int
	repeats   map[string]map[demur.Kind]int
	seen      map[string]bool // task/attempt results already processed
	last      map[string]lastOutput
	escalated map[string]escalation
	paused    bool            // the whole job, by a storm or a person
	applied   map[string]bool // override IDs already carried out
	splitInto map[string][]string
	parentOf  map[string]string // a split section's parts' parent
	// openTasks and sectionsWritten are remaining() and sectionsDone(),
	// kept up to date by markDone, markAborted, unabort and split.
	openTasks, sectionsWritten int
	summaries                  map[int]string   // opening of each written section, by index
	appliedNow                 []demur.Override // applied since the last flush
	spawned                    int              // fallback agents started mid-job
	window                     *ring            // refusals among the job's last turns, for the storm breaker
	jobRefusals                int
	planned                    int // sections in the plan, before any split
	started                    bool
	ended                      *demur.JobEndPayload
	pending                    []*demur.Record
	blobs                      [][]byte // outputs the pending records name, written with them
	outbox                     []demur.BusMessage
	acks                       []demur.Delivery // results the pending records came from
}

// New returns a coordinator for cfg.
func New(cfg Config) *Coordinator {
	c := &Coordinator{
		cfg: cfg, byID: map[string]int{}, agents: map[string]*agentState{},
		done: map[string]bool{}, aborted: map[string]bool{}, attempts: map[string]int{},
		repeats: map[string]map[demur.Kind]int{}, seen: map[string]bool{},
		last: map[string]lastOutput{}, escalated: map[string]escalation{}, applied: map[string]bool{},
		splitInto: map[string][]string{}, parentOf: map[string]string{}, planned: len(cfg.Tasks),
		openTasks: len(cfg.Tasks), summaries: map[int]string{},
	}
	c.cfg.Tasks = append([]demur.Task(nil), cfg.Tasks...) // splits append parts
	pol := *cfg.Policy
	c.cfg.Policy = &pol // the coordinator may drop a fallback that fails to start
	if c.cfg.EscalateTimeout <= 0 {
		c.cfg.EscalateTimeout = cfg.Policy.Escalate.Timeout
	}
	if c.cfg.EscalateTimeout <= 0 {
		c.cfg.EscalateTimeout = 10 * time.Minute
	}
	if c.cfg.EscalateDefault == "" {
		c.cfg.EscalateDefault = cfg.Policy.Escalate.Default
	}
	if c.cfg.EscalateDefault == "" {
		c.cfg.EscalateDefault = demur.ActionReassign
	}
	window := 50
	if cfg.Policy.Storm != nil {
		window = cfg.Policy.Storm.Window
	}
	c.window = newRing(window)
	for i, t := range cfg.Tasks {
		c.byID[t.ID] = i
	}
	for _, a := range cfg.Agents {
		c.join(a)
	}
	return c
}

// Run drives the job to its end and returns the final status. When ctx
// ends first, Run returns ctx's error and the job can be resumed from the
// log.
func (c *Coordinator) Run(ctx context.Context) (*demur.JobEndPayload, error) {
	if err := c.replay(ctx); err != nil {
		return nil, fmt.Errorf("replay log: %w", err)
	}
	if c.ended != nil {
		return c.ended, nil
	}
	// Results come handed over on the turn subject (a DirectBus, agents
	// with Agent.Direct), or published on the durable result subject.
	results, err := c.cfg.Bus.Consume(ctx, ResultSubject(c.cfg.Job), durableName("coord", c.cfg.Job))
	if err != nil {
		return nil, fmt.Errorf("consume results: %w", err)
	}
	defer results.Close()
	sources := []demur.Consumer{results}
	if db, ok := c.cfg.Bus.(demur.DirectBus); ok {
		// Listening before the first task goes out: a result handed over
		// while nobody listens is only sent again later.
		direct, err := db.Listen(TurnSubject(c.cfg.Job))
		if err != nil {
			return nil, fmt.Errorf("listen for results: %w", err)
		}
		defer direct.Close()
		sources = append(sources, direct)
	}
	if !c.started {
		c.record(demur.RecJobStart, "coordinator", demur.JobStartPayload{
			Spec: c.cfg.Spec, Seed: c.cfg.Seed, Sections: len(c.cfg.Tasks), Agents: c.cfg.Agents,
			TaskType: taskType(c.cfg.Tasks),
		})
	}
	c.dispatch()
	if err := c.flush(ctx); err != nil {
		return nil, err
	}
	loopCtx, stop := context.WithCancel(ctx)
	defer stop()
	resCh := pump(loopCtx, sources...)
	ovCh, unsub, err := c.subscribeOverrides()
	if err != nil {
		return nil, err
	}
	defer unsub()
	for _, o := range c.cfg.Overrides {
		if o.Status == demur.OverrideApproved {
			c.applyOverride(o)
		}
	}
	c.dispatch()
	if err := c.flush(ctx); err != nil {
		return nil, err
	}
	for !c.finished() {
		timer, cancelTimer := c.escalationTimer()
		select {
		case <-ctx.Done():
			cancelTimer()
			return nil, ctx.Err()
		case ev := <-resCh:
			cancelTimer()
			if err := c.onResults(ctx, nextBatch(ev, resCh)); err != nil {
				return nil, err
			}
			continue
		case o := <-ovCh:
			c.applyOverride(o)
		case now := <-timer:
			c.expireEscalations(now)
		}
		cancelTimer()
		c.dispatch()
		if err := c.flush(ctx); err != nil {
			return nil, err
		}
	}
	return c.finish(ctx)
}

func taskType(ts []demur.Task) string {
	if len(ts) == 0 {
		return ""
	}
	return ts[0].Type
}

// finished reports whether no more work can happen.
func (c *Coordinator) finished() bool {
	if c.remaining() == 0 && len(c.escalated) == 0 {
		return true
	}
	return c.liveAgents() == 0 && len(c.escalated) == 0
}

func (c *Coordinator) liveAgents() int {
	n := 0
	for _, a := range c.agents {
		if a.live {
			n++
		}
	}
	return n
}

func (c *Coordinator) finish(ctx context.Context) (*demur.JobEndPayload, error) {
	end := &demur.JobEndPayload{Done: c.sectionsDone(), Total: c.planned, Status: StatusCompleted}
	for _, t := range c.cfg.Tasks {
		if c.splitInto[t.ID] == nil && !c.done[t.ID] {
			end.Missing = append(end.Missing, t.ID)
		}
	}
	if len(end.Missing) > 0 {
		end.Status = StatusIncomplete
	}
	for _, id := range c.order {
		if c.agents[id].live {
			c.send(id, Assignment{Stop: true})
		}
	}
	c.record(demur.RecJobEnd, "coordinator", end)
	if err := c.flush(ctx); err != nil {
		return nil, err
	}
	c.emit(Event{Type: "done", Done: c.sectionsDone(), Total: c.planned})
	return end, nil
}

// handle runs one result through detect → decide → record and applies the
// decision to the plan; the records and messages go out at the next flush.
func (c *Coordinator) handle(ctx context.Context, res *Result) error {
	key := taskKey(&res.Task)
	a, ok := c.agents[res.Agent]
	_, planned := c.byID[res.Task.ID]
	if !ok || !planned || c.seen[key] {
		return nil // a duplicate delivery, or a stranger: nothing to do twice
	}
	c.seen[key] = true
	a.busy = false
	if res.Err != "" {
		c.backendFailed(res)
		return nil
	}
	blob, words := c.recordTurn(a, res)
	v := c.judge(a, res)
	d := c.decide(a, res, v)
	if d.Action == demur.ActionAccept {
		c.summaries[c.cfg.Tasks[c.byID[res.Task.ID]].Index] = summarize(res.Turn.Output)
	}
	c.apply(res, blob, words, v, d)
	return nil
}

// backendFailed records a turn the backend could not answer and hands the
// task to another agent, until the task runs out of attempts.
func (c *Coordinator) backendFailed(res *Result) {
	c.record(demur.RecTurn, res.Agent, demur.TurnPayload{Task: res.Task.ID, Agent: res.Agent, Attempt: res.Task.Attempt, Error: res.Err})
	if c.attempts[res.Task.ID] >= c.cfg.Policy.MaxAttempts {
		c.markAborted(res.Task.ID)
		return
	}
	c.requeue(queued{task: c.byID[res.Task.ID], avoid: res.Agent})
}

// recordTurn queues the output as a blob and records the turn and the
// simulator's ground truth, if any. The blob is written with the records,
// in the same commit, at the next flush.
func (c *Coordinator) recordTurn(a *agentState, res *Result) (blob string, words int) {
	t := &res.Turn
	out := []byte(t.Output)
	blob = demur.BlobHash(out)
	c.blobs = append(c.blobs, out)
	words = countWords(t.Output)
	a.tokens += int64(t.Usage.CompletionTokens)
	a.words += int64(words)
	c.record(demur.RecTurn, res.Agent, demur.TurnPayload{
		Task: res.Task.ID, Agent: res.Agent, Attempt: res.Task.Attempt, Model: t.Model, Prompt: t.Prompt,
		Output: blob, OutputBytes: len(t.Output), Words: words, FinishReason: t.FinishReason, Usage: t.Usage,
		LPMean: t.LPMean, ProviderRefusal: t.ProviderRefusal, StopCategory: t.StopCategory,
		StopExplanation: t.StopExplanation, Injected: t.Injected, Started: t.Started, Elapsed: t.Elapsed,
	})
	if len(res.Truth) > 0 {
		c.record(demur.RecTruth, "sim", demur.TruthPayload{Task: res.Task.ID, Agent: res.Agent, Attempt: res.Task.Attempt, Truth: res.Truth})
	}
	return blob, words
}

// judge runs the detector and the early-warning monitor on a turn, counts
// refusals, and records the verdict.
func (c *Coordinator) judge(a *agentState, res *Result) demur.Verdict {
	v := a.detector.Classify(&res.Turn)
	v.Signals.CumTokens = a.tokens
	if res.Turn.Injected != "" && v.Kind != demur.KindComply {
		v.Source = demur.SourceInjected // a chaos test's refusal, not the model's
	}
	refused := v.Kind.IsRefusal() && v.Confidence >= c.cfg.Policy.MinConfidence
	if refused {
		a.refusals++
		c.jobRefusals++
	}
	c.window.add(refused)
	if a.monitor != nil {
		v.Signals.Hazard = a.monitor.Observe(v)
	}
	c.record(demur.RecVerdict, "detector", demur.VerdictPayload{Task: res.Task.ID, Agent: res.Agent, Attempt: res.Task.Attempt, Verdict: v})
	return v
}

// decide asks the router and records its decision.
func (c *Coordinator) decide(a *agentState, res *Result, v demur.Verdict) demur.Decision {
	reps := c.repeats[res.Task.ID]
	if reps == nil {
		reps = map[demur.Kind]int{}
		c.repeats[res.Task.ID] = reps
	}
	d := c.cfg.Policy.Decide(policy.Input{
		Verdict: v, Attempt: c.attempts[res.Task.ID], Repeats: reps[v.Kind],
		AgentRefusals: a.refusals, OtherAgents: c.liveAgents() - 1, Hazard: v.Signals.Hazard,
		WindowRefusalRate: c.window.rate(), WindowSize: c.window.n, JobRefusals: c.jobRefusals,
	})
	reps[v.Kind]++
	c.record(demur.RecDecision, "router", demur.DecisionPayload{Task: res.Task.ID, Agent: res.Agent, Attempt: res.Task.Attempt, Decision: d})
	return d
}

// apply carries out a decision on the plan.
func (c *Coordinator) apply(res *Result, blob string, words int, v demur.Verdict, d demur.Decision) {
	id, agent := res.Task.ID, res.Agent
	c.last[id] = lastOutput{agent: agent, attempt: res.Task.Attempt, blob: blob, words: words}
	c.carryOut(id, agent, d.Action, reframe(&c.cfg.Tasks[c.byID[id]]))
	a := c.agents[agent]
	if d.Next != "" {
		a.next = d.Next
	}
	if d.Rule == "storm" && (d.Action == demur.ActionEscalate || d.Action == demur.ActionPause) && !c.paused {
		// A storm pauses the whole job until a person resumes it or the
		// escalation times out: retrying into a storm burns budget.
		c.paused = true
		c.escalated[jobPauseKey] = escalation{deadline: time.Now().Add(c.cfg.EscalateTimeout), dflt: demur.ActionResume}
		if d.Action == demur.ActionPause {
			c.requeue(queued{task: c.byID[id], avoid: agent, refresh: true})
		}
	}
	if d.Retire && a.live {
		a.live = false
		c.record(demur.RecAgent, "router", demur.AgentPayload{Agent: agent, State: "retired",
			Reason: fmt.Sprintf("%d refusal(s); last: %s", a.refusals, v.Kind)})
		c.send(agent, Assignment{Stop: true})
		c.emit(Event{Type: "retired", Agent: agent, Tokens: a.tokens, Words: a.words})
	}
	var reason demur.Reason
	if len(v.Reasons) > 0 {
		reason = v.Reasons[0]
	}
	c.emit(Event{Type: "turn", Agent: agent, Task: id, Verdict: v.Kind, Reason: reason, Action: d.Action,
		Words: a.words, Tokens: a.tokens, Done: c.sectionsDone(), Total: c.planned})
}

// lastOutput is a task's most recent output, which an "accept" override or
// decision takes as the section.
type lastOutput struct {
	agent   string
	attempt int
	blob    string
	words   int
}

// carryOut applies one action to task id, last worked on by agent.
func (c *Coordinator) carryOut(id, agent string, a demur.Action, frame string) {
	idx := c.byID[id]
	delete(c.escalated, id)
	switch a {
	case demur.ActionAccept:
		if c.done[id] {
			return // a late second answer for a written section changes nothing
		}
		last, ok := c.last[id]
		if !ok { // nothing to accept yet: do the work instead
			c.requeue(queued{task: idx})
			return
		}
		c.markDone(id)
		t := &c.cfg.Tasks[idx]
		c.record(demur.RecSection, "coordinator", demur.SectionPayload{Task: id, Index: t.Index, Agent: last.agent,
			Attempt: last.attempt, Output: last.blob, Words: last.words, Part: t.Part, Parts: t.Parts})
	case demur.ActionAbort:
		c.markAborted(id)
	case demur.ActionRetry:
		c.requeue(queued{task: idx, only: agent})
	case demur.ActionRefreshContext:
		c.requeue(queued{task: idx, only: agent, refresh: true})
	case demur.ActionReframe:
		c.requeue(queued{task: idx, only: agent, refresh: true, frame: frame})
	case demur.ActionForce:
		c.unabort(id)
		c.requeue(queued{task: idx, only: agent, force: true})
	case demur.ActionSplit:
		c.split(id)
	case demur.ActionEscalate:
		c.escalated[id] = escalation{agent: agent, deadline: time.Now().Add(c.cfg.EscalateTimeout), dflt: c.cfg.EscalateDefault}
	case demur.ActionRotate:
		if fb := c.fallbackAgent(agent); fb != "" {
			c.requeue(queued{task: idx, only: fb, refresh: true})
			return
		}
		c.requeue(queued{task: idx, avoid: agent, refresh: true})
	default: // reassign: another agent, in a fresh context
		c.requeue(queued{task: idx, avoid: agent, refresh: true})
	}
}

// reframe adds purpose and context to a task; never a bare order.
func reframe(t *demur.Task) string {
	return fmt.Sprintf("This section is part of %q, a reference that readers consult chapter by chapter; "+
		"section %d.%d is the only place that covers %s, so the document has a gap without it. "+
		"A fresh angle is welcome: concrete examples, a case, or a checklist.", t.DocTitle, t.Chapter, t.Section, t.Title)
}

// unqueueAt removes queue entry i. Dispatch nearly always takes the
// first, which costs nothing that way; copying the rest of the queue
// down made each dispatch linear in the queue, the whole plan at first.
func (c *Coordinator) unqueueAt(i int) {
	if i == 0 {
		c.queue = c.queue[1:]
		return
	}
	c.queue = append(c.queue[:i], c.queue[i+1:]...)
}

// requeue puts a task back at the front, so the document fills in order.
func (c *Coordinator) requeue(q queued) {
	c.queue = append([]queued{q}, c.queue...)
}

// dispatch hands queued tasks to idle live agents, in agent order.
func (c *Coordinator) dispatch() {
	live := c.liveAgents()
	for _, id := range c.order {
		a := c.agents[id]
		if !a.live || a.busy || a.paused || c.paused {
			continue
		}
		i := c.pick(id, live, a.next)
		if i < 0 {
			continue
		}
		q := c.queue[i]
		c.unqueueAt(i)
		t := c.cfg.Tasks[q.task]
		c.attempts[t.ID]++
		t.Attempt = c.attempts[t.ID]
		t.RefreshContext, t.Frame, t.Force = q.refresh, q.frame, q.force
		switch a.next {
		case demur.ActionRefreshContext, demur.ActionRotate, demur.ActionReassign:
			t.RefreshContext = true
		case demur.ActionReframe:
			t.RefreshContext, t.Frame = true, reframe(&t)
		}
		a.next, a.chapter = "", t.Chapter
		t.SelfCritique = a.entry.SelfCritique
		if sum := c.summaries[t.Index-1]; sum != "" && t.Index > 0 && t.Part <= 1 {
			p := c.cfg.Tasks[t.Index-1]
			t.PrevSummary = fmt.Sprintf("Section %d.%d, %q, opened: %s", p.Chapter, p.Section, p.Title, sum)
		}
		a.busy = true
		c.record(demur.RecAssign, "coordinator", demur.AssignPayload{Task: t.ID, Agent: id, Attempt: t.Attempt, Refresh: t.RefreshContext, Frame: t.Frame, Force: t.Force})
		c.send(id, Assignment{Task: t})
		c.emit(Event{Type: "assign", Agent: id, Task: t.ID, Words: a.words, Tokens: a.tokens, Done: c.sectionsDone(), Total: c.planned})
	}
}

// pick returns the queue index agent id should take, or -1. An agent
// whose next task should be varied (an early-warning rotate) takes the
// first task of another chapter than its last when there is one.
func (c *Coordinator) pick(id string, live int, next demur.Action) int {
	first := -1
	for i, q := range c.queue {
		if q.only != "" && q.only != id {
			if c.agents[q.only].live {
				continue
			}
			c.queue[i].only = "" // its agent retired: anyone may take it
		}
		if q.avoid == id && live > 1 {
			continue
		}
		if next != demur.ActionRotate || q.only == id || c.cfg.Tasks[q.task].Chapter != c.agents[id].chapter {
			return i
		}
		if first < 0 {
			first = i
		}
	}
	return first
}

func (c *Coordinator) record(kind demur.RecordKind, actor string, payload any) {
	data, err := json.Marshal(payload)
	if err != nil {
		panic(fmt.Sprintf("coord: encode %s payload: %v", kind, err)) // our own types always encode
	}
	c.pending = append(c.pending, &demur.Record{Job: c.cfg.Job, Stream: c.cfg.Job, Kind: kind, Actor: actor, Payload: data})
}

func (c *Coordinator) send(agent string, as Assignment) {
	data, err := json.Marshal(as)
	if err != nil {
		panic(fmt.Sprintf("coord: encode assignment: %v", err))
	}
	c.outbox = append(c.outbox, demur.BusMessage{Subject: TaskSubject(c.cfg.Job, agent), Data: data})
}

// flush makes pending records durable, then acks the results they came
// from and sends pending messages: a decision is in the log before it
// takes effect, and a result leaves the bus only once recorded (a crash
// before the acks has it sent again, and seen[] drops the duplicate).
// Acks and tasks go out together, in one write where the bus buffers.
func (c *Coordinator) flush(ctx context.Context) error {
	if len(c.pending) > 0 || len(c.blobs) > 0 {
		if err := demur.AppendWithBlobs(ctx, c.cfg.Store, c.blobs, c.pending...); err != nil {
			return fmt.Errorf("append records: %w", err)
		}
		c.pending = c.pending[:0]
		clear(c.blobs) // drop the outputs
		c.blobs = c.blobs[:0]
	}
	for _, d := range c.acks {
		if err := d.Ack(); err != nil {
			return fmt.Errorf("ack result: %w", err)
		}
	}
	clear(c.acks)
	c.acks = c.acks[:0]
	for _, o := range c.appliedNow {
		if c.cfg.OnOverrideApplied != nil {
			c.cfg.OnOverrideApplied(o)
		}
	}
	c.appliedNow = c.appliedNow[:0]
	if err := c.sendOutbox(ctx); err != nil {
		return err
	}
	clear(c.outbox)
	c.outbox = c.outbox[:0]
	return nil
}

// sendOutbox publishes the outbox: in one batch when the bus can (a batch of
// results usually sets several agents to work), one by one otherwise.
func (c *Coordinator) sendOutbox(ctx context.Context) error {
	if bp, ok := c.cfg.Bus.(demur.BatchPublisher); ok && len(c.outbox) > 1 {
		if err := bp.PublishBatch(ctx, c.outbox); err != nil {
			return fmt.Errorf("send %d tasks: %w", len(c.outbox), err)
		}
		return nil
	}
	for _, m := range c.outbox {
		if err := c.cfg.Bus.Publish(ctx, m.Subject, m.Data); err != nil {
			return fmt.Errorf("send to %s: %w", m.Subject, err)
		}
	}
	return nil
}

func (c *Coordinator) emit(e Event) {
	if c.cfg.OnEvent != nil {
		c.cfg.OnEvent(e)
	}
}

func countWords(s string) int {
	n, in := 0, false
	for i := 0; i < len(s); i++ {
		sp := s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r'
		if !sp && !in {
			n++
		}
		in = !sp
	}
	return n
}

// sortedKeys is for deterministic iteration in reports.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
