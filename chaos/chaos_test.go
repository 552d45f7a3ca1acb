package chaos

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/demurhq/demur"
)

type echo struct{ calls int }

func (e *echo) Generate(_ context.Context, req *demur.Request) (*demur.Response, error) {
	e.calls++
	text := strings.Repeat("The well reaches the water table below the town. ", 40)
	return &demur.Response{Model: req.Model, Output: text, FinishReason: "stop", Usage: demur.Usage{CompletionTokens: 400}}, nil
}

var req = &demur.Request{Model: "m", Messages: []demur.Message{{Role: demur.RoleUser, Content: "write"}}}

func sequence(cfg Config, agent string, n int) []Kind {
	in := NewInjector(cfg, agent)
	out := make([]Kind, n)
	for i := range out {
		out[i] = in.Next()
	}
	return out
}

func TestDeterministicPerSeedAndAgent(t *testing.T) {
	cfg := Config{Seed: 7, RefusalRate: 0.2, FaultRate: 0.1}
	a, b := sequence(cfg, "agent-01", 200), sequence(cfg, "agent-01", 200)
	if strings.Join(kinds(a), ",") != strings.Join(kinds(b), ",") {
		t.Fatal("same seed and agent gave different sequences")
	}
	if strings.Join(kinds(a), ",") == strings.Join(kinds(sequence(cfg, "agent-02", 200)), ",") {
		t.Fatal("two agents got the same sequence")
	}
	cfg.Seed = 8
	if strings.Join(kinds(a), ",") == strings.Join(kinds(sequence(cfg, "agent-01", 200)), ",") {
		t.Fatal("two seeds gave the same sequence")
	}
}

func kinds(ks []Kind) []string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return s
}

func TestRates(t *testing.T) {
	const n = 20000
	seq := sequence(Config{Seed: 1, RefusalRate: 0.2, FaultRate: 0.1}, "a", n)
	var ref, fault int
	seen := map[Kind]bool{}
	for _, k := range seq {
		switch {
		case k == "":
		case k.IsFault():
			fault++
		default:
			ref++
		}
		seen[k] = true
	}
	if math.Abs(float64(ref)/n-0.2) > 0.015 || math.Abs(float64(fault)/n-0.1) > 0.01 {
		t.Fatalf("refusals %.3f faults %.3f, want 0.2 and 0.1", float64(ref)/n, float64(fault)/n)
	}
	for _, k := range append(append([]Kind{}, RefusalKinds...), FaultKinds...) {
		if !seen[k] {
			t.Errorf("kind %s never drawn", k)
		}
	}
}

func TestScheduleAndAfterTokens(t *testing.T) {
	cfg := Config{Seed: 3, RefusalRate: 1, AfterTokens: 1000, Refusals: []Kind{TextRefusal},
		Schedule: []Scheduled{{Turn: 2, Kind: RateLimited}}}
	b := Wrap(&echo{}, cfg, "a")
	var got []string
	for range 5 {
		resp, err := b.Generate(context.Background(), req)
		switch {
		case err != nil:
			got = append(got, "err")
		case resp.Injected != "":
			got = append(got, resp.Injected)
		default:
			got = append(got, "ok")
		}
	}
	// 400 tokens a turn: the gate opens after the third real turn (1200).
	want := "ok,err,ok,ok,text_refusal"
	if strings.Join(got, ",") != want {
		t.Fatalf("got %s, want %s", strings.Join(got, ","), want)
	}
}

func TestShapes(t *testing.T) {
	for _, k := range RefusalKinds {
		inner := &echo{}
		b := Wrap(inner, Config{Schedule: []Scheduled{{Turn: 1, Kind: k}}}, "a")
		resp, err := b.Generate(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Injected != string(k) {
			t.Errorf("%s: Injected = %q", k, resp.Injected)
		}
		real, _ := (&echo{}).Generate(context.Background(), req)
		switch k {
		case OpenAIRefusal:
			if resp.ProviderRefusal == "" || resp.Output != "" || inner.calls != 0 {
				t.Errorf("%s: %+v (inner calls %d)", k, resp, inner.calls)
			}
		case AnthropicRefusal:
			if resp.FinishReason != "refusal" || resp.StopCategory == "" || resp.StopExplanation == "" {
				t.Errorf("%s: %+v", k, resp)
			}
		case ContentFilter:
			if resp.FinishReason != "content_filter" || len(resp.Output) >= len(real.Output) || resp.Output == "" {
				t.Errorf("%s: finish %s, %d of %d bytes", k, resp.FinishReason, len(resp.Output), len(real.Output))
			}
		case PartialRefusal:
			if !strings.HasPrefix(real.Output, resp.Output[:40]) || len(resp.Output) >= len(real.Output) {
				t.Errorf("%s: %q", k, resp.Output)
			}
		case Degraded, TextRefusal:
			if resp.Output == "" || resp.Output == real.Output {
				t.Errorf("%s: %q", k, resp.Output)
			}
		}
	}
}

func TestFaults(t *testing.T) {
	for _, k := range FaultKinds {
		b := Wrap(&echo{}, Config{Schedule: []Scheduled{{Turn: 1, Kind: k}}}, "a")
		_, err := b.Generate(context.Background(), req)
		var f *Fault
		if !errors.As(err, &f) || f.Kind != k || !strings.Contains(err.Error(), "source: injected") {
			t.Errorf("%s: err %v", k, err)
		}
		if k == RateLimited && (f.Status != 429 || f.RetryAfter <= 0) {
			t.Errorf("429 fault %+v", f)
		}
	}
}

func TestValidate(t *testing.T) {
	bad := []Config{
		{RefusalRate: 1.2},
		{RefusalRate: 0.6, FaultRate: 0.6},
		{Refusals: []Kind{RateLimited}},
		{Faults: []Kind{TextRefusal}},
		{Schedule: []Scheduled{{Turn: 0, Kind: Degraded}}},
	}
	for _, c := range bad {
		if c.Validate() == nil {
			t.Errorf("accepted %+v", c)
		}
	}
	if _, err := ParseKind("nonsense"); err == nil {
		t.Error("ParseKind accepted nonsense")
	}
	good := Config{RefusalRate: 0.2, FaultRate: 0.1, Refusals: []Kind{TextRefusal}, Faults: []Kind{ServerError}}
	if err := good.Validate(); err != nil {
		t.Error(err)
	}
}
