package process

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// procStat is what the runtime reads from /proc/<pid>/stat: enough to tell
// whether a recorded pid is still the process it started.
type procStat struct {
	State byte   // 'R', 'S', 'Z'…
	Start uint64 // start time, in clock ticks after boot (field 22)
}

// errNoProcess: no process with that pid.
var errNoProcess = errors.New("no such process")

// readStat reads /proc/<pid>/stat.
func readStat(pid int) (procStat, error) {
	if pid <= 0 {
		return procStat{}, errNoProcess
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, os.ErrNotExist) {
		return procStat{}, errNoProcess
	}
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

// parseStat parses the text of /proc/<pid>/stat. The command name (field 2)
// is in parentheses and may itself contain spaces and parentheses, so the
// fields are counted from the last ')'.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("proc stat: no command name")
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state), so field 22 (starttime) is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("proc stat: %d fields after the command name, want at least 20", len(f))
	}
	start, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("proc stat: start time: %w", err)
	}
	return procStat{State: f[0][0], Start: start}, nil
}

// startTime returns the start time of a live process, for recording.
func startTime(pid int) (uint64, error) {
	st, err := readStat(pid)
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	return st.Start, nil
}

// alive reports whether pid is still the process that started at start:
// it exists, is not a zombie, and its start time matches. A pid reused by
// an unrelated process has another start time and is not alive.
func alive(pid int, start uint64) bool {
	st, err := readStat(pid)
	return err == nil && st.State != 'Z' && st.State != 'X' && st.Start == start
}
