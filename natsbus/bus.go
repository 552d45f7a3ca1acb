package natsbus

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/demurhq/demur"
)

// Stream names, documented in the package comment.
const (
	// TasksStream holds demur.task.> with work-queue retention.
	TasksStream = "DEMUR_TASKS"
	// ResultsStream holds demur.result.> with work-queue retention.
	ResultsStream = "DEMUR_RESULTS"
)

// Defaults applied to zero fields of [Options] and [EmbeddedOptions].
const (
	// DefaultAckWait is Options.AckWait's default.
	DefaultAckWait = 30 * time.Second
	// DefaultMaxDeliver is Options.MaxDeliver's default.
	DefaultMaxDeliver = 5
	// DefaultPrefetch is Options.Prefetch's default.
	DefaultPrefetch = 1
	// DefaultRequestTimeout is Options.RequestTimeout's default.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultMaxPayload is the embedded server's largest message; a task
	// carries a whole conversation, so the 1 MB NATS default is too small.
	DefaultMaxPayload = 8 << 20
)

// ErrClosed is returned by operations on a closed Bus or Consumer.
var ErrClosed = errors.New("natsbus: closed")

var (
	_ demur.Bus            = (*Bus)(nil)
	_ demur.BatchPublisher = (*Bus)(nil)
)

// Options tune streams and consumers; they are shared by [EmbeddedOptions]
// and [ConnectOptions]. Zero fields take the Default* values.
type Options struct {
	// AckWait is how long a delivered message may stay unacked before it is
	// redelivered. InProgress restarts the clock.
	AckWait time.Duration
	// MaxDeliver bounds deliveries of one message, first one included.
	MaxDeliver int
	// Prefetch is how many messages a Consumer asks for at once. 1 (the
	// default) takes a task only when Next is called, so a slow agent never
	// sits on tasks that an idle one could run and whose AckWait is ticking.
	// Raise it for consumers that process messages quickly.
	Prefetch int
	// RequestTimeout bounds AckSync, PublishBatch's wait for the server's
	// acknowledgements and Broadcast's flush, which have no deadline of
	// their own.
	RequestTimeout time.Duration
	// Replicas is the streams' replica count; 0 means 1. Only meaningful on
	// a cluster.
	Replicas int
	// InactiveThreshold lets the server delete a durable consumer nobody
	// has pulled from for this long, so finished jobs don't leave consumers
	// behind on a long-lived server; 0 keeps them. Messages stay in the
	// stream either way. It must exceed the longest gap between Next calls
	// (a task's processing time): JetStream counts waiting pulls as
	// activity, not unacked messages.
	InactiveThreshold time.Duration
}

func (o Options) withDefaults() Options {
	if o.AckWait <= 0 {
		o.AckWait = DefaultAckWait
	}
	if o.MaxDeliver <= 0 {
		o.MaxDeliver = DefaultMaxDeliver
	}
	if o.Prefetch <= 0 {
		o.Prefetch = DefaultPrefetch
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	return o
}

// EmbeddedOptions configure [Embedded].
type EmbeddedOptions struct {
	Options
	// Listen is a host:port for NATS clients (port 0 picks a free one).
	// Empty means no TCP port at all: only this process can use the bus.
	Listen string
	// StoreDir switches JetStream to file storage in this directory, so
	// queued tasks survive a restart. Empty means memory storage.
	StoreDir string
	// MaxPayload is the largest message in bytes; 0 means DefaultMaxPayload.
	MaxPayload int32
	// ServerName names the server in logs and cluster metadata; cluster
	// nodes need distinct names. Empty means the server's generated ID.
	ServerName string
	// Logger receives the server's log; nil keeps it quiet.
	Logger server.Logger
	// Cluster, if set, makes this server one node of a NATS cluster; set
	// Options.Replicas (typically 3) to replicate the streams across nodes.
	Cluster *ClusterOptions
}

// ClusterOptions join an embedded server to a cluster. A cluster node always accepts
// clients: without EmbeddedOptions.Listen it listens on a free loopback
// port, because nats-server only starts routing after its client listener.
type ClusterOptions struct {
	// Name is the cluster's name, the same on every node.
	Name string
	// Listen is the host:port where this node accepts routes from peers.
	Listen string
	// Routes are the peers' route URLs (nats-route://host:port); listing
	// this node's own address too is fine, so every node can get one list.
	Routes []string
}

// ConnectOptions configure [Connect]. Credentials may also be given in the
// URL (nats://user:pass@host:4222 or nats://token@host:4222), and a tls://
// URL turns on TLS with the system roots.
type ConnectOptions struct {
	Options
	// Name identifies this connection in server monitoring.
	Name string
	// User and Password authenticate with a username.
	User, Password string
	// Token authenticates with a token.
	Token string
	// NKeySeedFile authenticates with an NKey seed.
	NKeySeedFile string
	// CredsFile authenticates with a JWT creds file (decentralised auth).
	CredsFile string
	// TLSCAFile verifies the server against this CA instead of system roots.
	TLSCAFile string
	// TLSCertFile and TLSKeyFile present a client certificate.
	TLSCertFile, TLSKeyFile string
	// ConnectTimeout bounds the initial dial; 0 means ctx's deadline, or
	// the nats.go default without one.
	ConnectTimeout time.Duration
}

// Bus is a demur.Bus on NATS JetStream. It is safe for concurrent use.
type Bus struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts Options
	// srv is the embedded server, nil for a Bus from Connect.
	srv *server.Server
	// tmpDir is the JetStream directory Embedded made for memory storage
	// and removes on Close.
	tmpDir string

	mu        sync.Mutex
	closed    bool
	consumers map[*Consumer]struct{}
	closeErr  error
	closeOnce sync.Once
}

// Embedded starts a nats-server with JetStream inside this process and
// returns a Bus connected to it in-process. Close stops the server.
func Embedded(ctx context.Context, opts EmbeddedOptions) (*Bus, error) {
	sopts, tmpDir, err := serverOptions(opts)
	if err != nil {
		return nil, err
	}
	cleanup := func() {
		if tmpDir != "" {
			os.RemoveAll(tmpDir)
		}
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("natsbus: new embedded server: %w", err)
	}
	if opts.Logger != nil {
		srv.SetLogger(opts.Logger, false, false)
	}
	srv.Start()
	stop := func() {
		srv.Shutdown()
		srv.WaitForShutdown()
		cleanup()
	}
	if !waitReady(ctx, srv) {
		stop()
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("natsbus: embedded server start: %w", err)
		}
		return nil, errors.New("natsbus: embedded server not ready after 10s")
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("demur-embedded"),
		nats.DrainTimeout(5*time.Second), nats.NoReconnect())
	if err != nil {
		stop()
		return nil, fmt.Errorf("natsbus: connect to embedded server: %w", err)
	}
	if opts.Cluster != nil {
		waitMeta(ctx, srv)
	}
	storage := jetstream.MemoryStorage
	if opts.StoreDir != "" {
		storage = jetstream.FileStorage
	}
	b, err := open(ctx, nc, opts.Options, storage)
	if err != nil {
		nc.Close()
		stop()
		return nil, err
	}
	b.srv, b.tmpDir = srv, tmpDir
	return b, nil
}

// serverOptions maps EmbeddedOptions onto nats-server's options. It makes
// the JetStream directory for memory storage, which the caller removes.
func serverOptions(opts EmbeddedOptions) (*server.Options, string, error) {
	sopts := &server.Options{
		ServerName: opts.ServerName,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		MaxPayload: opts.MaxPayload,
		NoLog:      opts.Logger == nil,
		NoSigs:     true,
		DontListen: opts.Listen == "",
	}
	if sopts.MaxPayload <= 0 {
		sopts.MaxPayload = DefaultMaxPayload
	}
	if opts.Listen != "" {
		host, port, err := splitListen(opts.Listen)
		if err != nil {
			return nil, "", err
		}
		sopts.Host, sopts.Port = host, port
	}
	if c := opts.Cluster; c != nil {
		if c.Name == "" || c.Listen == "" {
			return nil, "", errors.New("natsbus: cluster needs a name and a listen address")
		}
		host, port, err := splitListen(c.Listen)
		if err != nil {
			return nil, "", fmt.Errorf("natsbus: cluster: %w", err)
		}
		sopts.Cluster = server.ClusterOpts{Name: c.Name, Host: host, Port: port}
		if sopts.DontListen {
			// nats-server starts routing only once its client listener is
			// up, so a node without one would never join (and its Shutdown
			// would wait forever for the routing goroutine).
			sopts.DontListen = false
			sopts.Host, sopts.Port = "127.0.0.1", server.RANDOM_PORT
		}
		sopts.Routes = server.RoutesFromStr(strings.Join(c.Routes, ","))
		if len(sopts.Routes) != len(c.Routes) {
			return nil, "", fmt.Errorf("natsbus: cluster routes %v: not all are URLs", c.Routes)
		}
	}
	tmpDir := ""
	if sopts.StoreDir == "" {
		// JetStream writes some metadata even with memory-only streams; a
		// private directory keeps concurrent embedded buses (tests, several
		// demur processes) off the shared default under os.TempDir.
		d, err := os.MkdirTemp("", "demur-nats-*")
		if err != nil {
			return nil, "", fmt.Errorf("natsbus: jetstream temp dir: %w", err)
		}
		sopts.StoreDir, tmpDir = d, d
	}
	return sopts, tmpDir, nil
}

// splitListen parses host:port, mapping port 0 to the server's "any free
// port" value.
func splitListen(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("natsbus: listen address %q: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("natsbus: listen address %q: bad port", addr)
	}
	if p == 0 {
		p = server.RANDOM_PORT
	}
	return host, p, nil
}

func waitReady(ctx context.Context, srv *server.Server) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if srv.ReadyForConnections(100 * time.Millisecond) {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
	}
	return false
}

// waitMeta waits until this node follows an elected JetStream meta leader,
// ctx ends or openRetryLimit passes; creating streams earlier only burns
// request timeouts. Giving up is not an error: open retries and reports.
func waitMeta(ctx context.Context, srv *server.Server) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	limit := time.After(openRetryLimit)
	for !srv.JetStreamIsCurrent() {
		select {
		case <-ctx.Done():
			return
		case <-limit:
			return
		case <-tick.C:
		}
	}
}

// Connect joins an external NATS server or cluster (url may list several
// servers separated by commas) and makes sure the streams exist, with file
// storage.
func Connect(ctx context.Context, url string, opts ConnectOptions) (*Bus, error) {
	name := opts.Name
	if name == "" {
		name = "demur"
	}
	nopts := []nats.Option{
		nats.Name(name),
		nats.DrainTimeout(5 * time.Second),
		// A coordinator runs for the length of a job; riding out a server
		// restart beats failing the job.
		nats.MaxReconnects(-1),
	}
	if opts.User != "" || opts.Password != "" {
		nopts = append(nopts, nats.UserInfo(opts.User, opts.Password))
	}
	if opts.Token != "" {
		nopts = append(nopts, nats.Token(opts.Token))
	}
	if opts.NKeySeedFile != "" {
		o, err := nats.NkeyOptionFromSeed(opts.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("natsbus: nkey seed %s: %w", opts.NKeySeedFile, err)
		}
		nopts = append(nopts, o)
	}
	if opts.CredsFile != "" {
		nopts = append(nopts, nats.UserCredentials(opts.CredsFile))
	}
	if opts.TLSCAFile != "" {
		nopts = append(nopts, nats.RootCAs(opts.TLSCAFile))
	}
	if (opts.TLSCertFile == "") != (opts.TLSKeyFile == "") {
		return nil, errors.New("natsbus: TLS client certificate needs both cert and key files")
	}
	if opts.TLSCertFile != "" {
		nopts = append(nopts, nats.ClientCert(opts.TLSCertFile, opts.TLSKeyFile))
	}
	// nats.Connect takes no context, so ctx's deadline becomes the dial
	// timeout unless one was given.
	if opts.ConnectTimeout > 0 {
		nopts = append(nopts, nats.Timeout(opts.ConnectTimeout))
	} else if dl, ok := ctx.Deadline(); ok {
		nopts = append(nopts, nats.Timeout(max(time.Until(dl), time.Millisecond)))
	}
	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		return nil, fmt.Errorf("natsbus: connect %s: %w", redact(url), err)
	}
	b, err := open(ctx, nc, opts.Options, jetstream.FileStorage)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return b, nil
}

// redact hides credentials in a NATS URL list for error messages.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			scheme := ""
			if k := strings.Index(p, "://"); k >= 0 && k < at {
				scheme = p[:k+3]
			}
			parts[i] = scheme + "***@" + p[at+1:]
		}
	}
	return strings.Join(parts, ",")
}

func open(ctx context.Context, nc *nats.Conn, opts Options, storage jetstream.StorageType) (*Bus, error) {
	opts = opts.withDefaults()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(opts.RequestTimeout))
	if err != nil {
		return nil, fmt.Errorf("natsbus: jetstream: %w", err)
	}
	b := &Bus{nc: nc, js: js, opts: opts, consumers: map[*Consumer]struct{}{}}
	for _, cfg := range b.streamConfigs(storage) {
		err := retryTransient(ctx, func(ctx context.Context) error { return ensureStream(ctx, js, cfg) })
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

// openRetryLimit bounds how long open waits for a cluster to become able to
// create streams (meta leader elected, enough peers for the replicas).
const openRetryLimit = 30 * time.Second

// attemptTimeout bounds one try in retryTransient: a clustered server
// without a meta leader does not answer JetStream API requests at all, so
// an attempt with the caller's whole deadline would use it up.
const attemptTimeout = 5 * time.Second

// retryTransient runs f until it succeeds, fails for good, ctx ends or
// openRetryLimit passes.
func retryTransient(ctx context.Context, f func(context.Context) error) error {
	start := time.Now()
	wait := 50 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := f(actx)
		cancel()
		if err == nil || !transient(err) || time.Since(start) > openRetryLimit {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// transient reports errors a starting or electing cluster returns.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.ErrorCode(server.JSClusterNotAvailErr),
			jetstream.ErrorCode(server.JSClusterNoPeersErrF),
			jetstream.ErrorCode(server.JSInsufficientResourcesErr):
			return true
		}
	}
	// A stream between leaders answers nothing: a publish then fails at
	// once with "no response from stream" rather than timing out.
	return errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders)
}

func (b *Bus) streamConfigs(storage jetstream.StorageType) []jetstream.StreamConfig {
	return []jetstream.StreamConfig{
		{
			Name:        TasksStream,
			Description: "demur tasks, one work queue per job and agent",
			Subjects:    []string{"demur.task.>"},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     storage,
			Replicas:    b.opts.Replicas,
		},
		{
			Name:        ResultsStream,
			Description: "demur results, one work queue per job",
			Subjects:    []string{"demur.result.>"},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     storage,
			Replicas:    b.opts.Replicas,
		},
	}
}

// ensureStream creates cfg's stream, or accepts an existing one that routes
// the same subjects with the same retention. It does not update a stream
// that differs only in tuning (storage, replicas): processes sharing a
// server with different settings would otherwise rewrite it back and forth,
// and storage cannot be changed anyway.
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) error {
	_, err := js.CreateStream(ctx, cfg)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("natsbus: create stream %s: %w", cfg.Name, err)
	}
	s, err := js.Stream(ctx, cfg.Name)
	if err != nil {
		return fmt.Errorf("natsbus: look up existing stream %s: %w", cfg.Name, err)
	}
	have := s.CachedInfo().Config
	if have.Retention == cfg.Retention && sameSet(have.Subjects, cfg.Subjects) {
		return nil
	}
	// Subjects or retention differ, e.g. a stream from an older demur: try
	// to bring it in line, which fails loudly if JetStream won't allow it.
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("natsbus: stream %s exists with subjects %v and retention %v, want %v and %v: %w",
			cfg.Name, have.Subjects, have.Retention, cfg.Subjects, cfg.Retention, err)
	}
	return nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// Publish stores data on a durable subject (a task or result subject) and
// returns once JetStream has acknowledged it.
func (b *Bus) Publish(ctx context.Context, subject string, data []byte) error {
	if b.isClosed() {
		return ErrClosed
	}
	if _, err := b.js.Publish(ctx, subject, data); err != nil {
		return fmt.Errorf("natsbus: publish %s: %w", subject, err)
	}
	return nil
}

// PublishBatch stores msgs on durable subjects and returns once JetStream
// has acknowledged every one. It sends them all before it waits, so a batch
// costs one round trip instead of one per message. After an error some of
// the messages may be stored; the error names those that were not
// confirmed.
func (b *Bus) PublishBatch(ctx context.Context, msgs []demur.BusMessage) error {
	if b.isClosed() {
		return ErrClosed
	}
	if len(msgs) == 1 {
		return b.Publish(ctx, msgs[0].Subject, msgs[0].Data)
	}
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	var errs []error
	for _, m := range msgs {
		f, err := b.js.PublishAsync(m.Subject, m.Data)
		if err != nil {
			errs = append(errs, fmt.Errorf("natsbus: publish %s: %w", m.Subject, err))
			continue
		}
		futures = append(futures, f)
	}
	// Each future fails on its own after RequestTimeout (open sets the
	// JetStream context's async timeout), so this loop ends.
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs = append(errs, fmt.Errorf("natsbus: publish %s: %w", f.Msg().Subject, err))
		case <-ctx.Done():
			return errors.Join(append(errs, fmt.Errorf("natsbus: publish: %d messages not confirmed: %w", len(futures)-i, ctx.Err()))...)
		}
	}
	return errors.Join(errs...)
}

// Consume opens (creating or updating) the durable pull consumer named
// durable that is filtered on subject; see the package comment for naming.
// subject must be under demur.task. or demur.result. and may use wildcards.
func (b *Bus) Consume(ctx context.Context, subject, durable string) (demur.Consumer, error) {
	stream, err := streamFor(subject)
	if err != nil {
		return nil, err
	}
	if !validName(durable) {
		return nil, fmt.Errorf("natsbus: consume %s: invalid durable name %q", subject, durable)
	}
	if b.isClosed() {
		return nil, ErrClosed
	}
	name := consumerName(durable, subject)
	jc, err := b.js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:           name,
		Description:       subject,
		FilterSubject:     subject,
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           b.opts.AckWait,
		MaxDeliver:        b.opts.MaxDeliver,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: b.opts.InactiveThreshold,
	})
	if err != nil {
		return nil, fmt.Errorf("natsbus: consumer %s on %s (%s): %w", name, stream, subject, err)
	}
	c, err := newConsumer(b, jc, subject)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		c.stop()
		return nil, ErrClosed
	}
	b.consumers[c] = struct{}{}
	return c, nil
}

func (b *Bus) forget(c *Consumer) {
	b.mu.Lock()
	delete(b.consumers, c)
	b.mu.Unlock()
}

func streamFor(subject string) (string, error) {
	switch {
	case strings.HasPrefix(subject, "demur.task."):
		return TasksStream, nil
	case strings.HasPrefix(subject, "demur.result."):
		return ResultsStream, nil
	}
	return "", fmt.Errorf("natsbus: %q is not a durable subject (want demur.task.… or demur.result.…)", subject)
}

// consumerName keys the JetStream consumer on the subject as well as the
// durable name, since consumer names are per stream and every job shares
// the stream.
func consumerName(durable, subject string) string {
	h := fnv.New64a()
	h.Write([]byte(subject))
	return fmt.Sprintf("%s_%016x", durable, h.Sum64())
}

// validName reports whether s can be a JetStream consumer name or a single
// subject token.
func validName(s string) bool {
	return s != "" && len(s) <= 200 && !strings.ContainsAny(s, ".*> \t\r\n/\\")
}

// Subscribe calls fn for every message broadcast on subject (core NATS,
// wildcards allowed) until unsubscribe is called. fn runs on one goroutine
// per subscription, in order.
func (b *Bus) Subscribe(subject string, fn func(data []byte)) (func(), error) {
	if b.isClosed() {
		return nil, ErrClosed
	}
	sub, err := b.nc.Subscribe(subject, func(m *nats.Msg) { fn(m.Data) })
	if err != nil {
		return nil, fmt.Errorf("natsbus: subscribe %s: %w", subject, err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// Broadcast sends data to the current subscribers of subject. It returns
// once the server has the message, so a pause or override sent just before
// the coordinator moves on is not still sitting in a client buffer.
func (b *Bus) Broadcast(subject string, data []byte) error {
	if b.isClosed() {
		return ErrClosed
	}
	if err := b.nc.Publish(subject, data); err != nil {
		return fmt.Errorf("natsbus: broadcast %s: %w", subject, err)
	}
	if err := b.nc.FlushTimeout(b.opts.RequestTimeout); err != nil {
		return fmt.Errorf("natsbus: broadcast %s: flush: %w", subject, err)
	}
	return nil
}

// PurgeJob deletes job's pending tasks (for every agent) and results, for a
// coordinator restarting the job from the audit log. Consumers stay.
func (b *Bus) PurgeJob(ctx context.Context, job string) error {
	if !validName(job) {
		return fmt.Errorf("natsbus: purge: invalid job name %q", job)
	}
	if b.isClosed() {
		return ErrClosed
	}
	for _, p := range []struct{ stream, subject string }{
		{TasksStream, fmt.Sprintf(demur.SubjectTask, job, ">")},
		{ResultsStream, fmt.Sprintf(demur.SubjectResult, job)},
	} {
		s, err := b.js.Stream(ctx, p.stream)
		if err != nil {
			return fmt.Errorf("natsbus: purge job %s: stream %s: %w", job, p.stream, err)
		}
		if err := s.Purge(ctx, jetstream.WithPurgeSubject(p.subject)); err != nil {
			return fmt.Errorf("natsbus: purge job %s: %s: %w", job, p.subject, err)
		}
	}
	return nil
}

// ClientURL is the URL other processes use to reach this bus: the embedded
// server's when it listens, the connected server's (credentials redacted)
// for a Bus from Connect, and "" for an embedded bus without a port.
func (b *Bus) ClientURL() string {
	if b.srv != nil {
		if b.srv.Addr() == nil {
			return ""
		}
		return b.srv.ClientURL()
	}
	return b.nc.ConnectedUrlRedacted()
}

func (b *Bus) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Close stops open consumers, drains the connection (pending publishes and
// acks reach the server) and, for an embedded bus, shuts the server down
// and waits for it. Close is idempotent.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		cs := make([]*Consumer, 0, len(b.consumers))
		for c := range b.consumers {
			cs = append(cs, c)
		}
		b.mu.Unlock()
		for _, c := range cs {
			if err := c.Close(); err != nil && !errors.Is(err, ErrClosed) {
				b.closeErr = errors.Join(b.closeErr, err)
			}
		}
		if err := drain(b.nc); err != nil {
			b.closeErr = errors.Join(b.closeErr, err)
		}
		if b.srv != nil {
			b.srv.Shutdown()
			b.srv.WaitForShutdown()
		}
		if b.tmpDir != "" {
			if err := os.RemoveAll(b.tmpDir); err != nil {
				b.closeErr = errors.Join(b.closeErr, fmt.Errorf("natsbus: remove %s: %w", b.tmpDir, err))
			}
		}
	})
	return b.closeErr
}

// drain waits for Drain to finish: nats.Conn.Drain only starts it, and
// shutting the embedded server down under a draining connection would lose
// its last acks.
func drain(nc *nats.Conn) error {
	done := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(done) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		if errors.Is(err, nats.ErrConnectionClosed) {
			return nil
		}
		return fmt.Errorf("natsbus: drain: %w", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		nc.Close()
		return errors.New("natsbus: drain timed out")
	}
	if err := nc.LastError(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("natsbus: drain: %w", err)
	}
	return nil
}
