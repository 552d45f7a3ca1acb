package natsbus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/demurhq/demur"
)

func newBus(t testing.TB, opts EmbeddedOptions) *Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := Embedded(ctx, opts)
	if err != nil {
		t.Fatalf("Embedded: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// uniqueJob gives each test its own subjects, which matters on a shared
// external server.
func uniqueJob(t testing.TB) string {
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	return "test-" + hex.EncodeToString(r[:])
}

func taskSubject(job, agent string) string { return fmt.Sprintf(demur.SubjectTask, job, agent) }

func timeoutCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func publish(t testing.TB, b *Bus, subject string, data string) {
	t.Helper()
	if err := b.Publish(timeoutCtx(t, 5*time.Second), subject, []byte(data)); err != nil {
		t.Fatalf("Publish %s: %v", subject, err)
	}
}

func consume(t testing.TB, b *Bus, subject, durable string) demur.Consumer {
	t.Helper()
	c, err := b.Consume(timeoutCtx(t, 5*time.Second), subject, durable)
	if err != nil {
		t.Fatalf("Consume %s: %v", subject, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func next(t testing.TB, c demur.Consumer) demur.Delivery {
	t.Helper()
	d, err := c.Next(timeoutCtx(t, 5*time.Second))
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return d
}

// expectNothing fails if c yields a message within wait.
func expectNothing(t testing.TB, c demur.Consumer, wait time.Duration) {
	t.Helper()
	d, err := c.Next(timeoutCtx(t, wait))
	if err == nil {
		t.Fatalf("unexpected message on %s: %q", d.Subject(), d.Data())
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next: want deadline exceeded, got %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	roundTrip(t, newBus(t, EmbeddedOptions{}))
}

func roundTrip(t *testing.T, b *Bus) { roundTripOn(t, b, uniqueJob(t)) }

// roundTripOn is shared with the external-server test.
func roundTripOn(t *testing.T, b *Bus, job string) {
	subj := taskSubject(job, "agent-a")
	c := consume(t, b, subj, "agent-a")
	publish(t, b, subj, "hello")
	d := next(t, c)
	if d.Subject() != subj || string(d.Data()) != "hello" {
		t.Fatalf("got %s %q, want %s %q", d.Subject(), d.Data(), subj, "hello")
	}
	if err := d.Ack(); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	expectNothing(t, c, 300*time.Millisecond)

	res := fmt.Sprintf(demur.SubjectResult, job)
	rc := consume(t, b, res, "coordinator")
	publish(t, b, res, "result")
	if d := next(t, rc); string(d.Data()) != "result" {
		t.Fatalf("result: got %q", d.Data())
	} else if err := d.Ack(); err != nil {
		t.Fatalf("Ack result: %v", err)
	}
}

func TestAckedMessageLeavesStream(t *testing.T) {
	t.Parallel()
	b := newBus(t, EmbeddedOptions{})
	job := uniqueJob(t)
	count := func() uint64 { return subjectMsgs(t, b, fmt.Sprintf(demur.SubjectTask, job, ">")) }
	subj := taskSubject(job, "a")
	c := consume(t, b, subj, "a")
	publish(t, b, subj, "x")
	publish(t, b, subj, "y")
	if n := count(); n != 2 {
		t.Fatalf("stream holds %d messages before ack, want 2", n)
	}
	// AckSync returns once the server has removed the message.
	if err := next(t, c).(*Delivery).AckSync(); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("stream holds %d messages after AckSync, want 1", n)
	}
	// Ack does not wait; the message goes soon after.
	if err := next(t, c).Ack(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for count() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("stream still holds %d messages 5s after Ack", count())
		}
		time.Sleep(10 * time.Millisecond)
	}
	expectNothing(t, c, 200*time.Millisecond)
}

// subjectMsgs counts the messages stored for subject, which may use
// wildcards.
func subjectMsgs(t testing.TB, b *Bus, subject string) uint64 {
	t.Helper()
	n, err := b.Pending(timeoutCtx(t, 5*time.Second), subject)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPublishBatch(t *testing.T) {
	t.Parallel()
	b := newBus(t, EmbeddedOptions{})
	job := uniqueJob(t)
	var msgs []demur.BusMessage
	for i := range 5 {
		msgs = append(msgs, demur.BusMessage{Subject: taskSubject(job, fmt.Sprint("a", i%2)), Data: []byte(fmt.Sprint(i))})
	}
	if err := b.PublishBatch(timeoutCtx(t, 5*time.Second), msgs); err != nil {
		t.Fatal(err)
	}
	// Every message is stored by the time PublishBatch returns, in order
	// per subject.
	if n := subjectMsgs(t, b, fmt.Sprintf(demur.SubjectTask, job, ">")); n != 5 {
		t.Fatalf("%d messages stored, want 5", n)
	}
	for agent, want := range map[string][]string{"a0": {"0", "2", "4"}, "a1": {"1", "3"}} {
		c := consume(t, b, taskSubject(job, agent), agent)
		for _, w := range want {
			d := next(t, c)
			if string(d.Data()) != w {
				t.Fatalf("%s: got %q, want %q", agent, d.Data(), w)
			}
			if err := d.Ack(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A subject no stream captures is not acknowledged: the batch fails.
	bad := append(msgs[:1:1], demur.BusMessage{Subject: "demur.nowhere." + job, Data: []byte("x")})
	if err := b.PublishBatch(timeoutCtx(t, 5*time.Second), bad); err == nil {
		t.Fatal("PublishBatch to a subject without a stream succeeded")
	}
}

func TestSendListen(t *testing.T) {
	t.Parallel()
	b := newBus(t, EmbeddedOptions{})
	subj := fmt.Sprintf(demur.SubjectTurn, uniqueJob(t))
	ctx := timeoutCtx(t, 10*time.Second)

	// Nobody listens: Send fails at once rather than at its deadline.
	start := time.Now()
	if err := b.Send(ctx, subj, []byte("lost")); err == nil {
		t.Fatal("Send with no listener succeeded")
	} else if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Send with no listener took %v", el)
	}

	l, err := b.Listen(subj)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sent := make(chan error, 1)
	go func() { sent <- b.Send(ctx, subj, []byte("result")) }()
	d := next(t, l)
	if d.Subject() != subj || string(d.Data()) != "result" {
		t.Fatalf("got %s %q", d.Subject(), d.Data())
	}
	select {
	case err := <-sent:
		t.Fatalf("Send returned before the ack: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("Send: %v", err)
	}

	// Unacked, a Send times out and the sender tries again; nothing was
	// stored meanwhile.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	go func() { sent <- b.Send(short, subj, []byte("again")) }()
	if d := next(t, l); string(d.Data()) != "again" {
		t.Fatalf("got %q", d.Data())
	}
	if err := <-sent; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unacked Send: want deadline exceeded, got %v", err)
	}

	// Durable subjects are refused both ways: JetStream would answer in
	// the listener's place.
	if err := b.Send(ctx, taskSubject(uniqueJob(t), "a"), nil); err == nil {
		t.Error("Send to a task subject succeeded")
	}
	if _, err := b.Listen(fmt.Sprintf(demur.SubjectResult, uniqueJob(t))); err == nil {
		t.Error("Listen on a result subject succeeded")
	}

	// Close ends a blocked Next.
	blocked := make(chan error, 1)
	go func() { _, err := l.Next(context.Background()); blocked <- err }()
	time.Sleep(50 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-blocked:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Next after Close: want ErrClosed, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next still blocked 5s after Close")
	}
}

func streamMsgs(t testing.TB, b *Bus, stream string) uint64 {
	t.Helper()
	ctx := timeoutCtx(t, 5*time.Second)
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestWorkQueueDeliversOnce(t *testing.T) {
	t.Parallel()
	b := newBus(t, EmbeddedOptions{})
	subj := taskSubject(uniqueJob(t), "agent-a")
	// Two workers sharing a durable, as two agent processes would.
	workers := []demur.Consumer{consume(t, b, subj, "agent-a"), consume(t, b, subj, "agent-a")}
	const n = 40
	for i := range n {
		publish(t, b, subj, fmt.Sprint(i))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	perWorker := make([]int, len(workers))
	var wg sync.WaitGroup
	for w, c := range workers {
		wg.Go(func() {
			for {
				d, err := c.Next(timeoutCtx(t, 500*time.Millisecond))
				if err != nil {
					return
				}
				mu.Lock()
				seen[string(d.Data())]++
				perWorker[w]++
				mu.Unlock()
				if err := d.Ack(); err != nil {
					t.Errorf("Ack: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("got %d distinct messages, want %d", len(seen), n)
	}
	for m, k := range seen {
		if k != 1 {
			t.Errorf("message %s delivered %d times", m, k)
		}
	}
	t.Logf("split between workers: %v", perWorker)
}

func TestFilterPerAgent(t *testing.T) {
	t.Parallel()
	b := newBus(t, EmbeddedOptions{})
	job := uniqueJob(t)
	ca := consume(t, b, taskSubject(job, "agent-a"), "agent-a")
	cb := consume(t, b, taskSubject(job, "agent-b"), "agent-b")
	publish(t, b, taskSubject(job, "agent-b"), "for b")
	publish(t, b, taskSubject(job, "agent-a"), "for a")
	if d := next(t, ca); string(d.Data()) != "for a" {
		t.Fatalf("agent-a got %q", d.Data())
	} else {
		d.Ack()
	}
	expectNothing(t, ca, 200*time.Millisecond)
	if d := next(t, cb); string(d.Data()) != "for b" {
		t.Fatalf("agent-b got %q", d.Data())
	}
}

func TestSameDurableTwoJobs(t *testing.T) {
	t.Parallel()
	b := newBus(t, EmbeddedOptions{})
	j1, j2 := uniqueJob(t), uniqueJob(t)
	c1 := consume(t, b, taskSubject(j1, "agent-a"), "agent-a")
	c2 := consume(t, b, taskSubject(j2, "agent-a"), "agent-a")
	publish(t, b, taskSubject(j1, "agent-a"), "one")
	publish(t, b, taskSubject(j2, "agent-a"), "two")
	if d := next(t, c1); string(d.Data()) != "one" {
		t.Fatalf("job 1 got %q", d.Data())
	}
	if d := next(t, c2); string(d.Data()) != "two" {
		t.Fatalf("job 2 got %q", d.Data())
	}
}

func TestOverlappingDurablesRefused(t *testing.T) {
	t.Parallel()
	b := newBus(t, EmbeddedOptions{})
	job := uniqueJob(t)
	consume(t, b, taskSubject(job, "agent-a"), "one")
	c, err := b.Consume(timeoutCtx(t, 5*time.Second), taskSubject(job, "agent-a"), "two")
	if err == nil {
		c.Close()
		t.Fatal("second durable on the same work-queue subject was accepted")
	}
}

func TestRedeliveryAfterNak(t *testing.T) {
	t.Parallel()
	b := newBus(t, EmbeddedOptions{})
	subj := taskSubject(uniqueJob(t), "a")
	c := consume(t, b, subj, "a")
	publish(t, b, subj, "again")

	d := next(t, c)
	if err := d.Nak(0); err != nil {
		t.Fatal(err)
	}
	d = next(t, c)
	if string(d.Data()) != "again" || d.(*Delivery).NumDelivered() != 2 {
		t.Fatalf("after Nak: got %q delivery %d, want %q delivery 2", d.Data(), d.(*Delivery).NumDelivered(), "again")
	}

	const delay = 400 * time.Millisecond
	start := time.Now()
	if err := d.Nak(delay); err != nil {
		t.Fatal(err)
	}
	d = next(t, c)
	if el := time.Since(start); el < delay-50*time.Millisecond {
		t.Fatalf("Nak(%v) redelivered after %v", delay, el)
	}
	if d.(*Delivery).NumDelivered() != 3 {
		t.Fatalf("delivery %d, want 3", d.(*Delivery).NumDelivered())
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	expectNothing(t, c, 200*time.Millisecond)
}

func TestRedeliveryAfterAckWait(t *testing.T) {
	t.Parallel()
	const ackWait = 300 * time.Millisecond
	b := newBus(t, EmbeddedOptions{Options: Options{AckWait: ackWait}})
	subj := taskSubject(uniqueJob(t), "a")
	c := consume(t, b, subj, "a")
	publish(t, b, subj, "slow")

	start := time.Now()
	next(t, c) // not acked
	d := next(t, c)
	if el := time.Since(start); el < ackWait-50*time.Millisecond {
		t.Fatalf("redelivered after %v, before AckWait %v", el, ackWait)
	}
	if string(d.Data()) != "slow" {
		t.Fatalf("got %q", d.Data())
	}

	// InProgress holds the message past AckWait.
	for range 3 {
		time.Sleep(ackWait / 2)
		if err := d.InProgress(); err != nil {
			t.Fatal(err)
		}
	}
	expectNothing(t, c, ackWait/2)
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
}

func TestMaxDeliver(t *testing.T) {
	t.Parallel()
	b := newBus(t, EmbeddedOptions{Options: Options{MaxDeliver: 3}})
	subj := taskSubject(uniqueJob(t), "a")
	c := consume(t, b, subj, "a")
	publish(t, b, subj, "poison")
	for i := 1; i <= 3; i++ {
		d := next(t, c)
		if n := d.(*Delivery).NumDelivered(); n != uint64(i) {
			t.Fatalf("delivery %d reports NumDelivered %d", i, n)
		}
		if err := d.Nak(0); err != nil {
			t.Fatal(err)
		}
	}
	expectNothing(t, c, 400*time.Millisecond)
	// Undeliverable but not gone: PurgeJob is what clears it.
	if n := streamMsgs(t, b, TasksStream); n != 1 {
		t.Fatalf("stream holds %d messages after MaxDeliver, want 1", n)
	}
}

func TestTermRemoves(t *testing.T) {
	t.Parallel()
	b := newBus(t, EmbeddedOptions{})
	subj := taskSubject(uniqueJob(t), "a")
	c := consume(t, b, subj, "a")
	publish(t, b, subj, "bad")
	if err := next(t, c).(*Delivery).Term(); err != nil {
		t.Fatal(err)
	}
	expectNothing(t, c, 300*time.Millisecond)
	if n := streamMsgs(t, b, TasksStream); n != 0 {
		t.Fatalf("stream holds %d messages after Term, want 0", n)
	}
}

func TestNextHonoursCancel(t *testing.T) {
	t.Parallel()
	b := newBus(t, EmbeddedOptions{})
	subj := taskSubject(uniqueJob(t), "a")
	c := consume(t, b, subj, "a")
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	// Two callers: one blocked in the iterator, one waiting for its turn.
	for range 2 {
		go func() {
			_, err := c.Next(ctx)
			errs <- err
		}()
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	for range 2 {
		select {
		case err := <-errs:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Next after cancel: %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Next did not return after cancel")
		}
	}
	// The consumer still works after a cancelled Next.
	publish(t, b, subj, "later")
	if d := next(t, c); string(d.Data()) != "later" {
		t.Fatalf("after cancel got %q", d.Data())
	}
}

func TestConsumerCloseReleasesPrefetched(t *testing.T) {
	t.Parallel()
	b := newBus(t, EmbeddedOptions{Options: Options{Prefetch: 10}})
	subj := taskSubject(uniqueJob(t), "a")
	for i := range 5 {
		publish(t, b, subj, fmt.Sprint(i))
	}
	c1, err := b.Consume(timeoutCtx(t, 5*time.Second), subj, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := next(t, c1).Ack(); err != nil {
		t.Fatal(err)
	}
	if err := c1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := c1.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v, want ErrClosed", err)
	}
	// Well inside the 30 s AckWait: only a nak on Close explains these.
	c2 := consume(t, b, subj, "a")
	for range 4 {
		next(t, c2).Ack()
	}
}

func TestCloseUnblocksNext(t *testing.T) {
	t.Parallel()
	b := newBus(t, EmbeddedOptions{})
	c := consume(t, b, taskSubject(uniqueJob(t), "a"), "a")
	errc := make(chan error, 1)
	go func() {
		_, err := c.Next(context.Background())
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Next: %v, want ErrClosed", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Next still blocked after Close")
	}
}

func TestBroadcast(t *testing.T) {
	t.Parallel()
	b := newBus(t, EmbeddedOptions{})
	subj := fmt.Sprintf(demur.SubjectControl, uniqueJob(t))
	got := [2]chan string{make(chan string, 4), make(chan string, 4)}
	var unsub [2]func()
	for i := range got {
		u, err := b.Subscribe(subj, func(data []byte) { got[i] <- string(data) })
		if err != nil {
			t.Fatal(err)
		}
		unsub[i] = u
	}
	if err := b.Broadcast(subj, []byte("pause")); err != nil {
		t.Fatal(err)
	}
	for i, ch := range got {
		select {
		case m := <-ch:
			if m != "pause" {
				t.Fatalf("subscriber %d got %q", i, m)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("subscriber %d got nothing", i)
		}
	}
	unsub[0]()
	if err := b.Broadcast(subj, []byte("resume")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got[1]:
		if m != "resume" {
			t.Fatalf("subscriber 1 got %q", m)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("subscriber 1 got nothing")
	}
	select {
	case m := <-got[0]:
		t.Fatalf("unsubscribed subscriber got %q", m)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestPurgeJob(t *testing.T) {
	t.Parallel()
	purgeJob(t, newBus(t, EmbeddedOptions{}))
}

func purgeJob(t *testing.T, b *Bus) {
	job, other := uniqueJob(t), uniqueJob(t)
	publish(t, b, taskSubject(job, "a"), "a")
	publish(t, b, taskSubject(job, "b"), "b")
	publish(t, b, fmt.Sprintf(demur.SubjectResult, job), "r")
	publish(t, b, taskSubject(other, "a"), "keep")
	if err := b.PurgeJob(timeoutCtx(t, 5*time.Second), job); err != nil {
		t.Fatal(err)
	}
	expectNothing(t, consume(t, b, taskSubject(job, "a"), "a"), 200*time.Millisecond)
	expectNothing(t, consume(t, b, taskSubject(job, "b"), "b"), 100*time.Millisecond)
	expectNothing(t, consume(t, b, fmt.Sprintf(demur.SubjectResult, job), "c"), 100*time.Millisecond)
	oc := consume(t, b, taskSubject(other, "a"), "a")
	if d := next(t, oc); string(d.Data()) != "keep" {
		t.Fatalf("other job got %q", d.Data())
	}
	if err := b.PurgeJob(timeoutCtx(t, 5*time.Second), other); err != nil {
		t.Fatal(err)
	}
	if err := b.PurgeJob(context.Background(), "bad.job"); err == nil {
		t.Fatal("PurgeJob accepted a job name with a dot")
	}
}

func TestBadSubjectsAndNames(t *testing.T) {
	t.Parallel()
	b := newBus(t, EmbeddedOptions{})
	ctx := timeoutCtx(t, 5*time.Second)
	if _, err := b.Consume(ctx, "demur.control.x", "a"); err == nil {
		t.Error("Consume on a control subject succeeded")
	}
	if _, err := b.Consume(ctx, taskSubject("j", "a"), "a.b"); err == nil {
		t.Error("Consume with a dotted durable succeeded")
	}
	if err := b.Publish(ctx, "demur.control.x", []byte("x")); err == nil {
		t.Error("Publish outside the streams succeeded")
	}
}

func TestLargePayload(t *testing.T) {
	t.Parallel()
	b := newBus(t, EmbeddedOptions{})
	subj := taskSubject(uniqueJob(t), "a")
	c := consume(t, b, subj, "a")
	big := make([]byte, 6<<20)
	big[len(big)-1] = 7
	if err := b.Publish(timeoutCtx(t, 10*time.Second), subj, big); err != nil {
		t.Fatalf("Publish 6 MB: %v", err)
	}
	if d := next(t, c); len(d.Data()) != len(big) || d.Data()[len(big)-1] != 7 {
		t.Fatalf("got %d bytes", len(d.Data()))
	}
}

func TestListenAndConnect(t *testing.T) {
	t.Parallel()
	b := newBus(t, EmbeddedOptions{Listen: "127.0.0.1:0"})
	url := b.ClientURL()
	if url == "" {
		t.Fatal("ClientURL empty with Listen set")
	}
	if u := newBus(t, EmbeddedOptions{}).ClientURL(); u != "" {
		t.Fatalf("ClientURL without Listen = %q", u)
	}
	// The streams exist with memory storage; Connect asks for file storage
	// and must accept them as they are.
	remote, err := Connect(timeoutCtx(t, 5*time.Second), url, ConnectOptions{Name: "test"})
	if err != nil {
		t.Fatalf("Connect %s: %v", url, err)
	}
	defer remote.Close()
	subj := taskSubject(uniqueJob(t), "a")
	c := consume(t, remote, subj, "a")
	publish(t, b, subj, "across")
	if d := next(t, c); string(d.Data()) != "across" {
		t.Fatalf("got %q", d.Data())
	} else if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
}

func TestFileStorage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	subj := taskSubject(uniqueJob(t), "a")
	b := newBus(t, EmbeddedOptions{StoreDir: dir})
	publish(t, b, subj, "kept")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// A restarted embedded bus on the same directory still has the task.
	b2 := newBus(t, EmbeddedOptions{StoreDir: dir})
	if d := next(t, consume(t, b2, subj, "a")); string(d.Data()) != "kept" {
		t.Fatalf("got %q", d.Data())
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"nats://u:p@h:4222":            "nats://***@h:4222",
		"nats://h:4222,tls://tok@h2:1": "nats://h:4222,tls://***@h2:1",
		"h:4222":                       "h:4222",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCloseLeavesNoGoroutines is not parallel: it counts the process's
// goroutines.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx := timeoutCtx(t, 10*time.Second)
	b, err := Embedded(ctx, EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	subj := taskSubject(uniqueJob(t), "a")
	c, err := b.Consume(ctx, subj, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, subj, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if d, err := c.Next(ctx); err != nil {
		t.Fatal(err)
	} else if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	// Left open on purpose: Bus.Close must stop it, and its blocked Next.
	c2, err := b.Consume(ctx, taskSubject(uniqueJob(t), "b"), "b")
	if err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, err := c2.Next(context.Background())
		blocked <- err
	}()
	// Left subscribed too: Close must clean the subscription up.
	if _, err := b.Subscribe("demur.control.x", func([]byte) {}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-blocked; !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Next: %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s",
				runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
