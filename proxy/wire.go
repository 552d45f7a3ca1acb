package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/anthropic"
)

// provider names a wire format.
type provider int

const (
	openAI provider = iota
	anthropicAPI
)

// String names the wire format in messages.
func (p provider) String() string {
	if p == anthropicAPI {
		return "anthropic"
	}
	return "openai"
}

// request is what the proxy needs from a client's body: it decodes only
// these fields and forwards the body byte for byte.
type request struct {
	Model    string    `json:"model"`
	Stream   bool      `json:"stream"`
	Messages []message `json:"messages"`
	// last is prompt(), computed once.
	last string
}

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// prompt is the text of the last user message, which the turn record
// keeps; structured content contributes its text parts.
func (r *request) prompt() string {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == "user" {
			return contentText(r.Messages[i].Content)
		}
	}
	return ""
}

func contentText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	if raw[0] == '"' {
		var s string
		_ = json.Unmarshal(raw, &s)
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	_ = json.Unmarshal(raw, &parts)
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// result is what the proxy extracts from a provider's answer.
type result struct {
	resp demur.Response
	// tools marks a response that called a tool: its empty text is not a
	// refusal.
	tools bool
	// lps are per-token log-probabilities when the client asked for them.
	lps []float64
}

type oaiResponse struct {
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content   *string         `json:"content"`
			Refusal   *string         `json:"refusal"`
			ToolCalls json.RawMessage `json:"tool_calls"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
		Logprobs     *struct {
			Content []struct {
				Logprob float64 `json:"logprob"`
			} `json:"content"`
		} `json:"logprobs"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

type anthResponse struct {
	Model   string `json:"model"`
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	StopReason  string `json:"stop_reason"`
	StopDetails *struct {
		Category    string `json:"category"`
		Explanation string `json:"explanation"`
	} `json:"stop_details"`
	Usage struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
	} `json:"usage"`
}

// parseResponse reads a non-streaming 200 body.
func parseResponse(p provider, body []byte) (*result, error) {
	r := &result{}
	if p == anthropicAPI {
		var m anthResponse
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, fmt.Errorf("decode anthropic response: %w", err)
		}
		var text strings.Builder
		for _, c := range m.Content {
			switch c.Type {
			case "text":
				text.WriteString(c.Text)
			case "tool_use", "server_tool_use":
				r.tools = true
			}
		}
		r.resp = demur.Response{Model: m.Model, Output: text.String(), FinishReason: anthropic.FinishReason(m.StopReason),
			Usage: demur.Usage{PromptTokens: m.Usage.InputTokens, CompletionTokens: m.Usage.OutputTokens}}
		if m.StopReason == "refusal" && m.StopDetails != nil {
			r.resp.StopCategory, r.resp.StopExplanation = m.StopDetails.Category, m.StopDetails.Explanation
		}
		return r, nil
	}
	var c oaiResponse
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, fmt.Errorf("decode openai response: %w", err)
	}
	if len(c.Choices) == 0 {
		return nil, fmt.Errorf("decode openai response: no choices")
	}
	ch := c.Choices[0]
	r.resp = demur.Response{Model: c.Model, FinishReason: ch.FinishReason,
		Usage: demur.Usage{PromptTokens: c.Usage.PromptTokens, CompletionTokens: c.Usage.CompletionTokens}}
	if ch.Message.Content != nil {
		r.resp.Output = *ch.Message.Content
	}
	if ch.Message.Refusal != nil {
		r.resp.ProviderRefusal = *ch.Message.Refusal
	}
	r.tools = len(ch.Message.ToolCalls) > 0 && !bytes.Equal(ch.Message.ToolCalls, []byte("null"))
	if ch.Logprobs != nil {
		for _, t := range ch.Logprobs.Content {
			r.lps = append(r.lps, t.Logprob)
		}
	}
	return r, nil
}

// streamState accumulates a server-sent-event stream as it passes.
type streamState struct {
	p        provider
	text     strings.Builder
	refusal  strings.Builder
	finished bool
	r        result
}

type oaiChunk struct {
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Content   string          `json:"content"`
			Refusal   string          `json:"refusal"`
			ToolCalls json.RawMessage `json:"tool_calls"`
		} `json:"delta"`
		FinishReason string `json:"finish_reason"`
		Logprobs     *struct {
			Content []struct {
				Logprob float64 `json:"logprob"`
			} `json:"content"`
		} `json:"logprobs"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

type anthEvent struct {
	Type    string `json:"type"`
	Message *struct {
		Model string `json:"model"`
		Usage struct {
			InputTokens int `json:"input_tokens"`
		} `json:"usage"`
	} `json:"message"`
	ContentBlock *struct {
		Type string `json:"type"`
	} `json:"content_block"`
	Delta *struct {
		Type        string `json:"type"`
		Text        string `json:"text"`
		StopReason  string `json:"stop_reason"`
		StopDetails *struct {
			Category    string `json:"category"`
			Explanation string `json:"explanation"`
		} `json:"stop_details"`
	} `json:"delta"`
	Usage *struct {
		OutputTokens int `json:"output_tokens"`
	} `json:"usage"`
}

// data takes one event's data payload. Payloads that do not decode are
// skipped: the client sees them as they are, and the verdict rests on what
// could be read.
func (s *streamState) data(d []byte) {
	if s.p == openAI {
		if bytes.Equal(d, []byte("[DONE]")) {
			return
		}
		var c oaiChunk
		if json.Unmarshal(d, &c) != nil {
			return
		}
		if c.Model != "" {
			s.r.resp.Model = c.Model
		}
		if c.Usage != nil {
			s.r.resp.Usage = demur.Usage{PromptTokens: c.Usage.PromptTokens, CompletionTokens: c.Usage.CompletionTokens}
		}
		for _, ch := range c.Choices {
			if ch.Index != 0 {
				continue
			}
			s.text.WriteString(ch.Delta.Content)
			s.refusal.WriteString(ch.Delta.Refusal)
			if len(ch.Delta.ToolCalls) > 0 && !bytes.Equal(ch.Delta.ToolCalls, []byte("null")) {
				s.r.tools = true
			}
			if ch.FinishReason != "" {
				s.r.resp.FinishReason, s.finished = ch.FinishReason, true
			}
			if ch.Logprobs != nil {
				for _, t := range ch.Logprobs.Content {
					s.r.lps = append(s.r.lps, t.Logprob)
				}
			}
		}
		return
	}
	var e anthEvent
	if json.Unmarshal(d, &e) != nil {
		return
	}
	switch e.Type {
	case "message_start":
		if e.Message != nil {
			s.r.resp.Model = e.Message.Model
			s.r.resp.Usage.PromptTokens = e.Message.Usage.InputTokens
		}
	case "content_block_start":
		if e.ContentBlock != nil && strings.HasSuffix(e.ContentBlock.Type, "tool_use") {
			s.r.tools = true
		}
	case "content_block_delta":
		if e.Delta != nil && e.Delta.Type == "text_delta" {
			s.text.WriteString(e.Delta.Text)
		}
	case "message_delta":
		if e.Delta != nil && e.Delta.StopReason != "" {
			s.r.resp.FinishReason, s.finished = anthropic.FinishReason(e.Delta.StopReason), true
			if e.Delta.StopReason == "refusal" && e.Delta.StopDetails != nil {
				s.r.resp.StopCategory, s.r.resp.StopExplanation = e.Delta.StopDetails.Category, e.Delta.StopDetails.Explanation
			}
		}
		if e.Usage != nil {
			s.r.resp.Usage.CompletionTokens = e.Usage.OutputTokens
		}
	}
}

// result returns what the stream carried.
func (s *streamState) result() *result {
	s.r.resp.Output, s.r.resp.ProviderRefusal = s.text.String(), s.refusal.String()
	return &s.r
}

// errorBody is a provider-shaped error, so that SDKs surface the proxy's
// own errors (413, 502) the way they surface the provider's.
func errorBody(p provider, status int, msg string) []byte {
	typ := "invalid_request_error"
	switch {
	case status == 413:
		typ = "request_too_large"
	case status >= 500:
		typ = "api_error"
	}
	var v any
	if p == anthropicAPI {
		v = map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}}
	} else {
		v = map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}}
	}
	b, _ := json.Marshal(v)
	return b
}
