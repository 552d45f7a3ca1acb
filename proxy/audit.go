package proxy

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/demurhq/demur"
)

// auditor writes the proxy's records through one goroutine, in the order
// they were queued. Observe mode queues and moves on: the response it
// passes unchanged is not an action the record must precede. Enforce mode
// queues and waits for durability before it acts on a decision. The queue
// is bounded and never drops: when the store falls behind, handlers block
// on the queue (back-pressure) rather than lose records.
type auditor struct {
	st   demur.Store
	q    chan *batch
	done chan struct{}

	mu  sync.Mutex
	err error // first write error, reported by Close

	// maxDepth is the deepest the queue has been: at the bound, handlers
	// were waiting on the store.
	maxDepth atomic.Int64
}

// batch is one exchange's blobs and records.
type batch struct {
	blobs [][]byte
	recs  []*demur.Record
	ack   chan error // nil: nobody waits
}

func newAuditor(st demur.Store, size int) *auditor {
	a := &auditor{st: st, q: make(chan *batch, size), done: make(chan struct{})}
	go a.run()
	return a
}

// maxGroup bounds how many queued exchanges one store write carries;
// linger is how long the writer waits for more when nobody is waiting on
// the write. Every store write is a commit, and commits are most of what
// the audit log costs: at 1,000 exchanges/s, lingering 20 ms makes one
// commit of ~20 exchanges where there were one or two per exchange, and
// that CPU is what the proxy's requests compete with (measured: ~40 µs of
// CPU per exchange less than lingering 5 ms). Observe mode's records are
// off the response path, so the wait costs no request anything; a batch
// someone waits on (enforce mode) is written at once.
const (
	maxGroup = 256
	linger   = 20 * time.Millisecond
)

func (a *auditor) run() {
	defer close(a.done)
	group := make([]*batch, 0, maxGroup)
	timer := time.NewTimer(linger)
	timer.Stop()
	for b := range a.q {
		group = append(group[:0], b)
		waited := b.ack != nil
		if !waited {
			timer.Reset(linger)
		}
	collect:
		for len(group) < maxGroup && !waited {
			select {
			case nb, ok := <-a.q:
				if !ok {
					break collect
				}
				group = append(group, nb)
				waited = nb.ack != nil
			case <-timer.C:
				break collect
			}
		}
		timer.Stop()
		// Whatever else is already queued rides along.
	drain:
		for len(group) < maxGroup {
			select {
			case nb, ok := <-a.q:
				if !ok {
					break drain
				}
				group = append(group, nb)
			default:
				break drain
			}
		}
		err := a.write(group)
		if err != nil {
			a.mu.Lock()
			if a.err == nil {
				a.err = err
			}
			a.mu.Unlock()
		}
		for _, b := range group {
			if b.ack != nil {
				b.ack <- err
			}
		}
	}
}

// write stores a group's blobs and records in one store call, one commit
// where the store can: a record never reaches the log before the blob it
// names.
func (a *auditor) write(group []*batch) error {
	var blobs [][]byte
	var recs []*demur.Record
	for _, b := range group {
		blobs = append(blobs, b.blobs...)
		recs = append(recs, b.recs...)
	}
	if err := demur.AppendWithBlobs(context.Background(), a.st, blobs, recs...); err != nil {
		return fmt.Errorf("audit: append: %w", err)
	}
	return nil
}

// add queues b; with wait it returns once b is durable.
func (a *auditor) add(ctx context.Context, b *batch, wait bool) error {
	if wait {
		b.ack = make(chan error, 1)
	}
	select {
	case a.q <- b:
	case <-ctx.Done():
		return fmt.Errorf("audit: queue: %w", ctx.Err())
	}
	if d := int64(len(a.q)); d > a.maxDepth.Load() {
		a.maxDepth.Store(d) // racy max, good enough for a gauge
	}
	if !wait {
		return nil
	}
	select {
	case err := <-b.ack:
		return err
	case <-ctx.Done():
		return fmt.Errorf("audit: wait: %w", ctx.Err())
	}
}

// close drains the queue and returns the first write error.
func (a *auditor) close() error {
	close(a.q)
	<-a.done
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}
