package natsbus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/demurhq/demur"
)

var (
	_ demur.DirectBus = (*Bus)(nil)
	_ demur.Consumer  = (*Listener)(nil)
	_ demur.Delivery  = (*directDelivery)(nil)
)

// directAck is a Listener delivery's answer to its Send.
var directAck = []byte("+OK")

// directQueue is the queue group of Listeners: processes listening on one
// subject share its messages instead of each getting every one.
const directQueue = "demur"

// listenPendingBytes bounds what a Listener buffers before the server
// drops messages for it (a dropped message is sent again by its sender).
// Senders wait for their answer, so the buffer holds about one message per
// sender; the bound is only a backstop.
const listenPendingBytes = 256 << 20

// Send hands data to one Listener on subject, over core NATS request/reply,
// and returns once the Listener has acked it. Nothing is stored: it fails
// at once when nobody listens (nats.ErrNoResponders), or with a timeout when
// no ack comes within ctx's deadline (RequestTimeout without one). subject
// must not be a durable subject: JetStream would store the message and
// answer in the Listener's place.
func (b *Bus) Send(ctx context.Context, subject string, data []byte) error {
	if _, err := streamFor(subject); err == nil {
		return fmt.Errorf("natsbus: send: %s is a durable subject", subject)
	}
	if b.isClosed() {
		return ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.opts.RequestTimeout)
		defer cancel()
	}
	reply, err := b.nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		return fmt.Errorf("natsbus: send %s: %w", subject, err)
	}
	if !bytes.Equal(reply.Data, directAck) {
		return fmt.Errorf("natsbus: send %s: unexpected answer %.80q", subject, reply.Data)
	}
	return nil
}

// Listen subscribes to what Send hands over on subject. It is not durable:
// a message that arrives while nobody listens is not kept (its Send fails
// and is repeated by the sender).
func (b *Bus) Listen(subject string) (demur.Consumer, error) {
	if _, err := streamFor(subject); err == nil {
		return nil, fmt.Errorf("natsbus: listen: %s is a durable subject", subject)
	}
	if b.isClosed() {
		return nil, ErrClosed
	}
	sub, err := b.nc.QueueSubscribeSync(subject, directQueue)
	if err != nil {
		return nil, fmt.Errorf("natsbus: listen %s: %w", subject, err)
	}
	if err := sub.SetPendingLimits(-1, listenPendingBytes); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("natsbus: listen %s: %w", subject, err)
	}
	return &Listener{sub: sub, subject: subject}, nil
}

// Listener is a demur.Consumer of messages handed over with Send. Acking a
// delivery answers its sender.
type Listener struct {
	sub       *nats.Subscription
	subject   string
	closeOnce sync.Once
	closeErr  error
}

// Next blocks until a message arrives, ctx ends (returning ctx.Err()) or
// the Listener or its bus is closed (an error wrapping ErrClosed).
func (l *Listener) Next(ctx context.Context) (demur.Delivery, error) {
	m, err := l.sub.NextMsgWithContext(ctx)
	switch {
	case err == nil:
		return &directDelivery{msg: m}, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, nats.ErrBadSubscription), errors.Is(err, nats.ErrConnectionClosed):
		return nil, fmt.Errorf("natsbus: next on %s: %w (%w)", l.subject, ErrClosed, err)
	default:
		return nil, fmt.Errorf("natsbus: next on %s: %w", l.subject, err)
	}
}

// Close unsubscribes. Messages received but not yet handed out by Next go
// unanswered, so their senders send them again.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		err := l.sub.Unsubscribe()
		if err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			l.closeErr = fmt.Errorf("natsbus: close listener on %s: %w", l.subject, err)
		}
	})
	return l.closeErr
}

// directDelivery is one message from Send.
type directDelivery struct{ msg *nats.Msg }

func (d *directDelivery) Subject() string { return d.msg.Subject }

func (d *directDelivery) Data() []byte { return d.msg.Data }

// Ack answers the sender: its Send returns. Like Delivery.Ack it does not
// wait; an answer lost on the way makes the sender send again.
func (d *directDelivery) Ack() error {
	if err := d.msg.Respond(directAck); err != nil {
		return fmt.Errorf("natsbus: ack %s: %w", d.msg.Subject, err)
	}
	return nil
}

// Nak leaves the sender unanswered, so it sends the message again once its
// Send times out; the delay is the sender's.
func (d *directDelivery) Nak(time.Duration) error { return nil }

// InProgress does nothing: a sender waits for its answer until its own
// deadline.
func (d *directDelivery) InProgress() error { return nil }
