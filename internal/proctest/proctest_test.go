package proctest

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// A child process exists until Kill, and CPUTime grows with work done.
func TestKillExistsCPUTime(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.timeout=1m")
	cmd.Env = append(os.Environ(), "PROCTEST_SLEEP=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	if !Exists(cmd.Process.Pid) {
		t.Fatalf("Exists(%d) = false for a running child", cmd.Process.Pid)
	}
	if err := Kill(cmd.Process.Pid); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("child still runs after Kill")
	}
	if Exists(cmd.Process.Pid) {
		t.Fatalf("Exists(%d) = true after the child was reaped", cmd.Process.Pid)
	}

	before := CPUTime()
	x := 0
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
		x++
	}
	if after := CPUTime(); after <= before {
		t.Fatalf("CPUTime did not grow over 50 ms of work: %v then %v (%d)", before, after, x)
	}
}

func TestMain(m *testing.M) {
	if os.Getenv("PROCTEST_SLEEP") != "" {
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}
