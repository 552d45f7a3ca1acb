package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestExitCodes(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"no-such-command"}, exitUsage, "unknown command"},
		{[]string{"run", "--no-such-flag", "x.yaml"}, exitUsage, "unknown flag"},
		{[]string{"run", "a.yaml", "b.yaml"}, exitUsage, "accepts 1 arg"},
		{[]string{"--help"}, exitOK, "Usage"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := execute(c.args, &out, &errb)
		if code != c.code {
			t.Errorf("%v: exit %d, want %d (stderr %q)", c.args, code, c.code, errb.String())
		}
		if !strings.Contains(out.String()+errb.String(), c.want) {
			t.Errorf("%v: output lacks %q: %s%s", c.args, c.want, out.String(), errb.String())
		}
	}
}
