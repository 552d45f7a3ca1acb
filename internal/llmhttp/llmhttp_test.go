package llmhttp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	h := http.Header{}
	if RetryAfter(h) != 0 || RetryAfter(nil) != 0 {
		t.Fatal("no header should mean no wait")
	}
	h.Set("Retry-After", "3")
	if got := RetryAfter(h); got != 3*time.Second {
		t.Fatalf("seconds: %s", got)
	}
	h.Set("Retry-After-Ms", "250")
	if got := RetryAfter(h); got != 250*time.Millisecond {
		t.Fatalf("ms wins: %s", got)
	}
	h = http.Header{}
	h.Set("Retry-After", time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat))
	if got := RetryAfter(h); got < 80*time.Second || got > 91*time.Second {
		t.Fatalf("date: %s", got)
	}
	h.Set("Retry-After", "soon")
	if RetryAfter(h) != 0 {
		t.Fatal("garbage parsed")
	}
}

func TestClassify(t *testing.T) {
	for status, want := range map[int]bool{0: true, 400: false, 401: false, 404: false, 408: true, 409: true, 429: true, 500: true, 503: true, 529: true} {
		if got := Classify(status, nil).Retryable; got != want {
			t.Errorf("%d: retryable %v, want %v", status, got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	r := Retry{Base: 100 * time.Millisecond, Max: time.Second}.Defaults()
	rnd := rand.New(rand.NewPCG(1, 2))
	for n := 1; n <= 8; n++ {
		ceil := min(r.Base<<(n-1), r.Max)
		for range 50 {
			if d := Backoff(r, n, 0, rnd); d < 0 || d > ceil {
				t.Fatalf("retry %d: %s outside [0, %s]", n, d, ceil)
			}
		}
	}
	if d := Backoff(r, 1, 700*time.Millisecond, rnd); d < 700*time.Millisecond {
		t.Fatalf("Retry-After ignored: %s", d)
	}
	if d := Backoff(r, 1, time.Hour, rnd); d != r.Max {
		t.Fatalf("Retry-After not capped: %s", d)
	}
}

var errTransient = errors.New("transient")

func TestDo(t *testing.T) {
	r := Retry{Attempts: 4, Base: time.Millisecond, Max: 5 * time.Millisecond, Timeout: time.Second}
	classify := func(err error) Failure { return Failure{Retryable: errors.Is(err, errTransient)} }
	calls := 0
	v, err := Do(context.Background(), r, nil, func(context.Context) (int, error) {
		calls++
		if calls < 3 {
			return 0, errTransient
		}
		return 42, nil
	}, classify)
	if err != nil || v != 42 || calls != 3 {
		t.Fatalf("v %d err %v calls %d", v, err, calls)
	}
	calls = 0
	_, err = Do(context.Background(), r, nil, func(context.Context) (int, error) { calls++; return 0, errors.New("permanent") }, classify)
	if err == nil || calls != 1 {
		t.Fatalf("permanent: %v after %d calls", err, calls)
	}
	calls = 0
	_, err = Do(context.Background(), r, nil, func(context.Context) (int, error) { calls++; return 0, errTransient }, classify)
	if err == nil || calls != 4 || !strings.Contains(err.Error(), "gave up after 4") {
		t.Fatalf("exhausted: %v after %d calls", err, calls)
	}
	// An attempt that outlives its timeout is retried, not the whole call.
	r.Timeout = 20 * time.Millisecond
	calls = 0
	v, err = Do(context.Background(), r, nil, func(ctx context.Context) (int, error) {
		calls++
		if calls == 1 {
			<-ctx.Done()
			return 0, ctx.Err()
		}
		return 7, nil
	}, classify)
	if err != nil || v != 7 || calls != 2 {
		t.Fatalf("timeout retry: v %d err %v calls %d", v, err, calls)
	}
	// The caller's cancellation stops everything.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Do(ctx, r, nil, func(ctx context.Context) (int, error) { return 0, ctx.Err() }, classify)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestBreaker(t *testing.T) {
	b := NewBreaker("x", 2, 30*time.Millisecond)
	if b.Wait() != 0 {
		t.Fatal("new breaker is open")
	}
	b.Failure()
	if b.Open() {
		t.Fatal("opened below the threshold")
	}
	b.Failure()
	if !b.Open() || b.Wait() == 0 {
		t.Fatal("did not open at the threshold")
	}
	time.Sleep(35 * time.Millisecond)
	if b.Wait() != 0 {
		t.Fatal("no half-open probe after the cool-down")
	}
	if b.Wait() == 0 {
		t.Fatal("two probes at once in half-open")
	}
	before := time.Now()
	b.Failure() // the probe failed: open again, for longer
	if d := b.openTill.Sub(before); d < 60*time.Millisecond {
		t.Fatalf("reopened for %s, want twice the first cool-down", d)
	}
	b.Success()
	if b.Open() || b.Wait() != 0 {
		t.Fatal("success did not close it")
	}
	var nb *Breaker
	nb.Failure()
	if nb.Wait() != 0 || nb.Open() {
		t.Fatal("nil breaker is not always closed")
	}
	if BreakerFor("e1") != BreakerFor("e1") || BreakerFor("e1") == BreakerFor("e2") {
		t.Fatal("breakers are not per endpoint")
	}
}

func TestKey(t *testing.T) {
	const secret = "sk-very-SECRET-value-123"
	k := NewKey(" " + secret + "\n")
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k), fmt.Sprintf("%v", struct{ K Key }{k})} {
		if strings.Contains(s, secret) {
			t.Fatalf("formatted key leaked: %s", s)
		}
	}
	if txt, _ := k.MarshalText(); strings.Contains(string(txt), secret) {
		t.Fatal("MarshalText leaked")
	}
	if k.Secret() != secret {
		t.Fatalf("secret %q", k.Secret())
	}
	err := k.Redact(fmt.Errorf("upstream said: bad key %s", secret))
	if strings.Contains(err.Error(), secret) || errors.Unwrap(err) != nil {
		t.Fatalf("redact: %v", err)
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "key")
	os.WriteFile(f, []byte(secret+"\nsecond line\n"), 0o600)
	if got, err := LoadKey("IGNORED", f); err != nil || got.Secret() != secret {
		t.Fatalf("file: %v", err)
	}
	os.WriteFile(f, []byte("\n"), 0o600)
	if _, err := LoadKey("", f); err == nil {
		t.Fatal("empty key file accepted")
	}
	t.Setenv("DEMUR_TEST_KEY_ENV", secret)
	if got, _ := LoadKey("DEMUR_TEST_KEY_ENV", ""); got.Secret() != secret {
		t.Fatal("env key not read")
	}
	if _, err := LoadKey("", filepath.Join(dir, "missing")); err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("missing file: %v", err)
	}
}
