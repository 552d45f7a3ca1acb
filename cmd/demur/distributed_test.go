package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/natsbus"
	"github.com/demurhq/demur/storeurl"
)

// distSpec is the scaled seed experiment of the distributed tests: six
// agents of two profiles, 384 sections, a few seconds of simulator work
// (enough that the job is still far from done once the late workers have
// joined). total is distSpec's section count.
const total = 384

const distSpec = `name: %s
seed: %d
document:
  title: A Distributed Atlas
  chapters: 16
  sections_per_chapter: 24
  words_per_section: 3000
agents:
  - {count: 4, backend: sim, profile: gpt-4-class}
  - {count: 2, backend: sim, profile: experimental-70b}
policy: {retire_after: 3, max_attempts: 32, min_confidence: 0.5}
`

// TestDistributed runs the scaled seed experiment with one coordinator and
// three `demur agent` workers on the NATS server in DEMUR_TEST_NATS_URL,
// logging to the PostgreSQL in DEMUR_TEST_POSTGRES_URL. One worker is
// SIGKILLed mid-run, later the coordinator too, which is then restarted;
// the job must complete with every section exactly once and a log that
// verifies.
func TestDistributed(t *testing.T) {
	if testing.Short() {
		t.Skip("runs four demur processes; skipped with -short")
	}
	natsURL, pgURL := os.Getenv("DEMUR_TEST_NATS_URL"), os.Getenv("DEMUR_TEST_POSTGRES_URL")
	if natsURL == "" || pgURL == "" {
		t.Skip("set DEMUR_TEST_NATS_URL and DEMUR_TEST_POSTGRES_URL (.ci/run does) to run against external services")
	}
	bin := buildBinary(t)
	storeURL := pgSchema(t, pgURL)
	d := newDistRun(t, bin, "dist", natsURL, storeURL, nil)
	d.workerArgs = []string{"--store", storeURL} // workers check announcements against the log
	d.checkStatus = true
	d.run(nil)
}

// TestDistributedCluster is TestDistributed on a three-node NATS cluster
// embedded in the test, with no external service: the log is SQLite (only
// the coordinator writes it), and one node is stopped mid-run.
func TestDistributedCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a NATS cluster and four demur processes; skipped with -short")
	}
	bin := buildBinary(t)
	nodes := startCluster(t)
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.ClientURL())
	}
	dir := t.TempDir()
	storeURL := "sqlite://" + filepath.Join(dir, "demur.db")
	d := newDistRun(t, bin, "distcluster", strings.Join(urls, ","), storeURL, []string{"--nats-replicas", "3"})
	d.run(func() {
		t.Logf("stopping NATS node 0")
		if err := nodes[0].Close(); err != nil {
			t.Logf("stopping node 0: %v", err)
		}
	})
}

// distRun is one distributed job: its processes, store and checks.
type distRun struct {
	t          *testing.T
	bin, dir   string
	job, spec  string
	natsURL    string
	storeURL   string
	natsArgs   []string // extra NATS flags for every process
	workerArgs []string
	workers    []*proc
	store      demur.Store // polled by waitSections
	// checkStatus runs demur status mid-run (PostgreSQL only: the test's
	// SQLite file is the coordinator's alone).
	checkStatus bool
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once the process has exited
	err  error         // its exit, once done is closed
}

func newDistRun(t *testing.T, bin, name, natsURL, storeURL string, natsArgs []string) *distRun {
	dir := t.TempDir()
	// A unique seed makes a unique job ID: streams and buckets on a
	// shared server are never mixed up with another run's.
	var b [4]byte
	_, _ = rand.Read(b[:])
	seed := int64(b[0])<<16 | int64(b[1])<<8 | int64(b[2]) + 1
	spec := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(spec, fmt.Appendf(nil, distSpec, name, seed), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &distRun{t: t, bin: bin, dir: dir, job: fmt.Sprintf("%s-%d", name, seed), spec: spec,
		natsURL: natsURL, storeURL: storeURL, natsArgs: natsArgs}
	t.Cleanup(d.cleanup)
	return d
}

func (d *distRun) start(name string, args ...string) *proc {
	d.t.Helper()
	p := &proc{name: name, log: filepath.Join(d.dir, name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	p.cmd = exec.Command(d.bin, args...)
	p.cmd.Stderr = f
	if strings.HasPrefix(name, "coordinator") {
		p.cmd.Stdout = &bytes.Buffer{}
	} else {
		p.cmd.Stdout = f
	}
	if err := p.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); f.Close(); close(p.done) }()
	return p
}

func (d *distRun) startWorker(i, agents int) *proc {
	args := append([]string{"agent", "--nats", d.natsURL, "--agents", fmt.Sprint(agents), "--ack-wait", "4s",
		"--name", fmt.Sprintf("%s-w%d", d.job, i), "--job", d.job}, d.natsArgs...)
	return d.start(fmt.Sprintf("worker%d", i), append(args, d.workerArgs...)...)
}

func (d *distRun) startCoordinator(n int) *proc {
	args := append([]string{"run", d.spec, "--out", filepath.Join(d.dir, "out"), "--store", d.storeURL,
		"--nats", d.natsURL, "--json"}, d.natsArgs...)
	return d.start(fmt.Sprintf("coordinator%d", n), args...)
}

// run drives the job. Worker 1 starts alone with room for all six agents
// and hosts them; workers 2 and 3 join. Worker 1 is SIGKILLed with every
// agent mid-section, once an eighth of the sections are written and the
// other two are up, and the
// job can only go on once the others have taken the agents over (the
// leases lapse within 10s). midRun (if any) runs once they have; the
// coordinator is SIGKILLed a quarter of the job later and restarted.
func (d *distRun) run(midRun func()) {
	t := d.t
	// Opened first and kept: opening PostgreSQL takes longer than the
	// simulator takes to write a dozen sections.
	st, err := storeurl.Open(context.Background(), d.storeURL)
	if err != nil {
		t.Fatal(err)
	}
	d.store = st
	start := time.Now()
	d.workers = append(d.workers, d.startWorker(1, 6))
	coord := d.startCoordinator(1)
	d.waitLog(d.workers[0], "hosting", 6)
	// Workers 2 and 3 join with nothing to claim: every agent is leased.
	for i := 2; i <= 3; i++ {
		d.workers = append(d.workers, d.startWorker(i, 3))
	}
	// They must be up (heartbeat written right after "joined") before worker
	// 1 dies: the job can reach the kill in well under a second.
	for _, w := range d.workers[1:] {
		d.waitLog(w, ": joined ", 1)
	}
	n0 := d.waitSections(coord, total/8)
	killed := d.workers[0]
	hosted := d.hostedBy(killed)
	if err := killed.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-killed.done
	killTime := time.Now()
	t.Logf("%.1fs: SIGKILLed worker 1 (hosting %v) at %d sections", time.Since(start).Seconds(), hosted, n0)
	if d.checkStatus {
		// The job stands still until the leases lapse: a stable moment.
		d.status()
	}
	n1 := d.waitSections(coord, min(n0+8, total-16))
	t.Logf("%.1fs: %d sections; the job goes on after the take-over", time.Since(start).Seconds(), n1)
	if midRun != nil {
		midRun()
	}
	n2 := d.waitSections(coord, min(n1+total/4, total-8))
	if err := coord.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-coord.done
	t.Logf("%.1fs: SIGKILLed the coordinator at %d sections; restarting it", time.Since(start).Seconds(), n2)
	coord = d.startCoordinator(2)
	select {
	case <-coord.done:
	case <-time.After(90 * time.Second):
		t.Fatalf("restarted coordinator still running after 90s; log:\n%s", d.logs())
	}
	t.Logf("%.1fs: the coordinator finished: %v", time.Since(start).Seconds(), coord.err)
	if coord.err != nil {
		t.Fatalf("restarted coordinator: %v\n%s", coord.err, d.logs())
	}
	var sum runSummary
	if err := json.Unmarshal(coord.cmd.Stdout.(*bytes.Buffer).Bytes(), &sum); err != nil {
		t.Fatalf("--json output: %v\n%s", err, d.logs())
	}
	if sum.Status != "completed" || sum.SectionsDone != total || sum.SectionsTotal != total {
		t.Fatalf("status %s, %d of %d sections", sum.Status, sum.SectionsDone, sum.SectionsTotal)
	}
	checkDocument(t, sum.Document, total)
	checkAcceptedBodies(t, d.storeURL, d.job, sum.Document)

	// The killed worker's agents went on elsewhere.
	for _, key := range hosted {
		taken := false
		for _, w := range d.workers[1:] {
			taken = taken || strings.Contains(readLog(w), "hosting "+key+"\n")
		}
		if !taken {
			t.Errorf("no surviving worker took over %s\n%s", key, d.logs())
		}
	}
	d.checkRedelivered(killTime)
	d.verifyAudit()
}

// redeliveredAfter is sooner than any take-over: a lease lapses at least
// 3/4 of natsbus.LeaseTTL after the kill. A turn recorded later than this
// was answered by the agent's new host, not by the killed worker.
const redeliveredAfter = 5 * time.Second

// checkRedelivered looks in the log for a section left on the killed
// worker's queues (all six agents were there): assigned before the leases
// could lapse, and answered only after the take-over, by the agent's new
// host. Whether the dead worker had already fetched it depends on timing
// (the coordinator, not the agents, is the bottleneck on the simulator);
// natsbus's AckWait test covers redelivery of a fetched, unacked task.
func (d *distRun) checkRedelivered(killTime time.Time) {
	d.t.Helper()
	ctx := context.Background()
	st, err := storeurl.Open(ctx, d.storeURL)
	if err != nil {
		d.t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Records(ctx, demur.Query{Job: d.job, Stream: d.job, Kinds: []demur.RecordKind{demur.RecAssign, demur.RecTurn}})
	if err != nil {
		d.t.Fatal(err)
	}
	assigned := map[string]time.Time{}
	var trail []string // for the failure message
	for _, r := range recs {
		var p struct {
			Task    string `json:"task"`
			Attempt int    `json:"attempt"`
		}
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			d.t.Fatal(err)
		}
		key := fmt.Sprintf("%s/%d", p.Task, p.Attempt)
		if d := r.Time.Sub(killTime); d > -time.Second && d < 30*time.Second {
			trail = append(trail, fmt.Sprintf("%+.3fs %s %s", d.Seconds(), r.Kind, key))
		}
		if r.Kind == demur.RecAssign {
			assigned[key] = r.Time
		} else if at, ok := assigned[key]; ok && at.Before(killTime.Add(redeliveredAfter)) && r.Time.After(killTime.Add(redeliveredAfter)) {
			d.t.Logf("%s: assigned %s after the kill, answered %s after it", key,
				at.Sub(killTime).Round(time.Millisecond), r.Time.Sub(killTime).Round(time.Millisecond))
			return
		}
	}
	d.t.Errorf("no section left on the killed worker's queues was answered after the take-over; records around the kill:\n%s\n%s",
		strings.Join(trail, "\n"), d.logs())
}

// waitLog waits until p's log has n lines containing s.
func (d *distRun) waitLog(p *proc, s string, n int) {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(readLog(p), s) < n {
		if time.Now().After(deadline) {
			d.t.Fatalf("%s: fewer than %d %q after 30s\n%s", p.name, n, s, d.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitSections waits until the log holds n section.done records and
// returns how many it holds.
func (d *distRun) waitSections(coord *proc, n int) int {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		recs, err := d.store.Records(ctx, demur.Query{Job: d.job, Stream: d.job, Kinds: []demur.RecordKind{demur.RecSection}})
		if err == nil && len(recs) >= n {
			return len(recs)
		}
		select {
		case <-coord.done:
			d.t.Fatalf("coordinator ended before %d sections: %v\n%s", n, coord.err, d.logs())
		case <-ctx.Done():
			d.t.Fatalf("fewer than %d sections after 60s (%v)\n%s", n, err, d.logs())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// hostedBy lists the lease keys a worker's log says it hosts.
func (d *distRun) hostedBy(p *proc) []string {
	var keys []string
	for _, line := range strings.Split(readLog(p), "\n") {
		if _, key, ok := strings.Cut(line, ": hosting "); ok {
			keys = append(keys, key)
		}
	}
	return keys
}

// status checks demur status on the running job while worker 1's leases
// have not lapsed yet: running, with its coordinator, every agent leased,
// and the workers' heartbeats.
func (d *distRun) status() {
	d.t.Helper()
	out, err := exec.Command(d.bin, "status", "--store", d.storeURL, "--nats", d.natsURL, "--job", d.job, "--json").Output()
	if err != nil {
		d.t.Fatalf("demur status: %v\n%s", err, out)
	}
	var st statusOut
	if err := json.Unmarshal(out, &st); err != nil {
		d.t.Fatalf("status --json: %v\n%s", err, out)
	}
	if len(st.Jobs) != 1 || st.Jobs[0].Job != d.job || st.Jobs[0].Status != "running" || st.Jobs[0].Coordinator == "" {
		d.t.Fatalf("status jobs: %+v", st.Jobs)
	}
	workers, hosted, queued := 0, 0, 0
	for _, w := range st.Workers {
		if strings.HasPrefix(w.Name, d.job+"-w") {
			workers++
		}
	}
	for _, a := range st.Agents {
		if a.Worker == d.job+"-w1" {
			hosted++
		}
		queued += int(a.Pending) + a.InFlight
	}
	if workers != 3 || hosted != 6 || queued == 0 {
		d.t.Fatalf("status: %d workers, %d of %d agents on worker 1, %d tasks queued or in flight\n%s",
			workers, hosted, len(st.Agents), queued, out)
	}
}

func (d *distRun) verifyAudit() {
	d.t.Helper()
	args := []string{"audit", "verify", "--store", d.storeURL, "--job", d.job}
	if !strings.HasPrefix(d.storeURL, "sqlite://") {
		args = append(args, "--keys", filepath.Join(d.dir, "out", "keys"))
	}
	out, err := exec.Command(d.bin, args...).CombinedOutput()
	if err != nil {
		d.t.Fatalf("demur audit verify: %v\n%s", err, out)
	}
}

func readLog(p *proc) string {
	data, _ := os.ReadFile(p.log)
	return string(data)
}

func (d *distRun) logs() string {
	var b strings.Builder
	entries, _ := filepath.Glob(filepath.Join(d.dir, "*.log"))
	for _, e := range entries {
		data, _ := os.ReadFile(e)
		fmt.Fprintf(&b, "--- %s\n%s", filepath.Base(e), data)
	}
	return b.String()
}

// cleanup stops the workers (SIGTERM: they release their leases) and
// clears the job from a shared server.
func (d *distRun) cleanup() {
	if d.store != nil {
		d.store.Close()
	}
	for _, w := range d.workers {
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, w := range d.workers {
		select {
		case <-w.done:
		case <-time.After(10 * time.Second):
			_ = w.cmd.Process.Kill()
			<-w.done
		}
	}
	if strings.Contains(d.natsURL, ",") {
		return // the test's own cluster, gone with the test
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := natsbus.Connect(ctx, d.natsURL, natsbus.ConnectOptions{Name: "demur-test-cleanup"})
	if err != nil {
		d.t.Logf("cleanup: %v", err)
		return
	}
	defer b.Close()
	if err := b.PurgeJob(ctx, d.job); err != nil {
		d.t.Logf("cleanup: %v", err)
	}
	for _, bucket := range []string{natsbus.JobsBucket, natsbus.LeasesBucket} {
		kv, err := b.KeyValue(ctx, bucket)
		if err != nil {
			continue
		}
		keys, _ := kv.Keys(ctx)
		for _, k := range keys {
			if k == d.job || strings.HasPrefix(k, d.job+".") {
				_ = kv.Purge(ctx, k)
			}
		}
	}
}

// pgSchema makes a schema of the test's own, dropped when the test ends,
// and returns url with search_path pointing at it.
func pgSchema(t *testing.T, pgURL string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatalf("connect to %s: %v", pgURL, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "demur_dist_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close(ctx)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		admin.Close(ctx)
	})
	u, err := url.Parse(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// startCluster starts three embedded NATS nodes on loopback; a cluster
// node always has a client listener, which the demur processes join.
func startCluster(t *testing.T) []*natsbus.Bus {
	t.Helper()
	ports := make([]int, 3)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close() // the node binds it; another process could take it first, failing the test
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes := make([]*natsbus.Bus, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, p := range ports {
		wg.Go(func() {
			nodes[i], errs[i] = natsbus.Embedded(ctx, natsbus.EmbeddedOptions{
				Options:    natsbus.Options{Replicas: 3},
				StoreDir:   t.TempDir(),
				ServerName: fmt.Sprint("node-", i),
				Cluster: &natsbus.ClusterOptions{Name: "demur-dist", Listen: fmt.Sprintf("127.0.0.1:%d", p),
					Routes: routes},
			})
		})
	}
	wg.Wait()
	for _, n := range nodes {
		if n != nil {
			t.Cleanup(func() { n.Close() })
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	// The buckets, like the streams, are replicated three ways.
	for _, bucket := range []string{natsbus.JobsBucket, natsbus.LeasesBucket, natsbus.WorkersBucket} {
		if _, err := nodes[1].KeyValue(ctx, bucket); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}
