package coord

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/demurhq/demur"
)

// delivery is one result message, or the error that ended the consumer.
type delivery struct {
	d   demur.Delivery
	err error
}

// pump turns blocking consumers into one channel, so the coordinator can
// wait on results, overrides and timers at once. The channel holds up to
// maxBatch results, fetched while the coordinator works on earlier ones.
func pump(ctx context.Context, conss ...demur.Consumer) <-chan delivery {
	ch := make(chan delivery, maxBatch)
	for _, cons := range conss {
		go func() {
			for {
				d, err := cons.Next(ctx)
				select {
				case ch <- delivery{d, err}:
				case <-ctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		}()
	}
	return ch
}

// maxBatch bounds the results handled between two flushes.
const maxBatch = 64

// nextBatch returns first and the results already waiting behind it in ch,
// up to maxBatch, ending early at one that carries the consumer's error.
// Handling the results that queued up while the coordinator was busy in
// one go makes their records durable in one commit, sends the tasks they
// free in one batch and acks them together, instead of paying each of
// those per result.
func nextBatch(first delivery, ch <-chan delivery) []delivery {
	batch := []delivery{first}
	for first.err == nil && len(batch) < maxBatch {
		select {
		case ev := <-ch:
			batch = append(batch, ev)
			if ev.err != nil {
				return batch
			}
		default:
			return batch
		}
	}
	return batch
}

// onResults handles a batch of result messages: detect, decide and record
// each, then make the records durable, ack the results and act. A result
// that cannot be read, or the consumer's error, ends the batch: what came
// before it is still recorded and acked, then the error is returned.
func (c *Coordinator) onResults(ctx context.Context, batch []delivery) error {
	var failed error
	for _, ev := range batch {
		if ev.err != nil {
			failed = fmt.Errorf("next result: %w", ev.err)
			break
		}
		var res Result
		if err := json.Unmarshal(ev.d.Data(), &res); err != nil {
			_ = ev.d.Ack()
			failed = fmt.Errorf("decode result: %w", err)
			break
		}
		if err := c.handle(ctx, &res); err != nil {
			return err
		}
		c.acks = append(c.acks, ev.d)
	}
	c.dispatch()
	if err := c.flush(ctx); err != nil {
		return err
	}
	return failed
}

// subscribeOverrides listens on the job's control subject. Overrides reach
// the coordinator only this way, from the authenticated override service;
// nothing in a task's or an output's text is ever read as one.
func (c *Coordinator) subscribeOverrides() (<-chan demur.Override, func(), error) {
	var mu sync.Mutex
	var queue []demur.Override
	notify := make(chan struct{}, 1)
	unsub, err := c.cfg.Bus.Subscribe(fmt.Sprintf(demur.SubjectControl, c.cfg.Job), func(data []byte) {
		var o demur.Override
		if json.Unmarshal(data, &o) != nil {
			return // not an override: control messages are typed, nothing else is read
		}
		mu.Lock()
		queue = append(queue, o)
		mu.Unlock()
		select {
		case notify <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("subscribe to overrides: %w", err)
	}
	out := make(chan demur.Override)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-notify:
			}
			mu.Lock()
			batch := queue
			queue = nil
			mu.Unlock()
			for _, o := range batch {
				select {
				case out <- o:
				case <-done:
					return
				}
			}
		}
	}()
	return out, func() { unsub(); close(done) }, nil
}

// escalation is a work item paused for a person.
type escalation struct {
	agent    string
	deadline time.Time
	dflt     demur.Action
}

// escalationTimer fires at the earliest escalation deadline, or never.
func (c *Coordinator) escalationTimer() (<-chan time.Time, func()) {
	var first time.Time
	for _, e := range c.escalated {
		if first.IsZero() || e.deadline.Before(first) {
			first = e.deadline
		}
	}
	if first.IsZero() {
		return nil, func() {}
	}
	t := time.NewTimer(time.Until(first))
	return t.C, func() { t.Stop() }
}

// expireEscalations applies the default action to escalations nobody
// answered in time.
func (c *Coordinator) expireEscalations(now time.Time) {
	for _, id := range sortedKeys(c.escalated) {
		e := c.escalated[id]
		if e.deadline.After(now) {
			continue
		}
		delete(c.escalated, id)
		if id == jobPauseKey {
			c.paused = false
			c.record(demur.RecDecision, "router", demur.DecisionPayload{Task: "", Decision: demur.Decision{
				Action: demur.ActionResume, Rule: "escalate.timeout",
				Path: []demur.Step{{Rule: "escalate.timeout", Matched: true, Why: "no person answered the storm escalation in time; resuming"}}}})
			continue
		}
		d := demur.Decision{Action: e.dflt, Rule: "escalate.timeout",
			Path: []demur.Step{{Rule: "escalate.timeout", Matched: true, Why: fmt.Sprintf("no person answered by %s; default action %s", e.deadline.Format(time.RFC3339), e.dflt)}}}
		c.record(demur.RecDecision, "router", demur.DecisionPayload{Task: id, Agent: e.agent, Attempt: c.attempts[id], Decision: d})
		c.carryOut(id, e.agent, d.Action, "")
	}
}

// jobPauseKey marks a job-wide pause (a storm) among the escalations.
const jobPauseKey = ""
