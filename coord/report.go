package coord

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/demurhq/demur"
)

// AgentReport is one row of the study's table: what an agent produced and
// whether and when it refused.
type AgentReport struct {
	ID       string `json:"id"`
	Backend  string `json:"backend"`
	Model    string `json:"model"`
	Words    int64  `json:"words"`
	Tokens   int64  `json:"tokens"`
	Sections int    `json:"sections"`
	Refused  bool   `json:"refused"`
	// TokensAtRefusal is the agent's cumulative output tokens at its first
	// refusal, 0 when it never refused.
	TokensAtRefusal int64  `json:"tokens_at_refusal,omitempty"`
	Reason          string `json:"reason,omitempty"`
	Refusals        int    `json:"refusals"`
	Retired         bool   `json:"retired"`
}

// Report is a job's outcome, computed from the audit log alone.
type Report struct {
	Job           string        `json:"job_id"`
	Status        string        `json:"status"`
	SectionsTotal int           `json:"sections_total"`
	SectionsDone  int           `json:"sections_done"`
	Missing       []string      `json:"missing,omitempty"`
	Agents        []AgentReport `json:"agents"`
	// RefusalRate is the share of agents that refused at least once.
	RefusalRate float64 `json:"refusal_rate"`
	// MeanAbandonmentTokens is the mean of TokensAtRefusal over agents that
	// refused; 0 when none did.
	MeanAbandonmentTokens float64 `json:"mean_abandonment_tokens"`
	// ElapsedSeconds is the time from the job's first record to its end
	// (to its last record while it runs), resumptions included.
	ElapsedSeconds float64 `json:"elapsed_s"`
	Turns          int     `json:"turns"`
	Words          int64   `json:"words"`
	// Lost counts the work that did not become part of the document:
	// turns whose output was not accepted, their output tokens and the
	// backend time they took.
	Lost Lost `json:"lost"`
	// Sections accepted into the artifact, in document order.
	Sections []demur.SectionPayload `json:"-"`
}

// Lost is work spent on turns whose output the job did not keep.
type Lost struct {
	Turns   int     `json:"turns"`
	Tokens  int64   `json:"tokens"`
	Seconds float64 `json:"seconds"`
}

// BuildReport reads job's records from store and computes its report.
func BuildReport(ctx context.Context, store demur.Store, job string) (*Report, error) {
	recs, err := store.Records(ctx, demur.Query{Job: job, Stream: job})
	if err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("job %s: %w", job, demur.ErrNotFound)
	}
	rp := &Report{Job: job, Status: "running"}
	byAgent := map[string]*AgentReport{}
	turns := map[string]demur.TurnPayload{}
	for _, r := range recs {
		if err := rp.add(r, byAgent, turns); err != nil {
			return nil, fmt.Errorf("record %d (%s): %w", r.Seq, r.Kind, err)
		}
	}
	rp.ElapsedSeconds = recs[len(recs)-1].Time.Sub(recs[0].Time).Seconds()
	for _, t := range turns { // what is left was never accepted
		rp.Lost.Turns++
		rp.Lost.Tokens += int64(t.Usage.CompletionTokens)
		rp.Lost.Seconds += t.Elapsed.Seconds()
	}
	refused, sum := 0, int64(0)
	for i := range rp.Agents {
		a := &rp.Agents[i]
		rp.Words += a.Words
		if a.Refused {
			refused++
			sum += a.TokensAtRefusal
		}
	}
	if len(rp.Agents) > 0 {
		rp.RefusalRate = float64(refused) / float64(len(rp.Agents))
	}
	if refused > 0 {
		rp.MeanAbandonmentTokens = float64(sum) / float64(refused)
	}
	rp.SectionsDone = writtenSections(rp.Sections)
	return rp, nil
}

func (rp *Report) add(r *demur.Record, byAgent map[string]*AgentReport, turns map[string]demur.TurnPayload) error {
	switch r.Kind {
	case demur.RecJobStart:
		var p demur.JobStartPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return err
		}
		rp.SectionsTotal = p.Sections
		rp.Agents = make([]AgentReport, len(p.Agents))
		for i, a := range p.Agents {
			rp.Agents[i] = AgentReport{ID: a.ID, Backend: a.Backend, Model: a.Model}
			byAgent[a.ID] = &rp.Agents[i]
		}
	case demur.RecTurn:
		var p demur.TurnPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return err
		}
		rp.Turns++
		turns[fmt.Sprintf("%s/%d", p.Task, p.Attempt)] = p
		if a := byAgent[p.Agent]; a != nil {
			a.Words += int64(p.Words)
			a.Tokens += int64(p.Usage.CompletionTokens)
		}
	case demur.RecVerdict:
		var p demur.VerdictPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return err
		}
		a := byAgent[p.Agent]
		if a == nil || !p.Verdict.Kind.IsRefusal() {
			return nil
		}
		a.Refusals++
		if !a.Refused {
			a.Refused, a.TokensAtRefusal = true, a.Tokens
			if len(p.Verdict.Reasons) > 0 {
				a.Reason = string(p.Verdict.Reasons[0])
			}
		}
	case demur.RecSection:
		var p demur.SectionPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return err
		}
		rp.Sections = append(rp.Sections, p)
		delete(turns, fmt.Sprintf("%s/%d", p.Task, p.Attempt))
		if a := byAgent[p.Agent]; a != nil {
			a.Sections++
		}
	case demur.RecAgent:
		var p demur.AgentPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return err
		}
		if a := byAgent[p.Agent]; a != nil && p.State == "retired" {
			a.Retired = true
		}
		if p.State == "joined" && byAgent[p.Agent] == nil {
			rp.Agents = append(rp.Agents, AgentReport{ID: p.Agent, Backend: "fallback", Model: p.Model})
			for i := range rp.Agents { // the append may have moved them
				byAgent[rp.Agents[i].ID] = &rp.Agents[i]
			}
		}
	case demur.RecJobEnd:
		var p demur.JobEndPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return err
		}
		rp.Status, rp.Missing = p.Status, p.Missing
	}
	return nil
}

// writtenSections counts document positions written whole or in all their
// parts.
func writtenSections(secs []demur.SectionPayload) int {
	parts := map[int]map[int]bool{}
	whole := map[int]bool{}
	need := map[int]int{}
	for _, s := range secs {
		if s.Parts == 0 {
			whole[s.Index] = true
			continue
		}
		if parts[s.Index] == nil {
			parts[s.Index] = map[int]bool{}
		}
		parts[s.Index][s.Part] = true
		need[s.Index] = s.Parts
	}
	n := len(whole)
	for idx, ps := range parts {
		if !whole[idx] && len(ps) == need[idx] {
			n++
		}
	}
	return n
}

// Jobs lists the jobs in store, in the order they started.
func Jobs(ctx context.Context, store demur.Store) ([]string, error) {
	recs, err := store.Records(ctx, demur.Query{Kinds: []demur.RecordKind{demur.RecJobStart}})
	if err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Time.Before(recs[j].Time) })
	jobs := make([]string, len(recs))
	for i, r := range recs {
		jobs[i] = r.Job
	}
	return jobs, nil
}
