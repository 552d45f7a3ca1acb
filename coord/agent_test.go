package coord

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/natsbus"
)

// TestHeldResult: an agent that hands its task's ack over with the result
// keeps the result until its next task comes. It sends it again while
// nobody acks it, answers its task's redelivery from it without a second
// turn, and takes up the next task once the result is acked.
func TestHeldResult(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus, err := natsbus.Embedded(ctx, natsbus.EmbeddedOptions{Options: natsbus.Options{AckWait: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	const job, agent = "held", "agent-01"
	l, err := bus.Listen(TurnSubject(job))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	be := &scripted{}
	// No keep-alive within the test, so the task comes back after AckWait.
	a := &Agent{ID: agent, Job: job, Agents: 1, Backend: be, Bus: bus, Direct: true, HandOff: true,
		KeepAlive: time.Hour, ResendAfter: 200 * time.Millisecond}
	actx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(actx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	}()
	sendTask := func(id string) {
		t.Helper()
		data, _ := json.Marshal(Assignment{Task: demur.Task{Job: job, ID: id, Attempt: 1, Words: 3,
			Title: "T", Outline: []string{"One", "Two"}, Brief: "b"}})
		if err := bus.Publish(ctx, TaskSubject(job, agent), data); err != nil {
			t.Fatal(err)
		}
	}
	nextResult := func() (demur.Delivery, *Result) {
		t.Helper()
		d, err := l.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var r Result
		if err := json.Unmarshal(d.Data(), &r); err != nil {
			t.Fatal(err)
		}
		return d, &r
	}

	sendTask("c01s01")
	_, r := nextResult()
	if r.Task.ID != "c01s01" || r.Task.Title != "T" || r.Task.Outline != nil || r.Task.Brief != "" {
		t.Fatalf("result task %+v: want the task without its outline and brief", r.Task)
	}
	// Unacked, the result comes again; past AckWait the task comes back
	// too, and is answered from the held result.
	var last demur.Delivery
	for start := time.Now(); time.Since(start) < 2500*time.Millisecond; {
		d, r := nextResult()
		if r.Task.ID != "c01s01" {
			t.Fatalf("got a result for %s", r.Task.ID)
		}
		last = d
	}
	if be.count() != 1 {
		t.Fatalf("%d turns for one task: the agent worked the task again instead of sending its result", be.count())
	}
	if err := last.Ack(); err != nil {
		t.Fatal(err)
	}
	sendTask("c01s02")
	for {
		d, r := nextResult()
		if r.Task.ID == "c01s02" {
			break // results for c01s01 sent before the ack may come first
		}
		_ = d.Ack()
	}
	if n := be.count(); n != 2 {
		t.Fatalf("%d turns, want 2", n)
	}
}
