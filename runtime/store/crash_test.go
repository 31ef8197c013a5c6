package store

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// crashEnv names the store file when the test binary runs as the crash child.
const crashEnv = "OUTPOST_STORE_CRASH_CHILD"

// TestCrash_KillNine runs a child process that appends (Append and AppendAsync) and acks
// in a loop and reports on stdout, kills it with SIGKILL at a random point, reopens the
// file and checks that every acknowledged append is there exactly once, in order, that no
// item whose ack was flushed comes back, and that the invariants hold. Items acked but
// not yet committed (acks are lazy) may come back: they are counted as re-deliveries.
// Several rounds run on the same file.
func TestCrash_KillNine(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("inside the crash child")
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	okIDs := make(map[string]bool)    // Append returned nil, or AppendAsync's done(nil)
	ackedIDs := make(map[string]bool) // the child was about to Ack them in queue "a"
	flushed := make(map[string]bool)  // acked, and a Flush after the Ack returned nil
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 4 {
		killAfter := 200 + rng.IntN(1500)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+path, fmt.Sprintf("OUTPOST_STORE_CRASH_ROUND=%d", round))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		oks, killed := 0, false
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 {
				continue
			}
			switch f[0] {
			case "OK":
				okIDs[f[1]] = true
				oks++
			case "ACK":
				ackedIDs[f[1]] = true
			case "FLUSHED":
				for _, id := range strings.Split(f[1], ",") {
					flushed[id] = true
				}
			}
			if oks >= killAfter && !killed {
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		}
		err = cmd.Wait()
		if !killed {
			t.Fatalf("round %d: child ended before the kill: %v", round, err)
		}
		verifyCrash(t, round, path, okIDs, ackedIDs, flushed)
	}
}

// verifyCrash reopens the file after a kill.
func verifyCrash(t *testing.T, round int, path string, okIDs, ackedIDs, flushed map[string]bool) {
	t.Helper()
	s, err := Open(Options{Path: path})
	if err != nil {
		t.Fatalf("round %d: reopen: %v", round, err)
	}
	defer s.Close()
	if err := check(s); err != nil {
		t.Fatalf("round %d: invariants: %v", round, err)
	}
	for _, q := range []string{"a", "b"} {
		present := make(map[string]bool)
		lastN := make(map[string]int)
		for _, it := range readAll(t, s, q) {
			id := string(it.Body)
			if present[id] {
				t.Fatalf("round %d: %s twice in queue %s", round, id, q)
			}
			present[id] = true
			writer, n, _ := strings.Cut(id, "#")
			var num int
			fmt.Sscan(n, &num)
			if p, ok := lastN[writer]; ok && num <= p {
				t.Fatalf("round %d: queue %s: %s after #%d", round, q, id, p)
			}
			lastN[writer] = num
		}
		redelivered := 0
		for id := range present {
			if q == "a" && flushed[id] {
				t.Fatalf("round %d: %s is back in queue a although its ack was flushed", round, id)
			}
			if q == "a" && ackedIDs[id] {
				redelivered++
			}
		}
		missing := 0
		for id := range okIDs {
			if !present[id] && (q == "b" || !ackedIDs[id]) {
				missing++
				if missing < 5 {
					t.Errorf("round %d: acknowledged %s missing from queue %s", round, id, q)
				}
			}
		}
		if missing > 0 {
			t.Fatalf("round %d: %d acknowledged messages missing from queue %s", round, missing, q)
		}
		t.Logf("round %d: queue %s holds %d items (%d of them acked, not yet committed: delivered again); %d appends acknowledged so far, %d acked in a, %d flushed",
			round, q, len(present), redelivered, len(okIDs), len(ackedIDs), len(flushed))
	}
}

// TestCrashChild is the child process of TestCrash_KillNine: 8 writers append to queues
// "a" (priority 0) and "b" (priority 1, never acked), 4 with Append and 4 with
// AppendAsync (up to 16 in flight each), a consumer reads "a" and acks, flushing every
// tenth batch, and every event is written to stdout before (ACK) or after (OK, FLUSHED)
// it happens.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper process for TestCrash_KillNine")
	}
	round := os.Getenv("OUTPOST_STORE_CRASH_ROUND")
	s, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // never outlive a lost parent
	defer cancel()
	go s.Run(ctx)
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...) // unbuffered: one write per line
	}
	targets := []Target{{Queue: "a"}, {Queue: "b", Priority: 1}}
	for w := range 4 {
		go func() {
			for n := 0; ctx.Err() == nil; n++ {
				id := fmt.Sprintf("r%sw%d#%d", round, w, n)
				if err := s.Append(ctx, []byte(id), targets); err != nil {
					continue
				}
				say("OK %s", id)
			}
		}()
	}
	for w := 4; w < 8; w++ {
		go func() {
			window := make(chan struct{}, 16)
			for n := 0; ctx.Err() == nil; n++ {
				id := fmt.Sprintf("r%sw%d#%d", round, w, n)
				window <- struct{}{}
				err := s.AppendAsync(ctx, []byte(id), targets, func(err error) {
					if err == nil {
						say("OK %s", id)
					}
					<-window
				})
				if err != nil {
					<-window
				}
			}
		}()
	}
	for batch := 0; ctx.Err() == nil; batch++ {
		items, err := s.Read("a", 50)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 0 {
			select {
			case <-s.Wait("a"):
			case <-ctx.Done():
			}
			continue
		}
		for _, it := range items {
			say("ACK %s", it.Body)
		}
		if err := s.Ack("a", 0, items[len(items)-1].Seq); err != nil {
			t.Fatal(err)
		}
		if batch%10 == 0 && s.Flush(ctx) == nil {
			say("FLUSHED %s", strings.Join(bodies(items), ","))
		}
	}
}
