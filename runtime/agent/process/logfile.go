package process

import (
	"bufio"
	"errors"
	"io"
	"os"
	"time"
)

// Log files hold one record per line of module output:
//
//	2026-03-01T12:00:00.123456789Z the line as the module wrote it
//
// The time (UTC, always nine fraction digits, like Docker's) is when the
// supervisor read the line. Lines longer than maxLogLine are split into
// several records, as Docker splits at 16 KiB.
const (
	logTimeLayout = "2006-01-02T15:04:05.000000000Z07:00"
	maxLogLine    = 16 << 10
)

// DefaultLogMaxBytes is the size at which a module's log file is rotated
// when Options.LogMaxBytes is 0.
const DefaultLogMaxBytes = 10 << 20

// logWriter appends records to a module's log file and rotates it: once
// the file would exceed max bytes, it is renamed to <file>.1 (replacing the
// previous one) and a new file is started. It is used by one goroutine.
type logWriter struct {
	path string
	max  int64
	f    *os.File
	size int64
	buf  []byte
}

func openLog(path string, max int64) (*logWriter, error) {
	w := &logWriter{path: path, max: max}
	return w, w.open()
}

func (w *logWriter) open() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.size = f, fi.Size()
	return nil
}

// write appends one record for line (without its newline) read at t.
func (w *logWriter) write(t time.Time, line []byte) error {
	w.buf = t.UTC().AppendFormat(w.buf[:0], logTimeLayout)
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, line...)
	w.buf = append(w.buf, '\n')
	if w.size > 0 && w.size+int64(len(w.buf)) > w.max {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(w.buf) // one write per record: readers never see half a record for long
	w.size += int64(n)
	return err
}

func (w *logWriter) rotate() error {
	if err := w.f.Close(); err != nil {
		return err
	}
	if err := os.Rename(w.path, w.path+rotatedExt); err != nil {
		return err
	}
	return w.open()
}

func (w *logWriter) Close() error { return w.f.Close() }

// copyLines reads r until EOF and writes each line as a record, stamped
// with now() when read. A final line without a newline is written too.
func copyLines(r io.Reader, w *logWriter, now func() time.Time) error {
	br := bufio.NewReaderSize(r, maxLogLine)
	var werr error
	split := false // the previous chunk filled the buffer: a line was split
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			nl := line[len(line)-1] == '\n'
			if nl {
				line = line[:len(line)-1]
			}
			// A newline right after a split chunk ends that line; it is no
			// empty line of its own.
			if !(split && nl && len(line) == 0) {
				if e := w.write(now(), line); e != nil && werr == nil {
					werr = e // keep reading: the module must never block on a full pipe
				}
			}
		}
		split = errors.Is(err, bufio.ErrBufferFull)
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return werr
		default:
			if werr == nil {
				werr = err
			}
			return werr
		}
	}
}
