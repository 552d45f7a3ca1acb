package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/coord"
	"github.com/demurhq/demur/natsbus"
	"github.com/demurhq/demur/storeurl"
	"github.com/demurhq/demur/worker"
)

func init() { addCommand(newStatusCmd) }

// statusOut is the --json output of demur status; its fields are stable.
type statusOut struct {
	Jobs    []jobStatus    `json:"jobs"`
	Workers []workerStatus `json:"workers,omitempty"`
	Agents  []agentStatus  `json:"agents,omitempty"`
}

type jobStatus struct {
	Job           string `json:"job"`
	Status        string `json:"status"` // running (no job.end yet), completed, incomplete
	SectionsTotal int    `json:"sections_total"`
	SectionsDone  int    `json:"sections_done"`
	Turns         int    `json:"turns"`
	Refusals      int    `json:"refusals"`
	// Coordinator is the holder of the job's coordinator lease (bus only).
	Coordinator string `json:"coordinator,omitempty"`
}

type workerStatus struct {
	Name      string   `json:"name"`
	Host      string   `json:"host"`
	PID       int      `json:"pid"`
	MaxAgents int      `json:"max_agents"`
	Agents    []string `json:"agents"`
	// Pending and InFlight sum the hosted agents' queued and unacked tasks.
	Pending  uint64 `json:"pending"`
	InFlight int    `json:"in_flight"`
	Seen     string `json:"seen"`
}

type agentStatus struct {
	Job      string `json:"job"`
	Agent    string `json:"agent"`
	Worker   string `json:"worker,omitempty"`
	Pending  uint64 `json:"pending"`
	InFlight int    `json:"in_flight"`
	Sections int    `json:"sections"`
	Refusals int    `json:"refusals"`
	// LastRefusal is the last refusal's kind and first reason.
	LastRefusal string `json:"last_refusal,omitempty"`
	Retired     bool   `json:"retired,omitempty"`
}

func newStatusCmd() *cobra.Command {
	var nf natsFlags
	var store, jobID string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status --store URL [--nats URL]",
		Short: "Show jobs, workers, their load and their refusals",
		Long: `Status reads the jobs, their sections and their refusals from the store
and, with --nats, the workers (their heartbeats), which agents each hosts
(the leases) and their load (tasks queued and in flight on the bus).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if store == "" {
				return usageError(errors.New("demur status needs --store URL"))
			}
			if !knownScheme(store) {
				return usageError(fmt.Errorf("store %q: want one of %s", store, strings.Join(storeurl.Schemes, ", ")))
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			out, err := collectStatus(ctx, store, jobID, &nf)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			printStatus(cmd.OutOrStdout(), out)
			return nil
		},
	}
	f := cmd.Flags()
	nf.register(f, false)
	f.StringVar(&store, "store", "", "store URL of the jobs' log")
	f.StringVar(&jobID, "job", "", "show only this job")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func collectStatus(ctx context.Context, storeURL, only string, nf *natsFlags) (*statusOut, error) {
	st, err := storeurl.Open(ctx, storeURL)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	recs, err := st.Records(ctx, demur.Query{Job: only, Kinds: []demur.RecordKind{
		demur.RecJobStart, demur.RecJobEnd, demur.RecSection, demur.RecTurn, demur.RecVerdict, demur.RecAgent}})
	if err != nil {
		return nil, fmt.Errorf("read the log: %w", err)
	}
	jobs := map[string]*jobStatus{}
	agents := map[string]*agentStatus{}
	agentOf := func(job, agent string) *agentStatus {
		k := job + "." + agent
		if agents[k] == nil {
			agents[k] = &agentStatus{Job: job, Agent: agent}
		}
		return agents[k]
	}
	for _, r := range recs {
		j := jobs[r.Job]
		if j == nil {
			j = &jobStatus{Job: r.Job, Status: "running"}
			jobs[r.Job] = j
		}
		switch r.Kind {
		case demur.RecJobStart:
			var p demur.JobStartPayload
			if json.Unmarshal(r.Payload, &p) == nil {
				j.SectionsTotal = p.Sections
				for _, a := range p.Agents {
					agentOf(r.Job, a.ID)
				}
			}
		case demur.RecJobEnd:
			var p demur.JobEndPayload
			if json.Unmarshal(r.Payload, &p) == nil {
				j.Status = p.Status
			}
		case demur.RecSection:
			var p demur.SectionPayload
			if json.Unmarshal(r.Payload, &p) == nil {
				j.SectionsDone++
				agentOf(r.Job, p.Agent).Sections++
			}
		case demur.RecTurn:
			j.Turns++
		case demur.RecVerdict:
			var p demur.VerdictPayload
			if json.Unmarshal(r.Payload, &p) == nil && p.Verdict.Kind.IsRefusal() {
				j.Refusals++
				a := agentOf(r.Job, p.Agent)
				a.Refusals++
				a.LastRefusal = string(p.Verdict.Kind)
				if len(p.Verdict.Reasons) > 0 {
					a.LastRefusal += ": " + string(p.Verdict.Reasons[0])
				}
			}
		case demur.RecAgent:
			var p demur.AgentPayload
			if json.Unmarshal(r.Payload, &p) == nil && p.State == "retired" {
				agentOf(r.Job, p.Agent).Retired = true
			}
		}
	}
	out := &statusOut{Jobs: []jobStatus{}}
	for _, k := range sortedMapKeys(jobs) {
		if jobs[k].SectionsTotal == 0 && jobs[k].Turns == 0 {
			continue // token and override streams are not jobs
		}
		out.Jobs = append(out.Jobs, *jobs[k])
	}
	if nf.url != "" {
		if err := busStatus(ctx, nf, out, jobs, agents); err != nil {
			return nil, err
		}
	}
	for _, k := range sortedMapKeys(agents) {
		if j := jobs[agents[k].Job]; j != nil && (j.SectionsTotal > 0 || j.Turns > 0) {
			out.Agents = append(out.Agents, *agents[k])
		}
	}
	for i := range out.Jobs {
		out.Jobs[i].Coordinator = jobs[out.Jobs[i].Job].Coordinator
	}
	return out, nil
}

// busStatus adds what only the bus knows: live workers, who hosts which
// agent, and each running agent's queue.
func busStatus(ctx context.Context, nf *natsFlags, out *statusOut, jobs map[string]*jobStatus, agents map[string]*agentStatus) error {
	bus, err := nf.connect(ctx, "demur-status")
	if err != nil {
		return err
	}
	defer bus.Close()
	leases, err := bus.KeyValue(ctx, natsbus.LeasesBucket)
	if err != nil {
		return err
	}
	beats, err := bus.KeyValue(ctx, natsbus.WorkersBucket)
	if err != nil {
		return err
	}
	holder := map[string]string{} // lease key -> holder
	for _, e := range kvEntries(ctx, leases) {
		var l worker.Lease
		if json.Unmarshal(e.Value(), &l) == nil {
			holder[e.Key()] = l.Holder
		}
	}
	for key, h := range holder {
		job, agent, _ := strings.Cut(key, ".")
		if agent == "_coordinator" {
			if j := jobs[job]; j != nil {
				j.Coordinator = h
			}
		}
	}
	for key, a := range agents {
		if j := jobs[a.Job]; j == nil || j.Status != "running" {
			continue
		}
		a.Worker = holder[key]
		subj := coord.TaskSubject(a.Job, a.Agent)
		if n, err := bus.Pending(ctx, subj); err == nil {
			a.Pending = n
		}
		if ci, err := bus.ConsumerInfo(ctx, subj, coord.AgentDurable(a.Job, a.Agent)); err == nil {
			a.InFlight = ci.NumAckPending
			// Stored messages include the delivered ones; pending is what waits.
			a.Pending -= min(a.Pending, uint64(ci.NumAckPending))
		}
	}
	for _, e := range kvEntries(ctx, beats) {
		var hb worker.Heartbeat
		if json.Unmarshal(e.Value(), &hb) != nil {
			continue
		}
		ws := workerStatus{Name: hb.Name, Host: hb.Host, PID: hb.PID, MaxAgents: hb.MaxAgents, Agents: hb.Agents,
			Seen: hb.Seen.Format(time.RFC3339)}
		for _, k := range hb.Agents {
			if a := agents[k]; a != nil {
				ws.Pending += a.Pending
				ws.InFlight += a.InFlight
			}
		}
		out.Workers = append(out.Workers, ws)
	}
	sort.Slice(out.Workers, func(i, j int) bool { return out.Workers[i].Name < out.Workers[j].Name })
	return nil
}

// kvEntries reads every live entry of a bucket; a bucket it cannot list
// reads as empty, which status shows as no workers.
func kvEntries(ctx context.Context, kv jetstream.KeyValue) []jetstream.KeyValueEntry {
	keys, err := kv.Keys(ctx)
	if err != nil {
		return nil
	}
	var out []jetstream.KeyValueEntry
	for _, k := range keys {
		if e, err := kv.Get(ctx, k); err == nil {
			out = append(out, e)
		}
	}
	return out
}

func sortedMapKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func printStatus(w io.Writer, s *statusOut) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSTATUS\tSECTIONS\tTURNS\tREFUSALS\tCOORDINATOR")
	for _, j := range s.Jobs {
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%d\t%s\n", j.Job, j.Status, j.SectionsDone, j.SectionsTotal, j.Turns, j.Refusals, dash(j.Coordinator))
	}
	if len(s.Workers) > 0 {
		fmt.Fprintln(tw, "\nWORKER\tHOST\tPID\tAGENTS\tPENDING\tIN FLIGHT")
		for _, wk := range s.Workers {
			n := fmt.Sprint(len(wk.Agents))
			if wk.MaxAgents > 0 {
				n += fmt.Sprintf("/%d", wk.MaxAgents)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\n", wk.Name, wk.Host, wk.PID, n, wk.Pending, wk.InFlight)
		}
	}
	if len(s.Agents) > 0 {
		fmt.Fprintln(tw, "\nJOB\tAGENT\tWORKER\tPENDING\tIN FLIGHT\tSECTIONS\tREFUSALS\tLAST REFUSAL\tRETIRED")
		for _, a := range s.Agents {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", a.Job, a.Agent, dash(a.Worker), a.Pending, a.InFlight,
				a.Sections, a.Refusals, dash(a.LastRefusal), yesNo(a.Retired))
		}
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
