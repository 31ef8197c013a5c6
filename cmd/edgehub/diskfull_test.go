package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// refusalMsg starts the hub's log line for a publish the store could not take.
const refusalMsg = "message not stored, refused without PUBACK"

// TestDiskFull_Tmpfs puts the hub's data directory on an 8 MB tmpfs (next to a 1 MB filler
// file) and publishes with the network cut until the filesystem is full: publishers are
// refused cleanly (the connection closes without a PUBACK, at once), the hub stays up and
// still accepts a new client. Then space returns, either because the filler is deleted
// (the hub is also killed and restarted on that filesystem) or because the network
// returns and the backlog drains with the filesystem still full: publishes are
// acknowledged again, and every acknowledged message reaches IoT Hub intact.
func TestDiskFull_Tmpfs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts edgehub processes and mounts a tmpfs")
	}
	t.Run("filler deleted", func(t *testing.T) {
		df := fillDisk(t)
		if err := os.Remove(df.filler); err != nil {
			t.Fatal(err)
		}
		base := df.f.ackedCounts()
		df.f.resume()
		waitUntil(t, 30*time.Second, "publishes acknowledged again after the filler was deleted", func() bool { return df.f.eachAckedAtLeast(base, 10) })
		df.f.stop()
		// The store that went through ENOSPC opens again after a crash, and drains intact.
		df.h.kill()
		df.h.start()
		df.c.s.RestoreNetwork()
		df.f.waitDelivered(df.c.s, 30*time.Second).report(t, df.f)
	})
	t.Run("backlog drained", func(t *testing.T) {
		df := fillDisk(t)
		df.c.s.RestoreNetwork()
		if d := df.f.waitDelivered(df.c.s, 30*time.Second); d.missingCount() > 0 {
			d.report(t, df.f)
			t.FailNow()
		}
		t.Logf("drained with %d bytes free", freeBytes(t, df.mnt))
		base := df.f.ackedCounts()
		df.f.resume()
		waitUntil(t, 30*time.Second, "publishes acknowledged again after the drain", func() bool { return df.f.eachAckedAtLeast(base, 10) })
		df.f.stop()
		df.f.waitDelivered(df.c.s, 30*time.Second).report(t, df.f)
	})
}

// fullDisk is a hub whose data directory's filesystem is full, its publishers stopped and
// the network cut.
type fullDisk struct {
	mnt, filler string
	c           *cloud
	h           *hubRunner
	f           *fleet
}

// fillDisk mounts the tmpfs, starts the hub on it and publishes with the network cut until
// the hub refuses for want of space, checking that it does so cleanly and stays up.
func fillDisk(t *testing.T) *fullDisk {
	t.Helper()
	df := &fullDisk{mnt: mountTmpfs(t, 8<<20)}
	df.filler = filepath.Join(df.mnt, "filler")
	writeFile(t, df.filler, strings.Repeat("f", 1<<20))

	dir := t.TempDir()
	df.c = newCloud(t, dir, 2, 1)
	probe := probeIdentity(t, df.c)
	df.h = newHubRunner(t, filepath.Join(df.mnt, "data"), df.c.hubArgs...)
	df.h.start()
	df.f = startFleet(t, df.c.senders, 4096, df.h.currentAddr)
	waitUntil(t, 20*time.Second, "every sender accepted and acknowledged once", func() bool { return df.f.eachAckedAtLeast(nil, 1) })
	probeConnect(t, probe, df.h.currentAddr()) // authenticated upstream, now cached on the tmpfs
	df.f.cutQuietly(t, df.c.s, df.h)

	waitUntil(t, 60*time.Second, "the tmpfs to fill up and the hub to refuse publishes", func() bool {
		return len(df.h.logLines(refusalMsg)) >= 3*len(df.f.pubs)
	})
	full := df.f.totalAcked()
	t.Logf("filesystem full after %d acknowledged messages; %d bytes free", full, freeBytes(t, df.mnt))
	assertRefusedCleanly(t, df.h, df.f, "no space left on device")
	if now := df.f.totalAcked(); now > full+len(df.f.pubs) {
		t.Errorf("%d more publishes acknowledged while the filesystem was full", now-full)
	}
	if !df.h.alive() {
		t.Fatal("edgehub exited when its filesystem filled up")
	}
	probeConnect(t, probe, df.h.currentAddr())
	df.f.stop()
	return df
}

// TestStoreFull_ByteCap runs the hub with --store-max-bytes and the reject-new policy and
// publishes with the network cut until the cap is reached: publishers are refused cleanly,
// the hub stays up and accepts a new client; when the network returns the backlog drains,
// publishes are acknowledged again and everything acknowledged reaches IoT Hub.
func TestStoreFull_ByteCap(t *testing.T) {
	if testing.Short() {
		t.Skip("starts edgehub processes")
	}
	const maxBytes = 256 << 10
	dir := t.TempDir()
	c := newCloud(t, dir, 2, 1)
	probe := probeIdentity(t, c)
	h := newHubRunner(t, filepath.Join(dir, "data"), append(c.hubArgs,
		"--store-max-bytes", fmt.Sprint(maxBytes), "--store-full-policy", "reject-new")...)
	h.start()
	f := startFleet(t, c.senders, 1024, h.currentAddr)
	waitUntil(t, 20*time.Second, "every sender accepted and acknowledged once", func() bool { return f.eachAckedAtLeast(nil, 1) })
	probeConnect(t, probe, h.currentAddr())
	f.cutQuietly(t, c.s, h)
	cutAt := f.totalAcked()

	waitUntil(t, 30*time.Second, "the store to reach its cap and the hub to refuse publishes", func() bool {
		return len(h.logLines(refusalMsg)) >= 3*len(f.pubs)
	})
	full := f.totalAcked()
	t.Logf("store full after %d acknowledged messages of 1 KB (cap %d bytes)", full, maxBytes)
	assertRefusedCleanly(t, h, f, "store: full")
	if stored := full - cutAt; stored*1024 > maxBytes { // each one is stored, with overhead
		t.Errorf("%d messages of 1 KB acknowledged with the network cut, under a cap of %d bytes", stored, maxBytes)
	}
	if !h.alive() {
		t.Fatal("edgehub exited when its store was full")
	}
	probeConnect(t, probe, h.currentAddr())
	f.stop()

	// The backlog drains, which frees the cap: publishes are acknowledged again.
	c.s.RestoreNetwork()
	if d := f.waitDelivered(c.s, 30*time.Second); d.missingCount() > 0 {
		d.report(t, f)
		t.FailNow()
	}
	base := f.ackedCounts()
	f.resume()
	waitUntil(t, 30*time.Second, "publishes acknowledged again after the drain", func() bool { return f.eachAckedAtLeast(base, 10) })
	f.stop()
	f.waitDelivered(c.s, 30*time.Second).report(t, f)
}

// assertRefusedCleanly checks that the hub refused publishes with the store error named
// by want, and that the publishers saw their connections close without a PUBACK rather
// than hang.
func assertRefusedCleanly(t *testing.T, h *hubRunner, f *fleet, want string) {
	t.Helper()
	var errs []string
	for _, rec := range h.logLines(refusalMsg) {
		e := fmt.Sprint(rec["err"])
		if !slices.Contains(errs, e) {
			errs = append(errs, e)
		}
	}
	t.Logf("the hub's refusals (%d distinct errors): %q", len(errs), firstN(errs, 5))
	if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, want) }) {
		t.Errorf("no refusal names %q", want)
	}
	noAck, timedOut := f.noAcks()
	t.Logf("publishes without PUBACK: %d (%d of them timed out instead of being closed)", noAck, timedOut)
	if noAck == 0 {
		t.Error("no publisher saw a refusal")
	}
	if timedOut > 0 {
		t.Errorf("%d publishes hung for %v instead of being refused", timedOut, publishTimeout)
	}
}

// probeIdentity registers module "probe", the client that checks that the hub still
// answers CONNECT.
func probeIdentity(t *testing.T, c *cloud) sas.ConnectionString {
	t.Helper()
	_, text := fakehubtest.MustModule(t, c.s, "edge1", "probe")
	cs, err := sas.ParseConnectionString(text)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// probeConnect connects as cs to the hub at addr and disconnects; the CONNACK must accept.
func probeConnect(t *testing.T, cs sas.ConnectionString, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var err error
	for ctx.Err() == nil { // the first CONNECT may race the upstream link coming up
		c, cerr := connectAs(ctx, cs, addr)
		if err = cerr; err == nil {
			c.Disconnect(0)
			return
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
	t.Fatalf("a new client's CONNECT was not accepted: %v", err)
}

// mountTmpfs mounts a tmpfs of size bytes on a fresh directory and unmounts it on cleanup
// (after the cleanups registered later, the hub's included). Without root it skips, or
// fails in CI, where the test must run.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	unable := t.Skipf
	if os.Getenv("CI") != "" {
		unable = t.Fatalf
	}
	if os.Geteuid() != 0 {
		unable("mounting a tmpfs needs root (uid %d)", os.Geteuid())
	}
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		unable("mount -t tmpfs -o size=%d tmpfs %s: %v", size, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v (detaching it)", dir, err)
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

// freeBytes is the space left on the filesystem of dir.
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}
