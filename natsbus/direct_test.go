package natsbus

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/demurhq/demur"
)

// wrapped is a delivery wrapper of the kind worker.Retrying makes.
type wrapped struct{ demur.Delivery }

func (w wrapped) Unwrap() demur.Delivery { return w.Delivery }

// TestHandOff: a task's ack travels with the result handed off; the task
// stays stored until the listener acks the result, then leaves.
func TestHandOff(t *testing.T) {
	t.Parallel()
	b := newBus(t, EmbeddedOptions{})
	job := uniqueJob(t)
	tasks, turn := taskSubject(job, "a"), fmt.Sprintf(demur.SubjectTurn, job)
	ctx := timeoutCtx(t, 10*time.Second)
	l, err := b.Listen(turn)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := consume(t, b, tasks, "a")

	for i, wrap := range []func(demur.Delivery) demur.Delivery{
		func(d demur.Delivery) demur.Delivery { return d },
		func(d demur.Delivery) demur.Delivery { return wrapped{d} },
	} {
		publish(t, b, tasks, "task")
		task := next(t, c)
		if err := b.HandOff(ctx, turn, []byte("result"), wrap(task)); err != nil {
			t.Fatalf("%d: HandOff: %v", i, err)
		}
		res := next(t, l)
		if string(res.Data()) != "result" {
			t.Fatalf("%d: got %q", i, res.Data())
		}
		time.Sleep(100 * time.Millisecond)
		if n := subjectMsgs(t, b, tasks); n != 1 {
			t.Fatalf("%d: %d tasks stored before the result was acked, want 1", i, n)
		}
		if err := res.Ack(); err != nil {
			t.Fatalf("%d: ack result: %v", i, err)
		}
		waitStored(t, b, tasks, 0)
	}

	// Only a delivery of this bus's consumers can be handed off, and only
	// on a subject no stream captures.
	publish(t, b, tasks, "task")
	task := next(t, c)
	if err := b.HandOff(ctx, turn, nil, &directDelivery{msg: &nats.Msg{}}); err == nil {
		t.Error("HandOff of a listener's delivery succeeded")
	}
	if err := b.HandOff(ctx, taskSubject(job, "b"), nil, task); err == nil {
		t.Error("HandOff on a task subject succeeded")
	}
}

// TestHandOffForgedAck: a listener acks only what names a task ack, so a
// sender cannot make it publish anywhere else.
func TestHandOffForgedAck(t *testing.T) {
	t.Parallel()
	b := newBus(t, EmbeddedOptions{})
	turn := fmt.Sprintf(demur.SubjectTurn, uniqueJob(t))
	l, err := b.Listen(turn)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	m := &nats.Msg{Subject: turn, Data: []byte("result"), Header: nats.Header{handOffHeader: []string{"demur.control.x"}}}
	if err := b.nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	if err := next(t, l).Ack(); !errors.Is(err, ErrNotTaskAck) {
		t.Fatalf("ack of a forged hand-off: want ErrNotTaskAck, got %v", err)
	}
}

func TestCheckTaskAck(t *testing.T) {
	for ack, ok := range map[string]bool{
		"$JS.ACK.DEMUR_TASKS.agent_j_a_1.1.5.5.1733360000000000000.0":                 true,
		"$JS.ACK.hub.ACCHASH.DEMUR_TASKS.agent_j_a_1.1.5.5.1733360000000000000.0.tok": true,
		"$JS.ACK.hub.ACCHASH.DEMUR_TASKS.agent_j_a_1.1.5.5.1733360000000000000.0":     true,
		"$JS.ACK.DEMUR_RESULTS.coord_j_1.1.5.5.1733360000000000000.0":                 false,
		"$JS.ACK.hub.ACCHASH.OTHER.agent_j_a_1.1.5.5.1733360000000000000.0":           false,
		"$JS.ACK.DEMUR_TASKS.a.1.5.5.1":                                               false,
		"$JS.ACK.hub.ACCHASH.DEMUR_TASKS.a.1.5.5.1":                                   false,
		"$JS.API.DEMUR_TASKS.agent_j_a_1.1.5.5.1733360000000000000.0":                 false,
		"demur.control.j": false,
		"":                false,
	} {
		if err := checkTaskAck(ack); (err == nil) != ok {
			t.Errorf("checkTaskAck(%q) = %v, want ok %v", ack, err, ok)
		}
	}
}

// waitStored waits until subject holds n messages.
func waitStored(t *testing.T, b *Bus, subject string, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := subjectMsgs(t, b, subject)
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d messages after 5s, want %d", subject, got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
