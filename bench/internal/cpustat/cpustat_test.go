package cpustat

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestProcess(t *testing.T) {
	before, err := Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); {
	}
	after, err := Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// 100 ms of spinning shows as at least a few ticks of 10 ms.
	if after < before+30 {
		t.Errorf("CPU time went from %d to %d ms over 100 ms of spinning", before, after)
	}
	if _, err := Process(-1); err == nil {
		t.Error("no error for pid -1")
	}
}

func TestShares(t *testing.T) {
	a := []Times{{100, 0, 50, 800, 0, 0, 50, 0}}
	b := []Times{{200, 0, 100, 850, 0, 0, 100, 0}}
	s := Shares(a, b)
	if len(s) != 1 || s[0].Busy != 80 || s[0].User != 40 || s[0].System != 20 || s[0].Softirq != 20 {
		t.Errorf("Shares = %+v, want busy 80, user 40, system 20, softirq 20", s)
	}
	if Shares(a, nil) != nil {
		t.Error("Shares of mismatched readings is not nil")
	}
}

func TestOthers(t *testing.T) {
	// A shell spinning for 300 ms in a child it waits for is someone
	// else's work: the test's namespace is not declared ours. The inner
	// shell exits; the outer one, still alive when Others looks again, has
	// waited for it.
	before, err := Others(nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `sh -c 'end=$(($(date +%s%N)+300000000)); while [ $(date +%s%N) -lt $end ]; do :; done'; sleep 1`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	time.Sleep(700 * time.Millisecond)
	after, err := Others(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := after - before; got < 100 {
		t.Errorf("a spinning shell counted %d ms of other work, want at least 100", got)
	}
	if _, err := NetnsInode("no-such-namespace-here"); err == nil {
		t.Error("NetnsInode of a missing namespace: no error")
	}
}
