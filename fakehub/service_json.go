package fakehub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxRequestBody bounds every request body. IoT Hub's largest documents (a deployment,
// a 128 KB method payload) fit comfortably; anything larger is answered 413.
const maxRequestBody = 1 << 20

// writeJSON writes v as the response body with status.
func (a *restAPI) writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only our own types are marshalled; failing here is a bug worth a 500.
		a.logger().Error("encoding a service API response", "err", err)
		http.Error(w, `{"Message":"internal error encoding the response"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body) // a client that went away is not our error
}

// readBody reads the whole request body, at most limit bytes. Larger bodies fail with 413.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, apiError{status: http.StatusRequestEntityTooLarge, code: 413001, name: "MessageTooLarge",
				message: fmt.Sprintf("request body is larger than %d bytes", limit)}
		}
		return nil, argumentInvalid("reading the request body: " + err.Error())
	}
	return body, nil
}

// decodeJSON reads the request body into v. Malformed JSON fails with 400 and the
// position of the problem; unknown fields are ignored, as IoT Hub does, because the SDKs
// send read-only fields (etag, connectionState, ...) back.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := readBody(w, r, maxRequestBody)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return argumentInvalid("the request body is empty; a JSON document is required")
	}
	return unmarshalJSON(body, v)
}

// unmarshalJSON decodes body into v, describing errors with line and column.
func unmarshalJSON(body []byte, v any) error {
	err := json.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		// Offset counts the bytes read, the offending one included; point at that byte.
		at := syntax.Offset
		if at > 0 && at <= int64(len(body)) && !strings.HasPrefix(syntax.Error(), "unexpected end") {
			at--
		}
		return argumentInvalid(fmt.Sprintf("malformed JSON in the request body at %s: %v", jsonPosition(body, at), syntax))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(document)"
		}
		return argumentInvalid(fmt.Sprintf("invalid JSON in the request body at %s: field %s cannot hold a JSON %s (want %s)",
			jsonPosition(body, typ.Offset), field, typ.Value, typ.Type))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return argumentInvalid(fmt.Sprintf("malformed JSON in the request body at %s: unexpected end of input", jsonPosition(body, int64(len(body)))))
	default:
		return argumentInvalid("invalid JSON in the request body: " + err.Error())
	}
}

// jsonPosition renders a byte offset as "line L, column C (byte N)"; lines and columns
// start at 1 and columns count bytes.
func jsonPosition(body []byte, offset int64) string {
	if offset < 0 {
		offset = 0
	}
	if offset > int64(len(body)) {
		offset = int64(len(body))
	}
	before := body[:offset]
	line := bytes.Count(before, []byte{'\n'}) + 1
	col := len(before) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return fmt.Sprintf("line %d, column %d (byte %d)", line, col, offset)
}

// ifMatch returns the If-Match header as the Go API wants it: "" when absent, "*", or the
// bare etag. Clients send etags quoted (RFC 7232, the C# SDK) or bare (amenzhinsky, curl
// users); a weak "W/" prefix is dropped.
func ifMatch(r *http.Request) string {
	return unquoteETag(r.Header.Get("If-Match"))
}

func unquoteETag(v string) string {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(v, "W/")
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return v
}

// setETag sets the ETag response header, quoted as RFC 7232 wants.
func setETag(w http.ResponseWriter, etag string) {
	if etag == "" {
		return
	}
	w.Header().Set("ETag", `"`+unquoteETag(etag)+`"`)
}
