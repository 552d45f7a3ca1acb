package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/coord"
	"github.com/demurhq/demur/job"
	"github.com/demurhq/demur/natsbus"
)

func embedded(t *testing.T) *natsbus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := natsbus.Embedded(ctx, natsbus.EmbeddedOptions{Options: natsbus.Options{AckWait: 3 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestLease(t *testing.T) {
	b := embedded(t)
	ctx := context.Background()
	kv, err := b.KeyValue(ctx, natsbus.LeasesBucket)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Claim(ctx, kv, AgentKey("j-1", "agent-01"), NewLease("w1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Claim(ctx, kv, AgentKey("j-1", "agent-01"), NewLease("w2")); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("second claim: %v, want ErrLeaseHeld", err)
	}
	if err := h.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	h2, err := Claim(ctx, kv, AgentKey("j-1", "agent-01"), NewLease("w2"))
	if err != nil {
		t.Fatalf("claim after release: %v", err)
	}
	// The first holder's lease is gone: renewing must say so, and its
	// release must not free the new holder's lease.
	if err := h.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renew of a taken-over lease: %v, want ErrLeaseLost", err)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h2.Renew(ctx); err != nil {
		t.Fatalf("new holder lost its lease to an old holder's release: %v", err)
	}
}

func TestCoordinatorLeaseWaits(t *testing.T) {
	b := embedded(t)
	ctx := context.Background()
	kv, err := b.KeyValue(ctx, natsbus.LeasesBucket)
	if err != nil {
		t.Fatal(err)
	}
	first, err := AcquireCoordinator(ctx, kv, "j-2", "c1", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AcquireCoordinator(ctx, kv, "j-2", "c2", 0, nil); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("second coordinator: %v, want ErrLeaseHeld", err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = first.Release(ctx)
	}()
	told := false
	if _, err := AcquireCoordinator(ctx, kv, "j-2", "c2", 5*time.Second, func(error) { told = true }); err != nil {
		t.Fatalf("coordinator after release: %v", err)
	}
	if !told {
		t.Error("waiting coordinator was not told who held the lease")
	}
}

// echo is a backend that writes the words asked for.
type echo struct{}

func (echo) Generate(_ context.Context, req *demur.Request) (*demur.Response, error) {
	return &demur.Response{Model: "echo", Output: "word word word", FinishReason: "stop"}, nil
}

const testSpec = `name: wk
seed: 3
document: {title: T, chapters: 1, sections_per_chapter: 2, words_per_section: 60}
agents:
  - {count: 2, backend: sim, profile: gpt-4-class}
  - {count: 1, backend: sim, profile: experimental-70b}
`

func announce(t *testing.T, b *natsbus.Bus, jobID string) *Announcement {
	t.Helper()
	return announceWith(t, b, jobID, func(*Announcement) {})
}

func announceWith(t *testing.T, b *natsbus.Bus, jobID string, tune func(*Announcement)) *Announcement {
	t.Helper()
	spec, err := job.Parse("wk.yaml", []byte(testSpec))
	if err != nil {
		t.Fatal(err)
	}
	a := &Announcement{Job: jobID, Spec: []byte(testSpec), Seed: spec.Seed}
	for gi, g := range spec.Agents {
		for range g.Count {
			a.Agents = append(a.Agents, demur.AgentEntry{ID: fmt.Sprintf("agent-%02d", len(a.Agents)+1), Backend: g.Backend, Model: g.Profile})
			a.Groups = append(a.Groups, gi)
			a.Profiles = append(a.Profiles, g.Profile)
		}
	}
	tune(a)
	kv, err := b.KeyValue(context.Background(), natsbus.JobsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := Announce(context.Background(), kv, a); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestDirectResults: for a coordinator that announces DirectResults, an
// agent hands its result over on the turn subject and its task is acked
// only once the coordinator has acked the result: by the agent when the
// coordinator answers, or, when the coordinator also announces
// HandOffResults, by the coordinator's ack itself.
func TestDirectResults(t *testing.T) {
	for _, handOff := range []bool{false, true} {
		t.Run(fmt.Sprintf("handoff=%v", handOff), func(t *testing.T) { testDirectResults(t, handOff) })
	}
}

func testDirectResults(t *testing.T, handOff bool) {
	b := embedded(t)
	a := announceWith(t, b, "wk-direct", func(a *Announcement) { a.DirectResults, a.HandOffResults = true, handOff })
	w := startWorker(t, b, "w1", 0, nil)
	waitFor(t, "every agent hosted", func() bool { return len(w.agents()) == 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := b.Listen(coord.TurnSubject(a.Job))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	task, _ := json.Marshal(coord.Assignment{Task: demur.Task{Job: a.Job, ID: "c01s01", Attempt: 1, Words: 3}})
	subj := coord.TaskSubject(a.Job, "agent-02")
	if err := b.Publish(ctx, subj, task); err != nil {
		t.Fatal(err)
	}
	d, err := l.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var r coord.Result
	if err := json.Unmarshal(d.Data(), &r); err != nil || r.Agent != "agent-02" || r.Turn.Response.Output == "" {
		t.Fatalf("result %+v, %v", r, err)
	}
	time.Sleep(100 * time.Millisecond)
	if n, err := b.Pending(ctx, subj); err != nil || n != 1 {
		t.Fatalf("%d tasks stored before the result was acked (%v), want 1", n, err)
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the task acked", func() bool {
		n, err := b.Pending(ctx, subj)
		return err == nil && n == 0
	})
	if n, err := b.Pending(ctx, coord.ResultSubject(a.Job)); err != nil || n != 0 {
		t.Fatalf("%d results stored (%v), want none", n, err)
	}
}

type workerRun struct {
	w      *Worker
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	mu     sync.Mutex
	built  []string // agents whose backend it built
}

func startWorker(t *testing.T, b *natsbus.Bus, name string, maxAgents int, profiles []string) *workerRun {
	t.Helper()
	r := &workerRun{done: make(chan error, 1)}
	w, err := New(context.Background(), Config{Name: name, Bus: b, MaxAgents: maxAgents, Profiles: profiles,
		NewBackend: func(_ context.Context, g job.AgentGroup, agent string, _ int64) (demur.Backend, error) {
			r.mu.Lock()
			r.built = append(r.built, agent)
			r.mu.Unlock()
			return echo{}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.w, r.cancel = w, cancel
	go func() { r.done <- w.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *workerRun) stop(t *testing.T) {
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("worker: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("worker did not stop")
		}
	})
}

func (r *workerRun) agents() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.built)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWorkersShareAndServe: workers split a job's agents, each hosted once,
// within --agents and --profile; a task queued for an agent is answered on
// the results subject; retiring and withdrawing release the leases.
func TestWorkersShareAndServe(t *testing.T) {
	b := embedded(t)
	a := announce(t, b, "wk-1")
	w2 := startWorker(t, b, "w2", 0, []string{"experimental-70b"})
	waitFor(t, "w2 hosts agent-03", func() bool { return len(w2.agents()) == 1 })
	w1 := startWorker(t, b, "w1", 1, nil)
	waitFor(t, "w1 hosts an agent", func() bool { return len(w1.agents()) == 1 })
	w3 := startWorker(t, b, "w3", 0, nil)
	waitFor(t, "every agent hosted", func() bool { return len(w1.agents())+len(w2.agents())+len(w3.agents()) == 3 })
	time.Sleep(3 * claimEvery) // time enough for a wrong extra claim
	if got := w2.agents(); !slices.Equal(got, []string{"agent-03"}) {
		t.Fatalf("w2 (--profile experimental-70b) hosts %v, want [agent-03]", got)
	}
	if n := len(w1.agents()); n != 1 {
		t.Fatalf("w1 hosts %v, want one agent (--agents 1)", w1.agents())
	}
	all := append(append(w1.agents(), w2.agents()...), w3.agents()...)
	slices.Sort(all)
	if !slices.Equal(all, []string{"agent-01", "agent-02", "agent-03"}) {
		t.Fatalf("agents hosted %v, want each once", all)
	}

	// A task for agent-03 comes back as a result.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := b.Consume(ctx, coord.ResultSubject(a.Job), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	task, _ := json.Marshal(coord.Assignment{Task: demur.Task{Job: a.Job, ID: "c01s01", Attempt: 1, Words: 3}})
	if err := b.Publish(ctx, coord.TaskSubject(a.Job, "agent-03"), task); err != nil {
		t.Fatal(err)
	}
	d, err := res.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var r coord.Result
	if err := json.Unmarshal(d.Data(), &r); err != nil || r.Agent != "agent-03" || r.Turn.Response.Output == "" {
		t.Fatalf("result %+v, %v", r, err)
	}
	_ = d.Ack()

	// Retiring an agent in the announcement makes its host let it go; a
	// withdrawn job lets every agent go.
	kv, _ := b.KeyValue(ctx, natsbus.LeasesBucket)
	a.Retired = []string{"agent-03"}
	jobs, _ := b.KeyValue(ctx, natsbus.JobsBucket)
	if err := Announce(ctx, jobs, a); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "agent-03's lease released", func() bool {
		_, err := kv.Get(ctx, AgentKey(a.Job, "agent-03"))
		return err != nil
	})
	if err := Withdraw(ctx, jobs, a.Job); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every lease released", func() bool {
		keys, err := kv.Keys(ctx)
		return err != nil || len(keys) == 0
	})
}

// TestTakeOver: a worker that stops releases its agents and another takes
// them and serves their queues.
func TestTakeOver(t *testing.T) {
	b := embedded(t)
	a := announce(t, b, "wk-2")
	w1 := startWorker(t, b, "w1", 0, nil)
	waitFor(t, "w1 hosts all", func() bool { return len(w1.agents()) == 3 })
	w2 := startWorker(t, b, "w2", 0, nil)
	w1.stop(t)
	waitFor(t, "w2 takes over", func() bool { return len(w2.agents()) == 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := b.Consume(ctx, coord.ResultSubject(a.Job), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	task, _ := json.Marshal(coord.Assignment{Task: demur.Task{Job: a.Job, ID: "c01s02", Attempt: 1, Words: 3}})
	if err := b.Publish(ctx, coord.TaskSubject(a.Job, "agent-01"), task); err != nil {
		t.Fatal(err)
	}
	if _, err := res.Next(ctx); err != nil {
		t.Fatalf("no result after take-over: %v", err)
	}
}
