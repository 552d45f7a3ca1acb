package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/backends"
	"github.com/demurhq/demur/job"
	"github.com/demurhq/demur/natsbus"
	"github.com/demurhq/demur/storeurl"
	"github.com/demurhq/demur/worker"
)

func init() { addCommand(newAgentCmd) }

// natsFlags are the flags that join an external NATS server, shared by
// run, agent and status. Secrets are read from files, never taken on the
// command line, and never printed.
type natsFlags struct {
	url          string
	user         string
	passwordFile string
	tokenFile    string
	creds        string
	nkey         string
	ca           string
	cert         string
	key          string
	ackWait      time.Duration
	replicas     int
	// prefetch is natsbus.Options.Prefetch for this process's consumers;
	// set by the command, not a flag.
	prefetch int
}

func (n *natsFlags) register(f *pflag.FlagSet, withAckWait bool) {
	f.StringVar(&n.url, "nats", "", "external NATS server(s) with JetStream, e.g. nats://host:4222 (tls://… for TLS); comma-separated for a cluster")
	f.StringVar(&n.user, "nats-user", "", "NATS user name (with --nats-password-file)")
	f.StringVar(&n.passwordFile, "nats-password-file", "", "file whose first line is the NATS password")
	f.StringVar(&n.tokenFile, "nats-token-file", "", "file whose first line is the NATS token")
	f.StringVar(&n.creds, "nats-creds", "", "NATS JWT credentials file")
	f.StringVar(&n.nkey, "nats-nkey", "", "NATS NKey seed file")
	f.StringVar(&n.ca, "nats-ca", "", "CA file to verify the NATS server with; turns TLS on and refuses a plain-text server")
	f.StringVar(&n.cert, "nats-cert", "", "client certificate for NATS TLS (with --nats-key)")
	f.StringVar(&n.key, "nats-key", "", "client key for NATS TLS (with --nats-cert)")
	f.IntVar(&n.replicas, "nats-replicas", 1, "replicas of the streams and buckets this process creates (3 on a three-node cluster)")
	if withAckWait {
		f.DurationVar(&n.ackWait, "ack-wait", natsbus.DefaultAckWait, "how long a task may go unacknowledged before it is redelivered to another holder of its agent")
	}
}

// connectOptions turns the flags into natsbus options, reading secrets
// from their files.
func (n *natsFlags) connectOptions(name string) (natsbus.ConnectOptions, error) {
	o := natsbus.ConnectOptions{Name: name, User: n.user, CredsFile: n.creds, NKeySeedFile: n.nkey,
		TLSCAFile: n.ca, TLSCertFile: n.cert, TLSKeyFile: n.key}
	o.AckWait, o.Replicas, o.Prefetch = n.ackWait, n.replicas, n.prefetch
	// A consumer whose agent nobody hosts any more (a finished job, a
	// test's job) goes away on its own; a live one pulls far more often.
	o.InactiveThreshold = 15 * time.Minute
	var err error
	if n.passwordFile != "" {
		if n.user == "" {
			return o, usageError(errors.New("--nats-password-file needs --nats-user"))
		}
		if o.Password, err = readSecret(n.passwordFile); err != nil {
			return o, usageError(fmt.Errorf("--nats-password-file: %w", err))
		}
	}
	if n.tokenFile != "" {
		if o.Token, err = readSecret(n.tokenFile); err != nil {
			return o, usageError(fmt.Errorf("--nats-token-file: %w", err))
		}
	}
	if (n.cert == "") != (n.key == "") {
		return o, usageError(errors.New("--nats-cert and --nats-key go together"))
	}
	return o, nil
}

func (n *natsFlags) connect(ctx context.Context, name string) (*natsbus.Bus, error) {
	o, err := n.connectOptions(name)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := natsbus.Connect(cctx, n.url, o)
	if err != nil {
		return nil, fmt.Errorf("join NATS: %w", err)
	}
	return b, nil
}

func readSecret(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimSpace(line)
	if line == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return line, nil
}

// workerPrefetch is how many tasks a worker's agent asks for at once. Every
// agent has its own queue, which holds its current task (and at most a
// Stop behind it), so a larger batch never keeps work from another agent;
// it only spares a pull request, a message each way, per task.
const workerPrefetch = 16

type agentOptions struct {
	nats     natsFlags
	store    string
	agents   int
	backends []string
	profiles []string
	jobs     []string
	name     string
	quiet    bool
}

func newAgentCmd() *cobra.Command {
	var o agentOptions
	cmd := &cobra.Command{
		Use:   "agent --nats URL",
		Short: "Host agents of jobs coordinated elsewhere (distributed mode)",
		Long: `Run a worker process: it watches the NATS server for jobs that a
"demur run --nats" coordinator announced, claims agents with leases (bounded
by --agents, filtered by --backend and --profile), and serves their task
queues until it is stopped. A worker that dies loses its leases after 10s
and other workers take its agents over. See docs/distributed.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgent(cmd.Context(), o, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	o.nats.register(f, true)
	f.StringVar(&o.store, "store", "", "the jobs' store URL; when set, a job is served only once its log holds the announced spec")
	f.IntVar(&o.agents, "agents", 0, "host at most this many agents at once (0: no bound)")
	f.StringSliceVar(&o.backends, "backend", nil, "host only agents of these backends (sim, openai, anthropic)")
	f.StringSliceVar(&o.profiles, "profile", nil, "host only agents of these profiles or models")
	f.StringSliceVar(&o.jobs, "job", nil, "serve only these job IDs")
	f.StringVar(&o.name, "name", "", "worker name in leases and status (default HOST-PID)")
	f.BoolVar(&o.quiet, "quiet", false, "do not log claims and releases")
	return cmd
}

func runAgent(ctx context.Context, o agentOptions, stderr io.Writer) error {
	if o.nats.url == "" {
		return usageError(errors.New("demur agent needs --nats URL"))
	}
	if o.agents < 0 {
		return usageError(errors.New("--agents must be 0 or more"))
	}
	if o.nats.ackWait < 3*time.Second {
		return usageError(errors.New("--ack-wait must be at least 3s"))
	}
	if o.store != "" && !knownScheme(o.store) {
		return usageError(fmt.Errorf("store %q: want one of %s", o.store, strings.Join(storeurl.Schemes, ", ")))
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A worker's live heap is a few megabytes, while every turn allocates
	// its prompt, output and messages (tens of kilobytes), so at Go's
	// default target it collects several times a second.
	raiseGCTarget(agentGCPercent)
	if o.name == "" {
		host, _ := os.Hostname()
		o.name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	o.nats.prefetch = workerPrefetch
	bus, err := o.nats.connect(ctx, "demur-agent "+o.name)
	if err != nil {
		return err
	}
	defer bus.Close()
	var store demur.Store
	if o.store != "" {
		if store, err = storeurl.Open(ctx, o.store); err != nil {
			return fmt.Errorf("open store: %w", err)
		}
		defer store.Close()
	}
	logf := func(format string, args ...any) {
		if !o.quiet {
			fmt.Fprintf(stderr, "demur agent %s: %s\n", o.name, fmt.Sprintf(format, args...))
		}
	}
	w, err := worker.New(ctx, worker.Config{
		Name: o.name, Bus: bus, MaxAgents: o.agents, Backends: o.backends, Profiles: o.profiles, Jobs: o.jobs,
		KeepAlive: o.nats.ackWait / 3, Logf: logf,
		NewBackend: func(ctx context.Context, g job.AgentGroup, agent string, seed int64) (demur.Backend, error) {
			return backends.New(ctx, g, agent, seed)
		},
		Verify: verifyAgainstLog(store),
	})
	if err != nil {
		return err
	}
	logf("joined %s", bus.ClientURL())
	if err := w.Run(ctx); err != nil {
		return err
	}
	logf("stopped")
	return nil
}

// verifyAgainstLog checks an announcement against the job.start record of
// the job's log, so that a worker with the store runs only the spec the
// coordinator recorded; without a store every announcement is trusted.
func verifyAgainstLog(store demur.Store) func(context.Context, *worker.Announcement) error {
	if store == nil {
		return nil
	}
	return func(ctx context.Context, a *worker.Announcement) error {
		return worker.VerifyAnnouncement(ctx, store, a)
	}
}
