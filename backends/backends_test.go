package backends

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/anthropic"
	"github.com/demurhq/demur/chaos"
	"github.com/demurhq/demur/internal/fakeupstream"
	"github.com/demurhq/demur/job"
	"github.com/demurhq/demur/openai"
	"github.com/demurhq/demur/sim"
)

var req = &demur.Request{Model: "label", MaxTokens: 200, Messages: []demur.Message{{Role: demur.RoleUser, Content: "Write about wells."}}}

func TestNewEachBackend(t *testing.T) {
	up := fakeupstream.New(func(*fakeupstream.Request) fakeupstream.Reply { return fakeupstream.Reply{Text: "Wells reach water."} })
	defer up.Close()
	t.Setenv("DEMUR_TEST_BK", "sk-backends-test-key")
	ctx := context.Background()
	cases := []struct {
		g    job.AgentGroup
		want any
	}{
		{job.AgentGroup{Backend: "sim", Profile: "gpt-4-class"}, &sim.Agent{}},
		{job.AgentGroup{Backend: "openai", Model: "m", BaseURL: up.URL + "/v1", APIKeyEnv: "DEMUR_TEST_BK"}, &openai.Backend{}},
		{job.AgentGroup{Backend: "anthropic", Profile: "claude-x", BaseURL: up.URL, APIKeyEnv: "DEMUR_TEST_BK"}, &anthropic.Backend{}},
	}
	for _, c := range cases {
		b, err := New(ctx, c.g, "agent-01", 3)
		if err != nil {
			t.Fatalf("%s: %v", c.g.Backend, err)
		}
		if fmt.Sprintf("%T", b) != fmt.Sprintf("%T", c.want) {
			t.Fatalf("%s: built %T", c.g.Backend, b)
		}
		resp, err := b.Generate(ctx, req)
		if err != nil || resp.Output == "" {
			t.Fatalf("%s: %v %+v", c.g.Backend, err, resp)
		}
	}
	for _, r := range up.Requests() {
		if r.Header.Get("Authorization") != "Bearer sk-backends-test-key" {
			t.Errorf("%s: auth %q", r.Path, r.Header.Get("Authorization"))
		}
	}
	if Model(cases[0].g) != "gpt-4-class" || Model(cases[1].g) != "m" || Model(cases[2].g) != "claude-x" {
		t.Error("Model names")
	}
}

func TestNewWrapsChaos(t *testing.T) {
	g := job.AgentGroup{Backend: "sim", Profile: "gpt-4-class", Chaos: &job.Chaos{
		Schedule: []job.ChaosEvent{{Turn: 1, Inject: "http_429"}, {Turn: 2, Inject: "text_refusal"}}}}
	b, err := New(context.Background(), g, "agent-01", 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.(*chaos.Backend); !ok {
		t.Fatalf("built %T", b)
	}
	_, err = b.Generate(context.Background(), req)
	var f *chaos.Fault
	if !errors.As(err, &f) || f.Kind != chaos.RateLimited || f.RetryAfter.Seconds() != 1 {
		t.Fatalf("turn 1: %v", err)
	}
	resp, err := b.Generate(context.Background(), req)
	if err != nil || resp.Injected != "text_refusal" {
		t.Fatalf("turn 2: %v %+v", err, resp)
	}
}

func TestChaosConfigSeed(t *testing.T) {
	cc, err := ChaosConfig(&job.Chaos{RefusalRate: 0.2, RetryAfter: "250ms", Faults: []string{"http_500"}}, 9)
	if err != nil || cc.Seed != 9 || cc.RetryAfter.Milliseconds() != 250 || cc.Faults[0] != chaos.ServerError {
		t.Fatalf("%+v %v", cc, err)
	}
	cc, _ = ChaosConfig(&job.Chaos{Seed: 4}, 9)
	if cc.Seed != 4 {
		t.Fatal("own seed not kept")
	}
	if _, err := ChaosConfig(&job.Chaos{Refusals: []string{"http_500"}}, 1); err == nil {
		t.Fatal("a fault accepted as a refusal kind")
	}
}

const spec = `name: v
document: {title: T, chapters: 1, sections_per_chapter: 1, words_per_section: 100}
agents:
  - {count: 1, backend: sim, profile: gpt-4-class}
  - count: 1
    backend: openai
    model: gpt-4o
    chaos: {refusals: [text_refusal]}
`

func TestValidate(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "")
	cases := []struct{ old, new, want string }{
		{"", "", "v.yaml:5:10: openai: https://api.openai.com/v1 needs an API key"},
		{"profile: gpt-4-class", "profile: gpt-9", "v.yaml:4:39: sim: unknown profile"},
		{"backend: sim", "backend: llama", "v.yaml:4:25: unknown backend \"llama\""},
		{"[text_refusal]", "[http_500]", "is not a refusal kind"},
		{"model: gpt-4o", "model: gpt-4o\n    api_key_file: /nonexistent/key", "read API key file"},
	}
	for _, c := range cases {
		src := strings.Replace(spec, c.old, c.new, 1)
		s, err := job.Parse("v.yaml", []byte(src))
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		err = Validate(s)
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, job.ErrInvalid) {
			t.Errorf("%q: got %v, want %q", c.new, err, c.want)
		}
	}
	t.Setenv("OPENAI_API_KEY", "sk-x")
	s, _ := job.Parse("v.yaml", []byte(spec))
	if err := Validate(s); err != nil {
		t.Fatalf("good spec: %v", err)
	}
}
