package fsynccount

import "testing"

func TestParse(t *testing.T) {
	out := "12,,syscalls:sys_enter_fsync,1000,100.00,,\n3,,syscalls:sys_enter_fdatasync,1000,100.00,,\n"
	if n, ok, _ := parse(out); !ok || n != 15 {
		t.Fatalf("got %d %v", n, ok)
	}
	if _, ok, why := parse("<not supported> syscalls:sys_enter_fsync"); ok || why == "" {
		t.Fatal("an unsupported counter was read as a count")
	}
}
