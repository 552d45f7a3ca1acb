// Package fsynccount counts a process's fsync calls for benchmarks, with
// perf(1) tracepoints, so that durability costs are reported beside
// throughput.
package fsynccount

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Start counts this process's fsync and fdatasync calls from now on. The
// returned function stops counting and reports the count, or false when
// perf is unavailable or may not trace (the metric is then left out); why
// is perf's own message in that case.
func Start() (stop func() (n int64, ok bool, why string)) {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return func() (int64, bool, string) { return 0, false, "no perf on this machine" }
	}
	cmd := exec.Command(perf, "stat", "-x,", "-e", "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync", "-p", strconv.Itoa(os.Getpid()))
	var out bytes.Buffer
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return func() (int64, bool, string) { return 0, false, err.Error() }
	}
	time.Sleep(200 * time.Millisecond) // perf attaches to every thread before the work starts
	return func() (int64, bool, string) {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
		return parse(out.String())
	}
}

// parse sums the counts of perf stat's CSV output.
func parse(out string) (int64, bool, string) {
	var n int64
	found := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ",")
		if len(f) > 2 && strings.HasPrefix(f[2], "syscalls:") {
			if v, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				n += v
				found = true
			}
		}
	}
	if !found {
		return 0, false, strings.TrimSpace(out)
	}
	return n, true, ""
}
