// Package backends builds an agent's demur.Backend from its job-spec group:
// the simulator, OpenAI-compatible servers or Anthropic, wrapped in chaos
// injection when the group asks for it. It is the one place that knows
// every backend, so that commands and the coordinator stay free of them.
package backends

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/anthropic"
	"github.com/demurhq/demur/chaos"
	"github.com/demurhq/demur/internal/llmhttp"
	"github.com/demurhq/demur/job"
	"github.com/demurhq/demur/openai"
	"github.com/demurhq/demur/sim"
)

// Names lists the backends New builds.
var Names = []string{"sim", "openai", "anthropic"}

// New returns the backend of one agent of group g. seed is the job's seed:
// it fixes the simulator's draws and, unless the group's chaos block sets
// its own, the chaos injections.
func New(ctx context.Context, g job.AgentGroup, agentID string, seed int64) (demur.Backend, error) {
	_ = ctx // reserved: backends that dial at construction will use it
	var b demur.Backend
	switch g.Backend {
	case "", "sim":
		prof, err := sim.LookupProfile(g.Profile)
		if err != nil {
			return nil, fmt.Errorf("agent %s: %w", agentID, err)
		}
		b = sim.New(sim.Config{Profile: prof, Seed: seed, Agent: agentID, SelfCritique: g.SelfCritique})
	case "openai", "anthropic":
		hb, err := httpBackend(g)
		if err != nil {
			return nil, fmt.Errorf("agent %s: %w", agentID, err)
		}
		b = hb
	default:
		return nil, fmt.Errorf("agent %s: unknown backend %q (want one of %v)", agentID, g.Backend, Names)
	}
	if g.Chaos == nil {
		return b, nil
	}
	cc, err := ChaosConfig(g.Chaos, seed)
	if err != nil {
		return nil, fmt.Errorf("agent %s: chaos: %w", agentID, err)
	}
	return chaos.Wrap(b, cc, agentID), nil
}

// Model is the model name recorded for an agent of group g: the simulator
// profile's canonical name, or the HTTP backend's model.
func Model(g job.AgentGroup) string {
	if g.Backend == "" || g.Backend == "sim" {
		if p, err := sim.LookupProfile(g.Profile); err == nil {
			return p.Name
		}
	}
	return g.ModelName()
}

// httpBackend builds an openai or anthropic backend. It reads the key and
// checks the URL but touches no network, so Validate can call it.
func httpBackend(g job.AgentGroup) (demur.Backend, error) {
	if g.Backend == "anthropic" {
		key, err := loadKey(g, anthropic.DefaultKeyEnv)
		if err != nil {
			return nil, err
		}
		return anthropic.New(anthropic.Config{BaseURL: g.BaseURL, Key: key, Model: g.ModelName(), MaxTokens: g.MaxTokens,
			Stream: g.Stream, Retry: retry(g)})
	}
	key, err := loadKey(g, openai.DefaultKeyEnv)
	if err != nil {
		return nil, err
	}
	return openai.New(openai.Config{BaseURL: g.BaseURL, Key: key, Model: g.ModelName(), MaxTokens: g.MaxTokens,
		Stream: g.Stream, Retry: retry(g)})
}

func retry(g job.AgentGroup) llmhttp.Retry {
	return llmhttp.Retry{Attempts: g.Retries, Timeout: g.TimeoutDuration()}
}

func loadKey(g job.AgentGroup, defaultEnv string) (llmhttp.Key, error) {
	env := g.APIKeyEnv
	if env == "" {
		env = defaultEnv
	}
	return llmhttp.LoadKey(env, g.APIKeyFile)
}

// ChaosConfig turns a spec's chaos block into a chaos.Config; a zero seed
// takes the job's.
func ChaosConfig(c *job.Chaos, jobSeed int64) (chaos.Config, error) {
	cc := chaos.Config{Seed: c.Seed, RefusalRate: c.RefusalRate, FaultRate: c.FaultRate, AfterTokens: c.AfterTokens}
	if cc.Seed == 0 {
		cc.Seed = jobSeed
	}
	var errs []error
	for _, s := range c.Refusals {
		k, err := chaos.ParseKind(s)
		if err != nil {
			errs = append(errs, err)
		}
		cc.Refusals = append(cc.Refusals, k)
	}
	for _, s := range c.Faults {
		k, err := chaos.ParseKind(s)
		if err != nil {
			errs = append(errs, err)
		}
		cc.Faults = append(cc.Faults, k)
	}
	for _, e := range c.Schedule {
		k, err := chaos.ParseKind(e.Inject)
		if err != nil {
			errs = append(errs, err)
		}
		cc.Schedule = append(cc.Schedule, chaos.Scheduled{Turn: e.Turn, Kind: k})
	}
	if c.RetryAfter != "" {
		d, err := time.ParseDuration(c.RetryAfter)
		if err != nil {
			errs = append(errs, fmt.Errorf("retry_after: %w", err))
		}
		cc.RetryAfter = d
	}
	if err := errors.Join(errs...); err != nil {
		return cc, err
	}
	return cc, cc.Validate()
}

// Validate checks what job.Parse cannot know: backend names, simulator
// profiles, chaos kinds, and that an HTTP backend's key can be read. Errors
// are positioned in the spec (file:line:column), so a command can reject a
// spec before it creates anything.
func Validate(spec *job.Spec) error {
	var errs []error
	for i, g := range spec.Agents {
		at := fmt.Sprintf("$.agents[%d]", i)
		switch g.Backend {
		case "", "sim":
			if _, err := sim.LookupProfile(g.Profile); err != nil {
				errs = append(errs, spec.ErrorAt(at+".profile", "%v", err))
			}
		case "openai", "anthropic":
			// Building the client touches no network; it reads the key and
			// checks the URL, which is what must fail before a job starts.
			if _, err := httpBackend(g); err != nil {
				errs = append(errs, spec.ErrorAt(at, "%v", err))
			}
		default:
			errs = append(errs, spec.ErrorAt(at+".backend", "unknown backend %q (want one of %v)", g.Backend, Names))
		}
		if g.Chaos != nil {
			if _, err := ChaosConfig(g.Chaos, spec.Seed); err != nil {
				errs = append(errs, spec.ErrorAt(at+".chaos", "%v", err))
			}
		}
	}
	return errors.Join(errs...)
}
