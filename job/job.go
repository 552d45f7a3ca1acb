// Package job reads and validates job specs: what a `demur run` should do.
//
// A spec is YAML. Unknown keys, wrong types and impossible values are
// rejected with errors of the form file:line:column: message, before
// anything is created on disk.
package job

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/demurhq/demur/internal/yamlpos"
)

// Spec is a job: a document written by a team of agents.
type Spec struct {
	// Name identifies the job; with the seed it names the job in the log.
	Name string `yaml:"name"`
	// TaskType selects the router's policy, e.g. long_form_document.
	TaskType string       `yaml:"task_type"`
	Seed     int64        `yaml:"seed"`
	Document Document     `yaml:"document"`
	Agents   []AgentGroup `yaml:"agents"`
	// Store is a store URL (sqlite://PATH, postgres://…); empty means
	// sqlite://OUT/demur.db.
	Store  string `yaml:"store"`
	Policy Policy `yaml:"policy"`

	file string
	ast  *ast.File
}

// Document is the artifact the job produces.
type Document struct {
	Title              string `yaml:"title"`
	Chapters           int    `yaml:"chapters"`
	SectionsPerChapter int    `yaml:"sections_per_chapter"`
	WordsPerSection    int    `yaml:"words_per_section"`
	// Outline optionally fixes chapter titles, briefs and section titles;
	// chapters it leaves out are planned by the coordinator.
	Outline []Chapter `yaml:"outline"`
}

// Chapter is one outline entry.
type Chapter struct {
	Title    string   `yaml:"title"`
	Brief    string   `yaml:"brief"`
	Sections []string `yaml:"sections"`
}

// AgentGroup is Count agents that share a backend and profile.
type AgentGroup struct {
	Count int `yaml:"count"`
	// Backend names the backend: sim, openai or anthropic.
	Backend string `yaml:"backend"`
	// Profile is the simulator profile or the model name.
	Profile      string `yaml:"profile"`
	SelfCritique bool   `yaml:"self_critique"`

	// The fields below are for the HTTP backends (openai, anthropic); see
	// docs/backends.md.

	// Model is the model name; empty means Profile.
	Model string `yaml:"model"`
	// BaseURL is the API root (e.g. http://127.0.0.1:8000/v1 for vLLM);
	// empty means the provider's public API.
	BaseURL string `yaml:"base_url"`
	// APIKeyEnv names the environment variable holding the API key
	// (default OPENAI_API_KEY or ANTHROPIC_API_KEY). The key itself never
	// appears in a spec.
	APIKeyEnv string `yaml:"api_key_env"`
	// APIKeyFile is a file whose first line is the API key; it wins over
	// APIKeyEnv.
	APIKeyFile string `yaml:"api_key_file"`
	// MaxTokens caps each response's output tokens; 0 means the request's.
	MaxTokens int `yaml:"max_tokens"`
	// Timeout bounds one HTTP attempt, as a Go duration ("90s"); empty
	// means 120s.
	Timeout string `yaml:"timeout"`
	// Retries is the number of attempts per turn, first included; 0 means 4.
	Retries int `yaml:"retries"`
	// Stream asks for server-sent events.
	Stream bool `yaml:"stream"`
	// Chaos injects refusals and faults into this group's agents.
	Chaos *Chaos `yaml:"chaos"`
}

// Chaos configures refusal and fault injection for an agent group (package
// chaos). Kind names are checked by the backend factory.
type Chaos struct {
	// Seed fixes the injections; 0 means the job's seed.
	Seed int64 `yaml:"seed"`
	// RefusalRate is the share of turns given an injected refusal.
	RefusalRate float64 `yaml:"refusal_rate"`
	// Refusals lists the refusal kinds to draw from (default all).
	Refusals []string `yaml:"refusals"`
	// FaultRate is the share of turns given an injected transport fault.
	FaultRate float64 `yaml:"fault_rate"`
	// Faults lists the fault kinds to draw from (default all).
	Faults []string `yaml:"faults"`
	// AfterTokens holds the rates back until an agent has produced this
	// many output tokens.
	AfterTokens int64 `yaml:"after_tokens"`
	// Schedule injects a kind on an agent's given turn.
	Schedule []ChaosEvent `yaml:"schedule"`
	// RetryAfter is what an injected 429 asks for (Go duration, default 1s).
	RetryAfter string `yaml:"retry_after"`
}

// ChaosEvent is one scheduled injection.
type ChaosEvent struct {
	// Turn counts the agent's turns from 1.
	Turn int `yaml:"turn"`
	// Inject is the kind, e.g. text_refusal or http_429.
	Inject string `yaml:"inject"`
}

// ModelName is the model an HTTP backend asks for: Model, else Profile.
func (g *AgentGroup) ModelName() string {
	if g.Model != "" {
		return g.Model
	}
	return g.Profile
}

// TimeoutDuration parses Timeout; validation has already rejected bad ones.
func (g *AgentGroup) TimeoutDuration() time.Duration {
	d, _ := time.ParseDuration(g.Timeout)
	return d
}

// Policy picks the router's policy file and overrides a few of its values
// for this job. Zero values keep the policy file's.
type Policy struct {
	// File is a policy file, or "none" for no refusal management at all;
	// empty means the shipped default policy.
	File string `yaml:"file"`
	// RetireAfter is how many refusals retire an agent.
	RetireAfter int `yaml:"retire_after"`
	// MaxAttempts bounds hand-outs of one section before the job gives up
	// on it.
	MaxAttempts int `yaml:"max_attempts"`
	// MinConfidence is the verdict confidence below which a non-comply
	// verdict is not acted on.
	MinConfidence float64 `yaml:"min_confidence"`
}

// Limits on spec values: beyond them a job is a typo, not a plan.
const (
	MaxAgents       = 100000
	MaxSections     = 1000000
	MaxWordsPerSect = 100000
	DefaultTaskType = "long_form_document"
)

// Error is a spec error at a position.
type Error = yamlpos.Error

// ErrInvalid is wrapped by every error that rejects a spec.
var ErrInvalid = errors.New("invalid job spec")

// Errors is every problem found in one spec.
type Errors []*Error

// Error lists every error, one a line.
func (es Errors) Error() string { return yamlpos.Lines(es) }

// Is makes errors.Is(err, ErrInvalid) true for spec errors.
func (es Errors) Is(target error) bool { return target == ErrInvalid }

// Load reads and validates the spec at path.
func Load(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read job spec: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a spec; file names it in errors.
func Parse(file string, data []byte) (*Spec, error) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, Errors{yamlError(file, err)}
	}
	s := &Spec{file: file, ast: f}
	if len(f.Docs) == 0 || f.Docs[0].Body == nil {
		return nil, Errors{{File: file, Msg: "empty job spec"}}
	}
	if len(f.Docs) > 1 {
		return nil, Errors{s.at("$", "a job spec is one YAML document, found %d", len(f.Docs))}
	}
	if err := yaml.NodeToValue(f.Docs[0].Body, s, yaml.DisallowUnknownField()); err != nil {
		return nil, Errors{yamlError(file, err)}
	}
	s.defaults()
	if errs := s.validate(); len(errs) > 0 {
		return nil, errs
	}
	return s, nil
}

func yamlError(file string, err error) *Error { return yamlpos.FromDecode(file, err, "names") }

// File returns the path the spec was read from.
func (s *Spec) File() string { return s.file }

// ErrorAt returns a spec error positioned at the YAML path (e.g.
// "$.agents[0].profile"); callers that validate further (a backend checking
// its profile names) use it to point at the offending value.
func (s *Spec) ErrorAt(path, format string, args ...any) error {
	return Errors{s.at(path, format, args...)}
}

func (s *Spec) at(path, format string, args ...any) *Error {
	e := &Error{File: s.file, Msg: fmt.Sprintf(format, args...)}
	if n := s.node(path); n != nil && n.GetToken() != nil {
		pos := n.GetToken().Position
		e.Line, e.Column = pos.Line, pos.Column
	}
	return e
}

// atKey is at, positioned on the key of path rather than on its value: for
// "X is required" errors, where the value is what is missing.
func (s *Spec) atKey(path, format string, args ...any) *Error {
	e := &Error{File: s.file, Msg: fmt.Sprintf(format, args...)}
	i := strings.LastIndex(path, ".")
	if i < 0 {
		return e
	}
	parent, key := path[:i], path[i+1:]
	var m *ast.MappingNode
	switch n := s.node(parent).(type) {
	case *ast.MappingNode:
		m = n
	case *ast.MappingValueNode:
		m = &ast.MappingNode{Values: []*ast.MappingValueNode{n}}
	}
	if parent == "$" && m == nil && s.ast != nil && len(s.ast.Docs) > 0 {
		switch n := s.ast.Docs[0].Body.(type) {
		case *ast.MappingNode:
			m = n
		case *ast.MappingValueNode:
			m = &ast.MappingNode{Values: []*ast.MappingValueNode{n}}
		}
	}
	if m == nil {
		return e
	}
	for _, v := range m.Values {
		if v.Key != nil && v.Key.String() == key {
			pos := v.Key.GetToken().Position
			e.Line, e.Column = pos.Line, pos.Column
		}
	}
	return e
}

// node returns the YAML node at path, or nil. The root has no useful
// position, so "$" yields nil.
func (s *Spec) node(path string) ast.Node {
	if s.ast == nil || path == "$" {
		return nil
	}
	p, err := yaml.PathString(path)
	if err != nil {
		return nil
	}
	n, err := p.FilterFile(s.ast)
	if err != nil {
		return nil
	}
	return n
}

// TotalAgents is the sum of all groups' counts.
func (s *Spec) TotalAgents() int {
	n := 0
	for _, g := range s.Agents {
		n += g.Count
	}
	return n
}

// Sections is the number of sections in the document.
func (s *Spec) Sections() int { return s.Document.Chapters * s.Document.SectionsPerChapter }

// JobID names the job in the store: a rerun of the same spec and seed
// resumes it.
func (s *Spec) JobID() string { return fmt.Sprintf("%s-%d", s.Name, s.Seed) }

func (s *Spec) defaults() {
	if s.TaskType == "" {
		s.TaskType = DefaultTaskType
	}
	for i := range s.Agents {
		if s.Agents[i].Backend == "" {
			s.Agents[i].Backend = "sim"
		}
	}
}
