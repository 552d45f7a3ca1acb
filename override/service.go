package override

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/demurhq/demur"
)

// Stream is the audit-log stream of override attempts (kind
// demur.RecOverride). It is separate from the jobs' own streams so that the
// override service, possibly another process, never contends with a
// coordinator for its chain.
const Stream = "overrides"

// Outcomes of an attempt, as recorded. A refusal is "rejected: " + why.
const (
	// OutcomeAccepted: a request created a pending override, or an
	// approval was counted and more are needed.
	OutcomeAccepted = "accepted"
	// OutcomeApproved: the override reached the approvals it needs.
	OutcomeApproved = "approved"
	// OutcomeApplied: the coordinator carried the override out.
	OutcomeApplied = "applied"
	// OutcomeRejectedPrefix starts every refusal.
	OutcomeRejectedPrefix = "rejected: "
)

// Attempt is the payload of every RecOverride record: one HTTP attempt,
// accepted or refused, or the coordinator's note that it applied one. It
// never holds the bearer secret.
type Attempt struct {
	// Actor is the token's owner, or "anonymous" when no token was
	// recognised.
	Actor   string             `json:"actor"`
	TokenID string             `json:"token_id,omitempty"`
	Role    demur.OperatorRole `json:"role,omitempty"`
	Remote  string             `json:"remote,omitempty"`
	// Endpoint is "request", "approve", "list", "get" or "apply".
	Endpoint   string       `json:"endpoint"`
	OverrideID string       `json:"override_id,omitempty"`
	Action     demur.Action `json:"action,omitempty"`
	Job        string       `json:"job,omitempty"`
	Task       string       `json:"task,omitempty"`
	Agent      string       `json:"agent,omitempty"`
	Reason     string       `json:"reason,omitempty"`
	Nonce      string       `json:"nonce,omitempty"`
	Expires    time.Time    `json:"expires,omitzero"`
	Outcome    string       `json:"outcome"`
	HTTPStatus int          `json:"http_status,omitempty"`
	// Override is the override's state after an accepted attempt.
	Override *demur.Override `json:"override,omitempty"`
}

// Options configure a Service. Store is required.
type Options struct {
	Store demur.Store
	// Bus, if set, receives every approved override as JSON demur.Override
	// broadcast on fmt.Sprintf(demur.SubjectControl, job).
	Bus demur.Bus
	// OnApproved, if set, is called with every approved override, after it
	// is durable, for in-process consumers. It must not block for long.
	OnApproved func(demur.Override)
	// Requirements is the approval policy; nil means DefaultRequirements.
	Requirements Requirements
	// RateLimit and RateBurst bound each token's requests (and, for
	// requests without a valid token, each remote host's). Zero means
	// DefaultRateLimit and DefaultRateBurst.
	RateLimit rate.Limit
	RateBurst int
	// MaxBody bounds a request body in bytes; 0 means DefaultMaxBody.
	MaxBody int64
	// MaxExpiry bounds how far in the future a request may expire; 0 means
	// DefaultMaxExpiry. It is also the longest a pending override waits.
	MaxExpiry time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives failures that cannot reach the client or the log
	// (a failed broadcast); nil means slog.Default().
	Logger *slog.Logger
}

// Defaults for zero Options fields.
const (
	DefaultRateLimit = rate.Limit(2) // per second, sustained
	DefaultRateBurst = 20
	DefaultMaxBody   = 64 << 10
	DefaultMaxExpiry = time.Hour
)

// clockSkew is how far past MaxExpiry a client's clock may run before its
// expiry is refused as too far out.
const clockSkew = time.Minute

// Service is the override API over one store. Create it with New; serve
// Handler. It is safe for concurrent use.
type Service struct {
	opts   Options
	tokens *Tokens
	log    *slog.Logger

	// mu serialises decisions: catch up with the log, decide, append,
	// catch up again. One decision at a time keeps nonce checks and
	// approval counts exact within a process.
	mu        sync.Mutex
	lastSeq   int64
	overrides map[string]*demur.Override
	order     []string             // override IDs in creation order
	nonces    map[string]time.Time // token ID + "\x00" + nonce → expiry

	limMu    sync.Mutex
	limiters map[string]*rate.Limiter
}

// New returns a Service over opts.Store, restoring tokens, overrides and
// remembered nonces from the log.
func New(ctx context.Context, opts Options) (*Service, error) {
	if opts.Store == nil {
		return nil, fmt.Errorf("override service: no store")
	}
	if opts.Requirements == nil {
		opts.Requirements = DefaultRequirements
	}
	if opts.RateLimit == 0 {
		opts.RateLimit = DefaultRateLimit
	}
	if opts.RateBurst == 0 {
		opts.RateBurst = DefaultRateBurst
	}
	if opts.MaxBody == 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.MaxExpiry == 0 {
		opts.MaxExpiry = DefaultMaxExpiry
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Service{
		opts:      opts,
		tokens:    NewTokens(opts.Store, opts.Now),
		log:       opts.Logger,
		overrides: map[string]*demur.Override{},
		nonces:    map[string]time.Time{},
		limiters:  map[string]*rate.Limiter{},
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.catchUp(ctx); err != nil {
		return nil, fmt.Errorf("override service: %w", err)
	}
	if _, err := s.tokens.List(ctx); err != nil {
		return nil, fmt.Errorf("override service: %w", err)
	}
	return s, nil
}

// Tokens returns the service's token registry.
func (s *Service) Tokens() *Tokens { return s.tokens }

// Overrides returns the current state of every override (of job, unless job
// is empty), oldest first.
func (s *Service) Overrides(ctx context.Context, job string) ([]demur.Override, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.catchUp(ctx); err != nil {
		return nil, fmt.Errorf("list overrides: %w", err)
	}
	return s.snapshot(job), nil
}

// snapshot copies the overrides of job at now. Callers hold mu.
func (s *Service) snapshot(job string) []demur.Override {
	now := s.opts.Now()
	out := []demur.Override{}
	for _, id := range s.order {
		ov := s.overrides[id]
		if job != "" && ov.Job != job {
			continue
		}
		out = append(out, current(*ov, now))
	}
	return out
}

// current returns ov as of now: a pending override past its expiry can no
// longer be approved, so it reads as rejected.
func current(ov demur.Override, now time.Time) demur.Override {
	ov.Approvals = append([]demur.Approval(nil), ov.Approvals...)
	if ov.Status == demur.OverridePending && !now.Before(ov.Expires) {
		ov.Status = demur.OverrideRejected
	}
	return ov
}

// catchUp folds override records appended since the last read, by this
// process or another. Callers hold mu.
func (s *Service) catchUp(ctx context.Context) error {
	recs, err := s.opts.Store.Records(ctx, demur.Query{Stream: Stream, AfterSeq: s.lastSeq})
	if err != nil {
		return fmt.Errorf("read overrides: %w", err)
	}
	now := s.opts.Now()
	for _, r := range recs {
		s.lastSeq = r.Seq
		if r.Kind != demur.RecOverride {
			continue
		}
		var a Attempt
		if json.Unmarshal(r.Payload, &a) != nil {
			continue
		}
		// Every attempt by a known token spends its nonce, refused or not:
		// a refused request must not become replayable later.
		if a.TokenID != "" && a.Nonce != "" && now.Before(a.Expires) {
			s.nonces[nonceKey(a.TokenID, a.Nonce)] = a.Expires
		}
		if a.Override != nil && a.Override.ID != "" {
			if _, ok := s.overrides[a.Override.ID]; !ok {
				s.order = append(s.order, a.Override.ID)
			}
			ov := *a.Override
			s.overrides[ov.ID] = &ov
		}
	}
	for k, exp := range s.nonces {
		if !now.Before(exp) {
			delete(s.nonces, k)
		}
	}
	return nil
}

func nonceKey(tokenID, nonce string) string { return tokenID + "\x00" + nonce }

// record appends a as a RecOverride record.
func (s *Service) record(ctx context.Context, a *Attempt) error {
	return appendAttempt(ctx, s.opts.Store, a)
}

func appendAttempt(ctx context.Context, store demur.Store, a *Attempt) error {
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode override attempt: %w", err)
	}
	return appendRetry(ctx, store, &demur.Record{Job: a.Job, Stream: Stream, Kind: demur.RecOverride, Actor: a.Actor, Payload: data})
}

// publish hands an approved override to the bus and the callback. Failures
// are logged, not returned: the override is already durable, and a
// coordinator that missed the broadcast finds it with Load.
func (s *Service) publish(ov demur.Override) {
	if s.opts.Bus != nil {
		data, err := json.Marshal(ov)
		if err == nil {
			err = s.opts.Bus.Broadcast(fmt.Sprintf(demur.SubjectControl, ov.Job), data)
		}
		if err != nil {
			s.log.Error("override: broadcast approved override", "id", ov.ID, "job", ov.Job, "err", err)
		}
	}
	if s.opts.OnApproved != nil {
		s.opts.OnApproved(ov)
	}
}

// limiter returns the rate limiter for key (a token ID, or "addr:" + host).
func (s *Service) limiter(key string) *rate.Limiter {
	s.limMu.Lock()
	defer s.limMu.Unlock()
	l, ok := s.limiters[key]
	if !ok {
		// Anonymous callers can mint keys at will; bound the map rather
		// than let them grow it without end. Resetting only forgives
		// callers, it never blocks a legitimate one.
		if len(s.limiters) >= 10000 {
			clear(s.limiters)
		}
		l = rate.NewLimiter(s.opts.RateLimit, s.opts.RateBurst)
		s.limiters[key] = l
	}
	return l
}

func newOverrideID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("override id: %w", err)
	}
	return "ovr_" + hex.EncodeToString(b), nil
}

// Load returns the current state of every override of job (all jobs if job
// is empty) as recorded in store, oldest first. A coordinator that starts or
// resumes calls it to find approved overrides it has not applied yet (status
// demur.OverrideApproved), since the bus broadcast is not durable.
func Load(ctx context.Context, store demur.Store, job string) ([]demur.Override, error) {
	recs, err := store.Records(ctx, demur.Query{Stream: Stream, Job: job, Kinds: []demur.RecordKind{demur.RecOverride}})
	if err != nil {
		return nil, fmt.Errorf("load overrides: %w", err)
	}
	byID := map[string]demur.Override{}
	var order []string
	for _, r := range recs {
		var a Attempt
		if json.Unmarshal(r.Payload, &a) != nil || a.Override == nil || a.Override.ID == "" {
			continue
		}
		if _, ok := byID[a.Override.ID]; !ok {
			order = append(order, a.Override.ID)
		}
		byID[a.Override.ID] = *a.Override
	}
	now := time.Now()
	out := make([]demur.Override, 0, len(order))
	for _, id := range order {
		out = append(out, current(byID[id], now))
	}
	return out, nil
}

// RecordApplied records that actor (the coordinator) carried out ov, an
// approved override; the API then lists it as applied.
func RecordApplied(ctx context.Context, store demur.Store, actor string, ov demur.Override) error {
	if ov.Status != demur.OverrideApproved {
		return fmt.Errorf("record applied override %s: status %q, want %q", ov.ID, ov.Status, demur.OverrideApproved)
	}
	ov.Status = demur.OverrideApplied
	a := &Attempt{
		Actor: actor, Endpoint: "apply", OverrideID: ov.ID, Action: ov.Action,
		Job: ov.Job, Task: ov.Task, Agent: ov.Agent, Outcome: OutcomeApplied, Override: &ov,
	}
	if err := appendAttempt(ctx, store, a); err != nil {
		return fmt.Errorf("record applied override %s: %w", ov.ID, err)
	}
	return nil
}
