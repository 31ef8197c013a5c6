package docker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/outpost-edge/outpost/runtime/agent"
)

// frame is one frame of the engine's multiplexed log stream.
func frame(stream byte, payload string) []byte {
	hdr := make([]byte, frameHeaderLen, frameHeaderLen+len(payload))
	hdr[0] = stream
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(payload)))
	return append(hdr, payload...)
}

func frames(fs ...[]byte) []byte { return bytes.Join(fs, nil) }

func TestDemux(t *testing.T) {
	long := strings.Repeat("x", maxLine+10)
	for _, tc := range []struct {
		name    string
		in      []byte
		want    string
		wantErr string
	}{
		{name: "empty", in: nil, want: ""},
		{name: "one-line", in: frame(streamStdout, "hello\n"), want: "hello\n"},
		{name: "lines-in-one-frame", in: frame(streamStdout, "a\nb\nc\n"), want: "a\nb\nc\n"},
		{
			name: "line-split-across-frames",
			in:   frames(frame(streamStdout, "hel"), frame(streamStdout, "lo\nwor"), frame(streamStdout, "ld\n")),
			want: "hello\nworld\n",
		},
		{
			name: "streams-interleaved-by-whole-lines",
			in:   frames(frame(streamStdout, "out-"), frame(streamStderr, "err 1\n"), frame(streamStdout, "line\n"), frame(streamStderr, "err 2\n")),
			want: "err 1\nout-line\nerr 2\n",
		},
		{name: "unfinished-last-lines-ended", in: frames(frame(streamStdout, "tail"), frame(streamStderr, "etail")), want: "tail\netail\n"},
		{name: "stdin-as-stdout", in: frame(streamStdin, "in\n"), want: "in\n"},
		{name: "empty-frame", in: frames(frame(streamStdout, ""), frame(streamStdout, "x\n")), want: "x\n"},
		{name: "long-line-cut", in: frame(streamStdout, long+"\n"), want: long[:maxLine] + "\n" + long[maxLine:] + "\n"},
		{
			name: "system-error", in: frames(frame(streamStdout, "before\n"), frame(streamSystem, "error from daemon in stream: log driver failed\n")),
			want: "before\n", wantErr: "engine log error: error from daemon in stream: log driver failed",
		},
		{name: "unknown-stream", in: frame(7, "x\n"), wantErr: "unknown stream id 7"},
		{name: "truncated-header", in: []byte{1, 0, 0}, wantErr: "truncated frame header"},
		{name: "truncated-payload", in: frame(streamStdout, "abcdef")[:10], want: "ab\n", wantErr: "frame of 6 bytes ends after 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := demux(&out, bytes.NewReader(tc.in))
			if got := out.String(); got != tc.want {
				t.Errorf("output %q, want %q", got, tc.want)
			}
			if (err != nil) != (tc.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestLines_TTY(t *testing.T) {
	var out bytes.Buffer
	if err := lines(&out, strings.NewReader("a\r\nb\r\nno end")); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "a\r\nb\r\nno end\n" {
		t.Errorf("output %q", got)
	}
}

// FuzzDemux checks that any stream, well formed or not, is demultiplexed
// without panicking into whole lines, and that a well-formed stream loses
// no byte.
func FuzzDemux(f *testing.F) {
	f.Add(frames(frame(streamStdout, "hel"), frame(streamStderr, "err\n"), frame(streamStdout, "lo\n")), false)
	f.Add(frame(streamSystem, "boom"), false)
	f.Add([]byte("stdout 1\nstderr 1\n"), true)
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 200, 'x'}, false)
	f.Fuzz(func(t *testing.T, data []byte, wellFormed bool) {
		in := data
		if wellFormed {
			// Cut data into frames of up to 7 bytes on alternating streams.
			var b []byte
			for i := 0; i < len(data); i += 7 {
				chunk := data[i:min(i+7, len(data))]
				b = append(b, frame(byte(1+(i/7)%2), string(chunk))...)
			}
			in = b
		}
		var out bytes.Buffer
		err := demux(&out, bytes.NewReader(in))
		got := out.Bytes()
		if len(got) > 0 && got[len(got)-1] != '\n' {
			t.Fatalf("output %q does not end with a newline", got)
		}
		if wellFormed {
			if err != nil {
				t.Fatalf("well-formed stream: %v", err)
			}
			strip := func(b []byte) int { return len(b) - bytes.Count(b, []byte("\n")) }
			if strip(got) != strip(data) {
				t.Fatalf("output %q has %d bytes besides newlines, input %q has %d", got, strip(got), data, strip(data))
			}
		}
	})
}

func TestLogsOptions(t *testing.T) {
	since := time.Date(2026, 3, 1, 12, 0, 0, 5, time.UTC)
	for _, tc := range []struct {
		name string
		in   agent.LogOptions
		want container.LogsOptions
	}{
		{name: "all", want: container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "all"}},
		{name: "negative-tail", in: agent.LogOptions{Tail: -1}, want: container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "all"}},
		{
			name: "everything",
			in:   agent.LogOptions{Follow: true, Tail: 5, Since: since, Until: since.Add(time.Second), Timestamps: true},
			want: container.LogsOptions{
				ShowStdout: true, ShowStderr: true, Follow: true, Tail: "5", Timestamps: true,
				Since: "1772366400.000000005", Until: "1772366401.000000005",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := logsOptions(tc.in); got != tc.want {
				t.Errorf("\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// closeRecorder is a log stream that records whether it was closed.
type closeRecorder struct {
	io.Reader
	closed chan struct{}
}

func (c *closeRecorder) Close() error {
	select {
	case <-c.closed:
	default:
		close(c.closed)
	}
	return nil
}

func TestLogs_Demultiplexes(t *testing.T) {
	for _, tty := range []bool{false, true} {
		name := map[bool]string{false: "multiplexed", true: "tty"}[tty]
		t.Run(name, func(t *testing.T) {
			info := inspected("m", "running")
			info.Config.Tty = tty
			stream := frames(frame(streamStdout, "out\n"), frame(streamStderr, "err\n"))
			want := "out\nerr\n"
			if tty {
				stream, want = []byte("raw\r\nline"), "raw\r\nline\n"
			}
			src := &closeRecorder{Reader: bytes.NewReader(stream), closed: make(chan struct{})}
			f := &fakeEngine{inspect: map[string]container.InspectResponse{"m": info}, logs: src}
			rc, err := newRuntime(f, Options{}).Logs(context.Background(), "m", agent.LogOptions{Tail: 2})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			if err != nil || string(got) != want {
				t.Errorf("logs %q (%v), want %q", got, err, want)
			}
			rc.Close()
			<-src.closed
			if f.logsOpts.Tail != "2" || !f.logsOpts.ShowStdout || !f.logsOpts.ShowStderr {
				t.Errorf("engine options %+v", f.logsOpts)
			}
		})
	}
}

func TestLogs_CloseStopsStream(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	src := &closeRecorder{Reader: pr, closed: make(chan struct{})}
	f := &fakeEngine{inspect: map[string]container.InspectResponse{"m": inspected("m", "running")}, logs: src}
	rc, err := newRuntime(f, Options{}).Logs(context.Background(), "m", agent.LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	go pw.Write(frame(streamStdout, "first\n"))
	buf := make([]byte, 64)
	if n, err := rc.Read(buf); err != nil || string(buf[:n]) != "first\n" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	rc.Close()
	select {
	case <-src.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("engine stream still open 5s after Close")
	}
	if _, err := rc.Read(buf); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("read after Close: %v", err)
	}
}
