// Package feed derives the live state of jobs from the audit log and serves
// it to the dashboard: JSON snapshots and a Server-Sent Events stream.
//
// The log is the single source of truth: a Feed polls each job's stream by
// AfterSeq and folds the new records into its state, so `demur serve` over a
// store and `demur run --ui` during a run show exactly the same thing, and a
// page opened late sees the same state as one open from the start.
package feed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/demurhq/demur"
)

// Agent states shown on the dashboard.
const (
	StateIdle    = "idle"
	StateWorking = "working"
	StateRefused = "refused"
	StatePaused  = "paused"
	StateRetired = "retired"
)

// Job statuses besides coord's completed and incomplete.
const StatusRunning = "running"

// maxSeries bounds the points kept per agent; when full, every other point
// is dropped, so a long job keeps its whole shape at half the resolution.
const maxSeries = 512

// maxRefusals bounds the refusals kept per job for the timeline.
const maxRefusals = 2000

// Point is one turn of an agent's aversion signal against its cumulative
// output tokens: the study's curve.
type Point struct {
	Tokens     int64   `json:"t"`
	Hazard     float64 `json:"h"`
	Repetition float64 `json:"r"`
	Novelty    float64 `json:"n"`
	Refusal    bool    `json:"x,omitempty"`
}

// Agent is an agent's live state.
type Agent struct {
	ID       string `json:"id"`
	Model    string `json:"model"`
	State    string `json:"state"`
	Task     string `json:"task,omitempty"`
	Words    int64  `json:"words"`
	Tokens   int64  `json:"tokens"`
	Turns    int    `json:"turns"`
	Refusals int    `json:"refusals"`
	// Hazard is the early-warning estimate from the last verdict's signals.
	Hazard float64 `json:"hazard"`
	// Last is the agent's latest signal point, so that a page can extend a
	// curve it holds without fetching it again.
	Last   *Point  `json:"last,omitempty"`
	series []Point // guarded by the Feed's mutex
}

// Refusal is one refusal (or partial) on the timeline.
type Refusal struct {
	Seq     int64        `json:"seq"`
	Time    time.Time    `json:"time"`
	Agent   string       `json:"agent"`
	Model   string       `json:"model"`
	Task    string       `json:"task"`
	Attempt int          `json:"attempt"`
	Kind    demur.Kind   `json:"kind"`
	Reasons []string     `json:"reasons,omitempty"`
	Source  demur.Source `json:"source"`
	Action  demur.Action `json:"action,omitempty"`
}

// Job is a job's live summary.
type Job struct {
	ID            string               `json:"id"`
	TaskType      string               `json:"task_type"`
	Status        string               `json:"status"`
	Started       time.Time            `json:"started"`
	Ended         time.Time            `json:"ended,omitzero"`
	Seq           int64                `json:"seq"`
	Turns         int                  `json:"turns"`
	Refusals      int                  `json:"refusals"`
	SectionsDone  int                  `json:"sections_done"`
	SectionsTotal int                  `json:"sections_total"`
	Decisions     map[demur.Action]int `json:"decisions"`
	Overrides     int                  `json:"overrides"`
	Kinds         map[demur.Kind]int   `json:"kinds"`
	agents        map[string]*Agent    // by ID
	order         []string             // agent IDs in join order
	refusals      []Refusal            // newest last
	pendingRefuse map[string]int64     // agent+task+attempt → seq of a refusal awaiting its decision
	models        map[string]string    // agent → model
	paused        map[string]bool      // agents paused by an override
	sections      map[string]bool      // tasks written
	stats         Stats
}

// HazardBuckets are the upper bounds of the hazard histogram in Stats.
var HazardBuckets = []float64{0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1}

// RefusalKey labels a refusal count: the verdict's kind, its first reason
// ("unknown" when none is given, so that the counts sum to the refusals),
// and the agent's model.
type RefusalKey struct {
	Kind   demur.Kind
	Reason demur.Reason
	Model  string
}

// Hazard is a histogram of the hazard estimates of one model's verdicts:
// Counts[i] counts estimates ≤ HazardBuckets[i] (not cumulative).
type Hazard struct {
	Counts []uint64
	Count  uint64
	Sum    float64
}

// Stats are a job's counts as folded from its log, for /metrics.
type Stats struct {
	Job      string
	TaskType string
	Status   string
	// Turns counts turn records by the agent's model.
	Turns map[string]int
	// Refusals counts refuse and partial verdicts.
	Refusals map[RefusalKey]int
	// Decisions counts decision records by action.
	Decisions map[demur.Action]int
	// Overrides counts overrides the coordinator applied, by action.
	Overrides map[demur.Action]int
	// Hazard is by model.
	Hazard map[string]*Hazard
	// Agents counts the job's agents by state.
	Agents map[string]int
}

// Snapshot is the JSON of GET /api/jobs/{id}.
type Snapshot struct {
	Job      Job       `json:"job"`
	Agents   []Agent   `json:"agents"`
	Refusals []Refusal `json:"refusals"`
}

// Update is one SSE "update" event: what changed in a job since the last.
type Update struct {
	Job      Job       `json:"job"`
	Agents   []Agent   `json:"agents,omitempty"`
	Refusals []Refusal `json:"refusals,omitempty"`
}

// Options configure a Feed. Store is required.
type Options struct {
	Store demur.Store
	// Poll is how often running jobs' streams are read; default 250ms.
	Poll time.Duration
	// Discover is how often the log is searched for new jobs; default 1s.
	// It is slower than Poll because the search is not by stream: a store
	// may scan every record to find the job.start ones.
	Discover time.Duration
	Logger   *slog.Logger
}

// Feed is the live state of every job in a store. It is safe for
// concurrent use.
type Feed struct {
	opts Options

	pollMu  sync.Mutex // serializes Poll; guards starts and scanned
	starts  []string   // job IDs in the order they started
	scanned time.Time

	mu    sync.RWMutex
	jobs  map[string]*Job
	order []string
	subs  map[chan Update]struct{}
	ready chan struct{} // closed after the first poll
	once  sync.Once
	// closing ends the SSE streams: http.Server.Shutdown waits for active
	// requests and never cancels them, so a page left open would hold a
	// shutdown until its timeout.
	closing   chan struct{}
	closeOnce sync.Once
}

// New returns a Feed over opts.Store. Call Run to keep it current.
func New(opts Options) (*Feed, error) {
	if opts.Store == nil {
		return nil, errors.New("feed: no store")
	}
	if opts.Poll <= 0 {
		opts.Poll = 250 * time.Millisecond
	}
	if opts.Discover <= 0 {
		opts.Discover = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Feed{opts: opts, jobs: map[string]*Job{}, subs: map[chan Update]struct{}{}, ready: make(chan struct{}), closing: make(chan struct{})}, nil
}

// Run polls the log until ctx ends. A failed poll is logged and retried:
// a dashboard outliving a store hiccup is worth more than an exit.
func (f *Feed) Run(ctx context.Context) {
	t := time.NewTicker(f.opts.Poll)
	defer t.Stop()
	for {
		if err := f.Poll(ctx); err != nil && ctx.Err() == nil {
			f.opts.Logger.Warn("feed: poll", "err", err)
		}
		f.once.Do(func() { close(f.ready) })
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close ends every SSE stream, now and to come; register it with
// http.Server.RegisterOnShutdown. Snapshots are still served.
func (f *Feed) Close() { f.closeOnce.Do(func() { close(f.closing) }) }

// Ready is closed once the first poll has run.
func (f *Feed) Ready() <-chan struct{} { return f.ready }

// Poll reads what is new in the log once and publishes the changes. It
// looks for new jobs on its first call and then at most every
// Options.Discover.
func (f *Feed) Poll(ctx context.Context) error {
	f.pollMu.Lock()
	defer f.pollMu.Unlock()
	if f.starts == nil || time.Since(f.scanned) >= f.opts.Discover {
		starts, err := f.opts.Store.Records(ctx, demur.Query{Kinds: []demur.RecordKind{demur.RecJobStart}})
		if err != nil {
			return fmt.Errorf("list jobs: %w", err)
		}
		sort.SliceStable(starts, func(i, j int) bool { return starts[i].Time.Before(starts[j].Time) })
		f.starts = make([]string, len(starts))
		for i, s := range starts {
			f.starts[i] = s.Job
		}
		f.scanned = time.Now()
	}
	var errs []error
	for _, id := range f.starts {
		f.mu.RLock()
		j := f.jobs[id]
		ended := j != nil && j.Status != StatusRunning
		after := int64(0)
		if j != nil {
			after = j.Seq
		}
		f.mu.RUnlock()
		if ended {
			continue // an ended job's stream does not grow
		}
		recs, err := f.opts.Store.Records(ctx, demur.Query{Stream: id, AfterSeq: after})
		if err != nil {
			errs = append(errs, fmt.Errorf("read job %s: %w", id, err))
			continue
		}
		if len(recs) == 0 {
			continue
		}
		f.mu.Lock()
		if f.jobs[id] == nil {
			f.jobs[id] = newJob(id)
			f.order = append(f.order, id)
		}
		u := f.jobs[id].fold(recs)
		subs := make([]chan Update, 0, len(f.subs))
		for c := range f.subs {
			subs = append(subs, c)
		}
		f.mu.Unlock()
		for _, c := range subs {
			select {
			case c <- u:
			default:
				// A subscriber that cannot keep up misses an update; the
				// page refetches the snapshot on its next "resync".
			}
		}
	}
	return errors.Join(errs...)
}

// Subscribe returns a channel of updates and a function that ends the
// subscription.
func (f *Feed) Subscribe() (<-chan Update, func()) {
	c := make(chan Update, 64)
	f.mu.Lock()
	f.subs[c] = struct{}{}
	f.mu.Unlock()
	return c, func() {
		f.mu.Lock()
		delete(f.subs, c)
		f.mu.Unlock()
	}
}

// Jobs returns every job's summary, in the order they started.
func (f *Feed) Jobs() []Job {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Job, 0, len(f.order))
	for _, id := range f.order {
		out = append(out, f.jobs[id].summary())
	}
	return out
}

// Job returns a job's snapshot, or false if the feed has not seen it.
func (f *Feed) Job(id string) (*Snapshot, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	j := f.jobs[id]
	if j == nil {
		return nil, false
	}
	s := &Snapshot{Job: j.summary(), Agents: make([]Agent, 0, len(j.order)), Refusals: append([]Refusal(nil), j.refusals...)}
	for _, id := range j.order {
		a := *j.agents[id]
		a.series = nil
		s.Agents = append(s.Agents, a)
	}
	return s, true
}

// Series returns an agent's signal points, or false if unknown.
func (f *Feed) Series(job, agent string) ([]Point, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	j := f.jobs[job]
	if j == nil || j.agents[agent] == nil {
		return nil, false
	}
	return append([]Point(nil), j.agents[agent].series...), true
}

func newJob(id string) *Job {
	return &Job{ID: id, Status: StatusRunning, Decisions: map[demur.Action]int{}, Kinds: map[demur.Kind]int{},
		agents: map[string]*Agent{}, pendingRefuse: map[string]int64{}, models: map[string]string{},
		paused: map[string]bool{}, sections: map[string]bool{},
		stats: Stats{Job: id, Turns: map[string]int{}, Refusals: map[RefusalKey]int{}, Decisions: map[demur.Action]int{},
			Overrides: map[demur.Action]int{}, Hazard: map[string]*Hazard{}}}
}

// summary copies the job's exported fields, maps included, so that the copy
// can be encoded outside the lock.
func (j *Job) summary() Job {
	s := Job{ID: j.ID, TaskType: j.TaskType, Status: j.Status, Started: j.Started, Ended: j.Ended, Seq: j.Seq,
		Turns: j.Turns, Refusals: j.Refusals, SectionsDone: j.SectionsDone, SectionsTotal: j.SectionsTotal,
		Overrides: j.Overrides, Decisions: make(map[demur.Action]int, len(j.Decisions)), Kinds: make(map[demur.Kind]int, len(j.Kinds))}
	for k, v := range j.Decisions {
		s.Decisions[k] = v
	}
	for k, v := range j.Kinds {
		s.Kinds[k] = v
	}
	return s
}

func (j *Job) agent(id string) *Agent {
	a := j.agents[id]
	if a == nil {
		a = &Agent{ID: id, Model: j.models[id], State: StateIdle}
		j.agents[id] = a
		j.order = append(j.order, id)
	}
	return a
}

func refKey(agent, task string, attempt int) string {
	return fmt.Sprintf("%s\x00%s\x00%d", agent, task, attempt)
}

// fold applies recs (the job stream, in seq order) and returns the update.
// A record it cannot decode is skipped: the page shows what it can, and
// `demur audit verify` is the place to find a damaged log.
func (j *Job) fold(recs []*demur.Record) Update {
	changed := map[string]bool{}
	var newRefusals []Refusal
	for _, r := range recs {
		j.Seq = max(j.Seq, r.Seq)
		switch r.Kind {
		case demur.RecJobStart:
			var p demur.JobStartPayload
			if json.Unmarshal(r.Payload, &p) != nil {
				continue
			}
			j.TaskType, j.Started, j.SectionsTotal = p.TaskType, r.Time, p.Sections
			for _, a := range p.Agents {
				j.models[a.ID] = a.Model
				j.agent(a.ID).Model = a.Model
				changed[a.ID] = true
			}
		case demur.RecAssign:
			var p demur.AssignPayload
			if json.Unmarshal(r.Payload, &p) != nil {
				continue
			}
			a := j.agent(p.Agent)
			a.Task = p.Task
			if a.State != StateRetired && !j.paused[p.Agent] {
				a.State = StateWorking
			}
			changed[p.Agent] = true
		case demur.RecTurn:
			var p demur.TurnPayload
			if json.Unmarshal(r.Payload, &p) != nil {
				continue
			}
			j.Turns++
			a := j.agent(p.Agent)
			j.stats.Turns[a.Model]++
			a.Turns++
			a.Words += int64(p.Words)
			a.Tokens += int64(p.Usage.CompletionTokens)
			changed[p.Agent] = true
		case demur.RecVerdict:
			var p demur.VerdictPayload
			if json.Unmarshal(r.Payload, &p) != nil {
				continue
			}
			v := p.Verdict
			j.Kinds[v.Kind]++
			a := j.agent(p.Agent)
			a.Hazard = v.Signals.Hazard
			h := j.stats.Hazard[a.Model]
			if h == nil {
				h = &Hazard{Counts: make([]uint64, len(HazardBuckets))}
				j.stats.Hazard[a.Model] = h
			}
			h.observe(v.Signals.Hazard)
			tokens := v.Signals.CumTokens
			if tokens == 0 {
				tokens = a.Tokens
			}
			pt := Point{Tokens: tokens, Hazard: v.Signals.Hazard, Repetition: v.Signals.Repetition, Novelty: v.Signals.Novelty, Refusal: v.Kind.IsRefusal()}
			a.series = appendPoint(a.series, pt)
			a.Last = &pt
			if v.Kind.IsRefusal() {
				j.Refusals++
				a.Refusals++
				a.State = StateRefused
				reason := demur.ReasonUnknown
				if len(v.Reasons) > 0 {
					reason = v.Reasons[0]
				}
				j.stats.Refusals[RefusalKey{v.Kind, reason, a.Model}]++
				reasons := make([]string, len(v.Reasons))
				for i, x := range v.Reasons {
					reasons[i] = string(x)
				}
				j.refusals = append(j.refusals, Refusal{Seq: r.Seq, Time: r.Time, Agent: p.Agent, Model: a.Model, Task: p.Task,
					Attempt: p.Attempt, Kind: v.Kind, Reasons: reasons, Source: v.Source})
				j.pendingRefuse[refKey(p.Agent, p.Task, p.Attempt)] = r.Seq
				if n := len(j.refusals); n > maxRefusals {
					j.refusals = append(j.refusals[:0:0], j.refusals[n-maxRefusals:]...)
				}
			}
			changed[p.Agent] = true
		case demur.RecDecision:
			var p demur.DecisionPayload
			if json.Unmarshal(r.Payload, &p) != nil {
				continue
			}
			j.Decisions[p.Decision.Action]++
			k := refKey(p.Agent, p.Task, p.Attempt)
			if seq, ok := j.pendingRefuse[k]; ok {
				delete(j.pendingRefuse, k)
				if ref := j.refusalAt(seq); ref != nil {
					ref.Action = p.Decision.Action
					newRefusals = append(newRefusals, *ref)
				}
			}
			a := j.agent(p.Agent)
			switch {
			case p.Decision.Retire:
				a.State = StateRetired
			case a.State != StateRetired && !j.paused[p.Agent]:
				a.State = StateIdle
			}
			changed[p.Agent] = true
		case demur.RecSection:
			var p demur.SectionPayload
			if json.Unmarshal(r.Payload, &p) != nil {
				continue
			}
			if !j.sections[p.Task] {
				j.sections[p.Task] = true
				if p.Parts == 0 || p.Part == p.Parts {
					j.SectionsDone++
				}
			}
		case demur.RecAgent:
			var p demur.AgentPayload
			if json.Unmarshal(r.Payload, &p) != nil {
				continue
			}
			if p.Model != "" {
				j.models[p.Agent] = p.Model
			}
			a := j.agent(p.Agent)
			if p.Model != "" {
				a.Model = p.Model
			}
			if p.State == "retired" {
				a.State = StateRetired
			}
			changed[p.Agent] = true
		case demur.RecOverride:
			var p struct {
				Override demur.Override `json:"override"`
				Outcome  string         `json:"outcome"`
			}
			if json.Unmarshal(r.Payload, &p) != nil || p.Outcome != demur.OverrideApplied {
				continue
			}
			j.Overrides++
			j.stats.Overrides[p.Override.Action]++
			if ag := p.Override.Agent; ag != "" {
				a := j.agent(ag)
				switch p.Override.Action {
				case demur.ActionPause:
					j.paused[ag] = true
					if a.State != StateRetired {
						a.State = StatePaused
					}
				case demur.ActionResume:
					delete(j.paused, ag)
					if a.State == StatePaused {
						a.State = StateIdle
					}
				}
				changed[ag] = true
			}
		case demur.RecJobEnd:
			var p demur.JobEndPayload
			if json.Unmarshal(r.Payload, &p) != nil {
				continue
			}
			j.Status, j.Ended, j.SectionsDone, j.SectionsTotal = p.Status, r.Time, p.Done, p.Total
		}
	}
	u := Update{Job: j.summary(), Refusals: newRefusals}
	for _, id := range j.order {
		if changed[id] {
			a := *j.agents[id]
			a.series = nil
			u.Agents = append(u.Agents, a)
		}
	}
	// A refusal whose decision is not in this batch still belongs on the
	// timeline now; its action arrives with a later update of the same seq.
	for _, seq := range j.pendingRefuse {
		if ref := j.refusalAt(seq); ref != nil && inBatch(recs, seq) {
			u.Refusals = append(u.Refusals, *ref)
		}
	}
	sort.Slice(u.Refusals, func(a, b int) bool { return u.Refusals[a].Seq < u.Refusals[b].Seq })
	return u
}

// refusalAt finds the refusal recorded at seq; the ones asked for are
// recent, so the search from the end is short.
func (j *Job) refusalAt(seq int64) *Refusal {
	for i := len(j.refusals) - 1; i >= 0; i-- {
		if j.refusals[i].Seq == seq {
			return &j.refusals[i]
		}
		if j.refusals[i].Seq < seq {
			break
		}
	}
	return nil
}

func (h *Hazard) observe(v float64) {
	h.Count++
	h.Sum += v
	for i, b := range HazardBuckets {
		if v <= b {
			h.Counts[i]++
			return
		}
	}
}

// Stats returns every job's counts, in the order the jobs started.
func (f *Feed) Stats() []Stats {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Stats, 0, len(f.order))
	for _, id := range f.order {
		j := f.jobs[id]
		s := Stats{Job: id, TaskType: j.TaskType, Status: j.Status, Turns: maps.Clone(j.stats.Turns),
			Refusals: maps.Clone(j.stats.Refusals), Decisions: maps.Clone(j.Decisions),
			Overrides: maps.Clone(j.stats.Overrides), Hazard: make(map[string]*Hazard, len(j.stats.Hazard)),
			Agents: map[string]int{}}
		for m, h := range j.stats.Hazard {
			c := *h
			c.Counts = slices.Clone(h.Counts)
			s.Hazard[m] = &c
		}
		for _, a := range j.agents {
			s.Agents[a.State]++
		}
		out = append(out, s)
	}
	return out
}

func inBatch(recs []*demur.Record, seq int64) bool {
	return len(recs) > 0 && seq >= recs[0].Seq && seq <= recs[len(recs)-1].Seq
}

func appendPoint(s []Point, p Point) []Point {
	if len(s) >= maxSeries {
		k := 0
		for i := 0; i < len(s); i += 2 {
			s[k] = s[i]
			k++
		}
		s = s[:k]
	}
	return append(s, p)
}
