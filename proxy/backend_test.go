package proxy

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/anthropic"
	"github.com/demurhq/demur/chaos"
	"github.com/demurhq/demur/internal/fakeupstream"
	"github.com/demurhq/demur/internal/llmhttp"
	"github.com/demurhq/demur/openai"
)

// TestBackendsThroughChaosProxy points demur's own HTTP backends at the
// proxy in chaos mode: wire faults must be absorbed by the backends' retry
// loops, and injected refusals must come back marked as injected.
func TestBackendsThroughChaosProxy(t *testing.T) {
	cfg := Config{Chaos: &chaos.Config{Seed: 5, FaultRate: 0.3, RefusalRate: 0.2, RetryAfter: time.Millisecond,
		Faults: []chaos.Kind{chaos.RateLimited, chaos.ServerError, chaos.MalformedJSON, chaos.StreamCut, chaos.Timeout}}}
	r := newRig(t, cfg, func(*fakeupstream.Request) fakeupstream.Reply { return fakeupstream.Reply{Text: wellText} })
	retry := llmhttp.Retry{Attempts: 8, Base: time.Millisecond, Max: 5 * time.Millisecond, Timeout: 5 * time.Second}
	oa, err := openai.New(openai.Config{BaseURL: r.http.URL + "/v1", Model: "m", Retry: retry, NoBreaker: true})
	if err != nil {
		t.Fatal(err)
	}
	an, err := anthropic.New(anthropic.Config{BaseURL: r.http.URL, Model: "c", Retry: retry, NoBreaker: true})
	if err != nil {
		t.Fatal(err)
	}
	req := &demur.Request{Messages: []demur.Message{{Role: demur.RoleUser, Content: "Write about wells."}}}
	for _, stream := range []bool{false, true} {
		for name, b := range map[string]demur.Backend{"openai": oa, "anthropic": an} {
			var genuine, injected int
			for range 20 {
				resp, err := b.Generate(context.Background(), req)
				if err != nil {
					t.Fatalf("%s stream=%v: %v", name, stream, err)
				}
				switch {
				case resp.Injected != "":
					injected++
				case resp.Output == wellText:
					genuine++
				default:
					t.Fatalf("%s: genuine-looking response with other text: %+v", name, resp)
				}
			}
			if genuine == 0 || injected == 0 {
				t.Errorf("%s stream=%v: %d genuine, %d injected", name, stream, genuine, injected)
			}
		}
		oa, _ = openai.New(openai.Config{BaseURL: r.http.URL + "/v1", Model: "m", Retry: retry, NoBreaker: true, Stream: true})
		an, _ = anthropic.New(anthropic.Config{BaseURL: r.http.URL, Model: "c", Retry: retry, NoBreaker: true, Stream: true})
	}
	faults := map[string]int{}
	for _, rec := range r.records(t) {
		var p demur.TurnPayload
		if rec.Kind == demur.RecTurn && json.Unmarshal(rec.Payload, &p) == nil && p.Error != "" {
			faults[p.Injected]++
		}
	}
	for _, k := range cfg.Chaos.Faults {
		if faults[string(k)] == 0 {
			t.Errorf("no %s fault was injected and retried: %v", k, faults)
		}
	}
}
