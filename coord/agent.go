package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/demurhq/demur"
)

// Assignment is the message a coordinator queues for one agent.
type Assignment struct {
	Task demur.Task `json:"task"`
	// Stop tells the agent to leave the job.
	Stop bool `json:"stop,omitempty"`
}

// Result is the message an agent publishes after a turn.
type Result struct {
	Task  demur.Task      `json:"task"`
	Agent string          `json:"agent"`
	Turn  demur.Turn      `json:"turn"`
	Truth json.RawMessage `json:"truth,omitempty"`
	// Err is the backend's error; the turn is empty then.
	Err string `json:"err,omitempty"`
}

// Agent is one worker: it takes tasks from its queue on the bus, asks its
// backend, and publishes what came back. It shares nothing with the
// coordinator but the bus.
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
	conv      conversation
}

// TaskSubject is the bus subject of one agent's task queue.
func TaskSubject(job, agent string) string { return fmt.Sprintf(demur.SubjectTask, job, agent) }

// ResultSubject is the bus subject of a job's results.
func ResultSubject(job string) string { return fmt.Sprintf(demur.SubjectResult, job) }

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
		res := a.work(ctx, d, &as.Task)
		data, err := json.Marshal(res)
		if err != nil {
			return fmt.Errorf("agent %s: encode result: %w", a.ID, err)
		}
		// Publish before ack: a crash in between redelivers the task, and the
		// coordinator drops the duplicate result.
		if err := a.Bus.Publish(ctx, ResultSubject(a.Job), data); err != nil {
			return fmt.Errorf("agent %s: publish result: %w", a.ID, err)
		}
		if err := d.Ack(); err != nil {
			return fmt.Errorf("agent %s: ack task: %w", a.ID, err)
		}
	}
}

// work runs one turn, keeping the delivery alive while the backend thinks.
func (a *Agent) work(ctx context.Context, d demur.Delivery, t *demur.Task) *Result {
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
	every := a.KeepAlive
	if every <= 0 {
		every = 10 * time.Second
	}
	stop := keepAlive(d, every)
	start := time.Now()
	resp, err := a.Backend.Generate(ctx, req)
	stop()
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

func keepAlive(d demur.Delivery, every time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				_ = d.InProgress()
			}
		}
	}()
	return func() { close(done) }
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
