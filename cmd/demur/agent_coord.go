package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/coord"
	"github.com/demurhq/demur/natsbus"
	"github.com/demurhq/demur/worker"
)

// distCoordinator is the coordinator's side of distributed mode (`demur
// run --nats`): it holds the job's coordinator lease, clears the bus of the
// previous coordinator's messages, and announces the job to workers.
type distCoordinator struct {
	bus    *natsbus.Bus
	job    string
	jobs   jetstream.KeyValue
	lease  *worker.Held
	stderr io.Writer
	// ctx ends when the lease is lost: another coordinator may be running
	// the job then, and this one must stop writing to its log.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	ann     worker.Announcement
	lostErr error
}

// coordinatorPrefetch is how many results the coordinator fetches at once.
const coordinatorPrefetch = 128

// coordinatorLeaseWait bounds how long a starting coordinator waits for the
// previous one's lease: a killed coordinator's lapses after LeaseTTL.
const coordinatorLeaseWait = 3 * natsbus.LeaseTTL

// startDistributed joins the NATS server, takes job's coordinator lease,
// purges what an earlier coordinator left queued, and announces the job.
func startDistributed(ctx context.Context, nf *natsFlags, p *plannedJob, store demur.Store, stderr io.Writer) (*distCoordinator, error) {
	jobID := p.spec.JobID()
	host, _ := os.Hostname()
	holder := fmt.Sprintf("coordinator-%s-%d", host, os.Getpid())
	// The coordinator consumes only results, and handles each in far less
	// than AckWait: fetching them in batches saves a pull request (a round
	// trip, and server work) per result, which is most of the bus's cost.
	nf.prefetch = coordinatorPrefetch
	bus, err := nf.connect(ctx, "demur-run "+jobID)
	if err != nil {
		return nil, err
	}
	d := &distCoordinator{bus: bus, job: jobID, stderr: stderr}
	fail := func(err error) (*distCoordinator, error) {
		bus.Close()
		return nil, err
	}
	leases, err := bus.KeyValue(ctx, natsbus.LeasesBucket)
	if err != nil {
		return fail(err)
	}
	if d.jobs, err = bus.KeyValue(ctx, natsbus.JobsBucket); err != nil {
		return fail(err)
	}
	d.lease, err = worker.AcquireCoordinator(ctx, leases, jobID, holder, coordinatorLeaseWait, func(err error) {
		fmt.Fprintf(stderr, "demur: waiting for the coordinator lease of job %s: %v\n", jobID, err)
	})
	if err != nil {
		return fail(fmt.Errorf("coordinator lease of job %s: %w", jobID, err))
	}
	d.ctx, d.cancel = context.WithCancel(ctx)
	go worker.KeepRenewed(d.ctx, d.lease, func(err error) {
		d.mu.Lock()
		d.lostErr = err
		d.mu.Unlock()
		d.cancel()
	})
	// Whatever is still queued for the job was sent by a coordinator that
	// is gone; replay re-dispatches unanswered tasks under new attempt
	// numbers and ignores late answers to the old ones.
	if err := bus.PurgeJob(ctx, jobID); err != nil {
		d.close()
		return nil, fmt.Errorf("purge job %s on the bus: %w", jobID, err)
	}
	retired, err := retiredAgents(ctx, store, jobID)
	if err != nil {
		d.close()
		return nil, err
	}
	d.ann = worker.Announcement{Job: jobID, Spec: p.specData, Seed: p.spec.Seed, Agents: p.agents,
		Groups: p.groups, Retired: retired, Coordinator: holder, DirectResults: true, HandOffResults: true}
	for _, g := range p.groups {
		d.ann.Profiles = append(d.ann.Profiles, p.spec.Agents[g].Profile)
	}
	if err := worker.Announce(ctx, d.jobs, &d.ann); err != nil {
		d.close()
		return nil, err
	}
	fmt.Fprintf(stderr, "demur: job %s announced on %s; waiting for `demur agent` workers\n", jobID, bus.ClientURL())
	return d, nil
}

// retiredAgents lists the agents the log says have left the job.
func retiredAgents(ctx context.Context, store demur.Store, jobID string) ([]string, error) {
	recs, err := store.Records(ctx, demur.Query{Job: jobID, Stream: jobID, Kinds: []demur.RecordKind{demur.RecAgent}})
	if err != nil {
		return nil, fmt.Errorf("read agent states of job %s: %w", jobID, err)
	}
	var out []string
	for _, r := range recs {
		var p demur.AgentPayload
		if json.Unmarshal(r.Payload, &p) == nil && p.State == "retired" && !slices.Contains(out, p.Agent) {
			out = append(out, p.Agent)
		}
	}
	return out, nil
}

// event keeps the announcement's retired list current, before the
// agent's Stop message goes out, so no worker picks the agent up again.
// It is a no-op on a nil receiver (embedded mode).
func (d *distCoordinator) event(e coord.Event) {
	if d == nil || e.Type != "retired" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if slices.Contains(d.ann.Retired, e.Agent) {
		return
	}
	d.ann.Retired = append(d.ann.Retired, e.Agent)
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	if err := worker.Announce(ctx, d.jobs, &d.ann); err != nil {
		fmt.Fprintf(d.stderr, "demur: %v\n", err)
	}
}

// finish withdraws the job once it has ended (workers let its agents go)
// and releases the lease. runErr is the coordinator's result; a lost lease
// is reported in its place.
func (d *distCoordinator) finish(runErr error) error {
	d.mu.Lock()
	lost := d.lostErr
	d.mu.Unlock()
	if lost != nil {
		return errors.Join(fmt.Errorf("job %s: lost the coordinator lease, another coordinator may have taken over: %w", d.job, lost), runErr)
	}
	if runErr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := worker.Withdraw(ctx, d.jobs, d.job); err != nil {
			runErr = err
		} else if err := d.bus.PurgeJob(ctx, d.job); err != nil {
			runErr = fmt.Errorf("job %s ended; purging its leftover messages: %w", d.job, err)
		}
	}
	return runErr
}

// close stops renewing and releases the lease, then closes the bus.
func (d *distCoordinator) close() {
	if d.cancel != nil {
		d.cancel()
	}
	if d.lease != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = d.lease.Release(ctx)
		cancel()
	}
	d.bus.Close()
}

// coordBus is the bus the coordinator uses: in distributed mode, one whose
// publishes and acks ride out a NATS fail-over (worker.Retrying).
func (d *distCoordinator) coordBus(b *natsbus.Bus) demur.Bus {
	if d == nil {
		return b
	}
	return worker.Retrying(b)
}
