// Package chaos injects refusals and faults into an agent's backend, to
// test how a multi-agent system (demur's own, or anyone's behind demur
// proxy) copes with them.
//
// An Injector decides, turn by turn, what to inject: by rate, on a
// schedule, and only once an agent has produced a number of output tokens.
// It is deterministic for a seed: every turn draws the same random numbers
// whatever was injected before, so one seed gives one sequence per agent.
// Backend applies the decisions to any demur.Backend; the proxy applies
// them on the wire. Every injected response carries Response.Injected, and
// every injected fault is a *Fault whose message says "source: injected",
// so the audit log can tell injected events from real ones.
package chaos

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Kind is one kind of injection.
type Kind string

// Provider-shaped and text refusals, and degraded output.
const (
	// OpenAIRefusal is an OpenAI message.refusal with no content.
	OpenAIRefusal Kind = "openai_refusal"
	// ContentFilter cuts the output short with finish_reason content_filter.
	ContentFilter Kind = "content_filter"
	// AnthropicRefusal is stop_reason "refusal" with stop_details.
	AnthropicRefusal Kind = "anthropic_refusal"
	// TextRefusal replaces the output with a refusal in words.
	TextRefusal Kind = "text_refusal"
	// PartialRefusal keeps the start of the output and declines the rest.
	PartialRefusal Kind = "partial_refusal"
	// Degraded collapses the output into a short, repetitive one.
	Degraded Kind = "degraded"
)

// Transport faults.
const (
	// RateLimited is a 429 with Retry-After.
	RateLimited Kind = "http_429"
	// ServerError is a 500.
	ServerError Kind = "http_500"
	// Timeout is a request that never answers in time.
	Timeout Kind = "timeout"
	// StreamCut is a response (or SSE stream) that stops part-way.
	StreamCut Kind = "stream_cut"
	// MalformedJSON is a 200 whose body does not parse.
	MalformedJSON Kind = "malformed_json"
)

// RefusalKinds lists the refusal-like kinds, the default for Config.Refusals.
var RefusalKinds = []Kind{OpenAIRefusal, ContentFilter, AnthropicRefusal, TextRefusal, PartialRefusal, Degraded}

// FaultKinds lists the transport faults, the default for Config.Faults.
var FaultKinds = []Kind{RateLimited, ServerError, Timeout, StreamCut, MalformedJSON}

// IsFault reports whether k is a transport fault rather than a response.
func (k Kind) IsFault() bool { return slices.Contains(FaultKinds, k) }

// ParseKind checks a kind name.
func ParseKind(s string) (Kind, error) {
	k := Kind(s)
	if slices.Contains(RefusalKinds, k) || slices.Contains(FaultKinds, k) {
		return k, nil
	}
	return "", fmt.Errorf("unknown chaos kind %q (want one of %v or %v)", s, RefusalKinds, FaultKinds)
}

// Scheduled injects Kind on an agent's Turn-th turn (from 1), whatever the
// rates say.
type Scheduled struct {
	Turn int
	Kind Kind
}

// Config says what to inject and how often.
type Config struct {
	// Seed fixes every draw; with the agent's name it gives each agent its
	// own reproducible sequence.
	Seed int64
	// RefusalRate is the share of turns given a refusal-like injection.
	RefusalRate float64
	// Refusals are the kinds drawn from, uniformly (default RefusalKinds).
	Refusals []Kind
	// FaultRate is the share of turns given a transport fault; a turn gets
	// at most one injection, so RefusalRate+FaultRate ≤ 1.
	FaultRate float64
	// Faults are the kinds drawn from, uniformly (default FaultKinds).
	Faults []Kind
	// AfterTokens holds the rates back until the agent has produced this
	// many output tokens (as reported in usage).
	AfterTokens int64
	// Schedule injects on given turns regardless of rates.
	Schedule []Scheduled
	// RetryAfter is what a 429 asks the client to wait (default 1s).
	RetryAfter time.Duration
	// Hang is how long a Timeout fault stalls before failing (default 0:
	// it fails at once, as if a short client timeout had fired).
	Hang time.Duration
}

// Validate reports impossible settings.
func (c *Config) Validate() error {
	var errs []error
	if c.RefusalRate < 0 || c.RefusalRate > 1 {
		errs = append(errs, fmt.Errorf("refusal_rate must be within 0–1, got %g", c.RefusalRate))
	}
	if c.FaultRate < 0 || c.FaultRate > 1 {
		errs = append(errs, fmt.Errorf("fault_rate must be within 0–1, got %g", c.FaultRate))
	}
	if c.RefusalRate+c.FaultRate > 1 {
		errs = append(errs, fmt.Errorf("refusal_rate + fault_rate must be ≤ 1, got %g", c.RefusalRate+c.FaultRate))
	}
	for _, k := range c.Refusals {
		if !slices.Contains(RefusalKinds, k) {
			errs = append(errs, fmt.Errorf("refusals: %q is not a refusal kind (want one of %v)", k, RefusalKinds))
		}
	}
	for _, k := range c.Faults {
		if !k.IsFault() {
			errs = append(errs, fmt.Errorf("faults: %q is not a fault kind (want one of %v)", k, FaultKinds))
		}
	}
	for _, s := range c.Schedule {
		if s.Turn < 1 {
			errs = append(errs, fmt.Errorf("schedule: turn must be ≥ 1, got %d", s.Turn))
		}
		if _, err := ParseKind(string(s.Kind)); err != nil {
			errs = append(errs, fmt.Errorf("schedule: %w", err))
		}
	}
	if c.AfterTokens < 0 || c.RetryAfter < 0 || c.Hang < 0 {
		errs = append(errs, errors.New("after_tokens, retry_after and hang must be ≥ 0"))
	}
	return errors.Join(errs...)
}

// Enabled reports whether c injects anything at all.
func (c *Config) Enabled() bool {
	return c != nil && (c.RefusalRate > 0 || c.FaultRate > 0 || len(c.Schedule) > 0)
}

// Injector draws one agent's injections. It is safe for concurrent use, but
// the sequence is only reproducible when one goroutine drives it (one
// agent, one conversation).
type Injector struct {
	cfg Config

	mu     sync.Mutex
	rng    *rand.Rand
	turn   int
	tokens int64
	counts map[Kind]int
}

// NewInjector returns the injector of one agent (or proxy client) named
// stream.
func NewInjector(cfg Config, stream string) *Injector {
	if len(cfg.Refusals) == 0 {
		cfg.Refusals = RefusalKinds
	}
	if len(cfg.Faults) == 0 {
		cfg.Faults = FaultKinds
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = time.Second
	}
	h := fnv.New64a()
	h.Write([]byte(stream))
	return &Injector{cfg: cfg, rng: rand.New(rand.NewPCG(uint64(cfg.Seed), h.Sum64())), counts: map[Kind]int{}}
}

// Config returns the injector's configuration with defaults filled in.
func (in *Injector) Config() Config { return in.cfg }

// Draw is one turn's decision.
type Draw struct {
	// Kind is the injection, or "" for none.
	Kind Kind
	// Variant picks among phrasings and cut points, so that injected
	// refusals vary like real ones.
	Variant int
}

// Next returns the injection for the next turn, or "" for none.
func (in *Injector) Next() Kind { return in.Draw().Kind }

// Draw returns the next turn's decision.
func (in *Injector) Draw() Draw {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.turn++
	// Draw every number every turn, so that a schedule, the token gate or
	// what was injected before never shifts the sequence of later turns.
	u, pickR, pickF := in.rng.Float64(), in.rng.IntN(len(in.cfg.Refusals)), in.rng.IntN(len(in.cfg.Faults))
	variant := in.rng.IntN(1 << 16)
	var k Kind
	for _, s := range in.cfg.Schedule {
		if s.Turn == in.turn {
			k = s.Kind
		}
	}
	if k == "" && in.tokens >= in.cfg.AfterTokens {
		switch {
		case u < in.cfg.FaultRate:
			k = in.cfg.Faults[pickF]
		case u < in.cfg.FaultRate+in.cfg.RefusalRate:
			k = in.cfg.Refusals[pickR]
		}
	}
	if k != "" {
		in.counts[k]++
	}
	return Draw{Kind: k, Variant: variant}
}

// Observe adds a turn's output tokens to the agent's total, for AfterTokens.
func (in *Injector) Observe(outputTokens int) {
	in.mu.Lock()
	in.tokens += int64(outputTokens)
	in.mu.Unlock()
}

// Counts returns how many injections of each kind were made so far.
func (in *Injector) Counts() map[Kind]int {
	in.mu.Lock()
	defer in.mu.Unlock()
	m := make(map[Kind]int, len(in.counts))
	for k, v := range in.counts {
		m[k] = v
	}
	return m
}

// Fault is an injected transport fault, as a backend error.
type Fault struct {
	Kind Kind
	// Status is the HTTP status the fault imitates (429, 500), or 0.
	Status int
	// RetryAfter is the wait a 429 asked for.
	RetryAfter time.Duration
}

// Error names the fault and marks it as injected: the text is what the
// coordinator records as the turn's error.
func (f *Fault) Error() string {
	switch f.Kind {
	case RateLimited:
		return fmt.Sprintf("chaos: injected %s: 429 Too Many Requests, retry after %s (source: injected)", f.Kind, f.RetryAfter)
	case ServerError:
		return fmt.Sprintf("chaos: injected %s: 500 Internal Server Error (source: injected)", f.Kind)
	case Timeout:
		return fmt.Sprintf("chaos: injected %s: no response before the deadline (source: injected)", f.Kind)
	case StreamCut:
		return fmt.Sprintf("chaos: injected %s: response stream ended part-way (source: injected)", f.Kind)
	case MalformedJSON:
		return fmt.Sprintf("chaos: injected %s: response body is not valid JSON (source: injected)", f.Kind)
	}
	return fmt.Sprintf("chaos: injected %s (source: injected)", f.Kind)
}

// Timeout reports whether the fault imitates a timeout, like net.Error.
func (f *Fault) Timeout() bool { return f.Kind == Timeout }

// Temporary reports that every injected fault is transient.
func (f *Fault) Temporary() bool { return true }
