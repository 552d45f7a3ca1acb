// Package llmhttp is what the HTTP model backends (openai, anthropic) share:
// retries with capped exponential backoff and full jitter that honour
// Retry-After, a circuit breaker per endpoint, per-attempt timeouts, API
// keys read from the environment or a file, and redaction of those keys
// from anything that might be logged or recorded.
package llmhttp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Retry configures the retry loop. Zero fields take the defaults below.
type Retry struct {
	// Attempts is the total number of tries, first included (default 4).
	Attempts int
	// Base is the first backoff ceiling (default 500ms); each retry doubles it.
	Base time.Duration
	// Max caps one wait, Retry-After included (default 30s).
	Max time.Duration
	// Timeout bounds one attempt (default 120s); 0 in a Retry passed to Do
	// after Defaults means no bound.
	Timeout time.Duration
}

// Defaults returns r with zero fields set to their defaults.
func (r Retry) Defaults() Retry {
	if r.Attempts <= 0 {
		r.Attempts = 4
	}
	if r.Base <= 0 {
		r.Base = 500 * time.Millisecond
	}
	if r.Max <= 0 {
		r.Max = 30 * time.Second
	}
	if r.Timeout <= 0 {
		r.Timeout = 120 * time.Second
	}
	return r
}

// Failure is what a backend tells the retry loop about a failed attempt.
type Failure struct {
	// Retryable marks transient failures: 408, 409, 429, 5xx, transport
	// errors, an attempt's own timeout, a stream cut short.
	Retryable bool
	// After is the server's Retry-After, or 0.
	After time.Duration
}

// Classify returns the Failure for an HTTP status and its headers; status 0
// means the request never got a response (a transport error).
func Classify(status int, h http.Header) Failure {
	f := Failure{After: RetryAfter(h)}
	switch {
	case status == 0, status == http.StatusRequestTimeout, status == http.StatusConflict,
		status == http.StatusTooManyRequests, status >= 500:
		f.Retryable = true
	}
	return f
}

// RetryAfter parses retry-after-ms (OpenAI), then Retry-After as seconds or
// an HTTP date. It returns 0 when neither is present or parseable.
func RetryAfter(h http.Header) time.Duration {
	if h == nil {
		return 0
	}
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// Backoff is the wait before retry n (n ≥ 1): full jitter over a ceiling
// that doubles from base, capped at max. A server's Retry-After wins when it
// is longer, because waiting less only earns another 429.
func Backoff(r Retry, n int, after time.Duration, rnd *rand.Rand) time.Duration {
	ceil := r.Base << min(n-1, 20)
	if ceil > r.Max || ceil <= 0 {
		ceil = r.Max
	}
	var d time.Duration
	if rnd != nil {
		d = time.Duration(rnd.Int64N(int64(ceil) + 1))
	} else {
		d = time.Duration(rand.Int64N(int64(ceil) + 1))
	}
	if after > d {
		d = after
	}
	return min(d, r.Max)
}

// ErrCircuitOpen is returned (wrapped) when an endpoint's breaker is open
// and the retry budget ran out waiting for it.
var ErrCircuitOpen = errors.New("circuit open")

// Do calls attempt until it succeeds, fails permanently, the attempts run
// out or ctx ends. classify tells transient failures from permanent ones.
// Each attempt gets its own timeout; the breaker, when set, is consulted
// before and told after every attempt.
func Do[T any](ctx context.Context, r Retry, br *Breaker, attempt func(context.Context) (T, error), classify func(error) Failure) (T, error) {
	r = r.Defaults()
	var zero T
	var last error
	for n := 1; ; n++ {
		var after time.Duration
		if wait := br.Wait(); wait > 0 {
			// An open breaker counts as a failed attempt: the loop backs off
			// until the endpoint may be probed again, without hammering it.
			last = fmt.Errorf("%w: endpoint %s failed repeatedly; next probe in %s", ErrCircuitOpen, br.Name(), wait.Round(time.Millisecond))
			after = wait
		} else {
			actx, cancel := context.WithTimeout(ctx, r.Timeout)
			v, err := attempt(actx)
			timedOut := actx.Err() != nil && ctx.Err() == nil
			cancel()
			if err == nil {
				br.Success()
				return v, nil
			}
			if ctx.Err() != nil {
				return zero, fmt.Errorf("%w (after %d attempt(s))", err, n)
			}
			f := classify(err)
			if timedOut {
				f.Retryable = true
				err = fmt.Errorf("attempt timed out after %s: %w", r.Timeout, err)
			}
			last = err
			if !f.Retryable {
				return zero, err
			}
			br.Failure()
			after = f.After
		}
		if n >= r.Attempts {
			return zero, fmt.Errorf("gave up after %d attempt(s): %w", n, last)
		}
		t := time.NewTimer(Backoff(r, n, after, nil))
		select {
		case <-ctx.Done():
			t.Stop()
			return zero, fmt.Errorf("%w (waiting to retry: %w)", ctx.Err(), last)
		case <-t.C:
		}
	}
}

// Breaker is a circuit breaker for one endpoint: after Threshold failures
// in a row it opens for Cooldown, then lets one probe through (half-open);
// a success closes it, a failure opens it again for twice as long, up to
// 16 × Cooldown. A nil *Breaker is always closed.
type Breaker struct {
	name      string
	threshold int
	cooldown  time.Duration

	mu       sync.Mutex
	fails    int
	openTill time.Time
	trips    int
	probing  bool
}

// NewBreaker returns a closed breaker.
func NewBreaker(name string, threshold int, cooldown time.Duration) *Breaker {
	return &Breaker{name: name, threshold: max(1, threshold), cooldown: max(cooldown, time.Millisecond)}
}

var (
	breakersMu sync.Mutex
	breakers   = map[string]*Breaker{}
)

// BreakerFor returns the process-wide breaker of an endpoint (its base
// URL), so that every agent talking to one server shares what it learns.
func BreakerFor(endpoint string) *Breaker {
	breakersMu.Lock()
	defer breakersMu.Unlock()
	b := breakers[endpoint]
	if b == nil {
		b = NewBreaker(endpoint, 5, 5*time.Second)
		breakers[endpoint] = b
	}
	return b
}

// Name is the endpoint the breaker guards.
func (b *Breaker) Name() string {
	if b == nil {
		return ""
	}
	return b.name
}

// Wait returns 0 when a call may go ahead, else how long until it may.
// In the half-open state only one caller at a time gets 0.
func (b *Breaker) Wait() time.Duration {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openTill.IsZero() {
		return 0
	}
	if d := time.Until(b.openTill); d > 0 {
		return d
	}
	if b.probing {
		return b.cooldown / 4
	}
	b.probing = true
	return 0
}

// Success closes the breaker.
func (b *Breaker) Success() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.fails, b.trips, b.probing, b.openTill = 0, 0, false, time.Time{}
	b.mu.Unlock()
}

// Failure counts a transient failure and opens the breaker at the threshold
// (or at once when a half-open probe fails).
func (b *Breaker) Failure() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fails++
	if b.probing || b.fails >= b.threshold {
		b.probing = false
		b.fails = 0
		d := b.cooldown << min(b.trips, 4)
		b.trips++
		b.openTill = time.Now().Add(d)
	}
}

// Open reports whether the breaker is refusing calls now.
func (b *Breaker) Open() bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.openTill.IsZero() && time.Now().Before(b.openTill)
}

// Key is an API key. Its String and GoString never show the secret, so a
// key cannot reach a log or a record through fmt by accident.
type Key struct{ v string }

// NewKey wraps a secret.
func NewKey(secret string) Key { return Key{v: strings.TrimSpace(secret)} }

// Secret returns the key itself, for the Authorization header only.
func (k Key) Secret() string { return k.v }

// Empty reports whether no key is set.
func (k Key) Empty() bool { return k.v == "" }

// String implements fmt.Stringer without revealing the key.
func (k Key) String() string {
	if k.v == "" {
		return "(none)"
	}
	return "[redacted]"
}

// GoString implements fmt.GoStringer without revealing the key.
func (k Key) GoString() string { return k.String() }

// MarshalText keeps the key out of JSON and YAML encodings.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// LoadKey reads an API key from file when set (first line, trimmed), else
// from the environment variable env. It returns an empty key when neither
// yields one; the caller decides whether that is an error (a local vLLM or
// Ollama server needs none).
func LoadKey(env, file string) (Key, error) {
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return Key{}, fmt.Errorf("read API key file: %w", err)
		}
		line, _, _ := strings.Cut(string(data), "\n")
		k := NewKey(line)
		if k.Empty() {
			return Key{}, fmt.Errorf("API key file %s is empty", file)
		}
		return k, nil
	}
	if env != "" {
		return NewKey(os.Getenv(env)), nil
	}
	return Key{}, nil
}

// Redact replaces every occurrence of the key in err's message, so that an
// upstream that echoes credentials cannot leak them through our errors.
func (k Key) Redact(err error) error {
	if err == nil || len(k.v) < 4 || !strings.Contains(err.Error(), k.v) {
		return err
	}
	return &redacted{msg: strings.ReplaceAll(err.Error(), k.v, "[redacted]")}
}

type redacted struct{ msg string }

// Error returns the redacted message. There is deliberately no Unwrap: the
// wrapped error's own message still holds the key.
func (r *redacted) Error() string { return r.msg }
