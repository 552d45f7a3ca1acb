package natsbus

import (
	"context"
	"os"
	"testing"
	"time"
)

// externalBus connects to the server in DEMUR_TEST_NATS_URL. The streams on
// it are shared with every other test and process, so tests use unique job
// names and purge them afterwards.
func externalBus(t *testing.T) *Bus {
	t.Helper()
	url := os.Getenv("DEMUR_TEST_NATS_URL")
	if url == "" {
		t.Skip("set DEMUR_TEST_NATS_URL to a NATS server with JetStream to run, e.g. " +
			"DEMUR_TEST_NATS_URL=nats://127.0.0.1:4222 go test -race -run External ./natsbus/")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := Connect(ctx, url, ConnectOptions{Name: "demur-natsbus-test", Options: Options{
		AckWait: time.Second,
		// The server outlives the test: let it drop the test's consumers.
		InactiveThreshold: 2 * time.Minute,
	}})
	if err != nil {
		t.Fatalf("Connect %s: %v", redact(url), err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func TestExternal(t *testing.T) {
	b := externalBus(t)
	if b.ClientURL() == "" {
		t.Error("ClientURL empty on a connected bus")
	}
	// A second process opening the same streams must accept them as they are.
	externalBus(t)

	t.Run("RoundTrip", func(t *testing.T) {
		job := roundTripJob(t, b)
		if err := b.PurgeJob(context.Background(), job); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("PurgeJob", func(t *testing.T) { purgeJob(t, b) })
	t.Run("AckWait", func(t *testing.T) {
		subj := taskSubject(uniqueJob(t), "a")
		defer b.PurgeJob(context.Background(), jobOf(subj))
		c := consume(t, b, subj, "a")
		publish(t, b, subj, "x")
		next(t, c) // not acked: back after the 1 s AckWait
		d := next(t, c)
		if n := d.(*Delivery).NumDelivered(); n != 2 {
			t.Fatalf("NumDelivered %d, want 2", n)
		}
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	})
}

// roundTripJob runs roundTrip on its own job and returns the job name so
// the caller can purge it.
func roundTripJob(t *testing.T, b *Bus) string {
	job := uniqueJob(t)
	roundTripOn(t, b, job)
	return job
}

func jobOf(taskSubject string) string {
	// demur.task.<job>.<agent>
	const prefix = "demur.task."
	s := taskSubject[len(prefix):]
	for i := range len(s) {
		if s[i] == '.' {
			return s[:i]
		}
	}
	return s
}
