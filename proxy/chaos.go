package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/demurhq/demur/chaos"
)

// The proxy's chaos mode injects on the wire, in the provider's own shapes,
// so that a client's SDK and agent code meet exactly what a real refusal or
// fault looks like. Injections are drawn per agent (X-Demur-Agent or the
// route's agent), deterministic for the seed; every injected response
// carries X-Demur-Injected and its records carry injected / source
// "injected".

func (s *Server) injector(m meta) *chaos.Injector {
	key := m.job + "\x00" + m.agent
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.chaosBy[key]
	if in == nil {
		in = chaos.NewInjector(*s.cfg.Chaos, m.agent)
		s.chaosBy[key] = in
	}
	return in
}

// fault answers in place of the upstream with an injected transport fault.
func (ex *exchange) fault(ctx context.Context) (int, http.Header, []byte, *result, error) {
	cfg := ex.s.injector(ex.m).Config()
	h := http.Header{}
	h.Set(HeaderInjected, string(ex.draw.Kind))
	h.Set("Content-Type", "application/json")
	switch ex.draw.Kind {
	case chaos.RateLimited:
		h.Set("Retry-After", strconv.Itoa(max(1, int((cfg.RetryAfter+time.Second-1)/time.Second))))
		h.Set("Retry-After-Ms", strconv.FormatInt(cfg.RetryAfter.Milliseconds(), 10))
		return http.StatusTooManyRequests, h, errorBody(ex.p, 429, "injected rate limit (demur chaos)"), nil, nil
	case chaos.ServerError:
		return http.StatusInternalServerError, h, errorBody(ex.p, 500, "injected server error (demur chaos)"), nil, nil
	case chaos.Timeout:
		if cfg.Hang > 0 {
			t := time.NewTimer(cfg.Hang)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
		return http.StatusGatewayTimeout, h, errorBody(ex.p, 504, "injected upstream timeout (demur chaos)"), nil, nil
	case chaos.MalformedJSON:
		if ex.req.Stream {
			h.Set("Content-Type", "text/event-stream")
			return http.StatusOK, h, []byte("data: {\"choices\":[{\"delta\":{\"content\":\"unterminated\n\n"), nil, nil
		}
		return http.StatusOK, h, []byte(`{"id":"injected","choices":[{"message":{"content":"unterminated`), nil, nil
	case chaos.StreamCut:
		ex.cut = true
		if ex.req.Stream {
			h.Set("Content-Type", "text/event-stream")
			return http.StatusOK, h, sseCut(ex.p, ex.req.Model), nil, nil
		}
		return http.StatusOK, h, []byte(`{"id":"injected","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"The first part of the answer`), nil, nil
	}
	return 0, nil, nil, nil, fmt.Errorf("chaos: %s is not a fault", ex.draw.Kind)
}

func sseCut(p provider, model string) []byte {
	var b bytes.Buffer
	if p == anthropicAPI {
		sseEvent(&b, "message_start", map[string]any{"type": "message_start", "message": map[string]any{"id": "msg_injected", "type": "message",
			"role": "assistant", "model": model, "content": []any{}, "usage": map[string]any{"input_tokens": 0, "output_tokens": 0}}})
		sseEvent(&b, "content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}})
		sseEvent(&b, "content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": "The first part"}})
		return b.Bytes()
	}
	sseEvent(&b, "", oaiChunkOf(model, map[string]any{"role": "assistant", "content": "The first part"}, nil))
	return b.Bytes()
}

func sseEvent(b *bytes.Buffer, event string, v any) {
	data, _ := json.Marshal(v)
	if event != "" {
		fmt.Fprintf(b, "event: %s\n", event)
	}
	fmt.Fprintf(b, "data: %s\n\n", data)
}

func oaiChunkOf(model string, delta map[string]any, finish any) map[string]any {
	return map[string]any{"id": "chatcmpl-injected", "object": "chat.completion.chunk", "created": time.Now().Unix(), "model": model,
		"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": nil}}}
}

// shape turns a real answer into an injected refusal and re-encodes it in
// the provider's wire format (a body or a whole SSE stream).
func (ex *exchange) shape(res *result, _ []byte) []byte {
	k := ex.draw.Kind
	// Each provider has its own refusal signal; inject the one this wire has.
	switch {
	case ex.p == anthropicAPI && (k == chaos.OpenAIRefusal || k == chaos.ContentFilter):
		k = chaos.AnthropicRefusal
	case ex.p == openAI && k == chaos.AnthropicRefusal:
		k = chaos.OpenAIRefusal
	}
	chaos.Shape(&res.resp, k, ex.draw.Variant)
	res.tools, res.lps = false, nil
	ex.injected = string(k)
	r := &res.resp
	model := r.Model
	if model == "" {
		model = ex.req.Model
	}
	var b bytes.Buffer
	if ex.p == anthropicAPI {
		stop, details := "end_turn", any(nil)
		if r.FinishReason == "refusal" {
			stop, details = "refusal", map[string]any{"type": "refusal", "category": r.StopCategory, "explanation": r.StopExplanation}
		}
		usage := map[string]any{"input_tokens": r.Usage.PromptTokens, "output_tokens": r.Usage.CompletionTokens}
		if !ex.req.Stream {
			content := []any{}
			if r.Output != "" {
				content = append(content, map[string]any{"type": "text", "text": r.Output})
			}
			json.NewEncoder(&b).Encode(map[string]any{"id": "msg_injected", "type": "message", "role": "assistant", "model": model,
				"content": content, "stop_reason": stop, "stop_sequence": nil, "stop_details": details, "usage": usage})
			return b.Bytes()
		}
		sseEvent(&b, "message_start", map[string]any{"type": "message_start", "message": map[string]any{"id": "msg_injected", "type": "message",
			"role": "assistant", "model": model, "content": []any{}, "stop_reason": nil, "stop_sequence": nil,
			"usage": map[string]any{"input_tokens": r.Usage.PromptTokens, "output_tokens": 0}}})
		if r.Output != "" {
			sseEvent(&b, "content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}})
			sseEvent(&b, "content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": r.Output}})
			sseEvent(&b, "content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
		}
		sseEvent(&b, "message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil,
			"stop_details": details}, "usage": map[string]any{"output_tokens": r.Usage.CompletionTokens}})
		sseEvent(&b, "message_stop", map[string]any{"type": "message_stop"})
		return b.Bytes()
	}
	content, refusal := any(r.Output), any(nil)
	if r.ProviderRefusal != "" {
		content, refusal = nil, r.ProviderRefusal
	}
	usage := map[string]any{"prompt_tokens": r.Usage.PromptTokens, "completion_tokens": r.Usage.CompletionTokens,
		"total_tokens": r.Usage.PromptTokens + r.Usage.CompletionTokens}
	if !ex.req.Stream {
		json.NewEncoder(&b).Encode(map[string]any{"id": "chatcmpl-injected", "object": "chat.completion", "created": time.Now().Unix(),
			"model": model, "choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": content,
				"refusal": refusal}, "finish_reason": r.FinishReason, "logprobs": nil}}, "usage": usage})
		return b.Bytes()
	}
	sseEvent(&b, "", oaiChunkOf(model, map[string]any{"role": "assistant", "content": ""}, nil))
	if r.ProviderRefusal != "" {
		sseEvent(&b, "", oaiChunkOf(model, map[string]any{"refusal": r.ProviderRefusal}, nil))
	} else if r.Output != "" {
		sseEvent(&b, "", oaiChunkOf(model, map[string]any{"content": r.Output}, nil))
	}
	sseEvent(&b, "", oaiChunkOf(model, map[string]any{}, r.FinishReason))
	sseEvent(&b, "", map[string]any{"id": "chatcmpl-injected", "object": "chat.completion.chunk", "created": time.Now().Unix(),
		"model": model, "choices": []any{}, "usage": usage})
	b.WriteString("data: [DONE]\n\n")
	return b.Bytes()
}
