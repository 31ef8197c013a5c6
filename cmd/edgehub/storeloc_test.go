package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/outpost-edge/outpost/runtime/store"
)

// storedQueue is the queue the store tests fill.
const storedQueue = "$upstream/edge1/m1"

// fillStore appends n numbered messages to the store file at path and closes it.
func fillStore(t *testing.T, path string, n int) {
	t.Helper()
	st, err := store.Open(store.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	for i := range n {
		if err := st.Append(context.Background(), fmt.Appendf(nil, "message %d", i), []store.Target{{Queue: storedQueue}}); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// storedBodies returns the bodies the store file at path holds, in order.
func storedBodies(t *testing.T, path string) []string {
	t.Helper()
	st, err := store.Open(store.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	items, err := st.Read(storedQueue, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		out = append(out, string(it.Body))
	}
	return out
}

func wantBodies(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("message %d", i))
	}
	return out
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func readLocation(t *testing.T, dataDir string) locationRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, storeLocationFile))
	if err != nil {
		t.Fatal(err)
	}
	var rec locationRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// copyFS forces the copy path: the first rename of a move fails as across file systems.
func copyFS() moveFS {
	m := osMoveFS()
	m.rename = func(string, string) error { return &os.LinkError{Op: "rename", Err: syscall.EXDEV} }
	return m
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestStoreLocation_Plan(t *testing.T) {
	root := t.TempDir()
	dataDir := filepath.Join(root, "data")
	certsDir := filepath.Join(root, "certs")
	for _, d := range []string{dataDir, certsDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	fillStore(t, filepath.Join(dataDir, storeFile), 3)
	aFile := filepath.Join(root, "a-file")
	writeFile(t, aFile, "x")
	holding := filepath.Join(root, "holding")
	os.Mkdir(holding, 0o700)
	writeFile(t, filepath.Join(holding, storeFile), "someone else's")
	if err := os.Symlink("/proc", filepath.Join(root, "to-proc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dataDir, filepath.Join(root, "to-data")); err != nil {
		t.Fatal(err)
	}
	full := osMoveFS()
	full.device = func(dir string) (uint64, error) {
		if strings.HasPrefix(dir, dataDir) {
			return 1, nil
		}
		return 2, nil
	}
	full.free = func(string) (uint64, error) { return 4096, nil }
	roomy := full
	roomy.free = func(string) (uint64, error) { return 1 << 40, nil }

	tests := []struct {
		name      string
		requested string
		mfs       *moveFS // default osMoveFS
		want      string  // the folder planned
		wantErr   error
		wantText  string // in the error
	}{
		{name: "default", requested: "", want: dataDir},
		{name: "the current folder", requested: dataDir + "/", want: dataDir},
		{name: "the current folder through a symbolic link", requested: filepath.Join(root, "to-data"), want: dataDir},
		{name: "a new folder", requested: filepath.Join(root, "new", "store"), want: filepath.Join(root, "new", "store")},
		{name: "another file system with room", requested: filepath.Join(root, "big"), mfs: &roomy, want: filepath.Join(root, "big")},
		{name: "relative", requested: "store", wantErr: errFolderNotAbsolute},
		{name: "dot relative", requested: "./data", wantErr: errFolderNotAbsolute},
		{name: "root", requested: "/", wantErr: errFolderForbidden, wantText: "root directory"},
		{name: "in /proc", requested: "/proc/self/x", wantErr: errFolderForbidden, wantText: "inside /proc"},
		{name: "/etc", requested: "/etc", wantErr: errFolderForbidden},
		{name: "/usr/lib/x", requested: "/usr/lib/x/../y", wantErr: errFolderForbidden, wantText: "inside /usr"},
		{name: "through a symbolic link to /proc", requested: filepath.Join(root, "to-proc"), wantErr: errFolderForbidden},
		{name: "the certificates directory", requested: filepath.Join(certsDir, "store"), wantErr: errFolderForbidden, wantText: "certificates"},
		{name: "holds a store", requested: holding, wantErr: errFolderHoldsStore},
		{name: "under a file", requested: filepath.Join(aFile, "sub"), wantErr: errFolderNotWritable},
		{name: "another file system without room", requested: filepath.Join(root, "small"), mfs: &full, wantErr: errFolderNoSpace, wantText: "4096 bytes free"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mfs := osMoveFS()
			if tt.mfs != nil {
				mfs = *tt.mfs
			}
			l, err := openStoreLocation(dataDir, certsDir, mfs, discard())
			if err != nil {
				t.Fatal(err)
			}
			got, err := l.plan(tt.requested, 7)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(fmt.Sprint(err), tt.wantText) {
					t.Fatalf("plan(%q) = %q, %v; want %v mentioning %q", tt.requested, got, err, tt.wantErr, tt.wantText)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("plan(%q) = %q, %v; want %q", tt.requested, got, err, tt.want)
			}
			if fi, err := os.Stat(got); err != nil || !fi.IsDir() {
				t.Fatalf("the planned folder is not there: %v", err)
			}
		})
	}
}

func TestStoreMove(t *testing.T) {
	for _, path := range []struct {
		name string
		mfs  moveFS
	}{{"rename", osMoveFS()}, {"copy", copyFS()}} {
		t.Run(path.name, func(t *testing.T) {
			root := t.TempDir()
			dataDir, target := filepath.Join(root, "data"), filepath.Join(root, "ssd", "hub")
			os.Mkdir(dataDir, 0o700)
			fillStore(t, filepath.Join(dataDir, storeFile), 50)
			l, err := openStoreLocation(dataDir, "", path.mfs, discard())
			if err != nil {
				t.Fatal(err)
			}
			planned, err := l.plan(target, 3)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.move(moveRequest{folder: planned, version: 3}); err != nil {
				t.Fatal(err)
			}
			if l.Folder() != target || l.storePath() != filepath.Join(target, storeFile) {
				t.Fatalf("folder %q after the move", l.Folder())
			}
			if exists(t, filepath.Join(dataDir, storeFile)) || exists(t, filepath.Join(target, storeFile+movingSuffix)) {
				t.Fatal("a store file was left behind")
			}
			if got := storedBodies(t, filepath.Join(target, storeFile)); !slices.Equal(got, wantBodies(50)) {
				t.Fatalf("moved store holds %d messages, want 50", len(got))
			}
			if rec := readLocation(t, dataDir); rec != (locationRecord{Folder: target}) {
				t.Fatalf("record %+v", rec)
			}
			// A restart, offline or not, opens the store where it went.
			l2, err := openStoreLocation(dataDir, "", osMoveFS(), discard())
			if err != nil || l2.Folder() != target {
				t.Fatalf("after a restart: folder %q, %v", l2.Folder(), err)
			}
			// And back to the default.
			back, err := l2.plan("", 4)
			if err != nil || back != dataDir {
				t.Fatalf("plan default = %q, %v", back, err)
			}
			if err := l2.move(moveRequest{folder: back, version: 4}); err != nil {
				t.Fatal(err)
			}
			if got := storedBodies(t, filepath.Join(dataDir, storeFile)); len(got) != 50 || exists(t, filepath.Join(target, storeFile)) {
				t.Fatalf("moved back: %d messages, old file still there: %v", len(got), exists(t, filepath.Join(target, storeFile)))
			}
		})
	}
}

// TestStoreMove_Failure: a move that fails is undone, and refused for the same version.
func TestStoreMove_Failure(t *testing.T) {
	root := t.TempDir()
	dataDir, target := filepath.Join(root, "data"), filepath.Join(root, "ssd")
	os.Mkdir(dataDir, 0o700)
	fillStore(t, filepath.Join(dataDir, storeFile), 5)
	mfs := osMoveFS()
	mfs.rename = func(string, string) error { return &os.LinkError{Op: "rename", Err: syscall.EIO} }
	l, err := openStoreLocation(dataDir, "", mfs, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.move(moveRequest{folder: target, version: 9}); err != nil {
		t.Fatalf("a failed move is not fatal: %v", err)
	}
	if l.Folder() != dataDir || len(storedBodies(t, filepath.Join(dataDir, storeFile))) != 5 {
		t.Fatal("the store did not stay where it was")
	}
	if rec := readLocation(t, dataDir); rec != (locationRecord{Folder: dataDir}) {
		t.Fatalf("record %+v", rec)
	}
	if _, err := l.plan(target, 9); !errors.Is(err, errMoveFailed) || !strings.Contains(err.Error(), "input/output error") {
		t.Fatalf("plan again for the same version = %v, want %v with the cause", err, errMoveFailed)
	}
	if _, err := l.plan(target, 10); err != nil {
		t.Fatalf("plan for a new version = %v, want it tried again", err)
	}
}

// crashAt returns a moveFS based on base whose move stops dead (a panic, no clean-up) at
// the named step.
type crash struct{ step string }

func crashAt(base moveFS, step string) moveFS {
	base.step = func(name string) {
		if name == step {
			panic(crash{step})
		}
	}
	return base
}

// moveUntilCrash runs a move that crashes at its step; it fails the test if the move did
// not reach the step.
func moveUntilCrash(t *testing.T, l *storeLocation, r moveRequest, step string) {
	t.Helper()
	defer func() {
		if c, ok := recover().(crash); !ok || c.step != step {
			t.Fatalf("the move did not stop at %q", step)
		}
	}()
	l.move(r)
}

// TestStoreMove_CrashPoints stops a move at each of its steps, as a crash would, and
// checks that the next start leaves exactly one store, with every message, where the
// record says, and nothing behind.
func TestStoreMove_CrashPoints(t *testing.T) {
	tests := []struct {
		path    string
		step    string
		forward bool // the next start finishes the move (else undoes it)
	}{
		{"rename", stepRecorded, false},
		{"rename", stepPlaced, true},
		{"rename", stepCommit, true},
		{"rename", stepRemoved, true},
		{"copy", stepRecorded, false},
		{"copy", stepCopying, false},
		{"copy", stepCopied, false},
		{"copy", stepPlaced, true},
		{"copy", stepCommit, true},
		{"copy", stepRemoved, true},
	}
	for _, tt := range tests {
		t.Run(tt.path+"/"+tt.step, func(t *testing.T) {
			root := t.TempDir()
			dataDir, target := filepath.Join(root, "data"), filepath.Join(root, "ssd")
			os.Mkdir(dataDir, 0o700)
			os.Mkdir(target, 0o700)
			fillStore(t, filepath.Join(dataDir, storeFile), 20)
			base := osMoveFS()
			if tt.path == "copy" {
				base = copyFS()
			}
			l, err := openStoreLocation(dataDir, "", crashAt(base, tt.step), discard())
			if err != nil {
				t.Fatal(err)
			}
			moveUntilCrash(t, l, moveRequest{folder: target, version: 1}, tt.step)

			// The next start.
			l2, err := openStoreLocation(dataDir, "", osMoveFS(), discard())
			if err != nil {
				t.Fatal(err)
			}
			want, other := dataDir, target
			if tt.forward {
				want, other = target, dataDir
			}
			if l2.Folder() != want {
				t.Fatalf("folder %q after recovery, want %q", l2.Folder(), want)
			}
			if rec := readLocation(t, dataDir); rec != (locationRecord{Folder: want}) {
				t.Fatalf("record %+v after recovery", rec)
			}
			for _, left := range []string{filepath.Join(other, storeFile), filepath.Join(target, storeFile+movingSuffix),
				filepath.Join(dataDir, storeLocationFile+".tmp")} {
				if exists(t, left) {
					t.Errorf("%s left behind", left)
				}
			}
			if got := storedBodies(t, filepath.Join(want, storeFile)); !slices.Equal(got, wantBodies(20)) {
				t.Fatalf("the store holds %d messages, want 20", len(got))
			}
		})
	}
}

func TestStoreLocation_BadRecord(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"not JSON", "{", "fix or remove it"},
		{"relative folder", `{"folder":"data"}`, "not a clean absolute path"},
		{"no folder", `{}`, "no folder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, storeLocationFile), tt.content)
			if _, err := openStoreLocation(dir, "", osMoveFS(), discard()); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one saying %q", err, tt.want)
			}
		})
	}
}
