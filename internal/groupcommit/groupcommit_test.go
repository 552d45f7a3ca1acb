package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/demurhq/demur"
)

// TestBatchesAndAnswers: writes queued while a commit runs share the next
// one, each caller gets its own op's result, records are settled only on
// success, and nothing is taken after Close.
func TestBatchesAndAnswers(t *testing.T) {
	gate, entered := make(chan struct{}), make(chan struct{}, 2)
	var mu sync.Mutex
	var sizes []int
	w := Start(Limits{Queue: 64, Ops: 64, Bytes: 1 << 20}, func(batch []*Op) []error {
		entered <- struct{}{}
		<-gate
		mu.Lock()
		sizes = append(sizes, len(batch))
		mu.Unlock()
		results := make([]error, len(batch))
		for i, o := range batch {
			if len(o.Recs) > 0 && o.Recs[0].Actor == "bad" {
				results[i] = errors.New("refused")
				continue
			}
			for j := range o.Recs {
				o.Recs[j].Seq = int64(j + 1)
			}
		}
		return results
	})
	first := make(chan error, 1)
	go func() { first <- w.Write(context.Background(), demur.HashBlobs([][]byte{[]byte("x")}), nil) }()
	<-entered // the first write is being committed, alone
	// While its commit waits at the gate, 10 more writes queue up.
	const n = 10
	recs := make([]*demur.Record, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		recs[i] = &demur.Record{Stream: "s", Actor: "ok"}
		if i == 3 {
			recs[i].Actor = "bad"
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = w.Write(context.Background(), nil, []*demur.Record{recs[i]}) }()
	}
	for deadline := time.Now().Add(10 * time.Second); len(w.ops) < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			close(gate)
			t.Fatalf("%d of %d writes queued", len(w.ops), n)
		}
	}
	close(gate)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if (err != nil) != (i == 3) {
			t.Fatalf("write %d: %v", i, err)
		}
		if want := int64(1); (i != 3) != (recs[i].Seq == want) {
			t.Fatalf("write %d: seq %d after error %v", i, recs[i].Seq, err)
		}
	}
	if fmt.Sprint(sizes) != "[1 10]" {
		t.Fatalf("batch sizes %v, want [1 10]", sizes)
	}
	if !w.Close() || w.Close() {
		t.Fatal("Close should report true once, then false")
	}
	if err := w.Write(context.Background(), nil, []*demur.Record{{Stream: "s"}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close = %v, want ErrClosed", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Start(Limits{Queue: 1, Ops: 1, Bytes: 1}, nil).Write(ctx, nil, []*demur.Record{{Stream: "s"}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write with a canceled ctx = %v", err)
	}
}
