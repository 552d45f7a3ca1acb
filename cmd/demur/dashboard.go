package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/feed"
	"github.com/demurhq/demur/metrics"
	"github.com/demurhq/demur/sla"
	"github.com/demurhq/demur/web"
)

// withDashboard adds the dashboard, its live feed over store and the
// Prometheus /metrics computed from the same feed to opts, and
// keeps the feed polling the log until ctx ends or stop is called; stop
// waits for the last poll, so that the caller may close the store after it.
// `demur serve` and `demur run --ui` both call it, so that they serve the
// same page from the same source: the log.
func withDashboard(ctx context.Context, store demur.Store, logger *slog.Logger, opts web.Options, extra ...prometheus.Collector) (_ web.Options, stop func(), err error) {
	f, err := feed.New(feed.Options{Store: store, Logger: logger})
	if err != nil {
		return opts, nil, fmt.Errorf("dashboard: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	opts.Feed = f
	stop = func() { cancel(); <-done }
	mh, err := metrics.Handler(f, extra...)
	if err != nil {
		stop()
		return opts, nil, fmt.Errorf("metrics: %w", err)
	}
	if opts.Extra == nil {
		opts.Extra = map[string]http.Handler{}
	}
	opts.Extra["GET /metrics"] = mh
	return opts, stop, nil
}

// slaInterval is how often `demur serve --sla` checks the objectives;
// runSLAInterval how often `demur run --ui --sla` does, whose job may last
// less than one serve interval.
const (
	slaInterval    = 30 * time.Second
	runSLAInterval = 5 * time.Second
)

// withSLA checks spec against the log every interval until ctx ends,
// delivering burn-rate alerts to the spec's webhook, and serves the last
// statuses at GET /api/sla (for the dashboard's SLA panel). It returns the
// collector that puts the burn rates in /metrics, and a stop that waits for
// the last check, so that the caller may close the store after it.
func withSLA(ctx context.Context, store demur.Store, logger *slog.Logger, spec *sla.Spec, every time.Duration, opts *web.Options) (_ prometheus.Collector, stop func()) {
	w := &sla.Watcher{Spec: spec, Store: store}
	if spec.Alerts.Webhook != "" {
		w.Notify = &sla.Webhook{URL: spec.Alerts.Webhook, Retries: spec.Alerts.Retries}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, every, func(err error) { logger.Warn("sla check", "err", err) })
	}()
	if opts.Extra == nil {
		opts.Extra = map[string]http.Handler{}
	}
	opts.Extra["GET /api/sla"] = http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		rw.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(rw).Encode(w.Statuses())
	})
	return metrics.NewSLACollector(w.Statuses), func() { cancel(); <-done }
}
