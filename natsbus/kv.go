package natsbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Key-value buckets of distributed mode (docs/distributed.md).
const (
	// JobsBucket holds one entry per running job, key JOB: what a worker
	// needs to host the job's agents. The coordinator writes it; no TTL.
	JobsBucket = "DEMUR_JOBS"
	// LeasesBucket holds leases, key JOB.AGENT for an agent and
	// JOB._coordinator for the coordinator. Entries expire LeaseTTL after
	// their last write, so a dead holder's lease lapses on its own.
	LeasesBucket = "DEMUR_AGENTS"
	// WorkersBucket holds one heartbeat per live worker process, key the
	// worker's name, expiring like leases.
	WorkersBucket = "DEMUR_WORKERS"
	// LeaseTTL is how long a lease outlives its holder's last renewal.
	LeaseTTL = 10 * time.Second
)

// KeyValue opens bucket, creating it if it does not exist: JobsBucket
// keeps entries forever, LeasesBucket and WorkersBucket for LeaseTTL after
// their last write. Storage and replicas follow the bus's streams.
func (b *Bus) KeyValue(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	if b.isClosed() {
		return nil, ErrClosed
	}
	cfg := jetstream.KeyValueConfig{Bucket: bucket, Storage: jetstream.FileStorage, Replicas: b.opts.Replicas}
	if b.tmpDir != "" {
		// An embedded bus without a StoreDir keeps everything in memory.
		cfg.Storage = jetstream.MemoryStorage
	}
	switch bucket {
	case JobsBucket:
		cfg.Description = "demur jobs that workers may serve"
	case LeasesBucket:
		cfg.Description = "demur agent and coordinator leases"
		cfg.TTL = LeaseTTL
	case WorkersBucket:
		cfg.Description = "demur worker heartbeats"
		cfg.TTL = LeaseTTL
	default:
		return nil, fmt.Errorf("natsbus: unknown bucket %q", bucket)
	}
	var kv jetstream.KeyValue
	err := retryTransient(ctx, func(ctx context.Context) error {
		var err error
		kv, err = b.js.KeyValue(ctx, bucket)
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			return err
		}
		kv, err = b.js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			// Another process created it between our lookup and create.
			kv, err = b.js.KeyValue(ctx, bucket)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("natsbus: bucket %s: %w", bucket, err)
	}
	return kv, nil
}

// ConsumerInfo describes the durable consumer that [Bus.Consume] opens for
// subject and durable, or returns an error wrapping
// jetstream.ErrConsumerNotFound.
func (b *Bus) ConsumerInfo(ctx context.Context, subject, durable string) (*jetstream.ConsumerInfo, error) {
	stream, err := streamFor(subject)
	if err != nil {
		return nil, err
	}
	c, err := b.js.Consumer(ctx, stream, consumerName(durable, subject))
	if err != nil {
		return nil, fmt.Errorf("natsbus: consumer info %s: %w", subject, err)
	}
	return c.CachedInfo(), nil
}

// Pending counts the messages stored for subject (which may use
// wildcards), delivered or not.
func (b *Bus) Pending(ctx context.Context, subject string) (uint64, error) {
	stream, err := streamFor(subject)
	if err != nil {
		return 0, err
	}
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("natsbus: pending %s: %w", subject, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, fmt.Errorf("natsbus: pending %s: %w", subject, err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}

// Conn is the bus's NATS connection, for callers that need to inspect it
// (TLS state, server info). Closing it closes the bus's traffic.
func (b *Bus) Conn() *nats.Conn { return b.nc }
