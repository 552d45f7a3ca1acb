package coord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/demurhq/demur"
)

// Assignment is the message a coordinator queues for one agent.
type Assignment struct {
	Task demur.Task `json:"task"`
	// Stop tells the agent to leave the job.
	Stop bool `json:"stop,omitempty"`
}

// Result is the message an agent sends the coordinator after a turn.
type Result struct {
	Task  demur.Task      `json:"task"`
	Agent string          `json:"agent"`
	Turn  demur.Turn      `json:"turn"`
	Truth json.RawMessage `json:"truth,omitempty"`
	// Err is the backend's error; the turn is empty then.
	Err string `json:"err,omitempty"`
}

// Agent is one worker: it takes tasks from its queue on the bus, asks its
// backend, and sends what came back to the coordinator. It shares nothing
// with the coordinator but the bus.
type Agent struct {
	ID      string
	Job     string
	Agents  int // team size, for the system prompt
	Model   string
	Backend demur.Backend
	Bus     demur.Bus
	// Logprobs asks the backend for per-token log-probabilities.
	Logprobs bool
	// KeepAlive is how often a running turn extends its task's ack
	// deadline (Delivery.InProgress); 0 means 10s. It must stay well under
	// the bus's AckWait, or a slow turn is redelivered to another agent.
	KeepAlive time.Duration
	// Direct hands results to the coordinator on TurnSubject when the bus
	// is a demur.DirectBus, and acks the task once the coordinator has
	// recorded the result. Set it only for a coordinator that listens
	// there (Coordinator.Run does); otherwise results go on ResultSubject.
	Direct bool
	conv   conversation
	buf    bytes.Buffer // the encoded result
}

// TaskSubject is the bus subject of one agent's task queue.
func TaskSubject(job, agent string) string { return fmt.Sprintf(demur.SubjectTask, job, agent) }

// ResultSubject is the durable bus subject of a job's results.
func ResultSubject(job string) string { return fmt.Sprintf(demur.SubjectResult, job) }

// TurnSubject is where agents hand results to the job's coordinator on a
// demur.DirectBus.
func TurnSubject(job string) string { return fmt.Sprintf(demur.SubjectTurn, job) }

// AgentDurable is the durable consumer name of one agent's task queue;
// every process hosting the agent uses it, so they share one queue.
func AgentDurable(job, agent string) string { return durableName("agent", job, agent) }

// durableName makes a consumer name from parts NATS accepts (no dots).
func durableName(parts ...string) string {
	return strings.NewReplacer(".", "_", "*", "_", ">", "_", " ", "_").Replace(strings.Join(parts, "_"))
}

// Run serves the agent's queue until it is told to stop or ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	cons, err := a.Bus.Consume(ctx, TaskSubject(a.Job, a.ID), AgentDurable(a.Job, a.ID))
	if err != nil {
		return fmt.Errorf("agent %s: consume tasks: %w", a.ID, err)
	}
	defer cons.Close()
	every := a.KeepAlive
	if every <= 0 {
		every = 10 * time.Second
	}
	for {
		d, err := cons.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("agent %s: next task: %w", a.ID, err)
		}
		var as Assignment
		if err := json.Unmarshal(d.Data(), &as); err != nil {
			// A message nobody can read would be redelivered forever.
			_ = d.Ack()
			return fmt.Errorf("agent %s: decode task: %w", a.ID, err)
		}
		if as.Stop {
			return d.Ack()
		}
		// The task stays ours, not redelivered, while the backend thinks and
		// until the result is safe.
		stop := keepAlive(d, every)
		err = a.answer(ctx, a.work(ctx, &as.Task))
		stop()
		if err != nil {
			return err
		}
		// Ack only once the result is safe: a crash before this line
		// redelivers the task, and the coordinator drops the duplicate
		// result.
		if err := d.Ack(); err != nil {
			return fmt.Errorf("agent %s: ack task: %w", a.ID, err)
		}
	}
}

// answer sends a turn's result to the coordinator. On a DirectBus (with
// Direct set) it returns once the coordinator has recorded the result:
// results are not stored on the bus, so a coordinator that is away
// (restarting) or an answer lost on the way only means sending again, and
// the coordinator drops a result it has seen. Otherwise it publishes the
// result on the job's durable result subject.
func (a *Agent) answer(ctx context.Context, res *Result) error {
	// One buffer per agent: a result is tens of kilobytes, and the bus has
	// copied it by the time Publish or Send returns.
	a.buf.Reset()
	if err := json.NewEncoder(&a.buf).Encode(res); err != nil {
		return fmt.Errorf("agent %s: encode result: %w", a.ID, err)
	}
	data := a.buf.Bytes()
	db, ok := a.Bus.(demur.DirectBus)
	if !a.Direct || !ok {
		if err := a.Bus.Publish(ctx, ResultSubject(a.Job), data); err != nil {
			return fmt.Errorf("agent %s: publish result: %w", a.ID, err)
		}
		return nil
	}
	wait := resendMin
	for {
		sctx, cancel := context.WithTimeout(ctx, resendAfter)
		err := db.Send(sctx, TurnSubject(a.Job), data)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("agent %s: send result: %w (last error: %w)", a.ID, ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, resendMax)
	}
}

// resendAfter is how long an agent waits for the coordinator to record a
// result before it sends it again; resendMin and resendMax bound the pause
// between sends when none got through (no coordinator listening).
const (
	resendAfter = 10 * time.Second
	resendMin   = 100 * time.Millisecond
	resendMax   = 2 * time.Second
)

// work runs one turn.
func (a *Agent) work(ctx context.Context, t *demur.Task) *Result {
	if t.RefreshContext {
		a.conv.reset()
	}
	prompt := userPrompt(t)
	req := &demur.Request{
		Model:     a.Model,
		Messages:  a.conv.messages(systemPrompt(a.ID, a.Agents, t), prompt),
		MaxTokens: t.Words * 2,
		Force:     t.Force,
		Logprobs:  a.Logprobs,
	}
	start := time.Now()
	resp, err := a.Backend.Generate(ctx, req)
	res := &Result{Task: *t, Agent: a.ID}
	if err != nil {
		res.Err = err.Error()
		return res
	}
	res.Truth = resp.Truth
	res.Turn = demur.Turn{
		Job: t.Job, Task: t.ID, Agent: a.ID, Attempt: t.Attempt,
		Prompt: prompt, Response: *resp, LPMean: mean(resp.Logprobs),
		Started: start.UTC(), Elapsed: time.Since(start),
	}
	res.Turn.Response.Logprobs = nil
	res.Turn.Response.Truth = nil
	a.conv.add(prompt, resp.Output)
	return res
}

// keepAlive extends d's ack deadline every interval until stop is called.
// A timer rather than a goroutine: most turns end before the first tick,
// and starting and ending a goroutine per task wakes the scheduler twice
// for nothing.
func keepAlive(d demur.Delivery, every time.Duration) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(every, func() {
		_ = d.InProgress()
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(every)
		}
	})
	return func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		t.Stop()
	}
}

func mean(xs []float32) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += float64(x)
	}
	return s / float64(len(xs))
}

var errNoAgents = errors.New("no agent is left to do the work")
