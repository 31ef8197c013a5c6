package docker

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/outpost-edge/outpost/runtime/agent"
)

// Logs returns the module's stdout and stderr, interleaved as whole plain
// lines (the engine's framing removed), selected by opts. With
// opts.Follow the reader stays open until ctx is done, and then ends
// cleanly (io.EOF). The caller closes it. agent.ErrNotFound when there is
// no such container.
func (r *Runtime) Logs(ctx context.Context, name string, opts agent.LogOptions) (io.ReadCloser, error) {
	info, err := r.cli.ContainerInspect(ctx, name)
	if err != nil {
		return nil, containerError(name, err)
	}
	tty := info.Config != nil && info.Config.Tty
	src, err := r.cli.ContainerLogs(ctx, name, logsOptions(opts))
	if err != nil {
		return nil, containerError(name, err)
	}
	pr, pw := io.Pipe()
	lr := &logReader{PipeReader: pr, src: src}
	go func() {
		var err error
		if tty {
			err = lines(pw, src)
		} else {
			err = demux(pw, src)
		}
		lr.closeSource()
		if ctx.Err() != nil {
			err = nil // a followed stream ends when its context does
		}
		if err != nil {
			err = fmt.Errorf("logs of %q: %w", name, err)
		}
		pw.CloseWithError(err)
	}()
	return lr, nil
}

// logsOptions translates LogOptions for the engine: Tail 0 (or less) means
// all lines, and times are sent as Unix seconds with nanoseconds.
func logsOptions(opts agent.LogOptions) container.LogsOptions {
	lo := container.LogsOptions{
		ShowStdout: true,
		ShowStderr: true,
		Follow:     opts.Follow,
		Timestamps: opts.Timestamps,
		Tail:       "all",
	}
	if opts.Tail > 0 {
		lo.Tail = strconv.Itoa(opts.Tail)
	}
	if !opts.Since.IsZero() {
		lo.Since = unixTime(opts.Since)
	}
	if !opts.Until.IsZero() {
		lo.Until = unixTime(opts.Until)
	}
	return lo
}

func unixTime(t time.Time) string {
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}

// logReader is the pipe the demultiplexer writes to; closing it also closes
// the engine's stream, which ends the demultiplexer.
type logReader struct {
	*io.PipeReader
	src  io.Closer
	once sync.Once
}

func (l *logReader) closeSource() { l.once.Do(func() { l.src.Close() }) }

// Close stops the stream.
func (l *logReader) Close() error {
	l.closeSource()
	return l.PipeReader.Close()
}
