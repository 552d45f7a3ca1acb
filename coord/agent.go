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
	// Task is the task answered, without the texts only the prompt needs
	// (outline, brief, summary, frame): the coordinator has its plan.
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
	// ResendAfter is how long a result waits for the coordinator to record
	// it before the agent sends it again; 0 means 10s. A held result
	// (HandOff) is then sent again at doubling intervals up to a minute:
	// the job may just be paused.
	ResendAfter time.Duration
	// Direct hands results to the coordinator on TurnSubject when the bus
	// is a demur.DirectBus, and acks the task once the coordinator has
	// recorded the result. Set it only for a coordinator that listens
	// there (Coordinator.Run does); otherwise results go on ResultSubject.
	Direct bool
	// HandOff, with Direct, hands the task's ack over with the result
	// (DirectBus.HandOff): the coordinator acks the task once it has
	// recorded the result, and the agent does not wait for it. The agent
	// keeps the task in progress and the result at hand until its next
	// task comes, sending the result again while none does. Set it only
	// for a coordinator that acks handed-off tasks (Coordinator.Run does).
	HandOff bool
	conv    conversation
	buf     bytes.Buffer // the encoded result
	held    *heldResult
}

// heldResult is a result handed off with its task's ack and not yet known
// to be recorded.
type heldResult struct {
	key  string // the task/attempt
	data []byte // the encoded result; Agent.buf until the next turn
	d    demur.Delivery
	stop func() // ends the task's keep-alive
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
	defer a.release()
	for {
		d, err := a.next(ctx, cons)
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
		if err := a.serve(ctx, d, &as.Task, every); err != nil {
			return err
		}
	}
}

// serve runs one task and gets its result to the coordinator.
func (a *Agent) serve(ctx context.Context, d demur.Delivery, t *demur.Task, every time.Duration) error {
	if h := a.held; h != nil && h.key == taskKey(t) {
		// The task came back (its ack was lost): the result is at hand.
		h.stop()
		h.d, h.stop = d, keepAlive(d, every)
		return a.handOff(ctx, h)
	}
	a.release() // a new task: the coordinator has recorded the last result
	// The task stays ours, not redelivered, while the backend thinks and
	// until the result is safe.
	stop := keepAlive(d, every)
	res := a.work(ctx, t)
	if a.handsOff() {
		data, err := a.encode(res)
		if err != nil {
			stop()
			return err
		}
		a.held = &heldResult{key: taskKey(t), data: data, d: d, stop: stop}
		return a.handOff(ctx, a.held)
	}
	err := a.answer(ctx, res)
	stop()
	if err != nil {
		return err
	}
	// Ack only once the result is safe: a crash before this line
	// redelivers the task, and the coordinator drops the duplicate result.
	if err := d.Ack(); err != nil {
		return fmt.Errorf("agent %s: ack task: %w", a.ID, err)
	}
	return nil
}

func taskKey(t *demur.Task) string { return fmt.Sprintf("%s/%d", t.ID, t.Attempt) }

func (a *Agent) handsOff() bool {
	_, ok := a.Bus.(demur.DirectBus)
	return a.Direct && a.HandOff && ok
}

// next waits for the next task. While a handed-off result waits for its
// task's ack it sends the result again now and then: it may have been
// lost, or sent while the coordinator was away (restarting). The
// coordinator drops a result it has seen, and acks its task again.
func (a *Agent) next(ctx context.Context, cons demur.Consumer) (demur.Delivery, error) {
	wait := a.resendAfter()
	for {
		if a.held == nil {
			return cons.Next(ctx)
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		d, err := cons.Next(wctx)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return d, err
		}
		if err := a.handOff(ctx, a.held); err != nil {
			return nil, err
		}
		wait = min(2*wait, max(resendHeldMax, a.resendAfter()))
	}
}

// handOff sends a held result with its task's ack.
func (a *Agent) handOff(ctx context.Context, h *heldResult) error {
	if err := a.Bus.(demur.DirectBus).HandOff(ctx, TurnSubject(a.Job), h.data, h.d); err != nil {
		return fmt.Errorf("agent %s: hand off result: %w", a.ID, err)
	}
	return nil
}

// release forgets the held result, if any, and ends its task's keep-alive.
func (a *Agent) release() {
	if a.held != nil {
		a.held.stop()
		a.held = nil
	}
}

// encode encodes a result into the agent's buffer: a result is tens of
// kilobytes, and the bus has copied it by the time a send returns.
func (a *Agent) encode(res *Result) ([]byte, error) {
	a.buf.Reset()
	if err := json.NewEncoder(&a.buf).Encode(res); err != nil {
		return nil, fmt.Errorf("agent %s: encode result: %w", a.ID, err)
	}
	return a.buf.Bytes(), nil
}

// answer sends a turn's result to the coordinator. On a DirectBus (with
// Direct set) it returns once the coordinator has recorded the result:
// results are not stored on the bus, so a coordinator that is away
// (restarting) or an answer lost on the way only means sending again, and
// the coordinator drops a result it has seen. Otherwise it publishes the
// result on the job's durable result subject.
func (a *Agent) answer(ctx context.Context, res *Result) error {
	data, err := a.encode(res)
	if err != nil {
		return err
	}
	db, ok := a.Bus.(demur.DirectBus)
	if !a.Direct || !ok {
		if err := a.Bus.Publish(ctx, ResultSubject(a.Job), data); err != nil {
			return fmt.Errorf("agent %s: publish result: %w", a.ID, err)
		}
		return nil
	}
	wait := resendMin
	for {
		sctx, cancel := context.WithTimeout(ctx, a.resendAfter())
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

func (a *Agent) resendAfter() time.Duration {
	if a.ResendAfter > 0 {
		return a.ResendAfter
	}
	return 10 * time.Second
}

// resendMin and resendMax bound the pause between sends when none got
// through (no coordinator listening); resendHeldMax bounds the interval
// between sends of a held result.
const (
	resendHeldMax = time.Minute
	resendMin     = 100 * time.Millisecond
	resendMax     = 2 * time.Second
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
	res := &Result{Task: echo(t), Agent: a.ID}
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

// echo is what a result carries back of its task: which task and attempt,
// and where it goes. The coordinator takes the rest (outline, brief,
// summaries: a tenth of a result) from its own plan.
func echo(t *demur.Task) demur.Task {
	e := *t
	e.Outline, e.Brief, e.PrevSummary, e.Frame = nil, "", "", ""
	return e
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
