package agent

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/runtime/deployment"
	"github.com/outpost-edge/outpost/runtime/iothub"
)

// Direct methods of $edgeAgent (edge-runtime-behaviour C.5). Names are
// matched exactly, as the hub delivers them.
const (
	MethodPing          = "ping"
	MethodRestartModule = "RestartModule"
	MethodGetModuleLogs = "GetModuleLogs"
)

// Limits of the direct methods.
const (
	// methodTimeout bounds the work of one method call; the caller's own
	// response timeout (30 s by default) is usually shorter.
	methodTimeout = 5 * time.Minute
	// DefaultLogTail is how many lines GetModuleLogs returns per module when
	// the request asks for none or for more, as Azure caps it.
	DefaultLogTail = 1000
	// maxLogsPayload bounds the whole GetModuleLogs response: IoT Hub
	// refuses method responses above 128 KB. Each module gets an equal
	// share, and keeps its most recent lines that fit.
	maxLogsPayload = 120 << 10
	// maxLogRead bounds what is read of one module's logs.
	maxLogRead = 4 << 20
)

func (a *Agent) registerMethods() {
	a.deps.Twin.HandleMethod(MethodPing, a.methodPing)
	a.deps.Twin.HandleMethod(MethodRestartModule, a.methodRestartModule)
	a.deps.Twin.HandleMethod(MethodGetModuleLogs, a.methodGetModuleLogs)
}

// methodError is the {"message": ...} body Azure's agent answers errors
// with: 400 for a payload it cannot read, 500 for anything else.
func (a *Agent) methodError(method string, err error) (int, []byte) {
	status := http.StatusInternalServerError
	if errors.Is(err, ErrMethodPayload) {
		status = http.StatusBadRequest
	}
	msg := a.errorText(err)
	a.log.Warn("direct method failed", "method", method, "status", status, "err", msg)
	b, _ := json.Marshal(map[string]string{"message": msg})
	return status, b
}

// methodPing answers 200 with no payload: the agent runs and is connected.
func (a *Agent) methodPing(ctx context.Context, payload []byte) (int, []byte) {
	return http.StatusOK, nil
}

// restartRequest is RestartModule's payload.
type restartRequest struct {
	SchemaVersion string `json:"schemaVersion"`
	ID            string `json:"id"`
}

// methodRestartModule stops and starts a running module, as an operator's
// restart: it is not counted by the restart policy. Modules that are not
// running cannot be restarted (Azure's rule); unknown modules are an error.
func (a *Agent) methodRestartModule(ctx context.Context, payload []byte) (int, []byte) {
	var req restartRequest
	if err := decodePayload(payload, &req); err != nil {
		return a.methodError(MethodRestartModule, err)
	}
	if err := checkSchemaVersion(req.SchemaVersion); err != nil {
		return a.methodError(MethodRestartModule, err)
	}
	if req.ID == "" {
		return a.methodError(MethodRestartModule, fmt.Errorf("%w: \"id\" (the module to restart) is missing", ErrMethodPayload))
	}
	ctx, cancel := context.WithTimeout(ctx, methodTimeout)
	defer cancel()
	if err := a.restartModule(ctx, req.ID); err != nil {
		return a.methodError(MethodRestartModule, err)
	}
	a.log.Info("module restarted by direct method", "module", req.ID)
	a.wake()
	return http.StatusOK, nil
}

func (a *Agent) restartModule(ctx context.Context, name string) error {
	listed, err := a.deps.Runtime.List(ctx)
	if err != nil {
		return fmt.Errorf("list modules: %w", err)
	}
	var st *ModuleState
	for i := range listed {
		if listed[i].Name == name {
			st = &listed[i]
		}
	}
	switch {
	case st == nil:
		return fmt.Errorf("module %q not found in the current environment", name)
	case st.State != StateRunning:
		return fmt.Errorf("module %q cannot be restarted since it is not running (%s)", name, st.State)
	}
	timeout := a.opts.StopTimeout
	if timeout <= 0 {
		timeout = DefaultStopTimeout
	}
	if err := a.deps.Runtime.Stop(ctx, name, timeout); err != nil {
		return fmt.Errorf("module %q: stop: %w", name, err)
	}
	if err := a.deps.Runtime.Start(ctx, name); err != nil {
		return fmt.Errorf("module %q: start: %w", name, err)
	}
	return nil
}

// logsRequest is GetModuleLogs' payload (Azure's LogsRequest):
//
//	{"schemaVersion": "1.0",
//	 "items": [{"id": "<module name regex>", "filter": {"tail": 100, "since": "10m",
//	            "until": "2026-03-01T12:00:00Z", "loglevel": 6, "regex": "error"}}],
//	 "encoding": "none" | "gzip", "contentType": "text"}
//
// items may also be a single object.
type logsRequest struct {
	SchemaVersion string          `json:"schemaVersion"`
	Items         json.RawMessage `json:"items"`
	Encoding      string          `json:"encoding"`
	ContentType   string          `json:"contentType"`
}

type logsItem struct {
	ID     string     `json:"id"`
	Filter logsFilter `json:"filter"`
}

type logsFilter struct {
	Tail     *int            `json:"tail"`
	Since    json.RawMessage `json:"since"`
	Until    json.RawMessage `json:"until"`
	LogLevel *int            `json:"loglevel"`
	Regex    string          `json:"regex"`
}

// logsResponse is one element of GetModuleLogs' answer: the module's name
// and its logs as text (encoding "none") or gzip-compressed bytes, base64
// in JSON (encoding "gzip").
type logsResponse struct {
	ID           string  `json:"id"`
	Payload      *string `json:"payload,omitempty"`
	PayloadBytes []byte  `json:"payloadBytes,omitempty"`
}

// methodGetModuleLogs answers with the logs of every module whose name
// matches an item's id (a regular expression, unanchored, as in Azure).
func (a *Agent) methodGetModuleLogs(ctx context.Context, payload []byte) (int, []byte) {
	ctx, cancel := context.WithTimeout(ctx, methodTimeout)
	defer cancel()
	out, err := a.moduleLogs(ctx, payload)
	if err != nil {
		return a.methodError(MethodGetModuleLogs, err)
	}
	b, err := json.Marshal(out)
	if err == nil && len(b) > iothub.MaxMethodPayloadSize {
		err = fmt.Errorf("the response is %d bytes, over the %d-byte limit of a method response", len(b), iothub.MaxMethodPayloadSize)
	}
	if err != nil {
		return a.methodError(MethodGetModuleLogs, err)
	}
	return http.StatusOK, b
}

// logsQuery is one module's share of a request.
type logsQuery struct {
	module string
	opts   LogOptions
	level  *int
	regex  *regexp.Regexp
}

func (a *Agent) moduleLogs(ctx context.Context, payload []byte) ([]logsResponse, error) {
	var req logsRequest
	if err := decodePayload(payload, &req); err != nil {
		return nil, err
	}
	if err := checkSchemaVersion(req.SchemaVersion); err != nil {
		return nil, err
	}
	gz := false
	switch strings.ToLower(req.Encoding) {
	case "", "none":
	case "gzip":
		gz = true
	default:
		return nil, fmt.Errorf("%w: \"encoding\" %q: want \"none\" or \"gzip\"", ErrMethodPayload, req.Encoding)
	}
	if ct := strings.ToLower(req.ContentType); ct != "" && ct != "text" {
		return nil, fmt.Errorf("%w: \"contentType\" %q: only \"text\" is supported", ErrMethodPayload, req.ContentType)
	}
	items, err := decodeItems(req.Items)
	if err != nil {
		return nil, err
	}
	listed, err := a.deps.Runtime.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list modules: %w", err)
	}
	names := make([]string, 0, len(listed))
	for _, m := range listed {
		names = append(names, m.Name)
	}
	sort.Strings(names)
	now := a.now()
	var queries []logsQuery
	taken := make(map[string]bool)
	for i, it := range items {
		q, err := parseItem(i, it, now)
		if err != nil {
			return nil, err
		}
		re, err := regexp.Compile(it.ID)
		if err != nil {
			return nil, fmt.Errorf("%w: items[%d].id %q is not a regular expression: %w", ErrMethodPayload, i, it.ID, err)
		}
		for _, name := range names {
			if re.MatchString(name) && !taken[name] {
				taken[name] = true
				q.module = name
				queries = append(queries, q)
			}
		}
	}
	out := make([]logsResponse, 0, len(queries))
	if len(queries) == 0 {
		return out, nil
	}
	// Share the response between the modules. The text is measured as JSON
	// escapes it; gzip output is base64 in JSON (4/3 larger) and may not
	// shrink text that does not compress, hence a smaller share.
	share := maxLogsPayload / len(queries)
	if gz {
		share = share * 3 / 4
	}
	for _, q := range queries {
		text, err := a.readLogs(ctx, q, share)
		if err != nil {
			return nil, err
		}
		r := logsResponse{ID: q.module}
		if gz {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write([]byte(text))
			zw.Close()
			r.PayloadBytes = buf.Bytes()
		} else {
			r.Payload = &text
		}
		out = append(out, r)
	}
	return out, nil
}

// readLogs reads one module's logs, filters them by level and regex, and
// keeps the most recent lines that fit in limit bytes.
func (a *Agent) readLogs(ctx context.Context, q logsQuery, limit int) (string, error) {
	rc, err := a.deps.Runtime.Logs(ctx, q.module, q.opts)
	if err != nil {
		return "", fmt.Errorf("module %q: logs: %w", q.module, err)
	}
	defer rc.Close()
	var lines []string
	sc := bufio.NewScanner(io.LimitReader(rc, maxLogRead))
	sc.Buffer(make([]byte, 64<<10), maxLogRead)
	for sc.Scan() {
		line := sc.Text()
		if q.level != nil && !hasLevel(line, *q.level) {
			continue
		}
		if q.regex != nil && !q.regex.MatchString(line) {
			continue
		}
		lines = append(lines, line)
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("module %q: read logs: %w", q.module, err)
	}
	size, first := 0, len(lines)
	for first > 0 {
		n := jsonLen(lines[first-1]) + 2 // and its "\n"
		if size+n > limit {
			break
		}
		first--
		size += n
	}
	if first == len(lines) {
		return "", nil
	}
	return a.redact(strings.Join(lines[first:], "\n") + "\n"), nil
}

// jsonLen is the length of s once escaped in a JSON string.
func jsonLen(s string) int {
	b, _ := json.Marshal(s) // a string always encodes
	return len(b) - 2
}

// hasLevel reports whether line starts with the syslog level "<n>", the
// format Azure recommends for module logs.
func hasLevel(line string, n int) bool {
	return strings.HasPrefix(line, "<"+strconv.Itoa(n)+">")
}

func decodeItems(raw json.RawMessage) ([]logsItem, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return nil, fmt.Errorf("%w: \"items\" is missing", ErrMethodPayload)
	case raw[0] == '{':
		var it logsItem
		if err := json.Unmarshal(raw, &it); err != nil {
			return nil, fmt.Errorf("%w: \"items\": %w", ErrMethodPayload, err)
		}
		return []logsItem{it}, nil
	}
	var items []logsItem
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("%w: \"items\": %w", ErrMethodPayload, err)
	}
	return items, nil
}

func parseItem(i int, it logsItem, now time.Time) (logsQuery, error) {
	var q logsQuery
	if it.ID == "" {
		return q, fmt.Errorf("%w: items[%d].id is missing", ErrMethodPayload, i)
	}
	q.opts.Tail = DefaultLogTail
	if t := it.Filter.Tail; t != nil {
		if *t < 0 {
			return q, fmt.Errorf("%w: items[%d].filter.tail %d is negative", ErrMethodPayload, i, *t)
		}
		if *t > 0 && *t < DefaultLogTail {
			q.opts.Tail = *t
		}
	}
	var err error
	if q.opts.Since, err = parseLogTime(it.Filter.Since, now); err != nil {
		return q, fmt.Errorf("%w: items[%d].filter.since: %w", ErrMethodPayload, i, err)
	}
	if q.opts.Until, err = parseLogTime(it.Filter.Until, now); err != nil {
		return q, fmt.Errorf("%w: items[%d].filter.until: %w", ErrMethodPayload, i, err)
	}
	q.level = it.Filter.LogLevel
	if it.Filter.Regex != "" {
		if q.regex, err = regexp.Compile(it.Filter.Regex); err != nil {
			return q, fmt.Errorf("%w: items[%d].filter.regex: %w", ErrMethodPayload, i, err)
		}
	}
	return q, nil
}

// parseLogTime reads since/until as Azure accepts them: a Unix time in
// seconds (number or string), an RFC 3339 time, or a duration before now
// ("90s", "10m", "1h30m", "2d").
func parseLogTime(raw json.RawMessage, now time.Time) (time.Time, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	var s string
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, err
		}
	} else {
		s = string(raw)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither a Unix time, an RFC 3339 time nor a duration such as \"10m\" or \"1d\"", s)
}

// decodePayload decodes a method payload into v.
func decodePayload(payload []byte, v any) error {
	p := bytes.TrimSpace(payload)
	if len(p) == 0 || string(p) == "null" {
		return fmt.Errorf("%w: the request payload is missing", ErrMethodPayload)
	}
	if err := json.Unmarshal(p, v); err != nil {
		return fmt.Errorf("%w: %w", ErrMethodPayload, err)
	}
	return nil
}

// checkSchemaVersion accepts requests of schema 1.x (Azure warns on other
// minor versions and goes on).
func checkSchemaVersion(v string) error {
	if v == "" {
		return fmt.Errorf("%w: \"schemaVersion\" is missing", ErrMethodPayload)
	}
	major, _, _ := strings.Cut(v, ".")
	if major != "1" {
		return fmt.Errorf("%w: \"schemaVersion\" %q: want 1.x: %w", ErrMethodPayload, v, deployment.ErrSchemaVersion)
	}
	return nil
}
