// Package openai is a demur.Backend for the OpenAI Chat Completions API and
// every server that speaks it (OpenAI, vLLM, Ollama, llama.cpp, and demur's
// own proxy), built on the official openai-go SDK.
//
// The SDK's own retries are turned off: internal/llmhttp retries with
// backoff and jitter that honour Retry-After, bounds each attempt, and keeps
// one circuit breaker per endpoint shared by every agent of the process.
// Every refusal signal the API has is carried into the demur.Response for
// the detector: message.refusal (and its streamed deltas) and
// finish_reason "content_filter".
package openai

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	oai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/internal/llmhttp"
)

// DefaultBaseURL is OpenAI's API.
const DefaultBaseURL = "https://api.openai.com/v1"

// DefaultKeyEnv is the environment variable the key is read from by default.
const DefaultKeyEnv = "OPENAI_API_KEY"

// InjectedHeader is the response header a chaos layer (demur proxy in chaos
// mode, or a test upstream) sets on a response it fabricated; its value
// becomes demur.Response.Injected.
const InjectedHeader = "X-Demur-Injected"

// Config configures one backend value.
type Config struct {
	// BaseURL is the API root including /v1; empty means DefaultBaseURL.
	BaseURL string
	// Key authenticates; it may be empty for local servers that need none.
	Key llmhttp.Key
	// Model is used when the request names none.
	Model string
	// MaxTokens is used when the request sets none; 0 leaves it to the server.
	MaxTokens int
	// Stream uses server-sent events; the response is assembled before
	// Generate returns, so only time-to-first-byte behaviour changes.
	Stream bool
	// Retry bounds attempts, backoff and the per-attempt timeout.
	Retry llmhttp.Retry
	// HTTPClient overrides the transport (tests, proxies); nil means a
	// default client.
	HTTPClient *http.Client
	// NoBreaker turns off the shared per-endpoint circuit breaker.
	NoBreaker bool
}

// Backend talks to one OpenAI-compatible endpoint. It is safe for
// concurrent use.
type Backend struct {
	cfg    Config
	client oai.Client
	br     *llmhttp.Breaker
	// noLogprobs is set once the server rejected a logprobs request, so the
	// backend stops asking ("requested where the server supports them").
	noLogprobs atomic.Bool
}

// New returns a backend for cfg.
func New(cfg Config) (*Backend, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("openai: base URL %q: want http(s)://host/…", cfg.BaseURL)
	}
	if cfg.Key.Empty() && isOpenAI(u) {
		return nil, fmt.Errorf("openai: %s needs an API key (set %s or api_key_file)", cfg.BaseURL, DefaultKeyEnv)
	}
	cfg.Retry = cfg.Retry.Defaults()
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	opts := []option.RequestOption{
		option.WithBaseURL(strings.TrimRight(cfg.BaseURL, "/") + "/"),
		option.WithHTTPClient(hc),
		option.WithMaxRetries(0),
		// Always set, even empty, so the SDK does not fall back on
		// OPENAI_API_KEY behind the configuration's back.
		option.WithAPIKey(cfg.Key.Secret()),
	}
	b := &Backend{cfg: cfg, client: oai.NewClient(opts...)}
	if !cfg.NoBreaker {
		b.br = llmhttp.BreakerFor("openai " + cfg.BaseURL)
	}
	return b, nil
}

func isOpenAI(u *url.URL) bool { return strings.HasSuffix(u.Hostname(), "openai.com") }

// Model returns the configured model name.
func (b *Backend) Model() string { return b.cfg.Model }

// Generate implements demur.Backend.
func (b *Backend) Generate(ctx context.Context, req *demur.Request) (*demur.Response, error) {
	resp, err := llmhttp.Do(ctx, b.cfg.Retry, b.br, func(ctx context.Context) (*demur.Response, error) {
		return b.once(ctx, req)
	}, classify)
	if err != nil {
		return nil, b.cfg.Key.Redact(fmt.Errorf("openai %s: %w", b.cfg.BaseURL, err))
	}
	return resp, nil
}

// once makes one attempt, dropping logprobs once if the server rejects them.
func (b *Backend) once(ctx context.Context, req *demur.Request) (*demur.Response, error) {
	lp := req.Logprobs && !b.noLogprobs.Load()
	resp, err := b.call(ctx, req, lp)
	if err != nil && lp && rejectsLogprobs(err) {
		b.noLogprobs.Store(true)
		return b.call(ctx, req, false)
	}
	return resp, err
}

func rejectsLogprobs(err error) bool {
	var ae *oai.Error
	return errors.As(err, &ae) && ae.StatusCode == http.StatusBadRequest &&
		strings.Contains(strings.ToLower(ae.Message+ae.Param+ae.RawJSON()), "logprob")
}

// params maps a demur request onto the Chat Completions body.
func (b *Backend) params(req *demur.Request, logprobs bool) oai.ChatCompletionNewParams {
	model := req.Model
	if b.cfg.Model != "" {
		// The spec's model wins: a request's Model is the agent's label,
		// which for HTTP backends is the configured model anyway.
		model = b.cfg.Model
	}
	p := oai.ChatCompletionNewParams{Model: model}
	for _, m := range llmhttp.Messages(req) {
		switch m.Role {
		case demur.RoleSystem:
			p.Messages = append(p.Messages, oai.SystemMessage(m.Content))
		case demur.RoleAssistant:
			p.Messages = append(p.Messages, oai.AssistantMessage(m.Content))
		default:
			p.Messages = append(p.Messages, oai.UserMessage(m.Content))
		}
	}
	maxTok := req.MaxTokens
	if b.cfg.MaxTokens > 0 && (maxTok == 0 || maxTok > b.cfg.MaxTokens) {
		maxTok = b.cfg.MaxTokens
	}
	if maxTok > 0 {
		// OpenAI's newer models reject max_tokens; the compatible servers
		// (vLLM, Ollama, llama.cpp) all read it.
		if u, _ := url.Parse(b.cfg.BaseURL); u != nil && isOpenAI(u) {
			p.MaxCompletionTokens = oai.Int(int64(maxTok))
		} else {
			p.MaxTokens = oai.Int(int64(maxTok))
		}
	}
	if logprobs {
		p.Logprobs = oai.Bool(true)
	}
	return p
}

func (b *Backend) call(ctx context.Context, req *demur.Request, logprobs bool) (*demur.Response, error) {
	p := b.params(req, logprobs)
	if b.cfg.Stream {
		return b.stream(ctx, p)
	}
	var hr *http.Response
	cc, err := b.client.Chat.Completions.New(ctx, p, option.WithResponseInto(&hr))
	if err != nil {
		return nil, err
	}
	if len(cc.Choices) == 0 {
		return nil, errors.New("response has no choices")
	}
	ch := cc.Choices[0]
	out := &demur.Response{
		Model:           cc.Model,
		Output:          ch.Message.Content,
		FinishReason:    ch.FinishReason,
		ProviderRefusal: ch.Message.Refusal,
		Usage:           demur.Usage{PromptTokens: int(cc.Usage.PromptTokens), CompletionTokens: int(cc.Usage.CompletionTokens)},
	}
	for _, t := range ch.Logprobs.Content {
		out.Logprobs = append(out.Logprobs, float32(t.Logprob))
	}
	if hr != nil {
		out.Injected = hr.Header.Get(InjectedHeader)
	}
	return out, nil
}

// errStreamCut is a stream that ended without a finish reason: the server
// or the network dropped it part-way, so the whole request is retried.
var errStreamCut = errors.New("stream ended before a finish_reason")

func (b *Backend) stream(ctx context.Context, p oai.ChatCompletionNewParams) (*demur.Response, error) {
	p.StreamOptions = oai.ChatCompletionStreamOptionsParam{IncludeUsage: oai.Bool(true)}
	var hr *http.Response
	s := b.client.Chat.Completions.NewStreaming(ctx, p, option.WithResponseInto(&hr))
	defer s.Close()
	out := &demur.Response{}
	var text, refusal strings.Builder
	for s.Next() {
		c := s.Current()
		if c.Model != "" {
			out.Model = c.Model
		}
		if c.Usage.CompletionTokens > 0 || c.Usage.PromptTokens > 0 {
			out.Usage = demur.Usage{PromptTokens: int(c.Usage.PromptTokens), CompletionTokens: int(c.Usage.CompletionTokens)}
		}
		for _, ch := range c.Choices {
			if ch.Index != 0 {
				continue
			}
			text.WriteString(ch.Delta.Content)
			refusal.WriteString(ch.Delta.Refusal)
			if ch.FinishReason != "" {
				out.FinishReason = ch.FinishReason
			}
			for _, t := range ch.Logprobs.Content {
				out.Logprobs = append(out.Logprobs, float32(t.Logprob))
			}
		}
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	if out.FinishReason == "" {
		return nil, errStreamCut
	}
	out.Output, out.ProviderRefusal = text.String(), refusal.String()
	if hr != nil {
		out.Injected = hr.Header.Get(InjectedHeader)
	}
	return out, nil
}

// classify tells the retry loop which failures are transient.
func classify(err error) llmhttp.Failure {
	var ae *oai.Error
	if errors.As(err, &ae) {
		var h http.Header
		if ae.Response != nil {
			h = ae.Response.Header
		}
		return llmhttp.Classify(ae.StatusCode, h)
	}
	if errors.Is(err, context.Canceled) {
		return llmhttp.Failure{}
	}
	// No HTTP status: a transport error, a cut stream, or a body that did
	// not decode (a proxy's error page, a truncated reply). All of these
	// are worth another try; a deterministic server bug runs out of
	// attempts soon enough.
	return llmhttp.Failure{Retryable: true}
}

// ensure Backend satisfies demur.Backend.
var _ demur.Backend = (*Backend)(nil)
