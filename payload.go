package demur

import (
	"encoding/json"
	"time"
)

// Payloads of the record kinds, as JSON. Field names are stable: reports,
// `demur audit explain` and the dashboard read them from the log.

// JobStartPayload opens a job's stream.
type JobStartPayload struct {
	Spec     []byte       `json:"spec"` // the spec file, byte for byte
	TaskType string       `json:"task_type"`
	Seed     int64        `json:"seed"`
	Sections int          `json:"sections"`
	Agents   []AgentEntry `json:"agents"`
}

// AgentEntry describes one agent of a job.
type AgentEntry struct {
	ID           string `json:"id"`
	Backend      string `json:"backend"`
	Model        string `json:"model"`
	SelfCritique bool   `json:"self_critique,omitempty"`
}

// AssignPayload records a task handed to an agent.
type AssignPayload struct {
	Task    string `json:"task"`
	Agent   string `json:"agent"`
	Attempt int    `json:"attempt"`
	Refresh bool   `json:"refresh_context,omitempty"`
	Frame   string `json:"frame,omitempty"`
	Force   bool   `json:"force,omitempty"`
}

// TurnPayload records one backend exchange. The output is stored as a blob.
type TurnPayload struct {
	Task            string        `json:"task"`
	Agent           string        `json:"agent"`
	Attempt         int           `json:"attempt"`
	Model           string        `json:"model,omitempty"`
	Prompt          string        `json:"prompt"`
	Output          string        `json:"output_blob"` // BlobHash of the output
	OutputBytes     int           `json:"output_bytes"`
	Words           int           `json:"words"`
	FinishReason    string        `json:"finish_reason,omitempty"`
	Usage           Usage         `json:"usage"`
	LPMean          float64       `json:"lp_mean,omitempty"`
	ProviderRefusal string        `json:"provider_refusal,omitempty"`
	StopCategory    string        `json:"stop_category,omitempty"`
	StopExplanation string        `json:"stop_explanation,omitempty"`
	Injected        string        `json:"injected,omitempty"` // Response.Injected: a chaos injection
	Started         time.Time     `json:"started"`
	Elapsed         time.Duration `json:"elapsed_ns"`
	Error           string        `json:"error,omitempty"`
	// Provider is the API the turn went to ("openai", "anthropic") when the
	// writer knows it and the job's agent list does not (the proxy).
	Provider string `json:"provider,omitempty"`
	// Traceparent is the W3C trace context the client sent with the
	// request (the proxy), so that the turn's span joins the client's trace.
	Traceparent string `json:"traceparent,omitempty"`
}

// VerdictPayload records the detector's verdict on a turn.
type VerdictPayload struct {
	Task    string  `json:"task"`
	Agent   string  `json:"agent"`
	Attempt int     `json:"attempt"`
	Verdict Verdict `json:"verdict"`
}

// DecisionPayload records the router's decision on a verdict.
type DecisionPayload struct {
	Task     string   `json:"task"`
	Agent    string   `json:"agent"`
	Attempt  int      `json:"attempt"`
	Decision Decision `json:"decision"`
}

// TruthPayload wraps a simulator's hidden ground truth, for scoring only.
type TruthPayload struct {
	Task    string          `json:"task"`
	Agent   string          `json:"agent"`
	Attempt int             `json:"attempt"`
	Truth   json.RawMessage `json:"truth"` // the backend's opaque JSON, verbatim
}

// SectionPayload records a task's output accepted into the artifact.
type SectionPayload struct {
	Task    string `json:"task"`
	Index   int    `json:"index"`
	Agent   string `json:"agent"`
	Attempt int    `json:"attempt"`
	Output  string `json:"output_blob"`
	Words   int    `json:"words"`
	// Part and Parts are set when the section was split (see Task).
	Part  int `json:"part,omitempty"`
	Parts int `json:"parts,omitempty"`
}

// AgentPayload records a change in an agent's standing.
type AgentPayload struct {
	Agent  string `json:"agent"`
	State  string `json:"state"` // "retired", or "joined" for an agent added mid-job
	Reason string `json:"reason"`
	// Model is the joining agent's model (a rotate to the fallback model).
	Model string `json:"model,omitempty"`
}

// JobEndPayload closes a job's stream.
type JobEndPayload struct {
	Status  string   `json:"status"` // "completed" or "incomplete"
	Done    int      `json:"sections_done"`
	Total   int      `json:"sections_total"`
	Missing []string `json:"missing,omitempty"`
}
