package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/override"
	"github.com/demurhq/demur/storeurl"
)

func init() { addCommand(newTokenCmd) }

// storeEnv names the store when --store is not given, for the commands that
// work on an existing store (token, serve).
const storeEnv = "DEMUR_STORE"

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Issue, revoke and list operators' override tokens",
		Long: `Operators' bearer tokens for the override API. A token has an owner (a
person's name: two approvals count only from two different owners), a role
(viewer, operator or admin) and an expiry. The store keeps the SHA-256 of the
secret, never the secret: issue prints it once.`,
	}
	var storeURL string
	cmd.PersistentFlags().StringVar(&storeURL, "store", "", "store URL (default $"+storeEnv+")")
	cmd.AddCommand(newTokenIssueCmd(&storeURL), newTokenRevokeCmd(&storeURL), newTokenListCmd(&storeURL))
	return cmd
}

// tokenOut is a token in --json output; its fields are stable. Secret is
// set only by issue.
type tokenOut struct {
	ID      string             `json:"id"`
	Owner   string             `json:"owner"`
	Role    demur.OperatorRole `json:"role"`
	Status  string             `json:"status"`
	Issued  time.Time          `json:"issued"`
	Expires time.Time          `json:"expires"`
	Revoked time.Time          `json:"revoked,omitzero"`
	Secret  string             `json:"secret,omitempty"`
}

func toTokenOut(t override.Token) tokenOut {
	return tokenOut{ID: t.ID, Owner: t.Owner, Role: t.Role, Status: t.Status(time.Now()), Issued: t.Issued, Expires: t.Expires, Revoked: t.Revoked}
}

func newTokenIssueCmd(storeURL *string) *cobra.Command {
	var (
		owner, role string
		ttl         time.Duration
		asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "issue --owner NAME --role ROLE [--ttl 24h]",
		Short: "Issue a token and print its secret once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := override.ParseRole(role)
			if err != nil {
				return usageError(err)
			}
			if _, err := override.NormalizeOwner(owner); err != nil {
				return usageError(err)
			}
			if ttl <= 0 {
				return usageError(fmt.Errorf("--ttl %v: must be positive", ttl))
			}
			return withTokens(cmd.Context(), *storeURL, func(ts *override.Tokens) error {
				secret, tok, err := ts.Issue(cmd.Context(), cliActor(), owner, r, ttl)
				if err != nil {
					return err
				}
				out := toTokenOut(tok)
				out.Secret = secret
				w := cmd.OutOrStdout()
				if asJSON {
					return writeJSONOut(w, out)
				}
				fmt.Fprintf(w, "token %s issued to %s (%s), expires %s\n", tok.ID, tok.Owner, tok.Role, tok.Expires.Format(time.RFC3339))
				fmt.Fprintf(w, "secret (shown once; keep it in DEMUR_TOKEN or a secret store):\n%s\n", secret)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&owner, "owner", "", "the person the token belongs to (required)")
	f.StringVar(&role, "role", "", "viewer, operator or admin (required)")
	f.DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token is valid")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	_ = cmd.MarkFlagRequired("owner")
	_ = cmd.MarkFlagRequired("role")
	return cmd
}

func newTokenRevokeCmd(storeURL *string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token; a running server refuses it from its next request",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withTokens(cmd.Context(), *storeURL, func(ts *override.Tokens) error {
				tok, err := ts.Revoke(cmd.Context(), cliActor(), args[0])
				if errors.Is(err, demur.ErrNotFound) {
					return usageError(fmt.Errorf("no token %q", args[0]))
				}
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSONOut(cmd.OutOrStdout(), toTokenOut(tok))
				}
				fmt.Fprintf(cmd.OutOrStdout(), "token %s (%s, %s) revoked\n", tok.ID, tok.Owner, tok.Role)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func newTokenListCmd(storeURL *string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withTokens(cmd.Context(), *storeURL, func(ts *override.Tokens) error {
				toks, err := ts.List(cmd.Context())
				if err != nil {
					return err
				}
				outs := make([]tokenOut, 0, len(toks))
				for _, t := range toks {
					outs = append(outs, toTokenOut(t))
				}
				w := cmd.OutOrStdout()
				if asJSON {
					return writeJSONOut(w, struct {
						Tokens []tokenOut `json:"tokens"`
					}{outs})
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tOWNER\tROLE\tSTATUS\tEXPIRES")
				for _, t := range outs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Owner, t.Role, t.Status, t.Expires.Format(time.RFC3339))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

// withTokens opens the store named by url (or $DEMUR_STORE) and runs f on
// its token registry.
func withTokens(ctx context.Context, url string, f func(*override.Tokens) error) error {
	if ctx == nil {
		ctx = context.Background()
	}
	store, err := openNamedStore(ctx, url)
	if err != nil {
		return err
	}
	defer store.Close()
	return f(override.NewTokens(store, nil))
}

// openNamedStore opens the store named by url, or by $DEMUR_STORE when url
// is empty; a missing or malformed URL is bad usage.
func openNamedStore(ctx context.Context, url string) (demur.Store, error) {
	if url == "" {
		url = os.Getenv(storeEnv)
	}
	if url == "" {
		return nil, usageError(fmt.Errorf("no store: give --store URL or set %s", storeEnv))
	}
	if !knownScheme(url) {
		return nil, usageError(fmt.Errorf("store %q: want one of %s", url, strings.Join(storeurl.Schemes, ", ")))
	}
	store, err := storeurl.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return store, nil
}

// cliActor names whoever runs the CLI in the records it writes: the account
// with write access to the store is who issued or revoked a token.
func cliActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}

func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
