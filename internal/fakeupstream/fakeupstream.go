// Package fakeupstream is a test server that speaks the OpenAI Chat
// Completions and Anthropic Messages wire formats — JSON bodies, SSE
// streams, error bodies, Retry-After — so that the backends, the proxy and
// the official SDKs can be tested against it on loopback.
package fakeupstream

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Reply is what the server answers to one request.
type Reply struct {
	// Text is the assistant's output.
	Text string
	// Refusal fills OpenAI's message.refusal (content is then null).
	Refusal string
	// Finish is OpenAI's finish_reason or Anthropic's stop_reason; empty
	// means "stop" / "end_turn" (or "tool_calls" / "tool_use" with a tool).
	Finish string
	// StopCategory and StopExplanation fill Anthropic's stop_details.
	StopCategory, StopExplanation string
	// Tool, when set, is a tool call: name and JSON arguments.
	Tool, ToolArgs string
	// Status, when not 0 or 200, sends an error body with this status.
	Status int
	// RetryAfter sets the Retry-After header (seconds) on an error.
	RetryAfter int
	// Malformed sends a 200 whose body is not JSON.
	Malformed bool
	// CutAfter ends a stream after this many content events, without a
	// finish (a cut stream); 0 means no cut.
	CutAfter int
	// Delay stalls before answering.
	Delay time.Duration
	// Header is added to the response.
	Header http.Header
	// Logprob, when not 0, is every token's log-probability (OpenAI).
	Logprob float64
}

// Request is what the server saw.
type Request struct {
	Path   string
	Header http.Header
	Body   map[string]any
}

// Server is a fake provider.
type Server struct {
	*httptest.Server
	// Reply chooses the answer; nil answers "Hello from the fake upstream."
	Reply func(r *Request) Reply

	mu   sync.Mutex
	reqs []*Request
	n    atomic.Int64
	// NoLogprobs makes the server reject requests that ask for logprobs.
	NoLogprobs bool
}

// New starts a server; close it with Close.
func New(reply func(r *Request) Reply) *Server {
	s := &Server{Reply: reply}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Requests returns every request seen so far.
func (s *Server) Requests() []*Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Request(nil), s.reqs...)
}

// Count is the number of requests seen so far.
func (s *Server) Count() int64 { return s.n.Load() }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.n.Add(1)
	req := &Request{Path: r.URL.Path, Header: r.Header.Clone()}
	if r.Method == http.MethodPost {
		data, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(data, &req.Body); err != nil {
			openAIError(w, 400, "invalid_request_error", "body is not JSON: "+err.Error())
			return
		}
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	s.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/models"):
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"list","data":[{"id":"fake-model","object":"model","created":1700000000,"owned_by":"fake"}]}`)
		return
	case r.Method != http.MethodPost:
		http.NotFound(w, r)
		return
	}
	rep := Reply{Text: "Hello from the fake upstream."}
	if s.Reply != nil {
		rep = s.Reply(req)
	}
	if rep.Delay > 0 {
		select {
		case <-time.After(rep.Delay):
		case <-r.Context().Done():
			return
		}
	}
	for k, vs := range rep.Header {
		w.Header()[k] = vs
	}
	anth := strings.HasSuffix(r.URL.Path, "/messages")
	if s.NoLogprobs && req.Body["logprobs"] == true {
		openAIError(w, 400, "invalid_request_error", "logprobs is not supported by this model")
		return
	}
	if rep.Status != 0 && rep.Status != 200 {
		if rep.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(rep.RetryAfter))
		}
		if anth {
			anthropicError(w, rep.Status, errType(rep.Status), fmt.Sprintf("fake error %d", rep.Status))
		} else {
			openAIError(w, rep.Status, errType(rep.Status), fmt.Sprintf("fake error %d", rep.Status))
		}
		return
	}
	if rep.Malformed {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"x","choices":[{"message":{"content":"unterminated`)
		return
	}
	model, _ := req.Body["model"].(string)
	stream, _ := req.Body["stream"].(bool)
	switch {
	case anth && stream:
		anthropicStream(w, model, &rep)
	case anth:
		writeJSON(w, anthropicMessage(model, &rep))
	case stream:
		openAIStream(w, model, &rep, req.Body)
	default:
		writeJSON(w, openAICompletion(model, &rep, req.Body["logprobs"] == true))
	}
}

func errType(status int) string {
	switch status {
	case 429:
		return "rate_limit_error"
	case 401:
		return "authentication_error"
	case 400:
		return "invalid_request_error"
	}
	return "api_error"
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func openAIError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}})
}

func anthropicError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
}

func words(s string) int { return len(strings.Fields(s)) }

// chunks splits s into word-sized pieces that concatenate back to s.
func chunks(s string) []string {
	var out []string
	start := 0
	for i := 1; i < len(s); i++ {
		if s[i] == ' ' {
			out = append(out, s[start:i])
			start = i
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

func openAIFinish(rep *Reply) string {
	switch {
	case rep.Finish != "":
		return rep.Finish
	case rep.Tool != "":
		return "tool_calls"
	}
	return "stop"
}

func openAICompletion(model string, rep *Reply, logprobs bool) map[string]any {
	msg := map[string]any{"role": "assistant", "content": rep.Text, "refusal": nil}
	if rep.Refusal != "" {
		msg["content"], msg["refusal"] = nil, rep.Refusal
	}
	if rep.Tool != "" {
		msg["tool_calls"] = []any{map[string]any{"id": "call_1", "type": "function",
			"function": map[string]any{"name": rep.Tool, "arguments": rep.ToolArgs}}}
	}
	choice := map[string]any{"index": 0, "message": msg, "finish_reason": openAIFinish(rep), "logprobs": nil}
	if logprobs {
		var lps []any
		for _, c := range chunks(rep.Text) {
			lps = append(lps, map[string]any{"token": c, "logprob": lp(rep), "bytes": nil, "top_logprobs": []any{}})
		}
		choice["logprobs"] = map[string]any{"content": lps, "refusal": nil}
	}
	n := words(rep.Text) + words(rep.Refusal)
	return map[string]any{"id": "chatcmpl-fake", "object": "chat.completion", "created": 1700000000, "model": model,
		"choices": []any{choice}, "usage": map[string]any{"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n}}
}

func lp(rep *Reply) float64 {
	if rep.Logprob != 0 {
		return rep.Logprob
	}
	return -0.5
}

func sse(w http.ResponseWriter, event string, v any) {
	data, _ := json.Marshal(v)
	if event != "" {
		fmt.Fprintf(w, "event: %s\n", event)
	}
	fmt.Fprintf(w, "data: %s\n\n", data)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

func openAIStream(w http.ResponseWriter, model string, rep *Reply, body map[string]any) {
	w.Header().Set("Content-Type", "text/event-stream")
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000, "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": nil}}}
	}
	sse(w, "", chunk(map[string]any{"role": "assistant", "content": ""}, nil))
	field := "content"
	text := rep.Text
	if rep.Refusal != "" {
		field, text = "refusal", rep.Refusal
	}
	for i, c := range chunks(text) {
		if rep.CutAfter > 0 && i >= rep.CutAfter {
			return // cut: no finish, no [DONE]
		}
		sse(w, "", chunk(map[string]any{field: c}, nil))
	}
	if rep.Tool != "" {
		sse(w, "", chunk(map[string]any{"tool_calls": []any{map[string]any{"index": 0, "id": "call_1", "type": "function",
			"function": map[string]any{"name": rep.Tool, "arguments": rep.ToolArgs}}}}, nil))
	}
	sse(w, "", chunk(map[string]any{}, openAIFinish(rep)))
	if so, _ := body["stream_options"].(map[string]any); so != nil && so["include_usage"] == true {
		n := words(text)
		sse(w, "", map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000, "model": model,
			"choices": []any{}, "usage": map[string]any{"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n}})
	}
	io.WriteString(w, "data: [DONE]\n\n")
}

func anthropicStop(rep *Reply) string {
	switch {
	case rep.Finish != "":
		return rep.Finish
	case rep.Tool != "":
		return "tool_use"
	}
	return "end_turn"
}

func stopDetails(rep *Reply) any {
	if anthropicStop(rep) != "refusal" {
		return nil
	}
	return map[string]any{"type": "refusal", "category": rep.StopCategory, "explanation": rep.StopExplanation}
}

func anthropicMessage(model string, rep *Reply) map[string]any {
	content := []any{}
	if rep.Text != "" {
		content = append(content, map[string]any{"type": "text", "text": rep.Text})
	}
	if rep.Tool != "" {
		var args any
		_ = json.Unmarshal([]byte(rep.ToolArgs), &args)
		content = append(content, map[string]any{"type": "tool_use", "id": "toolu_1", "name": rep.Tool, "input": args})
	}
	return map[string]any{"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": content,
		"stop_reason": anthropicStop(rep), "stop_sequence": nil, "stop_details": stopDetails(rep),
		"usage": map[string]any{"input_tokens": 10, "output_tokens": words(rep.Text)}}
}

func anthropicStream(w http.ResponseWriter, model string, rep *Reply) {
	w.Header().Set("Content-Type", "text/event-stream")
	sse(w, "message_start", map[string]any{"type": "message_start", "message": map[string]any{"id": "msg_fake", "type": "message",
		"role": "assistant", "model": model, "content": []any{}, "stop_reason": nil, "stop_sequence": nil,
		"usage": map[string]any{"input_tokens": 10, "output_tokens": 1}}})
	idx := 0
	if rep.Text != "" {
		sse(w, "content_block_start", map[string]any{"type": "content_block_start", "index": idx, "content_block": map[string]any{"type": "text", "text": ""}})
		for i, c := range chunks(rep.Text) {
			if rep.CutAfter > 0 && i >= rep.CutAfter {
				return
			}
			sse(w, "content_block_delta", map[string]any{"type": "content_block_delta", "index": idx, "delta": map[string]any{"type": "text_delta", "text": c}})
		}
		sse(w, "content_block_stop", map[string]any{"type": "content_block_stop", "index": idx})
		idx++
	}
	if rep.Tool != "" {
		sse(w, "content_block_start", map[string]any{"type": "content_block_start", "index": idx,
			"content_block": map[string]any{"type": "tool_use", "id": "toolu_1", "name": rep.Tool, "input": map[string]any{}}})
		sse(w, "content_block_delta", map[string]any{"type": "content_block_delta", "index": idx,
			"delta": map[string]any{"type": "input_json_delta", "partial_json": rep.ToolArgs}})
		sse(w, "content_block_stop", map[string]any{"type": "content_block_stop", "index": idx})
	}
	sse(w, "message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": anthropicStop(rep),
		"stop_sequence": nil, "stop_details": stopDetails(rep)}, "usage": map[string]any{"output_tokens": words(rep.Text)}})
	sse(w, "message_stop", map[string]any{"type": "message_stop"})
}
