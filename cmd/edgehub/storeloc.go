package main

// Where the message store lives, and how it moves (issue 10, item 7).
//
// # Semantics
//
// The $edgeHub module twin's desired storeAndForwardConfiguration.storageFolder
// (hub.StorageFolderProperty; Azure's edgeHub takes the same setting from its environment
// variable storageFolder) names the folder of the message store, store.db. Absent, null or
// "" means the default: the data directory (--data-dir), which also keeps everything else
// (identities.db, twins.db, certificates, and the record below) whatever the twin says.
//
// A folder is refused, with the reason in lastDesiredStatus (400) and in the reported
// storageFolder (status "refused"), when it is not an absolute path, is or is inside a
// system directory (/proc, /sys, /dev, /etc, /usr, /boot, /bin, /sbin, /lib*) or
// --certs-dir, already holds a store.db, cannot be created or written, or is on another
// file system without room for the current store file plus a tenth. The store then stays
// where it is and the rest of the configuration applies. A folder that is the current one
// (symbolic links followed) is no change.
//
// An accepted change is applied between two runs of the hub component (hub.Server): the
// hub reports storageFolder status "moving", then the running Server is stopped (clients
// are disconnected and reconnect by themselves; a publish caught in the middle gets no
// PUBACK and is sent again), the upstream link and the store stop (the store commits what
// it accepted), the store file moves, and a new Server starts on it and reports status
// "ok" with the new folder. Listeners keep their addresses. A move that fails is rolled
// back (the store stays and serves from where it was), reported 400 with the reason, and
// not tried again for that desired version until the hub restarts.
//
// # The move, and crashes
//
// store-location.json in the data directory records the folder in use, durably (written
// to a temporary file, synced, renamed, directory synced), so that a restart, even
// offline, opens the store where it is. With the store closed, a move from A to B goes:
//
//	1. record {folder: A, movingTo: B}
//	2. rename A/store.db to B/store.db; across file systems (EXDEV) instead: copy to
//	   B/store.db.moving, fsync, read back and compare its SHA-256 with the source's,
//	   rename to B/store.db; then sync the directories
//	3. record {folder: B, removeFrom: A}          <- the commit point
//	4. remove A/store.db (if still there), sync A
//	5. record {folder: B}
//
// B/store.db appears only complete (by a rename) and the source is removed only after the
// commit point, so at every point one complete store exists. At start, an interrupted move
// is finished from the record: movingTo set and B/store.db present -> roll forward (3, 4,
// 5); movingTo set and B/store.db absent -> roll back (remove B/store.db.moving, record
// {folder: A}); removeFrom set -> 4, 5. A failed move (not a crash) runs the same recovery
// at once. TestStoreMove_CrashPoints stops a move at every step and checks that recovery
// leaves exactly one store, holding every message.

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// storeLocationFile is the record, in the data directory, of the store's folder.
const storeLocationFile = "store-location.json"

// movingSuffix names the partial copy of a move across file systems.
const movingSuffix = ".moving"

// forbiddenFolders may not hold the store, nor may anything inside them.
var forbiddenFolders = []string{"/proc", "/sys", "/dev", "/etc", "/usr", "/boot", "/bin", "/sbin", "/lib", "/lib32", "/lib64"}

// locationRecord is the content of storeLocationFile.
type locationRecord struct {
	Folder     string `json:"folder"`               // the folder of store.db in use
	MovingTo   string `json:"movingTo,omitempty"`   // a move under way, not committed
	RemoveFrom string `json:"removeFrom,omitempty"` // a committed move whose source may remain
}

// moveRequest is a move the hub asked for (hub.StoreMover.MoveStore).
type moveRequest struct {
	folder  string
	version int64
}

// moveFS holds the file system operations a move depends on, so that tests can force the
// copy path, a full disk or a crash at a given step.
type moveFS struct {
	rename func(oldPath, newPath string) error
	// free returns the bytes available to this process in dir's file system.
	free func(dir string) (uint64, error)
	// device identifies dir's file system.
	device func(dir string) (uint64, error)
	// step, when set, is called at each step of a move (see moveSteps); a test panics in
	// it to simulate a crash there.
	step func(name string)
}

// Steps of a move, as passed to moveFS.step.
const (
	stepRecorded = "recorded"  // 1 done
	stepCopying  = "copying"   // copy path: B/store.db.moving written, not synced
	stepCopied   = "copied"    // copy path: verified, not yet renamed
	stepPlaced   = "placed"    // 2 done
	stepCommit   = "committed" // 3 done
	stepRemoved  = "removed"   // 4 done
)

func osMoveFS() moveFS {
	return moveFS{
		rename: os.Rename,
		free: func(dir string) (uint64, error) {
			var st syscall.Statfs_t
			if err := syscall.Statfs(dir, &st); err != nil {
				return 0, err
			}
			return st.Bavail * uint64(st.Bsize), nil
		},
		device: func(dir string) (uint64, error) {
			fi, err := os.Stat(dir)
			if err != nil {
				return 0, err
			}
			st, ok := fi.Sys().(*syscall.Stat_t)
			if !ok {
				return 0, fmt.Errorf("%s: no device number", dir)
			}
			return uint64(st.Dev), nil
		},
	}
}

// storeLocation knows where the store is and moves it. The hub reaches it through
// movableStore (a hub.StoreMover); the serve loop (storeloc_serve.go) does the moves
// between two runs of the hub.
type storeLocation struct {
	dataDir  string // absolute: the default folder, and where the record is
	certsDir string // absolute, or "": forbidden
	log      *slog.Logger
	fs       moveFS
	requests chan moveRequest // MoveStore -> the serve loop; one at a time

	mu     sync.Mutex
	folder string                // the folder of store.db now (absolute)
	failed map[moveRequest]error // moves that failed in this process
}

// openStoreLocation reads the record in dataDir, finishing a move a crash interrupted.
func openStoreLocation(dataDir, certsDir string, mfs moveFS, logger *slog.Logger) (*storeLocation, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("data directory %q: %w", dataDir, err)
	}
	l := &storeLocation{
		dataDir:  abs,
		log:      logger,
		fs:       mfs,
		requests: make(chan moveRequest, 1),
		failed:   make(map[moveRequest]error),
	}
	if certsDir != "" {
		if l.certsDir, err = filepath.Abs(certsDir); err != nil {
			return nil, fmt.Errorf("--certs-dir %q: %w", certsDir, err)
		}
	}
	if err := l.recover(); err != nil {
		return nil, err
	}
	if l.folder != l.dataDir {
		if _, err := os.Stat(l.storePath()); errors.Is(err, fs.ErrNotExist) {
			// Only a hand-edited record or a deleted file can bring this about.
			logger.Warn("the recorded store folder holds no store; a new, empty one is created there",
				"folder", l.folder, "record", filepath.Join(l.dataDir, storeLocationFile))
		}
	}
	return l, nil
}

// Folder returns the folder of the store now.
func (l *storeLocation) Folder() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.folder
}

// storePath is the store file in the current folder.
func (l *storeLocation) storePath() string { return filepath.Join(l.Folder(), storeFile) }

// request queues a move for the serve loop, unless one is queued already (the hub asks
// once per run; the next run plans again from its configuration).
func (l *storeLocation) request(r moveRequest) {
	select {
	case l.requests <- r:
	default:
	}
}

// drain drops a request the last run left behind.
func (l *storeLocation) drain() {
	select {
	case <-l.requests:
	default:
	}
}

// plan resolves a requested folder ("" for the default) and checks that the store can move
// there; see the file comment for the rules. It returns the folder to use, the current one
// when there is nothing to move. The folder is created if needed.
func (l *storeLocation) plan(requested string, version int64) (string, error) {
	target := l.dataDir
	if requested != "" {
		if !filepath.IsAbs(requested) {
			return "", errFolderNotAbsolute
		}
		target = filepath.Clean(requested)
	}
	cur := l.Folder()
	if target == cur {
		return cur, nil
	}
	if err := l.checkAllowed(target); err != nil {
		return "", err
	}
	l.mu.Lock()
	failed := l.failed[moveRequest{folder: target, version: version}]
	l.mu.Unlock()
	if failed != nil {
		return "", fmt.Errorf("%w for this desired version: %w", errMoveFailed, failed)
	}
	if err := os.MkdirAll(target, 0o700); err != nil {
		return "", fmt.Errorf("%w: %w", errFolderNotWritable, err)
	}
	// Symbolic links: judge where the folder really is.
	resolved, err := filepath.EvalSymlinks(target)
	if err != nil {
		return "", fmt.Errorf("%w: %w", errFolderNotWritable, err)
	}
	if err := l.checkAllowed(resolved); err != nil {
		return "", err
	}
	if same, err := sameDir(target, cur); err == nil && same {
		return cur, nil
	}
	if _, err := os.Lstat(filepath.Join(target, storeFile)); !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w; remove it or name another folder", errFolderHoldsStore)
	}
	if err := probeWritable(target); err != nil {
		return "", fmt.Errorf("%w: %w", errFolderNotWritable, err)
	}
	if err := l.checkSpace(cur, target); err != nil {
		return "", err
	}
	return target, nil
}

// checkAllowed refuses a folder that is, or is inside, a forbidden one.
func (l *storeLocation) checkAllowed(dir string) error {
	if dir == "/" {
		return fmt.Errorf("%w: the root directory", errFolderForbidden)
	}
	for _, f := range forbiddenFolders {
		if within(dir, f) {
			return fmt.Errorf("%w: inside %s", errFolderForbidden, f)
		}
	}
	if l.certsDir != "" && within(dir, l.certsDir) {
		return fmt.Errorf("%w: inside the certificates directory %s", errFolderForbidden, l.certsDir)
	}
	return nil
}

// within reports whether dir is parent or inside it (both clean and absolute).
func within(dir, parent string) bool {
	return dir == parent || strings.HasPrefix(dir, strings.TrimSuffix(parent, "/")+"/")
}

// sameDir reports whether a and b are the same directory.
func sameDir(a, b string) (bool, error) {
	fa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(fa, fb), nil
}

// probeWritable creates, writes, syncs and removes a file in dir.
func probeWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".edgehub-probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write([]byte("edgehub")); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// checkSpace refuses a target on another file system without room for the store file
// plus a tenth (it keeps growing while the hub runs) plus a MiB.
func (l *storeLocation) checkSpace(cur, target string) error {
	devCur, err := l.fs.device(cur)
	if err != nil {
		return fmt.Errorf("%w: %w", errFolderNotWritable, err)
	}
	devTarget, err := l.fs.device(target)
	if err != nil {
		return fmt.Errorf("%w: %w", errFolderNotWritable, err)
	}
	if devCur == devTarget {
		return nil // a rename: no space needed
	}
	var size uint64
	if fi, err := os.Stat(filepath.Join(cur, storeFile)); err == nil {
		size = uint64(fi.Size())
	}
	need := size + size/10 + 1<<20
	free, err := l.fs.free(target)
	if err != nil {
		return fmt.Errorf("%w: %w", errFolderNotWritable, err)
	}
	if free < need {
		return fmt.Errorf("%w: %d bytes free, the store needs %d (its file is %d bytes)", errFolderNoSpace, free, need, size)
	}
	return nil
}

// move moves the store (closed by the caller) as r asks. A move that fails is rolled back
// and remembered (plan refuses it for the same version, so the next run reports it); the
// failure is logged. It returns an error only when the location cannot be known for sure
// (the record cannot be written), which the caller must treat as fatal.
func (l *storeLocation) move(r moveRequest) error {
	from := l.Folder()
	to, err := l.plan(r.folder, r.version) // again: the world may have changed since
	if err == nil && to == from {
		return nil
	}
	if err == nil {
		l.log.Info("moving the store", "from", from, "to", to, "version", r.version)
		if err = l.relocate(from, to); err == nil {
			l.log.Info("store moved", "from", from, "to", to)
			return nil
		}
		if rerr := l.recover(); rerr != nil {
			return fmt.Errorf("moving the store from %q to %q failed (%v), and so did recovering from it: %w", from, to, err, rerr)
		}
	}
	l.mu.Lock()
	l.failed[r] = err
	l.mu.Unlock()
	l.log.Error("moving the store failed; it stays where it was", "folder", l.Folder(), "requested", r.folder, "err", err)
	return nil
}

// relocate does steps 1 to 5 of the move (see the file comment).
func (l *storeLocation) relocate(from, to string) error {
	src, dst := filepath.Join(from, storeFile), filepath.Join(to, storeFile)
	if err := l.writeRecord(locationRecord{Folder: from, MovingTo: to}); err != nil {
		return err
	}
	l.step(stepRecorded)
	err := l.fs.rename(src, dst)
	switch {
	case errors.Is(err, syscall.EXDEV):
		if err := l.copyVerified(src, dst); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	if err := syncDirs(to, from); err != nil {
		return err
	}
	l.step(stepPlaced)
	return l.commit(from, to)
}

// commit records the move to `to` done (step 3), then removes what remains in from. Its
// error means the move is not committed.
func (l *storeLocation) commit(from, to string) error {
	if err := l.writeRecord(locationRecord{Folder: to, RemoveFrom: from}); err != nil {
		return err
	}
	l.mu.Lock()
	l.folder = to
	l.mu.Unlock()
	l.step(stepCommit)
	l.removeSource(from)
	return nil
}

// removeSource does steps 4 and 5 once the store is in use elsewhere: from's copy goes. A
// failure is only logged: the record keeps removeFrom, so the next start tries again.
func (l *storeLocation) removeSource(from string) {
	if err := os.Remove(filepath.Join(from, storeFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		l.log.Warn("the old store file could not be removed; tried again at the next start", "folder", from, "err", err)
		return
	}
	if err := syncDirs(from); err != nil {
		l.log.Warn("syncing the old store folder failed", "folder", from, "err", err)
	}
	l.step(stepRemoved)
	if err := l.writeRecord(locationRecord{Folder: l.Folder()}); err != nil {
		l.log.Warn("recording the store folder failed; the next start finishes it", "err", err)
	}
}

// copyVerified copies src to dst through dst+movingSuffix, synced and compared with the
// source before it is renamed into place.
func (l *storeLocation) copyVerified(src, dst string) error {
	tmp := dst + movingSuffix
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, fi.Mode().Perm())
	if err != nil {
		return err
	}
	srcHash := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, srcHash), in)
	if err == nil && n != fi.Size() {
		err = fmt.Errorf("copied %d bytes of %d", n, fi.Size())
	}
	if err != nil {
		out.Close()
		os.Remove(tmp)
		return fmt.Errorf("copying %s: %w", src, err)
	}
	l.step(stepCopying)
	if err := out.Sync(); err != nil {
		out.Close()
		os.Remove(tmp)
		return fmt.Errorf("syncing %s: %w", tmp, err)
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	got, err := fileHash(tmp)
	if err == nil && !bytes.Equal(got, srcHash.Sum(nil)) {
		err = errors.New("the copy differs from the source")
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("verifying %s: %w", tmp, err)
	}
	l.step(stepCopied)
	return os.Rename(tmp, dst)
}

func fileHash(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// recover reads the record and finishes or undoes an interrupted move (see the file
// comment); then the record holds the folder alone.
func (l *storeLocation) recover() error {
	rec, err := l.readRecord()
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.folder = rec.Folder
	l.mu.Unlock()
	switch {
	case rec.MovingTo != "":
		from, to := rec.Folder, rec.MovingTo
		if _, err := os.Stat(filepath.Join(to, storeFile)); err == nil {
			l.log.Warn("finishing a store move that was interrupted", "from", from, "to", to)
			return l.commit(from, to)
		}
		l.log.Warn("undoing a store move that was interrupted", "from", from, "to", to)
		if err := os.Remove(filepath.Join(to, storeFile+movingSuffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing the partial copy of an interrupted store move: %w", err)
		}
		return l.writeRecord(locationRecord{Folder: from})
	case rec.RemoveFrom != "":
		l.removeSource(rec.RemoveFrom)
	}
	return nil
}

// readRecord reads storeLocationFile; without one the store is in the data directory.
func (l *storeLocation) readRecord() (locationRecord, error) {
	path := filepath.Join(l.dataDir, storeLocationFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return locationRecord{Folder: l.dataDir}, nil
	}
	if err != nil {
		return locationRecord{}, fmt.Errorf("store location %q: %w", path, err)
	}
	var rec locationRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return locationRecord{}, fmt.Errorf("store location %q: %w (it names the folder of the message store; fix or remove it)", path, err)
	}
	for _, p := range []string{rec.Folder, rec.MovingTo, rec.RemoveFrom} {
		if p != "" && (!filepath.IsAbs(p) || filepath.Clean(p) != p) {
			return locationRecord{}, fmt.Errorf("store location %q: %q is not a clean absolute path", path, p)
		}
	}
	if rec.Folder == "" {
		return locationRecord{}, fmt.Errorf("store location %q: no folder", path)
	}
	return rec, nil
}

// writeRecord replaces storeLocationFile durably: temporary file, fsync, rename, fsync
// of the data directory.
func (l *storeLocation) writeRecord(rec locationRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	path := filepath.Join(l.dataDir, storeLocationFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("store location: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDirs(l.dataDir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store location: %w", err)
	}
	return nil
}

// syncDirs fsyncs directories, so that renames and removals in them are durable.
func syncDirs(dirs ...string) error {
	for _, d := range dirs {
		f, err := os.Open(d)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("sync %s: %w", d, err)
		}
	}
	return nil
}

func (l *storeLocation) step(name string) {
	if l.fs.step != nil {
		l.fs.step(name)
	}
}
