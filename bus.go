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
	// SubjectTurn is where agents hand results to a job's coordinator on a
	// DirectBus: not stored, answered once recorded.
	SubjectTurn = "demur.turn.%s"
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

// BusMessage is one message of a batch for a BatchPublisher.
type BusMessage struct {
	Subject string
	Data    []byte
}

// BatchPublisher is a Bus that stores several messages at the cost of one
// wait: it sends them all, then waits for the server to acknowledge each.
// Publish waits once per message, which on a networked bus is a round trip
// each.
type BatchPublisher interface {
	// PublishBatch stores msgs on durable subjects and returns once all are
	// stored. After an error some of them may be stored, so publishing the
	// batch again may store those twice.
	PublishBatch(ctx context.Context, msgs []BusMessage) error
}

// DirectBus is a Bus that can also hand a message straight to a consumer
// that is listening, without storing it: Send returns once that consumer
// has acked the message, so an ack can mean "recorded", not merely
// "received". A message nobody acks is simply gone, and the sender sends it
// again; receivers must drop what they have seen.
type DirectBus interface {
	// Send hands data to one consumer listening on subject (Listen) and
	// returns once it has acked it; it fails if there is none, or if no
	// ack comes before ctx ends.
	Send(ctx context.Context, subject string, data []byte) error
	// HandOff hands data to one consumer listening on subject together
	// with the duty to ack d, a durable delivery from this bus: acking the
	// handed-over message acks d. It returns once data is sent, without
	// waiting for anyone. A message lost on the way, or sent while nobody
	// listens, leaves d unacked, so the sender still holds it and sends
	// again; receivers must drop what they have seen.
	HandOff(ctx context.Context, subject string, data []byte, d Delivery) error
	// Listen receives what Send and HandOff hand over on subject. Acking
	// a delivery answers its Send, or acks the delivery handed off with
	// it; processes listening on one subject share the messages.
	Listen(subject string) (Consumer, error)
}
