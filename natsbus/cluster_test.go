package natsbus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// freePorts finds n free loopback ports. Routes must be known before the
// nodes start, so port 0 won't do; another process could grab a port in
// between, which would only make this test fail.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// newCluster starts three embedded nodes with R3 streams, all at once since
// none can create streams before a quorum is up.
func newCluster(t *testing.T, opts Options) []*Bus {
	t.Helper()
	ports := freePorts(t, 3)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	opts.Replicas = 3
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes := make([]*Bus, len(ports))
	errs := make([]error, len(ports))
	var wg sync.WaitGroup
	for i, p := range ports {
		wg.Go(func() {
			nodes[i], errs[i] = Embedded(ctx, EmbeddedOptions{
				Options:    opts,
				ServerName: fmt.Sprint("node-", i),
				Cluster: &ClusterOptions{
					Name:   "demur-test",
					Listen: fmt.Sprintf("127.0.0.1:%d", p),
					Routes: routes,
				},
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
		t.Fatalf("starting cluster: %v", err)
	}
	return nodes
}

func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	t.Parallel()
	nodes := newCluster(t, Options{})

	ctx := timeoutCtx(t, 10*time.Second)
	s, err := nodes[1].js.Stream(ctx, TasksStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("tasks stream not replicated three ways: config %d replicas, cluster %+v",
			info.Config.Replicas, info.Cluster)
	}

	// Published on one node, consumed on another.
	job := uniqueJob(t)
	subj := taskSubject(job, "a")
	c := consume(t, nodes[2], subj, "a")
	// A stream that has just been placed may still be settling its
	// leader; publishes during that moment fail at once and are retried.
	if err := retryTransient(timeoutCtx(t, 20*time.Second), func(ctx context.Context) error {
		return nodes[0].Publish(ctx, subj, []byte("one"))
	}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	// A new replicated consumer may drop the first pull request while its
	// leader settles; the iterator notices by the missed heartbeats and
	// pulls again (~5 s, see pullExpiry), so the wait allows for that.
	d, err := c.Next(timeoutCtx(t, 3*pullExpiry))
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	if string(d.Data()) != "one" {
		t.Fatalf("got %q", d.Data())
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}

	// Losing a node (possibly a leader) keeps the bus working once the
	// others have re-elected.
	if err := nodes[0].Close(); err != nil {
		t.Fatal(err)
	}
	ctx = timeoutCtx(t, 20*time.Second)
	if err := retryTransient(ctx, func(ctx context.Context) error {
		return nodes[1].Publish(ctx, subj, []byte("two"))
	}); err != nil {
		t.Fatalf("publish after losing a node: %v", err)
	}
	d, err = c.Next(ctx)
	if err != nil {
		t.Fatalf("Next after losing a node: %v", err)
	}
	if string(d.Data()) != "two" {
		t.Fatalf("got %q", d.Data())
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
}
