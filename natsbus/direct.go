package natsbus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
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

// handOffHeader carries, on a message from HandOff, the JetStream ack
// subject of the delivery handed off with it.
const handOffHeader = "Demur-Ack"

// HandOff hands data to one Listener on subject with the duty to ack d, a
// delivery from a Consume of this bus (or a wrapper of one with an Unwrap
// method returning it): the Listener's Ack of the message acks d. It is a
// plain core NATS publish and returns once data is on its way; nothing
// answers, and a message sent while nobody listens is dropped by the
// server, so the sender keeps d in progress and sends again until d is
// acked. One message per result, where Send costs three (the request, its
// answer and the sender's ack of d).
func (b *Bus) HandOff(ctx context.Context, subject string, data []byte, d demur.Delivery) error {
	if _, err := streamFor(subject); err == nil {
		return fmt.Errorf("natsbus: hand off: %s is a durable subject", subject)
	}
	if b.isClosed() {
		return ErrClosed
	}
	ack, err := ackSubject(d)
	if err != nil {
		return fmt.Errorf("natsbus: hand off on %s: %w", subject, err)
	}
	m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{handOffHeader: []string{ack}}}
	if err := b.nc.PublishMsg(m); err != nil {
		return fmt.Errorf("natsbus: hand off on %s: %w", subject, err)
	}
	return nil
}

// ackSubject is the JetStream ack subject of d, unwrapping wrappers.
func ackSubject(d demur.Delivery) (string, error) {
	for {
		switch v := d.(type) {
		case *Delivery:
			if err := checkTaskAck(v.msg.Reply()); err != nil {
				return "", err
			}
			return v.msg.Reply(), nil
		case interface{ Unwrap() demur.Delivery }:
			d = v.Unwrap()
		default:
			return "", fmt.Errorf("a %T is not a delivery of a natsbus consumer", d)
		}
	}
}

// checkTaskAck makes sure ack is the ack subject of a DEMUR_TASKS message:
// a listener publishes to whatever a handed-off message names, so it must
// name nothing else. Both forms JetStream uses are accepted:
// $JS.ACK.stream.consumer.delivered.sseq.dseq.ts.pending, and the one with
// domain and account hash tokens after ACK (11 tokens or more, as nats.go
// accepts: the last of the 12 is optional).
func checkTaskAck(ack string) error {
	t := strings.Split(ack, ".")
	ok := len(t) >= 9 && t[0] == "$JS" && t[1] == "ACK"
	switch {
	case ok && len(t) == 9:
		ok = t[2] == TasksStream
	case ok && len(t) >= 11:
		ok = t[4] == TasksStream
	default:
		ok = false
	}
	if !ok {
		return fmt.Errorf("%w: %.200q", ErrNotTaskAck, ack)
	}
	return nil
}

// ErrNotTaskAck is returned by HandOff, and by a Listener delivery's Ack,
// for an ack subject that does not ack a message of the tasks stream.
var ErrNotTaskAck = errors.New("natsbus: not the ack subject of a " + TasksStream + " message")

// Listen subscribes to what Send and HandOff hand over on subject. It is not durable:
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
	return &Listener{nc: b.nc, sub: sub, subject: subject}, nil
}

// Listener is a demur.Consumer of messages handed over with Send or
// HandOff. Acking a delivery answers its sender, or acks the delivery
// handed off with it.
type Listener struct {
	nc        *nats.Conn
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
		return &directDelivery{nc: l.nc, msg: m}, nil
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

// directDelivery is one message from Send or HandOff.
type directDelivery struct {
	nc  *nats.Conn
	msg *nats.Msg
}

func (d *directDelivery) Subject() string { return d.msg.Subject }

func (d *directDelivery) Data() []byte { return d.msg.Data }

// Ack answers the sender, so its Send returns, or acks the delivery handed
// off with the message. Like Delivery.Ack it does not wait; an answer or
// an ack lost on the way makes the sender send again.
func (d *directDelivery) Ack() error {
	if ack := d.msg.Header.Get(handOffHeader); ack != "" {
		if err := checkTaskAck(ack); err != nil {
			return fmt.Errorf("natsbus: ack %s: %w", d.msg.Subject, err)
		}
		if err := d.nc.Publish(ack, jsAck); err != nil {
			return fmt.Errorf("natsbus: ack %s: %w", d.msg.Subject, err)
		}
		return nil
	}
	if err := d.msg.Respond(directAck); err != nil {
		return fmt.Errorf("natsbus: ack %s: %w", d.msg.Subject, err)
	}
	return nil
}

// jsAck is JetStream's ack body.
var jsAck = []byte("+ACK")

// Nak leaves the sender unanswered (or the handed-off delivery unacked),
// so it sends the message again; the delay is the sender's.
func (d *directDelivery) Nak(time.Duration) error { return nil }

// InProgress does nothing: a sender waits for its answer until its own
// deadline.
func (d *directDelivery) InProgress() error { return nil }
