// Command demur is refusal-aware orchestration for multi-agent LLM systems.
//
// Each subcommand lives in its own file and registers itself with
// addCommand from an init function.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Exit codes of the CLI contract.
const (
	exitOK      = 0
	exitProblem = 1 // the operation ran and found a problem
	exitUsage   = 2 // bad usage or bad input
)

// exitError carries an exit code up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks err as bad usage or bad input (exit 2).
func usageError(err error) error { return &exitError{code: exitUsage, err: err} }

// problemError marks err as a problem the operation found (exit 1).
func problemError(err error) error { return &exitError{code: exitProblem, err: err} }

var commands []func() *cobra.Command

// addCommand registers a subcommand constructor; each subcommand file calls it
// from init.
func addCommand(f func() *cobra.Command) { commands = append(commands, f) }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "demur",
		Short:         "Refusal-aware orchestration for multi-agent LLM systems",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	profileFlags(root)
	for _, f := range commands {
		root.AddCommand(f())
	}
	classifyErrors(root)
	return root
}

// classifyErrors gives every command's errors an exit code: argument errors
// are bad usage (2); a RunE error not already classified is a failure of
// the operation (1). Errors cobra raises itself (unknown command or flag)
// stay unclassified and exit 2.
func classifyErrors(cmd *cobra.Command) {
	if args := cmd.Args; args != nil {
		cmd.Args = func(c *cobra.Command, a []string) error {
			if err := args(c, a); err != nil {
				return usageError(err)
			}
			return nil
		}
	}
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(c *cobra.Command, a []string) error {
			err := run(c, a)
			var ee *exitError
			if err != nil && !errors.As(err, &ee) {
				return problemError(err)
			}
			return err
		}
	}
	for _, sub := range cmd.Commands() {
		classifyErrors(sub)
	}
}

// execute runs the CLI with args and returns the process exit code.
func execute(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if perr := stopProfile(); err == nil && perr != nil {
		err = perr
	}
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "demur:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	// cobra's own argument and unknown-command errors are usage errors.
	return exitUsage
}

func main() { os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr)) }

// agentGCPercent is demur agent's GOGC unless the environment sets one.
const agentGCPercent = 400

// raiseGCTarget sets the garbage collector's target to percent unless the
// environment sets GOGC: for the long-running commands whose live heap is
// small next to what they allocate, where the default target collects
// often for little memory saved.
func raiseGCTarget(percent int) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(percent)
	}
}
