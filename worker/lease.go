// Package worker is the worker side of demur's distributed mode: a process
// that hosts some of a job's agents, found and claimed through JetStream
// key-value buckets, while the job's coordinator runs elsewhere. It also
// holds what the coordinator needs to take part: the job announcement and
// the coordinator's own lease. See docs/distributed.md.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/natsbus"
)

// CoordinatorKey is the lease key of a job's coordinator in
// natsbus.LeasesBucket; agents' keys are JOB.AGENT and agent IDs never
// start with an underscore.
func CoordinatorKey(job string) string { return job + "._coordinator" }

// AgentKey is the lease key of one agent of a job.
func AgentKey(job, agent string) string { return job + "." + agent }

// Announcement is a job as workers see it, the value of key JOB in
// natsbus.JobsBucket.
type Announcement struct {
	Job string `json:"job"`
	// Spec is the job spec file, byte for byte; workers build each agent's
	// backend from its group.
	Spec []byte `json:"spec"`
	// Seed is the job's seed, which may differ from the spec's (--seed).
	Seed   int64              `json:"seed"`
	Agents []demur.AgentEntry `json:"agents"`
	// Groups[i] is Agents[i]'s index in the spec's agent groups.
	Groups []int `json:"groups"`
	// Profiles[i] is Agents[i]'s simulator profile or model, for --profile.
	Profiles []string `json:"profiles"`
	// Retired agents have left the job; no worker claims them.
	Retired []string `json:"retired,omitempty"`
	// DirectResults says the coordinator takes results handed over on the
	// job's turn subject (coord.Agent.Direct); coordinators from before it
	// read only the durable result subject.
	DirectResults bool `json:"direct_results,omitempty"`
	// HandOffResults says the coordinator acks the task a result handed
	// over on the turn subject carries (coord.Agent.HandOff), so the agent
	// need not wait for an answer; coordinators from before it answer
	// each result and leave the ack to the agent.
	HandOffResults bool `json:"hand_off_results,omitempty"`
	// Coordinator is the lease holder that wrote this announcement.
	Coordinator string    `json:"coordinator"`
	Updated     time.Time `json:"updated"`
}

// Lease is the value of a lease key: who holds it.
type Lease struct {
	Holder string    `json:"holder"`
	Host   string    `json:"host"`
	PID    int       `json:"pid"`
	Since  time.Time `json:"since"`
}

// ErrLeaseHeld is returned when another holder has the lease.
var ErrLeaseHeld = errors.New("lease held by another process")

// ErrLeaseLost is returned when a held lease was taken over or expired.
var ErrLeaseLost = errors.New("lease lost")

// Held is a lease this process holds and renews.
type Held struct {
	kv  jetstream.KeyValue
	key string
	val []byte

	mu  sync.Mutex
	rev uint64
}

// NewLease returns the lease value for holder in this process.
func NewLease(holder string) Lease {
	host, _ := os.Hostname()
	return Lease{Holder: holder, Host: host, PID: os.Getpid(), Since: time.Now().UTC()}
}

// Claim takes the lease at key if nobody holds it (create-if-absent). It
// returns ErrLeaseHeld, wrapped with the holder's name, otherwise.
func Claim(ctx context.Context, kv jetstream.KeyValue, key string, l Lease) (*Held, error) {
	val, err := json.Marshal(l)
	if err != nil {
		return nil, fmt.Errorf("encode lease: %w", err)
	}
	rev, err := kv.Create(ctx, key, val)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			holder := "?"
			if e, gerr := kv.Get(ctx, key); gerr == nil {
				var cur Lease
				if json.Unmarshal(e.Value(), &cur) == nil {
					holder = cur.Holder
				}
			}
			return nil, fmt.Errorf("%s: %w (%s)", key, ErrLeaseHeld, holder)
		}
		return nil, fmt.Errorf("claim %s: %w", key, err)
	}
	return &Held{kv: kv, key: key, val: val, rev: rev}, nil
}

// Key is the lease's key.
func (h *Held) Key() string { return h.key }

// Renew extends the lease by another natsbus.LeaseTTL. It returns an error
// wrapping ErrLeaseLost if the lease expired or someone else took it: the
// caller must stop acting for it.
func (h *Held) Renew(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	rev, err := h.kv.Update(ctx, h.key, h.val, h.rev)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyNotFound) ||
			isWrongLastSeq(err) {
			return fmt.Errorf("renew %s: %w: %w", h.key, ErrLeaseLost, err)
		}
		return fmt.Errorf("renew %s: %w", h.key, err)
	}
	h.rev = rev
	return nil
}

func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// Release gives the lease up at once, if it is still ours, so another
// holder need not wait for it to expire.
func (h *Held) Release(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	err := h.kv.Delete(ctx, h.key, jetstream.LastRevision(h.rev))
	if err != nil && !isWrongLastSeq(err) && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("release %s: %w", h.key, err)
	}
	return nil
}

// KeepRenewed renews h every LeaseTTL/4 until ctx ends, and calls lost
// (once) when the lease cannot be kept: taken over, or not renewed for a
// whole LeaseTTL (then it has expired on the server too).
func KeepRenewed(ctx context.Context, h *Held, lost func(error)) {
	tick := time.NewTicker(natsbus.LeaseTTL / 4)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, natsbus.LeaseTTL/4)
		err := h.Renew(rctx)
		cancel()
		switch {
		case err == nil:
			last = time.Now()
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrLeaseLost) || time.Since(last) >= natsbus.LeaseTTL:
			lost(err)
			return
		}
	}
}

// AcquireCoordinator takes job's coordinator lease for holder, waiting up
// to wait for a previous holder's lease to be released or expire (a killed
// coordinator's lapses after natsbus.LeaseTTL). waiting, if set, is told
// once who holds it.
func AcquireCoordinator(ctx context.Context, kv jetstream.KeyValue, job, holder string, wait time.Duration, waiting func(error)) (*Held, error) {
	deadline := time.Now().Add(wait)
	told := false
	for {
		h, err := Claim(ctx, kv, CoordinatorKey(job), NewLease(holder))
		if err == nil {
			return h, nil
		}
		if !errors.Is(err, ErrLeaseHeld) || time.Now().After(deadline) {
			return nil, err
		}
		if !told && waiting != nil {
			waiting(err)
			told = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Announce writes job's announcement for workers.
func Announce(ctx context.Context, kv jetstream.KeyValue, a *Announcement) error {
	a.Updated = time.Now().UTC()
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode announcement: %w", err)
	}
	if _, err := kv.Put(ctx, a.Job, data); err != nil {
		return fmt.Errorf("announce job %s: %w", a.Job, err)
	}
	return nil
}

// Withdraw removes job's announcement, so workers let its agents go.
func Withdraw(ctx context.Context, kv jetstream.KeyValue, job string) error {
	if err := kv.Purge(ctx, job); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("withdraw job %s: %w", job, err)
	}
	return nil
}
