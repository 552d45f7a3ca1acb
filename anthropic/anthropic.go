// Package anthropic is a demur.Backend for Anthropic's Messages API, built
// on the official anthropic-sdk-go.
//
// Like package openai it turns the SDK's retries off in favour of
// internal/llmhttp (backoff with jitter honouring Retry-After, a timeout per
// attempt, a circuit breaker per endpoint), and it carries the provider's
// refusal signal into the response: stop_reason "refusal" becomes
// FinishReason "refusal", and stop_details' category and explanation become
// StopCategory and StopExplanation. The Messages API has no
// log-probabilities, so none are requested.
package anthropic

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	sdk "github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/internal/llmhttp"
)

// DefaultBaseURL is Anthropic's API root (the SDK appends /v1/messages).
const DefaultBaseURL = "https://api.anthropic.com"

// DefaultKeyEnv is the environment variable the key is read from by default.
const DefaultKeyEnv = "ANTHROPIC_API_KEY"

// DefaultMaxTokens fills the API's required max_tokens when neither the
// request nor the configuration sets one.
const DefaultMaxTokens = 4096

// InjectedHeader marks a response a chaos layer fabricated; its value
// becomes demur.Response.Injected.
const InjectedHeader = "X-Demur-Injected"

// Config configures one backend value.
type Config struct {
	// BaseURL is the API root without /v1; empty means DefaultBaseURL.
	BaseURL string
	// Key authenticates (the SDK sends it as a bearer token).
	Key llmhttp.Key
	// Model is used when set; it wins over the request's model label.
	Model string
	// MaxTokens caps the output (default DefaultMaxTokens).
	MaxTokens int
	// Stream uses server-sent events, assembled before Generate returns.
	Stream bool
	// Retry bounds attempts, backoff and the per-attempt timeout.
	Retry llmhttp.Retry
	// HTTPClient overrides the transport; nil means a default client.
	HTTPClient *http.Client
	// NoBreaker turns off the shared per-endpoint circuit breaker.
	NoBreaker bool
}

// Backend talks to one Messages endpoint. It is safe for concurrent use.
type Backend struct {
	cfg    Config
	client sdk.Client
	br     *llmhttp.Breaker
}

// New returns a backend for cfg.
func New(cfg Config) (*Backend, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("anthropic: base URL %q: want http(s)://host", cfg.BaseURL)
	}
	if cfg.Key.Empty() && strings.HasSuffix(u.Hostname(), "anthropic.com") {
		return nil, fmt.Errorf("anthropic: %s needs an API key (set %s or api_key_file)", cfg.BaseURL, DefaultKeyEnv)
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = DefaultMaxTokens
	}
	cfg.Retry = cfg.Retry.Defaults()
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	opts := []option.RequestOption{
		// Credentials come from the job spec only, never from ambient
		// ANTHROPIC_* variables or profile files the user did not name.
		option.WithoutEnvironmentDefaults(),
		option.WithBaseURL(strings.TrimRight(cfg.BaseURL, "/") + "/"),
		option.WithHTTPClient(hc),
		option.WithMaxRetries(0),
	}
	if !cfg.Key.Empty() {
		opts = append(opts, option.WithAPIKey(cfg.Key.Secret()))
	}
	b := &Backend{cfg: cfg, client: sdk.NewClient(opts...)}
	if !cfg.NoBreaker {
		b.br = llmhttp.BreakerFor("anthropic " + cfg.BaseURL)
	}
	return b, nil
}

// Model returns the configured model name.
func (b *Backend) Model() string { return b.cfg.Model }

// Generate implements demur.Backend.
func (b *Backend) Generate(ctx context.Context, req *demur.Request) (*demur.Response, error) {
	resp, err := llmhttp.Do(ctx, b.cfg.Retry, b.br, func(ctx context.Context) (*demur.Response, error) {
		return b.call(ctx, req)
	}, classify)
	if err != nil {
		return nil, b.cfg.Key.Redact(fmt.Errorf("anthropic %s: %w", b.cfg.BaseURL, err))
	}
	return resp, nil
}

// params maps a demur request onto the Messages body: system messages
// become the system blocks, the rest alternate user and assistant.
func (b *Backend) params(req *demur.Request) sdk.MessageNewParams {
	model := req.Model
	if b.cfg.Model != "" {
		model = b.cfg.Model
	}
	maxTok := b.cfg.MaxTokens
	if req.MaxTokens > 0 && req.MaxTokens < maxTok {
		maxTok = req.MaxTokens
	}
	p := sdk.MessageNewParams{Model: sdk.Model(model), MaxTokens: int64(maxTok)}
	for _, m := range llmhttp.Messages(req) {
		switch m.Role {
		case demur.RoleSystem:
			p.System = append(p.System, sdk.TextBlockParam{Text: m.Content})
		case demur.RoleAssistant:
			p.Messages = append(p.Messages, sdk.NewAssistantMessage(sdk.NewTextBlock(m.Content)))
		default:
			p.Messages = append(p.Messages, sdk.NewUserMessage(sdk.NewTextBlock(m.Content)))
		}
	}
	return p
}

func (b *Backend) call(ctx context.Context, req *demur.Request) (*demur.Response, error) {
	p := b.params(req)
	var hr *http.Response
	var msg sdk.Message
	if b.cfg.Stream {
		s := b.client.Messages.NewStreaming(ctx, p, option.WithResponseInto(&hr))
		defer s.Close()
		for s.Next() {
			if err := msg.Accumulate(s.Current()); err != nil {
				return nil, fmt.Errorf("stream: %w", err)
			}
		}
		if err := s.Err(); err != nil {
			return nil, fmt.Errorf("stream: %w", err)
		}
		if msg.StopReason == "" {
			return nil, errStreamCut
		}
	} else {
		m, err := b.client.Messages.New(ctx, p, option.WithResponseInto(&hr))
		if err != nil {
			return nil, err
		}
		msg = *m
	}
	out := FromMessage(&msg)
	if hr != nil {
		out.Injected = hr.Header.Get(InjectedHeader)
	}
	return out, nil
}

// FromMessage maps a Messages API response onto a demur.Response: the
// text blocks joined, the stop reason normalised and stop_details kept.
func FromMessage(m *sdk.Message) *demur.Response {
	var text strings.Builder
	for _, c := range m.Content {
		if c.Type == "text" {
			text.WriteString(c.Text)
		}
	}
	out := &demur.Response{
		Model:        string(m.Model),
		Output:       text.String(),
		FinishReason: FinishReason(string(m.StopReason)),
		Usage:        demur.Usage{PromptTokens: int(m.Usage.InputTokens), CompletionTokens: int(m.Usage.OutputTokens)},
	}
	if m.StopReason == sdk.StopReasonRefusal {
		out.StopCategory = string(m.StopDetails.Category)
		out.StopExplanation = m.StopDetails.Explanation
	}
	return out
}

// FinishReason maps Anthropic's stop_reason onto the OpenAI vocabulary the
// rest of demur reads ("stop", "length", "tool_calls"), keeping "refusal"
// (which the detector reads as Anthropic's provider signal) and any reason
// it does not know verbatim.
func FinishReason(stop string) string {
	switch stop {
	case "end_turn", "stop_sequence":
		return "stop"
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	}
	return stop
}

var errStreamCut = errors.New("stream ended before message_delta's stop_reason")

func classify(err error) llmhttp.Failure {
	var ae *sdk.Error
	if errors.As(err, &ae) {
		var h http.Header
		if ae.Response != nil {
			h = ae.Response.Header
		}
		// Anthropic's 529 "overloaded" is a 5xx like any other.
		return llmhttp.Classify(ae.StatusCode, h)
	}
	if errors.Is(err, context.Canceled) {
		return llmhttp.Failure{}
	}
	return llmhttp.Failure{Retryable: true}
}

var _ demur.Backend = (*Backend)(nil)
