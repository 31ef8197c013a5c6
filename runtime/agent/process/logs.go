package process

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
)

// followPoll is how often a following Logs looks for new output.
const followPoll = 100 * time.Millisecond

// streamLogs writes the module's log records selected by opts to w: the
// rotated file, then the current one, then (Follow) whatever is appended
// until ctx ends or Until passes. A rotation while following is noticed
// (the file at the log path is another one) and the old file is read to
// its end before the new one is opened.
func (r *Runtime) streamLogs(ctx context.Context, name string, opts agent.LogOptions, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 32<<10)
	out := &logOut{w: bw, opts: opts}
	if opts.Tail > 0 {
		out.ring = make([][]byte, 0, min(opts.Tail, 4096))
	}
	path := r.p.log(name)
	if err := out.file(path + rotatedExt); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	cur, err := openTail(path)
	if err != nil {
		return err
	}
	defer cur.close()
	if err := cur.read(out); err != nil {
		return err
	}
	if !opts.Follow {
		if err := out.lineEnd(cur.partial); err != nil {
			return err
		}
		if err := out.flushRing(); err != nil {
			return err
		}
		return bw.Flush()
	}
	if err := out.flushRing(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	tick := time.NewTicker(followPoll)
	defer tick.Stop()
	for !out.pastUntil {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if !opts.Until.IsZero() && !r.now().Before(opts.Until) {
			return nil
		}
		if err := cur.read(out); err != nil {
			return err
		}
		if rotated, err := cur.rotated(); err != nil {
			return err
		} else if rotated {
			if err := cur.read(out); err != nil { // what was written before the rename
				return err
			}
			if err := out.lineEnd(cur.partial); err != nil {
				return err
			}
			cur.close()
			if cur, err = openTail(path); err != nil {
				return err
			}
			if err := cur.read(out); err != nil {
				return err
			}
		}
		if err := bw.Flush(); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// tailFile is a log file being read; partial holds the start of a record
// whose end has not been written yet.
type tailFile struct {
	path    string
	f       *os.File // nil while the file does not exist
	br      *bufio.Reader
	partial []byte
}

func openTail(path string) (*tailFile, error) {
	t := &tailFile{path: path}
	return t, t.open()
}

func (t *tailFile) open() error {
	f, err := os.Open(t.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // not written yet
	}
	if err != nil {
		return err
	}
	t.f, t.br = f, bufio.NewReaderSize(f, maxLogLine+64)
	return nil
}

func (t *tailFile) close() {
	if t.f != nil {
		t.f.Close()
	}
}

// read passes every complete record available to out.
func (t *tailFile) read(out *logOut) error {
	if t.f == nil {
		if err := t.open(); err != nil || t.f == nil {
			return err
		}
	}
	for !out.pastUntil {
		b, err := t.br.ReadBytes('\n')
		if len(b) > 0 {
			if err == nil {
				if len(t.partial) > 0 {
					b = append(t.partial, b...)
					t.partial = nil
				}
				if err := out.line(b[:len(b)-1]); err != nil {
					return err
				}
			} else {
				t.partial = append(t.partial, b...)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// rotated reports whether the file at the path is no longer the open one.
func (t *tailFile) rotated() (bool, error) {
	if t.f == nil {
		return false, nil
	}
	now, err := os.Stat(t.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // between the rename and the new file; next time
	}
	if err != nil {
		return false, err
	}
	open, err := t.f.Stat()
	if err != nil {
		return false, err
	}
	return !os.SameFile(now, open), nil
}

// logOut filters records by opts and writes them: through a ring of the
// last Tail records until flushRing, directly after.
type logOut struct {
	w         io.Writer
	opts      agent.LogOptions
	ring      [][]byte // nil: no tail (or already flushed)
	next      int      // ring position of the oldest record, once full
	pastUntil bool     // a record at or after Until was seen: nothing later qualifies
}

// file passes every record of a whole file to out.
func (o *logOut) file(path string) error {
	t, err := openTail(path)
	if err != nil {
		return err
	}
	if t.f == nil {
		return os.ErrNotExist
	}
	defer t.close()
	if err := t.read(o); err != nil {
		return err
	}
	return o.lineEnd(t.partial)
}

// lineEnd passes a final record that has no newline.
func (o *logOut) lineEnd(partial []byte) error {
	if len(partial) == 0 {
		return nil
	}
	return o.line(partial)
}

// line handles one stored record (without its newline). A record without a
// valid time counts as written at the zero time.
func (o *logOut) line(rec []byte) error {
	t, text := parseRecord(rec)
	if !o.opts.Since.IsZero() && t.Before(o.opts.Since) {
		return nil
	}
	if !o.opts.Until.IsZero() && !t.IsZero() && !t.Before(o.opts.Until) {
		o.pastUntil = true
		return nil
	}
	if o.opts.Timestamps {
		text = rec
	}
	if o.ring != nil {
		line := append(append(make([]byte, 0, len(text)+1), text...), '\n')
		if len(o.ring) < o.opts.Tail {
			o.ring = append(o.ring, line)
		} else {
			o.ring[o.next] = line
			o.next = (o.next + 1) % len(o.ring)
		}
		return nil
	}
	if _, err := o.w.Write(text); err != nil {
		return err
	}
	_, err := o.w.Write([]byte{'\n'})
	return err
}

// flushRing writes the tail kept so far and switches to direct writing.
func (o *logOut) flushRing() error {
	ring, next := o.ring, o.next
	o.ring, o.next = nil, 0
	for i := range ring {
		if _, err := o.w.Write(ring[(next+i)%len(ring)]); err != nil {
			return err
		}
	}
	return nil
}

// parseRecord splits a stored record into its time and text; a record that
// does not start with a valid time is all text, at the zero time.
func parseRecord(rec []byte) (time.Time, []byte) {
	i := bytes.IndexByte(rec, ' ')
	if i < 0 {
		return time.Time{}, rec
	}
	t, err := time.Parse(time.RFC3339Nano, string(rec[:i]))
	if err != nil {
		return time.Time{}, rec
	}
	return t, rec[i+1:]
}
