package job

import (
	"strings"
	"testing"
	"time"
)

const httpSpec = `name: mixed
document:
  title: A Mixed Book
  chapters: 1
  sections_per_chapter: 2
  words_per_section: 200
agents:
  - count: 1
    backend: sim
    profile: gpt-4-class
  - count: 2
    backend: openai
    model: llama3
    base_url: http://127.0.0.1:8000/v1
    api_key_env: VLLM_KEY
    max_tokens: 900
    timeout: 90s
    retries: 3
    stream: true
    chaos:
      refusal_rate: 0.2
      fault_rate: 0.1
      faults: [http_429, stream_cut]
      schedule:
        - {turn: 2, inject: text_refusal}
      retry_after: 2s
`

func TestParseHTTPBackends(t *testing.T) {
	s, err := Parse("mixed.yaml", []byte(httpSpec))
	if err != nil {
		t.Fatal(err)
	}
	g := s.Agents[1]
	if g.ModelName() != "llama3" || g.BaseURL != "http://127.0.0.1:8000/v1" || g.APIKeyEnv != "VLLM_KEY" ||
		g.MaxTokens != 900 || g.TimeoutDuration() != 90*time.Second || g.Retries != 3 || !g.Stream {
		t.Fatalf("decoded wrong: %+v", g)
	}
	c := g.Chaos
	if c == nil || c.RefusalRate != 0.2 || c.FaultRate != 0.1 || len(c.Faults) != 2 || c.Schedule[0].Turn != 2 ||
		c.Schedule[0].Inject != "text_refusal" || c.RetryAfter != "2s" {
		t.Fatalf("chaos decoded wrong: %+v", c)
	}
	if s.Agents[0].Chaos != nil || s.Agents[0].ModelName() != "gpt-4-class" {
		t.Fatalf("sim group: %+v", s.Agents[0])
	}
}

func TestParseHTTPBad(t *testing.T) {
	cases := []struct{ name, old, new, want string }{
		{"bad url", "base_url: http://127.0.0.1:8000/v1", "base_url: ftp://x", "bad.yaml:14:15: base_url \"ftp://x\""},
		{"key in spec", "api_key_env: VLLM_KEY", "api_key_env: sk-live-123", "bad.yaml:15:18: api_key_env \"sk-live-123\" must name"},
		{"bad timeout", "timeout: 90s", "timeout: soon", "bad.yaml:17:14: timeout \"soon\""},
		{"negative max", "max_tokens: 900", "max_tokens: -1", "bad.yaml:16:17: max_tokens must be ≥ 0"},
		{"rate", "refusal_rate: 0.2", "refusal_rate: 1.5", "bad.yaml:21:21: refusal_rate must be within 0–1"},
		{"rates sum", "refusal_rate: 0.2", "refusal_rate: 0.95", "bad.yaml:22:19: refusal_rate + fault_rate"},
		{"turn", "turn: 2", "turn: 0", "bad.yaml:25:18: turn must be ≥ 1"},
		{"sim with url", "profile: gpt-4-class\n", "profile: gpt-4-class\n    base_url: http://x\n", "bad.yaml:11:15: base_url applies to the openai and anthropic backends"},
		{"unknown chaos key", "retry_after: 2s", "retry_aftr: 2s", "bad.yaml:26:7: unknown field"},
		{"no model", "    model: llama3\n", "", "bad.yaml:11:10: agents[1].profile is required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := strings.Replace(httpSpec, c.old, c.new, 1)
			if src == httpSpec {
				t.Fatal("case did not change the spec")
			}
			_, err := Parse("bad.yaml", []byte(src))
			if err == nil {
				t.Fatal("accepted a bad spec")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
}
