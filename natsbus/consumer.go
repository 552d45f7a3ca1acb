package natsbus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/demurhq/demur"
)

var (
	_ demur.Consumer = (*Consumer)(nil)
	_ demur.Delivery = (*Delivery)(nil)
)

// pullExpiry bounds each pull request; the server's idle heartbeats come
// every half of it, and two missed ones make the iterator pull again. A
// pull request lost with a cluster node (the consumer's leader, say) is
// thus replaced within ~5 s rather than the library's default 30 s.
const pullExpiry = 5 * time.Second

// recheckInterval is how long Next can stall on the iterator's pull-request
// race (see Next).
const recheckInterval = 20 * time.Millisecond

// Consumer is a demur.Consumer over a JetStream durable pull consumer. Next
// may be called from several goroutines; they take turns.
type Consumer struct {
	bus     *Bus
	subject string
	iter    jetstream.MessagesContext
	// turn serialises Next. It is a channel rather than a mutex so that a
	// caller waiting for its turn still returns as soon as its ctx ends: the
	// iterator holds its own lock for the whole of a blocking Next.
	turn      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

func newConsumer(b *Bus, jc jetstream.Consumer, subject string) (*Consumer, error) {
	iter, err := jc.Messages(jetstream.PullMaxMessages(b.opts.Prefetch), jetstream.PullExpiry(pullExpiry))
	if err != nil {
		return nil, fmt.Errorf("natsbus: consume %s: %w", subject, err)
	}
	return &Consumer{bus: b, subject: subject, iter: iter, turn: make(chan struct{}, 1)}, nil
}

// Next blocks until a message arrives, ctx ends (returning ctx.Err()) or the
// consumer is closed (returning an error wrapping ErrClosed). A Next ended
// by ctx may leave its pull request open; a message it brings waits for the
// following Next, or is nak'ed by Close, with its AckWait running.
func (c *Consumer) Next(ctx context.Context) (demur.Delivery, error) {
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.turn }()
	// The iterator decides whether to send a new pull request when its Next
	// starts (and when a message arrives), and skips it while its previous
	// request is still being sent. On a fast (in-process) server the reply
	// to that previous request can beat the bookkeeping, and Next would wait
	// for the missed-heartbeat timer (see pullExpiry). Only that first check can hit the
	// race, so one early wake-up re-checks; after it, Next waits with ctx
	// alone so the iterator's heartbeat monitoring stays in force.
	recheck := true
	for {
		wctx, cancel := ctx, context.CancelFunc(func() {})
		if recheck {
			wctx, cancel = context.WithTimeout(ctx, recheckInterval)
			recheck = false
		}
		m, err := c.iter.Next(jetstream.NextContext(wctx))
		cancel()
		switch {
		case err == nil:
			return &Delivery{msg: m, timeout: c.bus.opts.RequestTimeout}, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			continue
		case errors.Is(err, jetstream.ErrNoHeartbeat):
			// The iterator has already reset its pull request (server
			// restart, reconnect, slow network); keep waiting.
			continue
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return nil, fmt.Errorf("natsbus: next on %s: %w (%w)", c.subject, ErrClosed, err)
		default:
			return nil, fmt.Errorf("natsbus: next on %s: %w", c.subject, err)
		}
	}
}

// Close stops fetching. Messages already fetched but not yet handed out by
// Next are nak'ed so another consumer gets them now rather than after
// AckWait. The durable consumer itself stays on the server.
func (c *Consumer) Close() error {
	c.closeOnce.Do(func() {
		c.bus.forget(c)
		c.iter.Drain()
		// Drain makes a blocked Next return once the buffer is empty, so the
		// turn is ours shortly.
		c.turn <- struct{}{}
		defer func() { <-c.turn }()
		for {
			m, err := c.iter.Next(jetstream.NextMaxWait(c.bus.opts.RequestTimeout))
			if err != nil {
				if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					c.closeErr = fmt.Errorf("natsbus: close consumer on %s: %w", c.subject, err)
				}
				return
			}
			if err := m.Nak(); err != nil {
				c.closeErr = errors.Join(c.closeErr, fmt.Errorf("natsbus: close consumer on %s: nak: %w", c.subject, err))
			}
		}
	})
	return c.closeErr
}

// stop closes a consumer that was never handed out.
func (c *Consumer) stop() { c.iter.Stop() }

// Delivery is one durable message; see demur.Delivery.
type Delivery struct {
	msg     jetstream.Msg
	timeout time.Duration
}

// Subject is the subject the message was published on.
func (d *Delivery) Subject() string { return d.msg.Subject() }

// Data is the message payload.
func (d *Delivery) Data() []byte { return d.msg.Data() }

// Ack removes the message from its work queue. It does not wait for the
// server: an ack lost on the way (a connection that drops at that moment)
// only means the message comes back after AckWait, which demur's consumers
// tolerate (agents and the coordinator drop a task/attempt they have
// seen). Waiting would cost a round trip per message, on every task and
// every result. AckSync waits.
func (d *Delivery) Ack() error {
	if err := d.msg.Ack(); err != nil {
		return fmt.Errorf("natsbus: ack %s: %w", d.msg.Subject(), err)
	}
	return nil
}

// AckSync is Ack that waits for the server to confirm, so a successful
// AckSync means the message will not come back.
func (d *Delivery) AckSync() error {
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	if err := d.msg.DoubleAck(ctx); err != nil {
		return fmt.Errorf("natsbus: ack %s: %w", d.msg.Subject(), err)
	}
	return nil
}

// Nak asks for redelivery after delay (at once if delay <= 0). Each
// redelivery counts towards MaxDeliver.
func (d *Delivery) Nak(delay time.Duration) error {
	var err error
	if delay > 0 {
		err = d.msg.NakWithDelay(delay)
	} else {
		err = d.msg.Nak()
	}
	if err != nil {
		return fmt.Errorf("natsbus: nak %s: %w", d.msg.Subject(), err)
	}
	return nil
}

// InProgress restarts the AckWait clock for long work.
func (d *Delivery) InProgress() error {
	if err := d.msg.InProgress(); err != nil {
		return fmt.Errorf("natsbus: in progress %s: %w", d.msg.Subject(), err)
	}
	return nil
}

// Term stops redelivery without processing, for a message that can never
// succeed. In a work-queue stream the message is then removed.
func (d *Delivery) Term() error {
	if err := d.msg.Term(); err != nil {
		return fmt.Errorf("natsbus: term %s: %w", d.msg.Subject(), err)
	}
	return nil
}

// NumDelivered is how many times this message has been delivered, this
// delivery included, so a handler can tell its last attempt (MaxDeliver).
// It is 0 if the message metadata cannot be read.
func (d *Delivery) NumDelivered() uint64 {
	md, err := d.msg.Metadata()
	if err != nil {
		return 0
	}
	return md.NumDelivered
}
