package demur

import (
	"context"
	"time"
)

// Subjects used on the bus. %s parts are job and agent IDs.
const (
	// SubjectTask is where a task for one agent is queued (durable, work queue).
	SubjectTask = "demur.task.%s.%s"
	// SubjectResult is where agents publish results for a job (durable).
	SubjectResult = "demur.result.%s"
	// SubjectControl is a job's broadcast subject for overrides and pauses.
	SubjectControl = "demur.control.%s"
)

// Bus is the message-passing system between the coordinator and agents.
// Publish and Consume are durable (at-least-once, explicit ack); Subscribe
// is a broadcast without durability.
type Bus interface {
	// Publish stores data on a durable subject and returns once stored.
	Publish(ctx context.Context, subject string, data []byte) error
	// Consume opens a durable pull consumer named durable on subject.
	Consume(ctx context.Context, subject, durable string) (Consumer, error)
	// Subscribe calls fn for every message broadcast on subject until the
	// returned function is called.
	Subscribe(subject string, fn func(data []byte)) (unsubscribe func(), err error)
	// Broadcast sends data to current subscribers of subject.
	Broadcast(subject string, data []byte) error
	Close() error
}

// Consumer yields durable messages one at a time.
type Consumer interface {
	// Next blocks until a message arrives or ctx ends.
	Next(ctx context.Context) (Delivery, error)
	Close() error
}

// Delivery is one durable message; it is redelivered until acked.
type Delivery interface {
	Subject() string
	Data() []byte
	Ack() error
	// Nak asks for redelivery after delay.
	Nak(delay time.Duration) error
	// InProgress extends the ack deadline for long work.
	InProgress() error
}
