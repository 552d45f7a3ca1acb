package natsbus

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/demurhq/demur"
)

// BenchmarkPublishConsume measures one task's round trip on an embedded
// bus: Publish (waits for the JetStream ack), Next, Ack (does not wait).
// Run with:
//
//	go test -run '^$' -bench PublishConsume -benchtime 2000x ./natsbus/
func BenchmarkPublishConsume(b *testing.B) {
	for _, prefetch := range []int{1, 64} {
		b.Run(map[int]string{1: "prefetch=1", 64: "prefetch=64"}[prefetch], func(b *testing.B) {
			bus := newBus(b, EmbeddedOptions{Options: Options{Prefetch: prefetch}})
			benchRoundTrip(b, bus)
		})
	}
}

func benchRoundTrip(b *testing.B, bus *Bus) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	subj := taskSubject(uniqueJob(b), "agent")
	c, err := bus.Consume(ctx, subj, "agent")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	payload := make([]byte, 15000)
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for b.Loop() {
		if err := bus.Publish(ctx, subj, payload); err != nil {
			b.Fatal(err)
		}
		d, err := c.Next(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Ack(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPipelined is the shape of a real job: all tasks published first,
// then consumed and acked, so prefetch can help.
func BenchmarkPipelined(b *testing.B) {
	for _, prefetch := range []int{1, 64} {
		b.Run(map[int]string{1: "prefetch=1", 64: "prefetch=64"}[prefetch], func(b *testing.B) {
			bus := newBus(b, EmbeddedOptions{Options: Options{Prefetch: prefetch}})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			subj := taskSubject(uniqueJob(b), "agent")
			c, err := bus.Consume(ctx, subj, "agent")
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			payload := make([]byte, 15000)
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			for range b.N {
				if err := bus.Publish(ctx, subj, payload); err != nil {
					b.Fatal(err)
				}
			}
			for range b.N {
				d, err := c.Next(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if err := d.Ack(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkJob is the main job's traffic on an embedded bus: 2,000 tasks of
// 15 KB over four agents, each answered by a 15 KB result that the
// coordinator consumes. One op is one whole job:
//
//	go test -run '^$' -bench Job -benchtime 3x ./natsbus/
func BenchmarkJob(b *testing.B) {
	const tasks, agents = 2000, 4
	bus := newBus(b, EmbeddedOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	payload := make([]byte, 15000)
	b.SetBytes(2 * tasks * int64(len(payload)))
	for b.Loop() {
		job := uniqueJob(b)
		results, err := bus.Consume(ctx, fmt.Sprintf(demur.SubjectResult, job), "coordinator")
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		for a := range agents {
			subj := taskSubject(job, fmt.Sprint("agent-", a))
			c, err := bus.Consume(ctx, subj, "agent")
			if err != nil {
				b.Fatal(err)
			}
			wg.Go(func() {
				defer c.Close()
				for range tasks / agents {
					d, err := c.Next(ctx)
					if err != nil {
						b.Error(err)
						return
					}
					if err := bus.Publish(ctx, fmt.Sprintf(demur.SubjectResult, job), d.Data()); err != nil {
						b.Error(err)
						return
					}
					if err := d.Ack(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		for i := range tasks {
			if err := bus.Publish(ctx, taskSubject(job, fmt.Sprint("agent-", i%agents)), payload); err != nil {
				b.Fatal(err)
			}
		}
		for range tasks {
			d, err := results.Next(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := d.Ack(); err != nil {
				b.Fatal(err)
			}
		}
		wg.Wait()
		results.Close()
	}
}
