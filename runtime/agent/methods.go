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
//	 "encoding": "none" | "gzip", "contentType": "text" | "json"}
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
// in JSON (encoding "gzip"). With contentType "json" the logs are a JSON
// array of logMessage, as text or gzip-compressed likewise.
type logsResponse struct {
	ID           string  `json:"id"`
	Payload      *string `json:"payload,omitempty"`
	PayloadBytes []byte  `json:"payloadBytes,omitempty"`
}

// logMessage is one line of a module's log with contentType "json", as
// Azure's agent writes it (ModuleLogMessage): the hub and device, the
// module ("id"), the stream, the syslog level and time the line starts
// with, and the rest of the line. Outpost's runtimes interleave stdout and
// stderr into one stream, so stream is always "stdout"; timestamp is left
// out when the line carries none (Azure writes 0001-01-01T00:00:00).
type logMessage struct {
	IoTHub    string `json:"iothub"`
	Device    string `json:"device"`
	ID        string `json:"id"`
	Stream    string `json:"stream"`
	LogLevel  int    `json:"loglevel"`
	Text      string `json:"text"`
	Timestamp string `json:"timestamp,omitempty"`
}

// Log line parsing, as Azure's LogMessageParser: "<6> 2019-02-14
// 16:15:35.243 -08:00 text", both parts optional; a line without a level
// has level 6 (informational).
const (
	defaultLogLevel = 6
	// logTimeLayout is the time Azure's recommended format starts with.
	logTimeLayout = "2006-01-02 15:04:05.000 -07:00"
	// bracketTimeLayout is the time in "[2019-02-14 16:15:35.243 INF] ...",
	// the edge runtime's own format, without a zone.
	bracketTimeLayout = "2006-01-02 15:04:05.000"
)

var (
	logLineRE     = regexp.MustCompile(`^(?:<(\d)>)?\s*(?:(\d{4}-\d{2}-\d{2}\s\d{2}:\d{2}:\d{2}\.\d{3}\s[+-]\d{2}:\d{2})\s)?\s*(.*)$`)
	bracketTimeRE = regexp.MustCompile(`^\[(\d{4}-\d{2}-\d{2}\s\d{2}:\d{2}:\d{2}\.\d{3})\s\D{3}\]`)
)

// logLine is one line of a module's log, parsed.
type logLine struct {
	level int
	// timestamp is RFC 3339 with the line's own offset, or without a zone
	// for a bracketed time (as Azure writes a time of unknown zone); ""
	// when the line has none.
	timestamp string
	text      string // the line without its level and leading time
}

// parseLogLine reads the level and time a line starts with, as Azure's
// agent does. It accepts any line.
func parseLogLine(line string) logLine {
	l := logLine{level: defaultLogLevel, text: line}
	m := logLineRE.FindStringSubmatch(line)
	if m == nil {
		return l
	}
	if m[1] != "" {
		l.level = int(m[1][0] - '0')
	}
	if m[2] != "" {
		if t, err := time.Parse(logTimeLayout, strings.Join(strings.Fields(m[2]), " ")); err == nil {
			l.timestamp = t.Format("2006-01-02T15:04:05.000Z07:00")
		}
	}
	l.text = m[3]
	if l.timestamp == "" {
		if b := bracketTimeRE.FindStringSubmatch(l.text); b != nil {
			if t, err := time.Parse(bracketTimeLayout, strings.Join(strings.Fields(b[1]), " ")); err == nil {
				l.timestamp = t.Format("2006-01-02T15:04:05.000")
			}
		}
	}
	return l
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
	json   bool // contentType "json"
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
	asJSON := false
	switch strings.ToLower(req.ContentType) {
	case "", "text":
	case "json":
		asJSON = true
	default:
		return nil, fmt.Errorf("%w: \"contentType\" %q: want \"text\" or \"json\"", ErrMethodPayload, req.ContentType)
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
		q.json = asJSON
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

// readLogs reads one module's logs, filters them by level and regex as
// Azure's agent does (on the level the line starts with, 6 when none, and
// on the text after the level and time), and keeps the most recent lines
// that fit in limit bytes once escaped in the response. The result is the
// lines as text, or with q.json a JSON array of logMessage.
func (a *Agent) readLogs(ctx context.Context, q logsQuery, limit int) (string, error) {
	rc, err := a.deps.Runtime.Logs(ctx, q.module, q.opts)
	if err != nil {
		return "", fmt.Errorf("module %q: logs: %w", q.module, err)
	}
	defer rc.Close()
	var items []string // lines, or JSON messages
	sc := bufio.NewScanner(io.LimitReader(rc, maxLogRead))
	sc.Buffer(make([]byte, 64<<10), maxLogRead)
	for sc.Scan() {
		raw := sc.Text()
		line := parseLogLine(raw)
		if q.level != nil && line.level != *q.level {
			continue
		}
		if q.regex != nil && !q.regex.MatchString(line.text) {
			continue
		}
		if !q.json {
			items = append(items, a.redact(raw))
			continue
		}
		b, err := json.Marshal(logMessage{IoTHub: a.opts.IoTHubHostName, Device: a.opts.DeviceID, ID: q.module,
			Stream: "stdout", LogLevel: line.level, Text: a.redact(line.text), Timestamp: line.timestamp})
		if err != nil {
			return "", fmt.Errorf("module %q: encode a log line: %w", q.module, err)
		}
		items = append(items, string(b))
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("module %q: read logs: %w", q.module, err)
	}
	size, first := 2, len(items) // "[]" or the last "\n"
	for first > 0 {
		n := jsonLen(items[first-1]) + 2 // and its "\n" or ","
		if size+n > limit {
			break
		}
		first--
		size += n
	}
	kept := items[first:]
	switch {
	case q.json:
		return "[" + strings.Join(kept, ",") + "]", nil
	case len(kept) == 0:
		return "", nil
	}
	return strings.Join(kept, "\n") + "\n", nil
}

// jsonLen is the length of s once escaped in a JSON string.
func jsonLen(s string) int {
	b, _ := json.Marshal(s) // a string always encodes
	return len(b) - 2
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
