package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"
)

// profiling is the CPU profile being written, if any.
var profiling *os.File

// profileFlags adds the hidden --cpuprofile flag every command takes: the
// way to see where a long-running demur (proxy, agent, run) spends its
// time as deployed, in its own process.
func profileFlags(root *cobra.Command) {
	var path string
	root.PersistentFlags().StringVar(&path, "cpuprofile", "", "write a CPU profile (go tool pprof) to this file")
	root.PersistentFlags().MarkHidden("cpuprofile")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if path == "" {
			return nil
		}
		f, err := os.Create(path)
		if err != nil {
			return usageError(fmt.Errorf("--cpuprofile: %w", err))
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return usageError(fmt.Errorf("--cpuprofile: %w", err))
		}
		profiling = f
		return nil
	}
}

// stopProfile ends the CPU profile, if one is being written.
func stopProfile() error {
	if profiling == nil {
		return nil
	}
	pprof.StopCPUProfile()
	err := profiling.Close()
	profiling = nil
	if err != nil {
		return fmt.Errorf("--cpuprofile: %w", err)
	}
	return nil
}
