package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	oai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/chaos"
	"github.com/demurhq/demur/internal/fakeupstream"
)

const refusalText = "I'm sorry, but I can't continue with this. I won't write another section like this one."

// refuseUntil answers with a text refusal until the request carries the
// reframe or asks for the fallback model.
func refuseUntil(fallbackOnly bool) func(*fakeupstream.Request) fakeupstream.Reply {
	return func(r *fakeupstream.Request) fakeupstream.Reply {
		body := string(mustJSON(r.Body))
		if r.Body["model"] == "backup-model" || (!fallbackOnly && strings.Contains(body, "Context from the operator")) {
			return fakeupstream.Reply{Text: wellText}
		}
		return fakeupstream.Reply{Text: refusalText}
	}
}

func decisions(t *testing.T, recs []*demur.Record) (kinds []string, actions []string) {
	t.Helper()
	for _, r := range recs {
		switch r.Kind {
		case demur.RecVerdict:
			var p demur.VerdictPayload
			json.Unmarshal(r.Payload, &p)
			kinds = append(kinds, string(p.Verdict.Kind))
		case demur.RecDecision:
			var p demur.DecisionPayload
			json.Unmarshal(r.Payload, &p)
			actions = append(actions, string(p.Decision.Action))
		}
	}
	return kinds, actions
}

func TestEnforceReframe(t *testing.T) {
	for _, stream := range []bool{false, true} {
		r := newRig(t, Config{Mode: ModeEnforce}, refuseUntil(false))
		c := r.openai()
		var hr *http.Response
		var got string
		if stream {
			s := c.Chat.Completions.NewStreaming(context.Background(), chatParams, option.WithResponseInto(&hr))
			acc := oai.ChatCompletionAccumulator{}
			for s.Next() {
				acc.AddChunk(s.Current())
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			got = acc.Choices[0].Message.Content
		} else {
			cc, err := c.Chat.Completions.New(context.Background(), chatParams, option.WithResponseInto(&hr))
			if err != nil {
				t.Fatal(err)
			}
			got = cc.Choices[0].Message.Content
		}
		if got != wellText || hr.Header.Get(HeaderVerdict) != "comply" || hr.Header.Get(HeaderDecision) != "accept" {
			t.Fatalf("stream=%v: client saw %q, verdict %s", stream, got, hr.Header.Get(HeaderVerdict))
		}
		reqs := r.up.Requests()
		if len(reqs) != 2 {
			t.Fatalf("%d upstream calls", len(reqs))
		}
		msgs := reqs[1].Body["messages"].([]any)
		if len(msgs) != 3 || msgs[1].(map[string]any)["role"] != "system" || msgs[2].(map[string]any)["content"] != "Write about wells." {
			t.Fatalf("reframed request %v", msgs)
		}
		kinds, actions := decisions(t, r.records(t))
		if strings.Join(kinds, ",") != "refuse,comply" || strings.Join(actions, ",") != "reframe,accept" {
			t.Fatalf("stream=%v: verdicts %v decisions %v", stream, kinds, actions)
		}
	}
}

func TestEnforceFallbackModel(t *testing.T) {
	r := newRig(t, Config{Mode: ModeEnforce, FallbackModel: "backup-model"}, refuseUntil(true))
	c := r.openai()
	cc, err := c.Chat.Completions.New(context.Background(), chatParams)
	if err != nil {
		t.Fatal(err)
	}
	if cc.Choices[0].Message.Content != wellText {
		t.Fatalf("client saw %q", cc.Choices[0].Message.Content)
	}
	reqs := r.up.Requests()
	if len(reqs) != 3 || reqs[2].Body["model"] != "backup-model" {
		t.Fatalf("%d calls; last model %v", len(reqs), reqs[len(reqs)-1].Body["model"])
	}
	_, actions := decisions(t, r.records(t))
	if strings.Join(actions, ",") != "reframe,reassign,accept" {
		t.Fatalf("decisions %v", actions)
	}
}

func TestEnforceGivesUpAfterMaxRetries(t *testing.T) {
	r := newRig(t, Config{Mode: ModeEnforce, MaxRetries: 1}, refuseUntil(true))
	var hr *http.Response
	c := r.openai()
	cc, err := c.Chat.Completions.New(context.Background(), chatParams, option.WithResponseInto(&hr))
	if err != nil {
		t.Fatal(err)
	}
	// The refusal reaches the client, marked as such; it is never hidden.
	if cc.Choices[0].Message.Content != refusalText || hr.Header.Get(HeaderVerdict) != "refuse" || r.up.Count() != 2 {
		t.Fatalf("client saw %q verdict %s after %d calls", cc.Choices[0].Message.Content, hr.Header.Get(HeaderVerdict), r.up.Count())
	}
}

func TestChaosMode(t *testing.T) {
	cfg := Config{Chaos: &chaos.Config{Schedule: []chaos.Scheduled{{Turn: 1, Kind: chaos.RateLimited},
		{Turn: 2, Kind: chaos.OpenAIRefusal}, {Turn: 3, Kind: chaos.StreamCut}, {Turn: 4, Kind: chaos.PartialRefusal}}}}
	r := newRig(t, cfg, func(*fakeupstream.Request) fakeupstream.Reply {
		return fakeupstream.Reply{Text: strings.Repeat(wellText+" ", 10)}
	})
	c := r.openai()
	ctx := context.Background()
	var ae *oai.Error
	if _, err := c.Chat.Completions.New(ctx, chatParams); !errors.As(err, &ae) || ae.StatusCode != 429 || ae.Response.Header.Get(HeaderInjected) != "http_429" {
		t.Fatalf("turn 1: %v", err)
	}
	cc, err := c.Chat.Completions.New(ctx, chatParams)
	if err != nil || cc.Choices[0].Message.Refusal == "" {
		t.Fatalf("turn 2: %v %+v", err, cc)
	}
	if _, err := c.Chat.Completions.New(ctx, chatParams); err == nil {
		t.Fatal("turn 3: a cut response decoded")
	}
	s := c.Chat.Completions.NewStreaming(ctx, chatParams)
	acc := oai.ChatCompletionAccumulator{}
	for s.Next() {
		acc.AddChunk(s.Current())
	}
	if err := s.Err(); err != nil || !strings.Contains(acc.Choices[0].Message.Content, "won't continue") &&
		!strings.Contains(acc.Choices[0].Message.Content, "willing") && !strings.Contains(acc.Choices[0].Message.Content, "stop here") {
		t.Fatalf("turn 4: %v %q", err, acc.Choices[0].Message.Content)
	}
	var injected []string
	var sources []string
	for _, rec := range r.records(t) {
		switch rec.Kind {
		case demur.RecTurn:
			var p demur.TurnPayload
			json.Unmarshal(rec.Payload, &p)
			injected = append(injected, p.Injected)
		case demur.RecVerdict:
			var p demur.VerdictPayload
			json.Unmarshal(rec.Payload, &p)
			sources = append(sources, string(p.Verdict.Source))
		}
	}
	if strings.Join(injected, ",") != "http_429,openai_refusal,stream_cut,partial_refusal" || strings.Join(sources, ",") != "injected,injected" {
		t.Fatalf("injected %v sources %v", injected, sources)
	}
	// Faults never reached the upstream; refusals were shaped from real answers.
	if r.up.Count() != 2 {
		t.Fatalf("%d upstream calls", r.up.Count())
	}
}
