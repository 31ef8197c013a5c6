package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
)

var errInjected = errors.New("injected: no space left on device")

// TestDiskError_RollsBackAndRecovers fails commits with a hook: the failing appends get
// ErrDisk, nothing of them is visible, acks are retried, and the store keeps working.
func TestDiskError_RollsBackAndRecovers(t *testing.T) {
	s, err := Open(Options{Path: filepath.Join(t.TempDir(), "s.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var fail atomic.Bool
	s.failCommit = func() error {
		if fail.Load() {
			return errInjected
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		if err := check(s); err != nil {
			t.Error(err)
		}
		s.Close()
	}()

	mustAppend(t, s, "a", Target{Queue: "q"})
	before := s.Stats()
	fail.Store(true)
	err = s.Append(context.Background(), []byte("b"), []Target{{Queue: "q"}, {Queue: "r"}})
	if !errors.Is(err, ErrDisk) || !errors.Is(err, errInjected) {
		t.Fatalf("Append on a failing disk = %v, want ErrDisk wrapping the cause", err)
	}
	after := s.Stats()
	if after.Messages != before.Messages || after.Bytes != before.Bytes || after.Appends != before.Appends || !slices.Equal(after.Queues, before.Queues) {
		t.Errorf("a failed append changed the state:\nbefore %+v\nafter  %+v", before, after)
	}
	if got := bodies(mustRead(t, s, "q", 10)); !slices.Equal(got, []string{"a"}) {
		t.Errorf("q = %q, want only a", got)
	}
	if got := mustRead(t, s, "r", 10); len(got) != 0 {
		t.Errorf("r holds %d items of a failed append", len(got))
	}
	mustAck(t, s, "q", 0, 1)
	if err := s.Flush(context.Background()); !errors.Is(err, ErrDisk) {
		t.Errorf("Flush on a failing disk = %v, want ErrDisk", err)
	}
	fail.Store(false)
	mustFlush(t, s) // the ack was kept and is retried
	if st := s.Stats(); st.Messages != 0 || st.Queues[0].Checkpoint != 1 {
		t.Errorf("ack not committed after recovery: %+v", st)
	}
	mustAppend(t, s, "c", Target{Queue: "q"})
	if got := bodies(mustRead(t, s, "q", 10)); !slices.Equal(got, []string{"c"}) {
		t.Errorf("q = %q, want c", got)
	}
	if err := checkLive(s); err != nil {
		t.Fatal(err)
	}
}

// TestDiskFull_Tmpfs fills a real tmpfs until bbolt fails with ENOSPC, then frees space.
// It needs root and a working mount, and skips otherwise.
func TestDiskFull_Tmpfs(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	o := Options{Path: filepath.Join(dir, "s.db")}
	r := mustStart(t, o)
	body := make([]byte, 1024)
	var acked int
	var diskErr error
	for i := range 10000 {
		copy(body, fmt.Sprintf("%08d", i))
		err := r.Append(context.Background(), body, []Target{{Queue: "q"}})
		if err != nil {
			diskErr = err
			break
		}
		acked++
	}
	if !errors.Is(diskErr, ErrDisk) {
		t.Fatalf("after %d appends: %v, want ErrDisk", acked, diskErr)
	}
	t.Logf("disk full after %d appends: %v", acked, diskErr)
	// Still full: appends keep failing cleanly, reads work.
	if err := r.Append(context.Background(), body, []Target{{Queue: "q"}}); !errors.Is(err, ErrDisk) {
		t.Fatalf("second append on a full disk = %v", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, r.Store, "after", Target{Queue: "q"})
	r.stop()

	r = mustStart(t, o)
	defer r.stop()
	items := readAll(t, r.Store, "q")
	if len(items) != acked+1 {
		t.Fatalf("%d items after reopen, want %d", len(items), acked+1)
	}
	for i, it := range items[:acked] {
		if want := fmt.Sprintf("%08d", i); string(it.Body[:8]) != want {
			t.Fatalf("item %d = %q, want %q", i, it.Body[:8], want)
		}
	}
	if string(items[acked].Body) != "after" {
		t.Errorf("last item = %q", items[acked].Body)
	}
}
