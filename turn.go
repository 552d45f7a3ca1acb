package demur

import (
	"context"
	"time"
)

// Role is the author of a message.
type Role string

// Message roles.
const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
)

// Message is one entry of a conversation sent to a backend.
type Message struct {
	Role    Role   `json:"role"`
	Content string `json:"content"`
}

// Request is what an agent asks of its backend.
type Request struct {
	// Model names the model or simulator profile.
	Model    string    `json:"model"`
	Messages []Message `json:"messages"`
	// MaxTokens bounds the output; 0 means the backend's default.
	MaxTokens int `json:"max_tokens,omitempty"`
	// Force is the API-level force flag. Only an authorized override sets it;
	// text in a prompt never does.
	Force bool `json:"force,omitempty"`
	// Logprobs asks for per-token log-probabilities where supported.
	Logprobs bool `json:"logprobs,omitempty"`
}

// Usage counts tokens of one generation.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// Response is what a backend returned, including every provider field the
// detector may use.
type Response struct {
	Model        string    `json:"model"`
	Output       string    `json:"output"`
	FinishReason string    `json:"finish_reason"` // "stop", "length", "content_filter", "refusal"…
	Usage        Usage     `json:"usage"`
	Logprobs     []float32 `json:"-"` // per output token, when requested and supported
	// ProviderRefusal is OpenAI's message.refusal (or a refusal content part).
	ProviderRefusal string `json:"provider_refusal,omitempty"`
	// StopCategory and StopExplanation carry Anthropic's stop_details when
	// stop_reason is "refusal".
	StopCategory    string `json:"stop_category,omitempty"`
	StopExplanation string `json:"stop_explanation,omitempty"`
	// Injected names the fault or refusal a chaos layer put in place of, or
	// on top of, what the backend produced (e.g. "openai_refusal",
	// "text_refusal"); empty for a genuine response. It lets the log tell an
	// injected event (Verdict.Source "injected") from a real one.
	Injected string `json:"injected,omitempty"`
	// Truth is a simulator's hidden ground truth for this generation, opaque
	// to every other part: it is recorded as its own record kind for scoring
	// and never read by the detector, monitor or router.
	Truth []byte `json:"-"`
}

// Backend generates one response. A Backend value serves one agent; it may
// keep state across calls (a simulator's aversion, a connection).
type Backend interface {
	Generate(ctx context.Context, req *Request) (*Response, error)
}

// Turn is one request/response exchange of one agent on one task, as the
// detector and the audit log see it.
type Turn struct {
	Job     string `json:"job"`
	Task    string `json:"task"`
	Agent   string `json:"agent"`
	Attempt int    `json:"attempt"`
	// Prompt is the final user message; the full request is recorded apart.
	Prompt   string        `json:"prompt"`
	Response               // output, finish reason, usage, provider fields
	LPMean   float64       `json:"lp_mean,omitempty"`
	Started  time.Time     `json:"started"`
	Elapsed  time.Duration `json:"elapsed"`
}
