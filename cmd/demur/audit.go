package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/audit"
	"github.com/demurhq/demur/storeurl"
)

func init() { addCommand(newAuditCmd) }

// auditFlags are the flags every audit subcommand shares.
type auditFlags struct {
	store string
	keys  string
}

func newAuditCmd() *cobra.Command {
	var af auditFlags
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify, explain, export and follow the tamper-evident audit log",
		Long: `The audit log is demur's single source of truth: every turn, verdict,
decision and section is a record in a SHA-256 hash chain per job, with an
ed25519-signed checkpoint every 512 records and at the end of every job.
See docs/audit.md.

The store is --store, else $` + storeEnv + `, else the only out/*/demur.db.
Keys live in --keys, by default keys/ next to a SQLite store's file.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&af.store, "store", "", "store URL (default $"+storeEnv+", else the only out/*/demur.db)")
	pf.StringVar(&af.keys, "keys", "", "key directory (default keys/ next to a sqlite store)")
	cmd.AddCommand(newAuditVerifyCmd(&af), newAuditExplainCmd(&af), newAuditExportCmd(&af),
		newAuditTailCmd(&af), newAuditKeyCmd(&af))
	return cmd
}

// auditKeyDir is where demur run keeps the checkpoint key and witness: next
// to a SQLite file (so that the log, its key and its witness move together
// and several jobs in one store share one key), else OUT/keys.
func auditKeyDir(storeURL, out string) string {
	if path, ok := sqlitePath(storeURL); ok {
		return filepath.Join(filepath.Dir(path), "keys")
	}
	if out == "" {
		return ""
	}
	return filepath.Join(out, "keys")
}

func sqlitePath(url string) (string, bool) {
	for _, p := range []string{"sqlite://", "sqlite3://"} {
		if rest, ok := strings.CutPrefix(url, p); ok {
			return rest, true
		}
	}
	return "", false
}

// openAuditLog wraps a job's store in a checkpointing audit.Log whose key
// and witness live in the key directory; demur run calls it.
func openAuditLog(store demur.Store, storeURL, out string) (*audit.Log, error) {
	dir := auditKeyDir(storeURL, out)
	key, err := audit.LoadOrCreateKey(dir)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	log := audit.NewLog(store, key, audit.DefaultEvery)
	if err := log.SetWitness(filepath.Join(dir, audit.WitnessFile)); err != nil {
		return nil, fmt.Errorf("audit witness: %w", err)
	}
	return log, nil
}

// resolveStore picks the store URL: the flag, the environment, or the only
// out/*/demur.db below the working directory.
func (af *auditFlags) resolveStore() (string, error) {
	if af.store != "" {
		return af.store, nil
	}
	if env := os.Getenv(storeEnv); env != "" {
		return env, nil
	}
	found, _ := filepath.Glob(filepath.Join("out", "*", "demur.db"))
	switch len(found) {
	case 1:
		return "sqlite://" + found[0], nil
	case 0:
		return "", usageError(errors.New("no store: pass --store URL or set $" + storeEnv))
	default:
		return "", usageError(fmt.Errorf("several stores (%s): pass --store URL", strings.Join(found, ", ")))
	}
}

func (af *auditFlags) open(ctx context.Context) (demur.Store, string, error) {
	url, err := af.resolveStore()
	if err != nil {
		return nil, "", err
	}
	if !knownScheme(url) && !strings.HasPrefix(url, "sqlite3://") {
		return nil, "", usageError(fmt.Errorf("store %q: want one of %s", url, strings.Join(storeurl.Schemes, ", ")))
	}
	if path, ok := sqlitePath(url); ok {
		// Opening a missing SQLite file would create an empty log and
		// "verify" it; a typo deserves an error instead.
		if _, err := os.Stat(path); err != nil {
			return nil, "", usageError(fmt.Errorf("store %s: %w", url, err))
		}
	}
	st, err := storeurl.Open(ctx, url)
	if err != nil {
		return nil, "", err
	}
	return st, url, nil
}

// keyDir is --keys, else the default for the store.
func (af *auditFlags) keyDir(storeURL string) string {
	if af.keys != "" {
		return af.keys
	}
	return auditKeyDir(storeURL, "")
}

// fileIfExists returns path when it names an existing file.
func fileIfExists(path string) string {
	if path == "" {
		return ""
	}
	if _, err := os.Stat(path); err != nil {
		return ""
	}
	return path
}

// verifyOut is the --json output of audit verify; its fields are stable.
type verifyOut struct {
	Source    string `json:"source"`
	PublicKey string `json:"public_key,omitempty"`
	Witness   string `json:"witness,omitempty"`
	*audit.Result
	First *audit.Problem `json:"first_problem,omitempty"`
}

func newAuditVerifyCmd(af *auditFlags) *cobra.Command {
	var pubkey, witness, file, job string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every hash, link, body and signed checkpoint of the log",
		Long: `Verify recomputes every record's hash and link, every referenced body's
content hash, and every checkpoint's ed25519 signature and the record hashes
it lists; with a witness (the latest checkpoint of each stream, kept beside
the key) it also detects records cut from the end. Exit 0 when sound; exit 1
naming the first broken record of each broken stream and what is wrong.

--pubkey defaults to the key directory's audit_ed25519.pub; pass a copy kept
elsewhere for assurance against someone who can rewrite the key directory.
--file verifies an export offline, without a store.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			out := verifyOut{}
			var opts audit.Options
			var res *audit.Result
			keyDir := ""
			var f *audit.ExportFile
			if file != "" {
				fh, err := os.Open(file)
				if err != nil {
					return usageError(fmt.Errorf("verify: %w", err))
				}
				f, err = audit.ReadExport(fh)
				fh.Close()
				if err != nil {
					return problemError(fmt.Errorf("verify %s: %w", file, err))
				}
				out.Source = file
				keyDir = af.keys
			} else {
				url, err := af.resolveStore()
				if err != nil {
					return err
				}
				out.Source = url
				keyDir = af.keyDir(url)
			}
			if pubkey == "" && keyDir != "" {
				pubkey = fileIfExists(filepath.Join(keyDir, audit.PublicKeyFile))
			}
			if witness == "" && keyDir != "" && file == "" {
				witness = fileIfExists(filepath.Join(keyDir, audit.WitnessFile))
			}
			if pubkey != "" {
				k, err := audit.LoadPublicKey(pubkey)
				if err != nil {
					return usageError(err)
				}
				opts.PublicKey, out.PublicKey = k, pubkey
			} else if f != nil && f.Header.PublicKey != "" {
				k, err := audit.ParsePublicKey([]byte(f.Header.PublicKey))
				if err != nil {
					return problemError(fmt.Errorf("verify %s: header: %w", file, err))
				}
				opts.PublicKey, out.PublicKey = k, "(the export's own header: proves integrity, not origin)"
			}
			if witness != "" {
				w, err := audit.LoadWitness(witness)
				if err != nil {
					return usageError(err)
				}
				opts.Anchors, out.Witness = w.Anchors(), witness
				if job != "" {
					opts.Anchors = nil
					if c := w.Checkpoints[job]; c != nil {
						opts.Anchors = []*audit.Checkpoint{c}
					}
				}
			}
			if f != nil {
				opts.Blob = f.Blob
				recs := f.Records
				if job != "" {
					recs = recs[:0:0]
					for _, r := range f.Records {
						if r.Stream == job {
							recs = append(recs, r)
						}
					}
				}
				res = audit.Verify(recs, opts)
			} else {
				st, _, err := af.open(ctx)
				if err != nil {
					return err
				}
				defer st.Close()
				var streams []string
				if job != "" {
					streams = []string{job}
				}
				if res, err = audit.VerifyStore(ctx, st, opts, streams...); err != nil {
					return err
				}
			}
			out.Result, out.First = res, res.First()
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				if err := enc.Encode(out); err != nil {
					return err
				}
			} else {
				printVerify(w, &out)
			}
			if !res.OK {
				p := res.First()
				return problemError(fmt.Errorf("audit log broken: first bad record %s/%d: %s", p.Stream, p.Seq, p.What))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&pubkey, "pubkey", "", "public key file (default KEYS/"+audit.PublicKeyFile+")")
	fl.StringVar(&witness, "witness", "", "witness file (default KEYS/"+audit.WitnessFile+" for a store)")
	fl.StringVar(&file, "file", "", "verify an export (JSONL) instead of a store")
	fl.StringVar(&job, "job", "", "verify only this job's stream")
	fl.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func printVerify(w io.Writer, o *verifyOut) {
	r := o.Result
	status := "sound"
	if !r.OK {
		status = "BROKEN"
	}
	fmt.Fprintf(w, "%s: %s\n", o.Source, status)
	fmt.Fprintf(w, "  %d records in %d stream(s), %d checkpoint(s), %d signature(s) verified, %d bodies\n",
		r.Records, r.Streams, r.Checkpoints, r.Signatures, r.Blobs)
	switch {
	case o.PublicKey == "":
		fmt.Fprintln(w, "  signatures NOT checked: no public key (--pubkey); only the hash chain was verified")
	default:
		fmt.Fprintf(w, "  public key: %s\n", o.PublicKey)
	}
	if o.Witness != "" {
		fmt.Fprintf(w, "  witness: %s (%d anchor(s))\n", o.Witness, r.Anchors)
	} else {
		fmt.Fprintln(w, "  no witness: records cut from the end of a stream would go unnoticed")
	}
	if r.Unattested > 0 && r.OK {
		fmt.Fprintf(w, "  %d record(s) after the last signed checkpoint: chained, not yet signed\n", r.Unattested)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  first bad record %s/%d (%s): %s\n", p.Stream, p.Seq, p.Kind, p.What)
	}
}

// jobStream resolves --job: the given one, else the store's only stream.
func jobStream(ctx context.Context, st demur.Store, job string) (string, error) {
	if job != "" {
		return job, nil
	}
	streams, err := audit.Streams(ctx, st)
	if err != nil {
		return "", err
	}
	var jobs []string
	for _, s := range streams {
		// Only a job's stream opens with job.start; others (tokens) are not jobs.
		first, err := st.Records(ctx, demur.Query{Stream: s, Limit: 1})
		if err != nil {
			return "", fmt.Errorf("read %s: %w", s, err)
		}
		if len(first) == 1 && first[0].Kind == demur.RecJobStart {
			jobs = append(jobs, s)
		}
	}
	if len(jobs) != 1 {
		return "", usageError(fmt.Errorf("the store holds %d jobs (%s): pass --job ID", len(jobs), strings.Join(jobs, ", ")))
	}
	return jobs[0], nil
}

func newAuditExplainCmd(af *auditFlags) *cobra.Command {
	var job, section, turn, color string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "explain",
		Short: "Tell the story of a refusal: turns, verdict, evidence, rules, action, outcome",
		Long: `Without --section or --turn, list the job's refusals (verdicts other than
comply) and what was done about each. With --section S, tell that section's
story from the log: every attempt with its turn, the verdict with its
evidence marked in the output (»…«, or red on a terminal), every policy rule
the router considered and whether and why it matched, the action, agent
retirements, overrides and the outcome. --turn TASK/N shows one attempt.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			attempt := 0
			if turn != "" {
				task, n, ok := strings.Cut(turn, "/")
				a, err := strconv.Atoi(n)
				if !ok || err != nil || a < 1 || task == "" {
					return usageError(fmt.Errorf("--turn %q: want TASK/ATTEMPT, e.g. c03s07/2", turn))
				}
				if section != "" && section != task && !strings.HasPrefix(task, section+".p") {
					return usageError(fmt.Errorf("--turn %s is not an attempt at section %s", turn, section))
				}
				section, attempt = task, a
			}
			st, _, err := af.open(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			if job, err = jobStream(ctx, st, job); err != nil {
				return err
			}
			recs, err := st.Records(ctx, demur.Query{Stream: job})
			if err != nil {
				return fmt.Errorf("read job %s: %w", job, err)
			}
			if len(recs) == 0 {
				return usageError(fmt.Errorf("job %s: no records", job))
			}
			w := cmd.OutOrStdout()
			if section == "" {
				return printRefusals(w, job, audit.Refusals(recs), asJSON)
			}
			task := section
			if attempt > 0 {
				// A part's attempt is asked for by the part's ID; its story
				// is the whole section's.
				if base, _, ok := strings.Cut(section, ".p"); ok {
					section = base
				}
			}
			story, err := audit.BuildStory(recs, func(h string) ([]byte, error) { return st.Blob(ctx, h) }, section)
			if errors.Is(err, audit.ErrNoSuchTask) {
				return usageError(err)
			}
			if err != nil {
				return err
			}
			if attempt > 0 {
				if err := story.Only(task, attempt); err != nil {
					return usageError(err)
				}
			}
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(story)
			}
			style := audit.PlainStyle
			if color == "always" || (color == "auto" && isTerminal(w)) {
				style = audit.ANSIStyle
			}
			story.Render(w, style)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&job, "job", "", "job ID (default the store's only job)")
	fl.StringVar(&section, "section", "", "section (task) ID, e.g. c03s07")
	fl.StringVar(&turn, "turn", "", "one attempt, TASK/ATTEMPT, e.g. c03s07/2")
	fl.StringVar(&color, "color", "auto", "mark evidence in color: auto, always or never")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func printRefusals(w io.Writer, job string, rs []audit.Refusal, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Job      string          `json:"job"`
			Refusals []audit.Refusal `json:"refusals"`
		}{job, rs})
	}
	fmt.Fprintf(w, "job %s: %d verdict(s) other than comply\n", job, len(rs))
	if len(rs) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "seq\tturn\tagent\tverdict\treasons\tconfidence\taction\trule\t")
	for _, r := range rs {
		reasons := make([]string, len(r.Reasons))
		for i, x := range r.Reasons {
			reasons[i] = string(x)
		}
		action := string(r.Action)
		if r.Retire {
			action += " + retire"
		}
		fmt.Fprintf(tw, "%d\t%s/%d\t%s\t%s\t%s\t%.2f\t%s\t%s\t\n", r.Seq, r.Task, r.Attempt, r.Agent, r.Kind,
			orDash(strings.Join(reasons, ",")), r.Confidence, orDash(action), orDash(r.Rule))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nexplain one: demur audit explain --job "+job+" --section TASK (or --turn TASK/ATTEMPT)")
	return nil
}

func newAuditExportCmd(af *auditFlags) *cobra.Command {
	var output, job string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the log as JSONL, verifiable offline with verify --file",
		Long: `Export writes a header line, then every record of every stream (or of
--job) in seq order, one JSON object per line with all its fields; each
output body referenced by a turn or section goes on its own line
({"blob": HASH, "data": BASE64}) before the first record that needs it.
Checkpoints are records and come along. The file verifies offline:
demur audit verify --file FILE --pubkey audit_ed25519.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			st, url, err := af.open(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			var pub []byte
			if p := fileIfExists(filepath.Join(af.keyDir(url), audit.PublicKeyFile)); p != "" {
				if k, err := audit.LoadPublicKey(p); err == nil {
					pub, _ = audit.MarshalPublicKey(k)
				}
			}
			var streams []string
			if job != "" {
				streams = []string{job}
			}
			w := cmd.OutOrStdout()
			var tmp *os.File
			if output != "" && output != "-" {
				if tmp, err = os.CreateTemp(filepath.Dir(output), ".export-*"); err != nil {
					return fmt.Errorf("export: %w", err)
				}
				defer os.Remove(tmp.Name())
				w = tmp
			}
			stats, err := audit.Export(ctx, st, w, pub, streams...)
			if err != nil {
				return err
			}
			if tmp != nil {
				if err := tmp.Close(); err != nil {
					return fmt.Errorf("export: %w", err)
				}
				if err := os.Rename(tmp.Name(), output); err != nil {
					return fmt.Errorf("export: %w", err)
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "exported %d records and %d bodies", stats.Records, stats.Blobs)
			if output != "" && output != "-" {
				fmt.Fprintf(cmd.ErrOrStderr(), " to %s", output)
			}
			fmt.Fprintln(cmd.ErrOrStderr())
			if stats.MissingBlobs > 0 {
				return problemError(fmt.Errorf("export: %d referenced bodies are missing from the store", stats.MissingBlobs))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to FILE (default standard output)")
	cmd.Flags().StringVar(&job, "job", "", "export only this job's stream")
	return cmd
}

func newAuditTailCmd(af *auditFlags) *cobra.Command {
	var job string
	var follow bool
	var n int
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print the last records, and with -f follow new ones",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			st, _, err := af.open(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			return tailLog(ctx, st, cmd.OutOrStdout(), job, n, follow, every)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&job, "job", "", "only this job's stream (default every stream)")
	fl.BoolVarP(&follow, "follow", "f", false, "keep printing new records until interrupted")
	fl.IntVarP(&n, "lines", "n", 10, "records to print first, per stream")
	fl.DurationVar(&every, "interval", 250*time.Millisecond, "how often -f polls the store")
	return cmd
}

// tailLog prints the last n records of each stream, then, when following,
// polls for records after the last seen seq of each stream. Streams that
// appear later are followed from their start.
func tailLog(ctx context.Context, st demur.Store, w io.Writer, job string, n int, follow bool, every time.Duration) error {
	last := map[string]int64{}
	streams := func() ([]string, error) {
		if job != "" {
			return []string{job}, nil
		}
		return audit.Streams(ctx, st)
	}
	names, err := streams()
	if err != nil {
		return err
	}
	for _, s := range names {
		head, err := audit.HeadSeq(ctx, st, s)
		if err != nil {
			return err
		}
		last[s] = max(0, head-int64(n))
	}
	for {
		for _, s := range names {
			recs, err := st.Records(ctx, demur.Query{Stream: s, AfterSeq: last[s]})
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("tail %s: %w", s, err)
			}
			for _, r := range recs {
				fmt.Fprintln(w, tailLine(r))
				last[s] = r.Seq
			}
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil // interrupted: the normal way to stop following
		case <-time.After(every):
		}
		if names, err = streams(); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// tailLine is one record on one line: where, when, what, and the gist.
func tailLine(r *demur.Record) string {
	return fmt.Sprintf("%s/%d %s %-12s %-11s %s", r.Stream, r.Seq, r.Time.UTC().Format("15:04:05.000"), r.Kind, r.Actor, gist(r))
}

func gist(r *demur.Record) string {
	var p struct {
		Task     string         `json:"task"`
		Agent    string         `json:"agent"`
		Attempt  int            `json:"attempt"`
		Words    int            `json:"words"`
		Verdict  demur.Verdict  `json:"verdict"`
		Decision demur.Decision `json:"decision"`
		State    string         `json:"state"`
		Status   string         `json:"status"`
		Seq      int64          `json:"seq"`
		Error    string         `json:"error"`
	}
	if json.Unmarshal(r.Payload, &p) != nil {
		return oneLine(string(r.Payload), 80)
	}
	at := fmt.Sprintf("%s/%d %s", p.Task, p.Attempt, p.Agent)
	switch r.Kind {
	case demur.RecAssign:
		return at
	case demur.RecTurn:
		if p.Error != "" {
			return at + " error: " + oneLine(p.Error, 60)
		}
		return fmt.Sprintf("%s %d words", at, p.Words)
	case demur.RecVerdict:
		return fmt.Sprintf("%s %s %.2f", at, p.Verdict.Kind, p.Verdict.Confidence)
	case demur.RecDecision:
		return fmt.Sprintf("%s %s (%s)", at, p.Decision.Action, p.Decision.Rule)
	case demur.RecSection:
		return fmt.Sprintf("%s/%d %s accepted, %d words", p.Task, p.Attempt, p.Agent, p.Words)
	case demur.RecAgent:
		return p.Agent + " " + p.State
	case demur.RecJobEnd:
		return p.Status
	case demur.RecCheckpoint:
		return fmt.Sprintf("signed records 1..%d", p.Seq)
	}
	return oneLine(string(r.Payload), 80)
}

func newAuditKeyCmd(af *auditFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage the checkpoint signing key",
	}
	var output string
	export := &cobra.Command{
		Use:   "export",
		Short: "Print the public key (PEM), all that verification needs",
		Long: `Print the checkpoint key's public half as a PKIX PEM block. Keep a copy
somewhere the log's writers cannot reach, and verify with --pubkey FILE:
a key read from next to the log proves only what that directory proves.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir := af.keys
			if dir == "" {
				url, err := af.resolveStore()
				if err != nil {
					return err
				}
				if dir = af.keyDir(url); dir == "" {
					return usageError(errors.New("no key directory for a non-SQLite store: pass --keys DIR"))
				}
			}
			pub, err := audit.LoadPublicKey(filepath.Join(dir, audit.PublicKeyFile))
			if errors.Is(err, fs.ErrNotExist) {
				return usageError(fmt.Errorf("no audit key in %s: demur run creates one on first use", dir))
			}
			if err != nil {
				return err
			}
			pem, err := audit.MarshalPublicKey(pub)
			if err != nil {
				return err
			}
			if output != "" && output != "-" {
				if err := os.WriteFile(output, pem, 0o644); err != nil {
					return fmt.Errorf("export key: %w", err)
				}
			} else if _, err := cmd.OutOrStdout().Write(pem); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "key %s from %s\n", audit.KeyID(pub), dir)
			return nil
		},
	}
	export.Flags().StringVarP(&output, "output", "o", "", "write to FILE (default standard output)")
	cmd.AddCommand(export)
	return cmd
}
