package main

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
)

// loginsFile serves the registry logins stored by edgectl login
// (agent.RegistriesFile), reading the file again only when its size or
// modification time changed. A file that cannot be read is logged once per
// change and its last good content kept.
type loginsFile struct {
	path string
	log  *slog.Logger

	mu     sync.Mutex
	seen   bool // stamp is valid
	stamp  fileStamp
	logins []agent.RegistryLogin
}

// fileStamp tells whether a file changed.
type fileStamp struct {
	exists bool
	size   int64
	mod    time.Time
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileStamp{}, nil
	}
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{exists: true, size: fi.Size(), mod: fi.ModTime()}, nil
}

// Logins returns the current logins; it is agent.Options.RegistryLogins.
func (l *loginsFile) Logins() []agent.RegistryLogin {
	l.mu.Lock()
	defer l.mu.Unlock()
	st, err := stampOf(l.path)
	if err != nil {
		if !l.seen || l.stamp.exists {
			l.log.Warn("cannot read the registry logins; keeping the last ones", "file", l.path, "err", err)
		}
		l.seen, l.stamp = true, fileStamp{}
		return l.logins
	}
	if l.seen && st == l.stamp {
		return l.logins
	}
	l.seen, l.stamp = true, st
	logins, err := agent.ReadRegistries(l.path)
	if err != nil {
		l.log.Warn("cannot read the registry logins; keeping the last ones", "file", l.path, "err", err)
		return l.logins
	}
	if st.exists {
		l.log.Info("registry logins loaded", "file", l.path, "registries", len(logins))
	}
	l.logins = logins
	return l.logins
}
