package sla

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/demurhq/demur"
)

// Alert is the JSON body POSTed to the webhook when a burn-rate rule
// starts ("firing") or stops ("resolved") firing for an objective.
type Alert struct {
	State     string    `json:"state"` // "firing" or "resolved"
	Objective string    `json:"objective"`
	SLI       string    `json:"sli"`
	Severity  string    `json:"severity"`
	Long      string    `json:"long"`
	Short     string    `json:"short"`
	Threshold float64   `json:"threshold"`
	LongBurn  float64   `json:"long_burn"`
	ShortBurn float64   `json:"short_burn"`
	Time      time.Time `json:"time"`
}

// Webhook delivers alerts by HTTP POST, retrying failures.
type Webhook struct {
	URL     string
	Retries int
	// Backoff is the wait before the first retry, doubled for each next
	// one (default 500ms).
	Backoff time.Duration
	Client  *http.Client
}

// Deliver posts a. A 2xx is success; a 4xx other than 408 and 429 is the
// receiver saying no, and is not retried; anything else is, Retries times.
func (w *Webhook) Deliver(ctx context.Context, a Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("alert: %w", err)
	}
	client := w.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	backoff := w.Backoff
	if backoff <= 0 {
		backoff = 500 * time.Millisecond
	}
	var last error
	for attempt := 0; attempt <= w.Retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return errors.Join(last, ctx.Err())
			case <-time.After(backoff << (attempt - 1)):
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("alert webhook: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			last = fmt.Errorf("alert webhook: attempt %d: %w", attempt+1, err)
			continue
		}
		resp.Body.Close()
		switch {
		case resp.StatusCode/100 == 2:
			return nil
		case resp.StatusCode/100 == 4 && resp.StatusCode != 408 && resp.StatusCode != 429:
			return fmt.Errorf("alert webhook: refused with %s", resp.Status)
		}
		last = fmt.Errorf("alert webhook: attempt %d: %s", attempt+1, resp.Status)
	}
	return last
}

// Notifier delivers one alert.
type Notifier interface {
	Deliver(ctx context.Context, a Alert) error
}

// Watcher evaluates a spec against a store's log and notifies when a rule
// starts or stops firing; a rule that keeps firing is not sent again.
type Watcher struct {
	Spec   *Spec
	Store  demur.Store
	Notify Notifier

	mu     sync.Mutex
	firing map[string]Firing // objective/long/short → the firing
	last   []Status
}

// Check evaluates at now, delivers the transitions and returns them.
// Delivery errors are joined into the error; the watcher's state advances
// anyway, since a webhook that is down must not turn into an alert storm
// once it comes back.
func (w *Watcher) Check(ctx context.Context, now time.Time) ([]Alert, error) {
	events, err := Events(ctx, w.Store, now)
	if err != nil {
		return nil, fmt.Errorf("sla: %w", err)
	}
	statuses := w.Spec.Evaluate(events, now)
	w.mu.Lock()
	if w.firing == nil {
		w.firing = map[string]Firing{}
	}
	w.last = statuses
	var alerts []Alert
	seen := map[string]bool{}
	for _, st := range statuses {
		for _, f := range st.Firing {
			k := f.Objective + "\x00" + f.Long + "\x00" + f.Short
			seen[k] = true
			if _, ok := w.firing[k]; !ok {
				w.firing[k] = f
				alerts = append(alerts, alertOf("firing", st.Objective.SLI, f, now))
			}
		}
	}
	keys := make([]string, 0, len(w.firing))
	for k := range w.firing {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !seen[k] {
			f := w.firing[k]
			delete(w.firing, k)
			alerts = append(alerts, alertOf("resolved", w.sliOf(f.Objective), f, now))
		}
	}
	w.mu.Unlock()
	var errs []error
	if w.Notify != nil {
		for _, a := range alerts {
			if err := w.Notify.Deliver(ctx, a); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return alerts, errors.Join(errs...)
}

// Statuses returns the statuses of the last Check.
func (w *Watcher) Statuses() []Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Status(nil), w.last...)
}

// Run checks every interval until ctx ends; errors go to onErr.
func (w *Watcher) Run(ctx context.Context, every time.Duration, onErr func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := w.Check(ctx, time.Now()); err != nil && onErr != nil && ctx.Err() == nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *Watcher) sliOf(name string) string {
	for _, o := range w.Spec.Objectives {
		if o.Name == name {
			return o.SLI
		}
	}
	return ""
}

func alertOf(state, sli string, f Firing, now time.Time) Alert {
	return Alert{State: state, Objective: f.Objective, SLI: sli, Severity: f.Severity, Long: f.Long, Short: f.Short,
		Threshold: f.Threshold, LongBurn: f.LongBurn, ShortBurn: f.ShortBurn, Time: now}
}
