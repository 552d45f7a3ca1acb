package openai

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/internal/fakeupstream"
	"github.com/demurhq/demur/internal/llmhttp"
)

const secret = "sk-test-SECRET-0123456789"

func newBackend(t *testing.T, up *fakeupstream.Server, stream bool) *Backend {
	t.Helper()
	b, err := New(Config{BaseURL: up.URL + "/v1", Key: llmhttp.NewKey(secret), Model: "fake-model", Stream: stream,
		Retry: llmhttp.Retry{Attempts: 3, Base: time.Millisecond, Max: 50 * time.Millisecond, Timeout: 2 * time.Second}, NoBreaker: true})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var req = &demur.Request{Model: "label", Logprobs: true, MaxTokens: 100, Messages: []demur.Message{
	{Role: demur.RoleSystem, Content: "You write sections."}, {Role: demur.RoleUser, Content: "Write about wells."}}}

func TestGenerate(t *testing.T) {
	for _, stream := range []bool{false, true} {
		up := fakeupstream.New(func(*fakeupstream.Request) fakeupstream.Reply {
			return fakeupstream.Reply{Text: "Wells are holes that reach water.", Logprob: -0.25}
		})
		resp, err := newBackend(t, up, stream).Generate(context.Background(), req)
		up.Close()
		if err != nil {
			t.Fatalf("stream=%v: %v", stream, err)
		}
		if resp.Output != "Wells are holes that reach water." || resp.FinishReason != "stop" || resp.Model != "fake-model" {
			t.Errorf("stream=%v: got %+v", stream, resp)
		}
		if resp.Usage.CompletionTokens != 6 || resp.Usage.PromptTokens != 10 {
			t.Errorf("stream=%v: usage %+v", stream, resp.Usage)
		}
		if !stream && (len(resp.Logprobs) != 6 || resp.Logprobs[0] != -0.25) {
			t.Errorf("logprobs %v", resp.Logprobs)
		}
		r := up.Requests()[0]
		if r.Header.Get("Authorization") != "Bearer "+secret || r.Body["model"] != "fake-model" || r.Body["max_tokens"] != 100.0 {
			t.Errorf("request %v %v", r.Header, r.Body)
		}
		if msgs := r.Body["messages"].([]any); len(msgs) != 2 || msgs[0].(map[string]any)["role"] != "system" {
			t.Errorf("messages %v", msgs)
		}
	}
}

func TestProviderRefusalSignals(t *testing.T) {
	cases := []struct {
		rep                 fakeupstream.Reply
		wantRefusal, finish string
	}{
		{fakeupstream.Reply{Refusal: "I can't help with that."}, "I can't help with that.", "stop"},
		{fakeupstream.Reply{Text: "Partial text", Finish: "content_filter"}, "", "content_filter"},
	}
	for _, stream := range []bool{false, true} {
		for _, c := range cases {
			up := fakeupstream.New(func(*fakeupstream.Request) fakeupstream.Reply { return c.rep })
			resp, err := newBackend(t, up, stream).Generate(context.Background(), req)
			up.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.ProviderRefusal != c.wantRefusal || resp.FinishReason != c.finish {
				t.Errorf("stream=%v %+v: got refusal %q finish %q", stream, c.rep, resp.ProviderRefusal, resp.FinishReason)
			}
		}
	}
}

func TestRetriesHonourRetryAfter(t *testing.T) {
	var n atomic.Int32
	up := fakeupstream.New(func(*fakeupstream.Request) fakeupstream.Reply {
		switch n.Add(1) {
		case 1:
			return fakeupstream.Reply{Status: 429, RetryAfter: 1}
		case 2:
			return fakeupstream.Reply{Status: 500}
		}
		return fakeupstream.Reply{Text: "ok"}
	})
	defer up.Close()
	b := newBackend(t, up, false)
	b.cfg.Retry.Max = 2 * time.Second
	start := time.Now()
	resp, err := b.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Output != "ok" || n.Load() != 3 {
		t.Fatalf("output %q after %d calls", resp.Output, n.Load())
	}
	if el := time.Since(start); el < time.Second {
		t.Errorf("retried after %s, before the 1s Retry-After", el)
	}
}

func TestPermanentErrorAndKeyRedaction(t *testing.T) {
	var n atomic.Int32
	up := fakeupstream.New(func(r *fakeupstream.Request) fakeupstream.Reply {
		n.Add(1)
		return fakeupstream.Reply{Status: 401}
	})
	defer up.Close()
	_, err := newBackend(t, up, false).Generate(context.Background(), req)
	if err == nil || n.Load() != 1 {
		t.Fatalf("401: err %v after %d calls, want one call", err, n.Load())
	}
	if !strings.Contains(err.Error(), "401") {
		t.Errorf("error does not name the status: %v", err)
	}
	// A server that echoes the key must not leak it through our error.
	k := llmhttp.NewKey(secret)
	if got := k.Redact(errors.New("bad key " + secret)).Error(); strings.Contains(got, secret) {
		t.Errorf("redact leaked: %s", got)
	}
	b := newBackend(t, up, false)
	for _, s := range []string{strings.Join([]string{b.cfg.Key.String(), b.cfg.Key.GoString()}, " ")} {
		if strings.Contains(s, secret) {
			t.Errorf("key printed: %s", s)
		}
	}
}

func TestTransportFaults(t *testing.T) {
	var n atomic.Int32
	up := fakeupstream.New(func(*fakeupstream.Request) fakeupstream.Reply {
		switch n.Add(1) {
		case 1:
			return fakeupstream.Reply{Malformed: true}
		case 2:
			return fakeupstream.Reply{Text: "one two three four", CutAfter: 2}
		case 3:
			return fakeupstream.Reply{Text: "slow", Delay: 500 * time.Millisecond}
		}
		return fakeupstream.Reply{Text: "fine now"}
	})
	defer up.Close()
	b := newBackend(t, up, true)
	// Spare attempts: on a loaded machine a healthy attempt may outlive
	// the short timeout too.
	b.cfg.Retry.Attempts = 8
	b.cfg.Retry.Timeout = 250 * time.Millisecond
	// Streaming sees the malformed body, the cut stream and the timeout.
	resp, err := b.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Output != "fine now" || n.Load() < 4 {
		t.Fatalf("got %q after %d calls", resp.Output, n.Load())
	}
}

func TestGivesUp(t *testing.T) {
	up := fakeupstream.New(func(*fakeupstream.Request) fakeupstream.Reply { return fakeupstream.Reply{Status: 503} })
	defer up.Close()
	_, err := newBackend(t, up, false).Generate(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), "gave up after 3 attempt(s)") {
		t.Fatalf("err = %v", err)
	}
	if up.Count() != 3 {
		t.Fatalf("%d calls, want 3", up.Count())
	}
}

func TestLogprobsDroppedWhenUnsupported(t *testing.T) {
	up := fakeupstream.New(nil)
	up.NoLogprobs = true
	defer up.Close()
	b := newBackend(t, up, false)
	for range 2 {
		if _, err := b.Generate(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	// One rejected request, then no more asking.
	if up.Count() != 3 {
		t.Fatalf("%d calls, want 3", up.Count())
	}
}

func TestBreakerOpens(t *testing.T) {
	up := fakeupstream.New(func(*fakeupstream.Request) fakeupstream.Reply { return fakeupstream.Reply{Status: 500} })
	defer up.Close()
	b := newBackend(t, up, false)
	b.br = llmhttp.NewBreaker("test", 2, time.Hour)
	b.cfg.Retry.Attempts = 5
	_, err := b.Generate(context.Background(), req)
	if !errors.Is(err, llmhttp.ErrCircuitOpen) && !strings.Contains(err.Error(), "circuit open") {
		t.Fatalf("err = %v", err)
	}
	if up.Count() != 2 {
		t.Fatalf("%d calls reached the server, want 2 before the breaker opened", up.Count())
	}
}

func TestNeedsKeyForOpenAI(t *testing.T) {
	if _, err := New(Config{Model: "gpt-4o"}); err == nil {
		t.Fatal("no key accepted for api.openai.com")
	}
	if _, err := New(Config{BaseURL: "http://127.0.0.1:11434/v1", Model: "llama3"}); err != nil {
		t.Fatalf("local server without a key: %v", err)
	}
}
