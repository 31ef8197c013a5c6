package docker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The engine multiplexes a non-TTY container's stdout and stderr into one
// stream of frames: a header of 8 bytes (stream id, three zero bytes, the
// payload length as a big-endian uint32) and the payload. Frames need not
// end at line ends, so each stream keeps its unfinished line until the rest
// arrives; lines of the two streams are interleaved whole, in the order they
// complete.
const (
	frameHeaderLen = 8
	streamStdin    = 0
	streamStdout   = 1
	streamStderr   = 2
	streamSystem   = 3 // an error of the engine itself, e.g. the log driver's
	// maxLine bounds an unfinished line: a longer one is cut and sent as a
	// line of its own, so a module that never writes "\n" cannot make the
	// reader buffer without limit.
	maxLine = 64 << 10
	// maxSystemMessage bounds the engine error text read from a frame.
	maxSystemMessage = 4 << 10
)

// errLogStream: the engine's log stream is not a stream of frames.
var errLogStream = errors.New("malformed log stream")

// demux copies the framed log stream src to dst as whole lines; each line
// ends with "\n" (one is added to an unfinished last line). It returns nil
// at the end of src, the engine's message for a system-error frame, and the
// read error otherwise, after flushing what it has.
func demux(dst io.Writer, src io.Reader) (err error) {
	out, errs := &lineWriter{dst: dst}, &lineWriter{dst: dst}
	defer func() {
		if ferr := errors.Join(out.flush(), errs.flush()); err == nil {
			err = ferr
		}
	}()
	var hdr [frameHeaderLen]byte
	for {
		if _, err := io.ReadFull(src, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("%w: truncated frame header", errLogStream)
			}
			return err
		}
		size := int64(binary.BigEndian.Uint32(hdr[4:]))
		var w io.Writer
		switch hdr[0] {
		case streamStdin, streamStdout:
			w = out
		case streamStderr:
			w = errs
		case streamSystem:
			msg, _ := io.ReadAll(io.LimitReader(src, min(size, maxSystemMessage)))
			return fmt.Errorf("engine log error: %s", bytes.TrimSpace(msg))
		default:
			return fmt.Errorf("%w: unknown stream id %d", errLogStream, hdr[0])
		}
		if n, err := io.CopyN(w, src, size); err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%w: frame of %d bytes ends after %d", errLogStream, size, n)
			}
			return err
		}
	}
}

// lines copies a TTY container's raw stream to dst as whole lines.
func lines(dst io.Writer, src io.Reader) error {
	w := &lineWriter{dst: dst}
	_, err := io.Copy(w, src)
	return errors.Join(err, w.flush())
}

// lineWriter passes whole lines to dst and keeps the unfinished one.
type lineWriter struct {
	dst     io.Writer
	partial []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.partial = append(l.partial, p...)
			if len(l.partial) >= maxLine {
				if err := l.flush(); err != nil {
					return 0, err
				}
			}
			break
		}
		line := p[:i+1]
		if len(l.partial) > 0 {
			line = append(l.partial, line...)
			l.partial = l.partial[:0]
		}
		if _, err := l.dst.Write(line); err != nil {
			return 0, err
		}
		p = p[i+1:]
	}
	return n, nil
}

// flush sends the unfinished line, if any, with a "\n".
func (l *lineWriter) flush() error {
	if len(l.partial) == 0 {
		return nil
	}
	line := append(l.partial, '\n')
	l.partial = l.partial[:0]
	_, err := l.dst.Write(line)
	return err
}
