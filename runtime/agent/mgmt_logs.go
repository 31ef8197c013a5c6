package agent

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/outpost-edge/outpost/runtime/deployment"
)

// LogQuery renders opts as the query string of the management API's GET
// /modules/{name}/logs, the inverse of ParseLogQuery (times as RFC 3339).
func LogQuery(opts LogOptions) url.Values {
	q := url.Values{}
	if opts.Tail > 0 {
		q.Set("tail", strconv.Itoa(opts.Tail))
	}
	if !opts.Since.IsZero() {
		q.Set("since", opts.Since.Format(time.RFC3339Nano))
	}
	if !opts.Until.IsZero() {
		q.Set("until", opts.Until.Format(time.RFC3339Nano))
	}
	if opts.Follow {
		q.Set("follow", "true")
	}
	if opts.Timestamps {
		q.Set("timestamps", "true")
	}
	return q
}

// ParseLogQuery reads the query of GET /modules/{name}/logs at now: tail
// (a line count, or "all", the default), since and until (a duration before
// now such as "10m" or "1d", an RFC 3339 time, or Unix seconds; none by
// default), follow and timestamps (booleans, false by default). Errors wrap
// ErrBadRequest and name the parameter.
func ParseLogQuery(q url.Values, now time.Time) (LogOptions, error) {
	var opts LogOptions
	if t := q.Get("tail"); t != "" && t != "all" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return opts, fmt.Errorf("%w: tail %q: want a number of lines or \"all\"", ErrBadRequest, t)
		}
		opts.Tail = n
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &opts.Since}, {"until", &opts.Until}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		raw, _ := json.Marshal(v) // a string always encodes
		t, err := parseLogTime(raw, now)
		if err != nil {
			return opts, fmt.Errorf("%w: %s: %w", ErrBadRequest, p.name, err)
		}
		*p.dst = t
	}
	for _, p := range []struct {
		name string
		dst  *bool
	}{{"follow", &opts.Follow}, {"timestamps", &opts.Timestamps}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return opts, fmt.Errorf("%w: %s %q: want true or false", ErrBadRequest, p.name, v)
		}
		*p.dst = b
	}
	if !opts.Since.IsZero() && !opts.Until.IsZero() && !opts.Until.After(opts.Since) {
		return opts, fmt.Errorf("%w: until (%s) is not after since (%s)", ErrBadRequest,
			opts.Until.Format(time.RFC3339), opts.Since.Format(time.RFC3339))
	}
	return opts, nil
}

// maxLogLine bounds one line of a log stream; longer lines are passed on in
// pieces.
const maxLogLine = 64 << 10

func (s *ManagementServer) handleLogs(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	opts, err := ParseLogQuery(r.URL.Query(), s.now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rc, err := s.Runtime.Logs(r.Context(), name, opts)
	if err != nil {
		if errors.Is(err, ErrNotFound) && name == deployment.EdgeAgentName {
			err = fmt.Errorf("module %q: %w: the agent logs to its own standard error (for a systemd service: journalctl -u edgeagent)", name, ErrNotFound)
		} else {
			err = fmt.Errorf("module %q: logs: %w", name, err)
		}
		s.writeError(w, r, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	s.copyLogs(w, rc)
}

// copyLogs streams the log text line by line, redacting the agent's
// secrets, and flushes whenever no more input is waiting, so that a
// followed stream shows each line as it comes.
func (s *ManagementServer) copyLogs(w http.ResponseWriter, rc io.Reader) {
	flusher, _ := w.(http.Flusher)
	br := bufio.NewReaderSize(rc, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			text := string(line)
			if s.Agent != nil {
				text = s.Agent.redact(text)
			}
			if _, werr := io.WriteString(w, text); werr != nil {
				return // the client left
			}
			if flusher != nil && br.Buffered() == 0 {
				flusher.Flush()
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		default:
			// io.EOF, or the stream ended with the request's context.
			if flusher != nil {
				flusher.Flush()
			}
			return
		}
	}
}
