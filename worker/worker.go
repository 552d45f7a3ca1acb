package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/coord"
	"github.com/demurhq/demur/job"
	"github.com/demurhq/demur/natsbus"
)

// Config configures a worker process.
type Config struct {
	// Name identifies the worker in leases and status; unique per process.
	Name string
	Bus  *natsbus.Bus
	// MaxAgents bounds how many agents this worker hosts at once; 0 means
	// no bound.
	MaxAgents int
	// Backends and Profiles, when not empty, restrict the agents this
	// worker claims to those whose group uses one of them.
	Backends, Profiles []string
	// Jobs, when not empty, restricts the worker to these job IDs.
	Jobs []string
	// KeepAlive is how often a running turn extends its task's ack
	// deadline; it must be well under the bus's AckWait.
	KeepAlive time.Duration
	// NewBackend builds one agent's backend from its job's spec group.
	NewBackend func(ctx context.Context, g job.AgentGroup, agent string, seed int64) (demur.Backend, error)
	// Verify, when set, vets an announcement before the worker hosts any
	// of its agents (see VerifyAnnouncement); an error is retried later.
	Verify func(ctx context.Context, a *Announcement) error
	// Logf, when set, receives one line per claim, release and error.
	Logf func(format string, args ...any)
}

// Heartbeat is the value of a worker's key in natsbus.WorkersBucket.
type Heartbeat struct {
	Name      string    `json:"name"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Started   time.Time `json:"started"`
	MaxAgents int       `json:"max_agents"`
	Backends  []string  `json:"backends,omitempty"`
	Profiles  []string  `json:"profiles,omitempty"`
	// Agents are the JOB.AGENT keys this worker hosts now.
	Agents []string  `json:"agents"`
	Seen   time.Time `json:"seen"`
}

// Worker hosts agents of announced jobs.
type Worker struct {
	cfg                 Config
	jobs, leases, beats jetstream.KeyValue
	started             time.Time

	mu      sync.Mutex
	known   map[string]*Announcement // by job
	ready   bool                     // the watcher has delivered every existing job
	peers   int                      // live workers, this one included
	changed chan struct{}

	hosted  map[string]*hosted   // by lease key
	stopped map[string]bool      // agents told to stop: never claimed again here
	retryAt map[string]time.Time // agents that failed to start and jobs that failed Verify, by when to try again
	// verifiedAnn is the announcement of each job that passed Verify; a
	// new announcement (another coordinator) is verified again.
	verifiedAnn map[string]*Announcement
	specs       map[string]*job.Spec
}

type hosted struct {
	job, agent string
	lease      *Held
	cancel     context.CancelFunc
	done       chan struct{}
	stopped    bool // the agent's Run ended on a Stop message
	renewed    time.Time
}

// New opens the buckets a worker needs.
func New(ctx context.Context, cfg Config) (*Worker, error) {
	if cfg.Name == "" || cfg.Bus == nil || cfg.NewBackend == nil {
		return nil, errors.New("worker: config needs a name, a bus and a backend factory")
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	w := &Worker{cfg: cfg, started: time.Now().UTC(), known: map[string]*Announcement{},
		changed: make(chan struct{}, 1), hosted: map[string]*hosted{}, stopped: map[string]bool{}, retryAt: map[string]time.Time{}, verifiedAnn: map[string]*Announcement{},
		specs: map[string]*job.Spec{}}
	var err error
	if w.jobs, err = cfg.Bus.KeyValue(ctx, natsbus.JobsBucket); err != nil {
		return nil, err
	}
	if w.leases, err = cfg.Bus.KeyValue(ctx, natsbus.LeasesBucket); err != nil {
		return nil, err
	}
	if w.beats, err = cfg.Bus.KeyValue(ctx, natsbus.WorkersBucket); err != nil {
		return nil, err
	}
	return w, nil
}

// claimEvery is the pace of claims: one agent per pass, with jitter, so
// that workers started together share a job's agents instead of the first
// one taking them all.
const claimEvery = 200 * time.Millisecond

// claimIdle is the pace of claims once a pass found nothing to claim.
const claimIdle = time.Second

// Run hosts agents until ctx ends, then stops them and releases their
// leases. A task whose turn was cut short is not acked, so it goes to the
// agent's next holder once its AckWait passes.
func (w *Worker) Run(ctx context.Context) error {
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watchErr := make(chan error, 1)
	go func() { watchErr <- w.watch(watchCtx) }()
	defer w.shutdown()

	renew := time.NewTicker(natsbus.LeaseTTL / 4)
	defer renew.Stop()
	w.heartbeat(ctx)
	w.countPeers(ctx)
	pace := claimEvery
	for {
		claim := time.NewTimer(pace/2 + rand.N(pace))
		select {
		case <-ctx.Done():
			claim.Stop()
			return nil
		case err := <-watchErr:
			claim.Stop()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("worker: watch jobs: %w", err)
		case <-renew.C:
			claim.Stop()
			w.renewAll(ctx)
			w.heartbeat(ctx)
			w.countPeers(ctx)
			continue
		case <-w.changed:
		case <-claim.C:
		}
		claim.Stop()
		w.reap(ctx)
		// After a pass that found nothing to claim, look less often: every
		// look costs the server a read per unhosted agent, and a dead
		// worker's agents only come free after LeaseTTL anyway.
		pace = claimEvery
		if !w.claim(ctx) {
			pace = claimIdle
		}
	}
}

// claim claims agents up to this worker's fair share at once (the
// announced agents divided among the live workers), so that a job starts
// on all its agents without delay; beyond that share it takes one agent per
// pass, which leaves agents to workers started at the same time and still
// picks up agents nobody else serves. It reports whether it claimed any.
func (w *Worker) claim(ctx context.Context) bool {
	claimed := false
	for w.claimOne(ctx) {
		claimed = true
		if len(w.hosted) >= w.fairShare() {
			break
		}
	}
	return claimed
}

func (w *Worker) fairShare() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, a := range w.known {
		n += len(a.Agents) - len(a.Retired)
	}
	peers := max(w.peers, 1)
	return (n + peers - 1) / peers
}

// countPeers counts the live workers (heartbeats), for fairShare.
func (w *Worker) countPeers(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, natsbus.LeaseTTL/4)
	defer cancel()
	keys, err := w.beats.Keys(cctx)
	if err != nil {
		return // keep the last count; a worker alone still claims one per pass
	}
	w.mu.Lock()
	w.peers = len(keys)
	w.mu.Unlock()
}

// watch keeps w.known in step with the jobs bucket.
func (w *Worker) watch(ctx context.Context) error {
	kw, err := w.jobs.WatchAll(ctx)
	if err != nil {
		return err
	}
	defer kw.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-kw.Updates():
			if !ok {
				return errors.New("watcher closed")
			}
			w.mu.Lock()
			if e == nil {
				w.ready = true
			} else if e.Operation() != jetstream.KeyValuePut {
				delete(w.known, e.Key())
			} else {
				var a Announcement
				if err := json.Unmarshal(e.Value(), &a); err != nil || a.Job != e.Key() {
					w.cfg.Logf("ignoring unreadable announcement %s", e.Key())
				} else if len(w.cfg.Jobs) == 0 || slices.Contains(w.cfg.Jobs, a.Job) {
					w.known[a.Job] = &a
				}
			}
			w.mu.Unlock()
			select {
			case w.changed <- struct{}{}:
			default:
			}
		}
	}
}

// renewAll extends every hosted lease. An agent whose lease is lost, or
// was not renewed for a whole LeaseTTL (it has lapsed on the server too),
// stops at once: another worker may already be serving its queue.
func (w *Worker) renewAll(ctx context.Context) {
	for key, h := range w.hosted {
		rctx, cancel := context.WithTimeout(ctx, natsbus.LeaseTTL/4)
		err := h.lease.Renew(rctx)
		cancel()
		switch {
		case err == nil:
			h.renewed = time.Now()
		case errors.Is(err, ErrLeaseLost) || time.Since(h.renewed) >= natsbus.LeaseTTL:
			w.cfg.Logf("lost lease %s: %v; stopping the agent", key, err)
			h.cancel()
		default:
			w.cfg.Logf("renew %s: %v", key, err)
		}
	}
}

// reap handles agents that ended, and stops agents whose job was
// withdrawn or who were retired.
func (w *Worker) reap(ctx context.Context) {
	w.mu.Lock()
	known, ready := maps.Clone(w.known), w.ready
	w.mu.Unlock()
	for key, h := range w.hosted {
		select {
		case <-h.done:
		default:
			a, ok := known[h.job]
			if ready && (!ok || slices.Contains(a.Retired, h.agent)) {
				h.cancel()
				<-h.done
			} else {
				continue
			}
		}
		if h.stopped {
			w.stopped[key] = true
			w.cfg.Logf("%s stopped by its coordinator", key)
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		if err := h.lease.Release(rctx); err != nil {
			w.cfg.Logf("%v", err)
		}
		cancel()
		delete(w.hosted, key)
	}
	for key := range w.retryAt {
		if _, ok := known[jobOf(key)]; ready && !ok {
			delete(w.retryAt, key)
		}
	}
	for job := range w.verifiedAnn {
		if _, ok := known[job]; ready && !ok {
			delete(w.verifiedAnn, job)
		}
	}
	for key := range w.stopped {
		if _, ok := known[jobOf(key)]; ready && !ok {
			delete(w.stopped, key) // the job is gone; forget it
		}
	}
}

func jobOf(key string) string {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '.' {
			return key[:i]
		}
	}
	return key
}

// verified reports whether a's job may be served: Config.Verify passed for
// this very announcement. A failure (typically a job.start record not yet
// in the log, a few milliseconds after the announcement) is retried after
// verifyRetry.
func (w *Worker) verified(ctx context.Context, a *Announcement) bool {
	if w.cfg.Verify == nil || w.verifiedAnn[a.Job] == a {
		return true
	}
	if time.Now().Before(w.retryAt[a.Job]) {
		return false
	}
	if err := w.cfg.Verify(ctx, a); err != nil {
		w.cfg.Logf("%v; retrying in %s", err, verifyRetry)
		w.retryAt[a.Job] = time.Now().Add(verifyRetry)
		return false
	}
	delete(w.retryAt, a.Job)
	w.verifiedAnn[a.Job] = a
	return true
}

// verifyRetry is how long a worker waits to verify a job again.
const verifyRetry = 250 * time.Millisecond

// startRetry is how long a worker waits before trying again to start an
// agent that failed to start (a spec it cannot serve, an unverified job).
const startRetry = 2 * time.Second

// claimOne claims at most one unclaimed agent of a known job that matches
// the filters, starts it, and reports whether it did.
func (w *Worker) claimOne(ctx context.Context) bool {
	if w.cfg.MaxAgents > 0 && len(w.hosted) >= w.cfg.MaxAgents {
		return false
	}
	w.mu.Lock()
	var jobs []*Announcement
	for _, a := range w.known {
		jobs = append(jobs, a)
	}
	w.mu.Unlock()
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].Job < jobs[j].Job })
	for _, a := range jobs {
		if !w.verified(ctx, a) {
			continue
		}
		for i, ag := range a.Agents {
			key := AgentKey(a.Job, ag.ID)
			if w.hosted[key] != nil || w.stopped[key] || slices.Contains(a.Retired, ag.ID) || !w.matches(a, i) ||
				time.Now().Before(w.retryAt[key]) {
				continue
			}
			if _, err := w.leases.Get(ctx, key); err == nil {
				continue // held: don't pay for a failing create
			}
			held, err := Claim(ctx, w.leases, key, NewLease(w.cfg.Name))
			if err != nil {
				if !errors.Is(err, ErrLeaseHeld) {
					w.cfg.Logf("claim %s: %v", key, err)
				}
				continue
			}
			if err := w.start(ctx, a, i, held); err != nil {
				w.cfg.Logf("start %s: %v; retrying in %s", key, err, startRetry)
				_ = held.Release(ctx)
				w.retryAt[key] = time.Now().Add(startRetry)
				continue
			}
			delete(w.retryAt, key)
			w.cfg.Logf("hosting %s", key)
			w.heartbeat(ctx)
			return true
		}
	}
	return false
}

func (w *Worker) matches(a *Announcement, i int) bool {
	if len(w.cfg.Backends) > 0 {
		b := a.Agents[i].Backend
		if b == "" {
			b = "sim"
		}
		if !slices.Contains(w.cfg.Backends, b) {
			return false
		}
	}
	if len(w.cfg.Profiles) > 0 {
		p := ""
		if i < len(a.Profiles) {
			p = a.Profiles[i]
		}
		if !slices.Contains(w.cfg.Profiles, p) && !slices.Contains(w.cfg.Profiles, a.Agents[i].Model) {
			return false
		}
	}
	return true
}

// start builds agent i's backend and runs it until it is stopped, its
// context ends, or it fails for good.
func (w *Worker) start(ctx context.Context, a *Announcement, i int, held *Held) error {
	spec, err := w.spec(a)
	if err != nil {
		return err
	}
	if i >= len(a.Groups) || a.Groups[i] < 0 || a.Groups[i] >= len(spec.Agents) {
		return fmt.Errorf("announcement of %s has no group for agent %d", a.Job, i)
	}
	entry := a.Agents[i]
	be, err := w.cfg.NewBackend(ctx, spec.Agents[a.Groups[i]], entry.ID, a.Seed)
	if err != nil {
		return err
	}
	actx, cancel := context.WithCancel(ctx)
	h := &hosted{job: a.Job, agent: entry.ID, lease: held, cancel: cancel, done: make(chan struct{}), renewed: time.Now()}
	ag := &coord.Agent{ID: entry.ID, Job: a.Job, Agents: len(a.Agents), Model: entry.Model,
		Backend: be, Bus: Retrying(w.cfg.Bus), Logprobs: true, KeepAlive: w.cfg.KeepAlive,
		Direct: a.DirectResults, HandOff: a.HandOffResults}
	go func() {
		defer close(h.done)
		defer cancel()
		for {
			err := ag.Run(actx)
			if actx.Err() != nil {
				return
			}
			if err == nil {
				h.stopped = true
				return
			}
			// A failed ack or publish (a purge by a resuming coordinator,
			// a server fail-over) ends Run; the queue is still ours, so
			// go on after a pause rather than give the agent up.
			w.cfg.Logf("%s: %v; resuming", held.Key(), err)
			select {
			case <-actx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	w.hosted[held.Key()] = h
	return nil
}

func (w *Worker) spec(a *Announcement) (*job.Spec, error) {
	if s := w.specs[a.Job]; s != nil {
		return s, nil
	}
	s, err := job.Parse(a.Job+".yaml", a.Spec)
	if err != nil {
		return nil, fmt.Errorf("job %s: spec: %w", a.Job, err)
	}
	w.specs[a.Job] = s
	return s, nil
}

// heartbeat publishes what this worker hosts, for demur status.
func (w *Worker) heartbeat(ctx context.Context) {
	host, _ := os.Hostname()
	hb := Heartbeat{Name: w.cfg.Name, Host: host, PID: os.Getpid(), Started: w.started, MaxAgents: w.cfg.MaxAgents,
		Backends: w.cfg.Backends, Profiles: w.cfg.Profiles, Agents: []string{}, Seen: time.Now().UTC()}
	for key := range w.hosted {
		hb.Agents = append(hb.Agents, key)
	}
	sort.Strings(hb.Agents)
	data, _ := json.Marshal(hb)
	hctx, cancel := context.WithTimeout(ctx, natsbus.LeaseTTL/4)
	defer cancel()
	if _, err := w.beats.Put(hctx, w.cfg.Name, data); err != nil && ctx.Err() == nil {
		w.cfg.Logf("heartbeat: %v", err)
	}
}

// shutdown stops every agent and releases its lease, so that other
// workers take over at once instead of after LeaseTTL.
func (w *Worker) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, h := range w.hosted {
		h.cancel()
	}
	for key, h := range w.hosted {
		<-h.done
		if err := h.lease.Release(ctx); err != nil {
			w.cfg.Logf("%v", err)
		}
		delete(w.hosted, key)
	}
	_ = w.beats.Delete(ctx, w.cfg.Name)
}

// VerifyAnnouncement checks that an announcement's spec and seed are the
// ones the job's log recorded in its job.start record: a worker that can
// read the log then never runs a job nobody started there.
func VerifyAnnouncement(ctx context.Context, store demur.Store, a *Announcement) error {
	recs, err := store.Records(ctx, demur.Query{Job: a.Job, Stream: a.Job, Kinds: []demur.RecordKind{demur.RecJobStart}, Limit: 1})
	if err != nil {
		return fmt.Errorf("verify job %s: %w", a.Job, err)
	}
	if len(recs) == 0 {
		return fmt.Errorf("verify job %s: no job.start record in the log yet", a.Job)
	}
	var p demur.JobStartPayload
	if err := json.Unmarshal(recs[0].Payload, &p); err != nil {
		return fmt.Errorf("verify job %s: job.start: %w", a.Job, err)
	}
	if !bytes.Equal(p.Spec, a.Spec) || p.Seed != a.Seed {
		return fmt.Errorf("verify job %s: the announced spec or seed differs from the log's job.start", a.Job)
	}
	return nil
}
