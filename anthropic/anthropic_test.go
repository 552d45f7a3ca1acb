package anthropic

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/internal/fakeupstream"
	"github.com/demurhq/demur/internal/llmhttp"
)

const secret = "sk-ant-test-SECRET-987654321"

func newBackend(t *testing.T, up *fakeupstream.Server, stream bool) *Backend {
	t.Helper()
	b, err := New(Config{BaseURL: up.URL, Key: llmhttp.NewKey(secret), Model: "claude-fake", Stream: stream, MaxTokens: 512,
		Retry: llmhttp.Retry{Attempts: 3, Base: time.Millisecond, Max: 20 * time.Millisecond, Timeout: 2 * time.Second}, NoBreaker: true})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var req = &demur.Request{Model: "label", Logprobs: true, MaxTokens: 100, Messages: []demur.Message{
	{Role: demur.RoleSystem, Content: "You write sections."}, {Role: demur.RoleUser, Content: "Write about pipes."}}}

func TestGenerate(t *testing.T) {
	for _, stream := range []bool{false, true} {
		up := fakeupstream.New(func(*fakeupstream.Request) fakeupstream.Reply {
			return fakeupstream.Reply{Text: "Pipes carry water to taps."}
		})
		resp, err := newBackend(t, up, stream).Generate(context.Background(), req)
		up.Close()
		if err != nil {
			t.Fatalf("stream=%v: %v", stream, err)
		}
		if resp.Output != "Pipes carry water to taps." || resp.FinishReason != "stop" || resp.Usage.CompletionTokens != 5 {
			t.Errorf("stream=%v: %+v", stream, resp)
		}
		r := up.Requests()[0]
		if r.Path != "/v1/messages" || !hasKey(r) || r.Body["max_tokens"] != 100.0 {
			t.Errorf("request %s %v %v", r.Path, r.Header, r.Body)
		}
		if sys, _ := r.Body["system"].([]any); len(sys) != 1 || len(r.Body["messages"].([]any)) != 1 {
			t.Errorf("system %v messages %v", r.Body["system"], r.Body["messages"])
		}
		if _, ok := r.Body["logprobs"]; ok {
			t.Error("asked the Messages API for logprobs")
		}
	}
}

func TestRefusalStopDetails(t *testing.T) {
	for _, stream := range []bool{false, true} {
		up := fakeupstream.New(func(*fakeupstream.Request) fakeupstream.Reply {
			return fakeupstream.Reply{Finish: "refusal", StopCategory: "cyber", StopExplanation: "Declined by policy."}
		})
		resp, err := newBackend(t, up, stream).Generate(context.Background(), req)
		up.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.FinishReason != "refusal" || resp.StopCategory != "cyber" || resp.StopExplanation != "Declined by policy." {
			t.Errorf("stream=%v: %+v", stream, resp)
		}
	}
}

func TestRetryAndCutStream(t *testing.T) {
	var n atomic.Int32
	up := fakeupstream.New(func(*fakeupstream.Request) fakeupstream.Reply {
		switch n.Add(1) {
		case 1:
			return fakeupstream.Reply{Status: 529}
		case 2:
			return fakeupstream.Reply{Text: "a b c d", CutAfter: 1}
		}
		return fakeupstream.Reply{Text: "done", Finish: "max_tokens"}
	})
	defer up.Close()
	resp, err := newBackend(t, up, true).Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Output != "done" || resp.FinishReason != "length" || n.Load() != 3 {
		t.Fatalf("%+v after %d calls", resp, n.Load())
	}
}

func TestAuthErrorNotRetriedNorLeaked(t *testing.T) {
	up := fakeupstream.New(func(*fakeupstream.Request) fakeupstream.Reply { return fakeupstream.Reply{Status: 401} })
	defer up.Close()
	_, err := newBackend(t, up, false).Generate(context.Background(), req)
	if err == nil || up.Count() != 1 || strings.Contains(err.Error(), secret) {
		t.Fatalf("err %v after %d calls", err, up.Count())
	}
}

func TestFinishReason(t *testing.T) {
	for in, want := range map[string]string{"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
		"tool_use": "tool_calls", "refusal": "refusal", "pause_turn": "pause_turn"} {
		if got := FinishReason(in); got != want {
			t.Errorf("FinishReason(%q) = %q, want %q", in, got, want)
		}
	}
}

// hasKey accepts either header: this SDK version sends the key as a bearer
// token, older ones and other clients as x-api-key.
func hasKey(r *fakeupstream.Request) bool {
	return r.Header.Get("X-Api-Key") == secret || r.Header.Get("Authorization") == "Bearer "+secret
}
