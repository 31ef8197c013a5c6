package features

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Journal events written by the test module (features/testmodule).
const (
	evStart     = "start"
	evExit      = "exit"
	evSignal    = "signal"
	evUnhealthy = "unhealthy"
)

// journalEvent is one line of a module's journal.
type journalEvent struct {
	Event  string    `json:"event"`
	Module string    `json:"module"`
	Time   time.Time `json:"time"`
	PID    int       `json:"pid"`
	Start  int       `json:"start"`
	Code   *int      `json:"code"`
	Signal string    `json:"signal"`
}

func (e journalEvent) String() string {
	s := e.Time.Format("15:04:05.000") + " " + e.Event
	switch {
	case e.Event == evStart:
		s += fmt.Sprintf(" #%d", e.Start)
	case e.Code != nil:
		s += fmt.Sprintf(" code %d", *e.Code)
	case e.Signal != "":
		s += " " + e.Signal
	}
	return s
}

// journal is the directory where every test module of a scenario writes
// what happens to it: the witness the scenarios trust, rather than the edge
// agent's own report.
type journal struct{ dir string }

// events returns module's events, oldest first; none when it never started.
func (j journal) events(module string) ([]journalEvent, error) {
	b, err := os.ReadFile(filepath.Join(j.dir, module+".jsonl"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []journalEvent
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var e journalEvent
		if err := json.Unmarshal(line, &e); err != nil {
			// A line being written: the rest is read next time.
			break
		}
		out = append(out, e)
	}
	return out, nil
}

// starts returns module's start events.
func (j journal) starts(module string) ([]journalEvent, error) {
	return j.only(module, evStart)
}

// only returns module's events of one kind.
func (j journal) only(module, kind string) ([]journalEvent, error) {
	all, err := j.events(module)
	if err != nil {
		return nil, err
	}
	var out []journalEvent
	for _, e := range all {
		if e.Event == kind {
			out = append(out, e)
		}
	}
	return out, nil
}

// describe renders module's journal for an error message.
func (j journal) describe(module string) string {
	all, err := j.events(module)
	if err != nil {
		return err.Error()
	}
	if len(all) == 0 {
		return "journal of " + module + ": empty (never started)"
	}
	parts := make([]string, len(all))
	for i, e := range all {
		parts[i] = e.String()
	}
	return "journal of " + module + ": " + strings.Join(parts, ", ")
}
