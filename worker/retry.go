package worker

import (
	"context"
	"errors"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/natsbus"
)

// RetryWindow is how long Retrying keeps trying a publish or an ack: long
// enough for a NATS cluster to elect new leaders after losing a node.
const RetryWindow = 30 * time.Second

// Retrying wraps a bus so that Publish, PublishBatch and deliveries' Ack
// ride out a server fail-over instead of failing the job: they are retried
// with backoff for up to RetryWindow while ctx lasts. A retried publish may
// store a message twice and a retried ack may follow one the server did
// get; demur tolerates both, since results and tasks are keyed by
// task/attempt and the coordinator drops what it has seen.
//
// A DirectBus stays one: Send, HandOff and Listen pass through unretried,
// since their callers send again anyway.
func Retrying(b demur.Bus) demur.Bus {
	if d, ok := b.(demur.DirectBus); ok {
		return retryDirectBus{retryBus{b}, d}
	}
	return retryBus{b}
}

type retryBus struct{ demur.Bus }

type retryDirectBus struct {
	retryBus
	direct demur.DirectBus
}

func (r retryDirectBus) Send(ctx context.Context, subject string, data []byte) error {
	return r.direct.Send(ctx, subject, data)
}

func (r retryDirectBus) HandOff(ctx context.Context, subject string, data []byte, d demur.Delivery) error {
	return r.direct.HandOff(ctx, subject, data, d)
}

func (r retryDirectBus) Listen(subject string) (demur.Consumer, error) {
	return r.direct.Listen(subject)
}

func (r retryBus) Publish(ctx context.Context, subject string, data []byte) error {
	return retry(ctx, func() error { return r.Bus.Publish(ctx, subject, data) })
}

// PublishBatch sends the batch in one go when the bus can, and retries it
// whole: a retried batch may store some messages twice, like a retried
// Publish.
func (r retryBus) PublishBatch(ctx context.Context, msgs []demur.BusMessage) error {
	bp, ok := r.Bus.(demur.BatchPublisher)
	if !ok {
		for _, m := range msgs {
			if err := r.Publish(ctx, m.Subject, m.Data); err != nil {
				return err
			}
		}
		return nil
	}
	return retry(ctx, func() error { return bp.PublishBatch(ctx, msgs) })
}

func (r retryBus) Consume(ctx context.Context, subject, durable string) (demur.Consumer, error) {
	var c demur.Consumer
	err := retry(ctx, func() error {
		var err error
		c, err = r.Bus.Consume(ctx, subject, durable)
		return err
	})
	if err != nil {
		return nil, err
	}
	return retryConsumer{c}, nil
}

type retryConsumer struct{ demur.Consumer }

func (r retryConsumer) Next(ctx context.Context) (demur.Delivery, error) {
	d, err := r.Consumer.Next(ctx)
	if err != nil {
		return nil, err
	}
	return retryDelivery{d}, nil
}

type retryDelivery struct{ demur.Delivery }

func (r retryDelivery) Ack() error {
	return retry(context.Background(), r.Delivery.Ack)
}

// Unwrap returns the bus's own delivery, which DirectBus.HandOff needs.
func (r retryDelivery) Unwrap() demur.Delivery { return r.Delivery }

// retry runs f until it succeeds, ctx ends or RetryWindow passes. Errors
// that say the bus is closed are final.
func retry(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(RetryWindow)
	wait := 100 * time.Millisecond
	for {
		err := f()
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) || errors.Is(err, natsbus.ErrClosed) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}
