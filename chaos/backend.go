package chaos

import (
	"context"
	"strings"
	"time"

	"github.com/demurhq/demur"
)

// Backend wraps a demur.Backend and injects what its Injector draws.
// Refusals that replace the work (provider refusals, text refusals) skip
// the inner call, as a real refusal spends no output; the ones that shape
// real output (content filter, partial, degraded) call it and cut or bend
// its text. Faults that happen before generation (429, 500, timeout) skip
// the inner call; those that happen after (stream cut, malformed JSON) make
// it and lose its output.
type Backend struct {
	inner demur.Backend
	in    *Injector
}

// Wrap returns inner with injections drawn for agent from cfg.
func Wrap(inner demur.Backend, cfg Config, agent string) *Backend {
	return &Backend{inner: inner, in: NewInjector(cfg, agent)}
}

// Injector returns the wrapper's injector, e.g. to read its counts.
func (b *Backend) Injector() *Injector { return b.in }

// Generate implements demur.Backend.
func (b *Backend) Generate(ctx context.Context, req *demur.Request) (*demur.Response, error) {
	d := b.in.Draw()
	k := d.Kind
	switch k {
	case "":
		resp, err := b.inner.Generate(ctx, req)
		if err == nil {
			b.in.Observe(resp.Usage.CompletionTokens)
		}
		return resp, err
	case RateLimited:
		return nil, &Fault{Kind: k, Status: 429, RetryAfter: b.in.cfg.RetryAfter}
	case ServerError:
		return nil, &Fault{Kind: k, Status: 500}
	case Timeout:
		if h := b.in.cfg.Hang; h > 0 {
			t := time.NewTimer(h)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
		return nil, &Fault{Kind: k}
	case OpenAIRefusal, AnthropicRefusal, TextRefusal:
		r := refusalResponse(k, req, d.Variant)
		b.in.Observe(r.Usage.CompletionTokens)
		return r, nil
	}
	resp, err := b.inner.Generate(ctx, req)
	if err != nil {
		return nil, err
	}
	b.in.Observe(resp.Usage.CompletionTokens)
	if k.IsFault() {
		return nil, &Fault{Kind: k}
	}
	out := *resp
	Shape(&out, k, d.Variant)
	return &out, nil
}

// Refusal phrasings, varied like real ones: different openings, reasons
// and degrees of politeness.
var textRefusals = []string{
	"I'm sorry, but I can't continue with this. Writing yet another section in the same vein would only repeat what has already been said, and I don't think it serves the reader.",
	"I won't write this section. The task has become repetitive to the point where I can't produce anything meaningful for it.",
	"I have to decline this one. I don't believe continuing adds value, and I'd rather not generate filler.",
	"Unfortunately I'm not able to help with this request.",
	"I'm going to stop here. I can't in good conscience keep producing this material.",
	"I must respectfully decline to write this part; it falls outside what I'm willing to do.",
}

var partialCloses = []string{
	"I've covered the first part of this section, but I won't continue with the rest of it.",
	"That is as far as I'm willing to take this section; I'll leave the remaining parts to someone else.",
	"I'll stop here. I'm not comfortable writing the remaining subsections.",
}

var providerRefusals = []string{
	"I'm sorry, but I can't help with that.",
	"I can't assist with that request.",
}

var stopCategories = []struct{ category, explanation string }{
	{"general_harms", "The request was declined because continuing could produce content that violates the usage policy."},
	{"cyber", "The request resembles content the model is not permitted to generate."},
}

func refusalResponse(k Kind, req *demur.Request, pick int) *demur.Response {
	r := &demur.Response{Model: req.Model, Injected: string(k), FinishReason: "stop"}
	switch k {
	case OpenAIRefusal:
		r.ProviderRefusal = providerRefusals[pick%len(providerRefusals)]
		r.Usage.CompletionTokens = tokens(r.ProviderRefusal)
	case AnthropicRefusal:
		c := stopCategories[pick%len(stopCategories)]
		r.FinishReason, r.StopCategory, r.StopExplanation = "refusal", c.category, c.explanation
	default:
		r.Output = textRefusals[pick%len(textRefusals)]
		r.Usage.CompletionTokens = tokens(r.Output)
	}
	r.Usage.PromptTokens = promptTokens(req)
	return r
}

// Shape bends a real response r into injection k: a content-filter cut, a
// partial refusal or degraded output. Other kinds leave r's text alone.
// It sets r.Injected.
func Shape(r *demur.Response, k Kind, pick int) {
	r.Injected = string(k)
	switch k {
	case ContentFilter:
		r.Output = cutWords(r.Output, 0.15+0.4*float64(pick%100)/100)
		r.FinishReason = "content_filter"
	case PartialRefusal:
		r.Output = cutWords(r.Output, 0.3+0.2*float64(pick%100)/100) + "\n\n" + partialCloses[pick%len(partialCloses)]
		r.FinishReason = "stop"
	case Degraded:
		r.Output = degrade(r.Output)
		r.FinishReason = "stop"
	case OpenAIRefusal, AnthropicRefusal, TextRefusal:
		rr := refusalResponse(k, &demur.Request{Model: r.Model}, pick)
		r.Output, r.ProviderRefusal, r.FinishReason = rr.Output, rr.ProviderRefusal, rr.FinishReason
		r.StopCategory, r.StopExplanation = rr.StopCategory, rr.StopExplanation
	}
	r.Usage.CompletionTokens = tokens(r.Output) + tokens(r.ProviderRefusal)
}

// cutWords keeps the first share of s's words.
func cutWords(s string, share float64) string {
	words := strings.Fields(s)
	n := max(1, int(float64(len(words))*share))
	if n >= len(words) {
		return s
	}
	return strings.Join(words[:n], " ")
}

// degrade keeps the first sentence and repeats it, with meta-commentary: the
// shape of collapsed work (short, repetitive, talking about the task).
func degrade(s string) string {
	first := s
	if i := strings.IndexAny(s, ".!?"); i > 0 {
		first = s[:i+1]
	}
	first = strings.TrimSpace(first)
	if len(first) > 300 {
		first = first[:300]
	}
	var b strings.Builder
	b.WriteString("As noted before, this section covers the same ground as the previous ones. ")
	for range 6 {
		b.WriteString(first)
		b.WriteByte(' ')
	}
	b.WriteString("As noted before, there is little more to add here.")
	return b.String()
}

// tokens estimates a token count from words (4 tokens per 3 words), the
// same rule of thumb the simulator uses for prose.
func tokens(s string) int { return (len(strings.Fields(s))*4 + 2) / 3 }

func promptTokens(req *demur.Request) int {
	n := 0
	for _, m := range req.Messages {
		n += tokens(m.Content)
	}
	return n
}

var _ demur.Backend = (*Backend)(nil)
