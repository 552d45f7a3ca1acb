package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/override"
)

func init() { addCommand(newOverrideCmd) }

// Environment defaults of the override client. The token belongs in the
// environment rather than a flag, where other users could read it in the
// process list.
const (
	serverEnv     = "DEMUR_SERVER"
	tokenEnv      = "DEMUR_TOKEN"
	defaultServer = "http://127.0.0.1:8080"
)

// overrideClient is the CLI's side of the override API.
type overrideClient struct {
	server string
	token  string
	http   *http.Client
}

func newOverrideCmd() *cobra.Command {
	c := &overrideClient{http: &http.Client{Timeout: 30 * time.Second}}
	cmd := &cobra.Command{
		Use:   "override",
		Short: "Request, approve and list overrides through the API of demur serve",
		Long: `Operators' out-of-band overrides: pause or resume an agent, accept, retry,
refresh or reassign a section (operator), force or abort (two admins). Every
request gets a fresh nonce and an expiry; the server checks the token's role,
counts approvals by distinct people, and records every attempt.

The token comes from --token or $DEMUR_TOKEN (preferred: a flag is visible to
other users in the process list); the server from --server or $DEMUR_SERVER.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&c.server, "server", "", "API base URL (default $"+serverEnv+", else "+defaultServer+")")
	pf.StringVar(&c.token, "token", "", "bearer token (default $"+tokenEnv+")")
	cmd.AddCommand(newOverrideRequestCmd(c), newOverrideApproveCmd(c), newOverrideListCmd(c))
	return cmd
}

func newOverrideRequestCmd(c *overrideClient) *cobra.Command {
	var (
		req    override.Request
		action string
		ttl    time.Duration
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "request --job JOB --action ACTION --reason TEXT [--task ID] [--agent ID]",
		Short: "Request an override",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req.Action = demur.Action(action)
			var err error
			if req.Nonce, req.Expires, err = freshness(ttl); err != nil {
				return err
			}
			var ov demur.Override
			if err := c.call(cmd.Context(), "POST", "/api/overrides", req, &ov); err != nil {
				return err
			}
			return printOverride(cmd.OutOrStdout(), ov, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Job, "job", "", "job ID (required)")
	f.StringVar(&action, "action", "", "pause, resume, accept, retry, refresh_context, reassign, force or abort (required)")
	f.StringVar(&req.Task, "task", "", "task (section) ID")
	f.StringVar(&req.Agent, "agent", "", "agent ID")
	f.StringVar(&req.Reason, "reason", "", "why (required; recorded)")
	f.DurationVar(&ttl, "ttl", 15*time.Minute, "how long the request, and the wait for approvals, is valid (at most 1h)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	for _, n := range []string{"job", "action", "reason"} {
		_ = cmd.MarkFlagRequired(n)
	}
	return cmd
}

func newOverrideApproveCmd(c *overrideClient) *cobra.Command {
	var (
		ap     override.Approve
		ttl    time.Duration
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "approve ID --reason TEXT",
		Short: "Approve a pending override (as a different person than earlier approvers)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if ap.Nonce, ap.Expires, err = freshness(ttl); err != nil {
				return err
			}
			var ov demur.Override
			if err := c.call(cmd.Context(), "POST", "/api/overrides/"+url.PathEscape(args[0])+"/approve", ap, &ov); err != nil {
				return err
			}
			return printOverride(cmd.OutOrStdout(), ov, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&ap.Reason, "reason", "", "why (required; recorded)")
	f.DurationVar(&ttl, "ttl", 5*time.Minute, "how long the approval request is valid")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	_ = cmd.MarkFlagRequired("reason")
	return cmd
}

func newOverrideListCmd(c *overrideClient) *cobra.Command {
	var (
		job, status string
		asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "list [--job JOB] [--status STATUS]",
		Short: "List overrides and their status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if job != "" {
				q.Set("job", job)
			}
			if status != "" {
				q.Set("status", status)
			}
			path := "/api/overrides"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			var list struct {
				Overrides []demur.Override `json:"overrides"`
			}
			if err := c.call(cmd.Context(), "GET", path, nil, &list); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSONOut(w, list)
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tJOB\tACTION\tTARGET\tSTATUS\tAPPROVALS\tREQUESTER\tREASON")
			for _, ov := range list.Overrides {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", ov.ID, ov.Job, ov.Action, target(ov),
					ov.Status, len(ov.Approvals), ov.Needed, ov.Requester, oneLine(ov.Reason, 40))
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&job, "job", "", "only this job")
	f.StringVar(&status, "status", "", "only this status (pending, approved, rejected, applied)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

// freshness returns a new nonce and an expiry ttl from now.
func freshness(ttl time.Duration) (string, time.Time, error) {
	if ttl <= 0 {
		return "", time.Time{}, usageError(fmt.Errorf("--ttl %v: must be positive", ttl))
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", time.Time{}, fmt.Errorf("nonce: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), time.Now().Add(ttl).UTC(), nil
}

// call sends body (if any) to the API and decodes a 2xx answer into out.
// Refusals the caller can fix by changing the request (400, 404, 413, 415)
// are bad input (exit 2); the others — no valid token, missing role, replay,
// rate limit, server trouble — are problems found (exit 1).
func (c *overrideClient) call(ctx context.Context, method, path string, body, out any) error {
	server := c.server
	if server == "" {
		server = os.Getenv(serverEnv)
	}
	if server == "" {
		server = defaultServer
	}
	token := c.token
	if token == "" {
		token = os.Getenv(tokenEnv)
	}
	if token == "" {
		return usageError(fmt.Errorf("no token: set %s or give --token", tokenEnv))
	}
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageError(fmt.Errorf("server %q: want an http:// or https:// URL", server))
	}
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(data)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(server, "/")+path, rd)
	if err != nil {
		return usageError(fmt.Errorf("request: %w", err))
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e override.Error
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		err := fmt.Errorf("server refused: %s: %s", resp.Status, oneLine(msg, 200))
		switch resp.StatusCode {
		case http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			return usageError(err)
		}
		return problemError(err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func printOverride(w io.Writer, ov demur.Override, asJSON bool) error {
	if asJSON {
		return writeJSONOut(w, ov)
	}
	fmt.Fprintf(w, "override %s: %s %s on job %s: %s (%d of %d approvals)\n",
		ov.ID, ov.Action, target(ov), ov.Job, ov.Status, len(ov.Approvals), ov.Needed)
	return nil
}

func target(ov demur.Override) string {
	var parts []string
	if ov.Task != "" {
		parts = append(parts, "task "+ov.Task)
	}
	if ov.Agent != "" {
		parts = append(parts, "agent "+ov.Agent)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// oneLine shortens s for a table cell or an error message: reasons are
// free text and may span lines.
func oneLine(s string, n int) string {
	// The server refuses control characters in reasons; this is the second
	// line against escapes reaching a terminal.
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) && r != '\n' && r != '\t' && r != '\r' {
			return '?'
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
