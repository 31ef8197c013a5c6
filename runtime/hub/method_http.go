package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// The module-to-module direct method API (protocol notes 6.4), edgeHub's HTTPS surface:
//
//	POST /twins/{d}/methods                 a leaf device connected to this hub
//	POST /twins/{d}/modules/{m}/methods     a module connected to this hub
//	x-ms-edge-moduleId: {edge}/{callerModule}
//	Authorization: SharedAccessSignature sr=...  (the caller module's token)
//	{"methodName":"reboot","payload":{...},"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}
//
// answers 200 {"status":n,"payload":...} with the target's status and payload, or
// {"message":"..."} with 400 (bad request or header), 401 (not a module of this edge device,
// or a token that does not verify), 404 (target not connected or not subscribed within
// connectTimeoutInSeconds), 504 (no answer within responseTimeoutInSeconds). The
// api-version query parameter is accepted and ignored.

// Header and limits of the method API.
const (
	// moduleIDHeader names the calling module (Edge.Hub.Core Constants.ServiceApiIdHeaderKey).
	moduleIDHeader = "x-ms-edge-moduleId"
	// maxMethodRequestBody bounds a request body: the 128 KB payload plus the envelope.
	maxMethodRequestBody = iothub.MaxMethodPayloadSize + 4096
	// Response and connect timeouts, in seconds (protocol notes 6.2).
	defaultMethodResponseSecs = 30
	minMethodResponseSecs     = 5
	maxMethodResponseSecs     = 300
	maxMethodConnectSecs      = 300
	// methodHeaderTimeout bounds reading a request's headers.
	methodHeaderTimeout = 10 * time.Second
	// methodReadTimeout bounds reading a whole request, headers and body (at most
	// maxMethodRequestBody, 132 KB): ample for a local caller, and a caller that trickles
	// its body cannot hold a connection and a goroutine longer than this.
	methodReadTimeout = 60 * time.Second
	// methodIdleTimeout bounds the wait for the next request on a keep-alive connection;
	// without it net/http waits for ever, so a caller without credentials could hold any
	// number of connections after one refused request (security.md, finding F3).
	methodIdleTimeout = 120 * time.Second
	// methodMaxHeaderBytes bounds a request's headers: a SAS token, the module id header
	// and the usual few; net/http's default is 1 MB.
	methodMaxHeaderBytes = 16 << 10
)

// testMethodIdleTimeout, when set, replaces methodIdleTimeout for hubs created after it was
// set; tests only (export_test.go), so that the idle cut-off is observable in a second.
var testMethodIdleTimeout time.Duration

// methodRequest is the body of a method API call.
type methodRequest struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds *int            `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  *int            `json:"connectTimeoutInSeconds"`
}

// methodResult is the body of a successful call.
type methodResult struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

// apiError is a refused call: its HTTP status and message.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func apiErrorf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// MethodHandler returns the handler of the direct method API, for serving it elsewhere
// (Run serves it on Options.HTTPSAddr when that is set).
func (s *Server) MethodHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /twins/{device}/methods", s.serveMethod)
	mux.HandleFunc("POST /twins/{device}/modules/{module}/methods", s.serveMethod)
	return mux
}

func (s *Server) serveMethod(w http.ResponseWriter, r *http.Request) {
	target := sas.Identity{DeviceID: r.PathValue("device"), ModuleID: r.PathValue("module")}
	res, err := s.callMethod(r, target)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = apiErrorf(http.StatusInternalServerError, "%v", err)
		}
		s.log.Info("method call refused", "target", target, "status", ae.status, "err", ae.msg)
		writeJSON(w, ae.status, struct {
			Message string `json:"message"`
		}{ae.msg})
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v) // the values written here always marshal
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// callMethod authenticates the caller, reads the request and calls the target.
func (s *Server) callMethod(r *http.Request, target sas.Identity) (methodResult, error) {
	caller, err := s.methodCaller(r)
	if err != nil {
		return methodResult{}, err
	}
	if err := iothub.ValidateDeviceID(target.DeviceID); err != nil {
		return methodResult{}, apiErrorf(http.StatusBadRequest, "target: %v", err)
	}
	if target.ModuleID != "" {
		if err := iothub.ValidateModuleID(target.ModuleID); err != nil {
			return methodResult{}, apiErrorf(http.StatusBadRequest, "target: %v", err)
		}
	}
	req, err := readMethodRequest(r)
	if err != nil {
		return methodResult{}, err
	}
	respSecs, connSecs := defaultMethodResponseSecs, 0
	if req.ResponseTimeoutInSeconds != nil {
		respSecs = *req.ResponseTimeoutInSeconds
	}
	if req.ConnectTimeoutInSeconds != nil {
		connSecs = *req.ConnectTimeoutInSeconds
	}
	payload := bytes.TrimSpace(req.Payload)
	if len(payload) == 0 {
		payload = []byte("null")
	}
	s.log.Debug("method call from a module", "caller", caller, "target", target, "method", req.MethodName)
	a, err := s.methods.invoke(r.Context(), target, req.MethodName, payload,
		time.Duration(connSecs)*time.Second, time.Duration(respSecs)*time.Second)
	switch {
	case errors.Is(err, ErrNotConnected):
		return methodResult{}, apiErrorf(http.StatusNotFound, "%v", err)
	case errors.Is(err, ErrTimeout):
		return methodResult{}, apiErrorf(http.StatusGatewayTimeout, "%v", err)
	case err != nil:
		return methodResult{}, err
	}
	return methodResult{Status: a.Status, Payload: jsonPayload(a.Payload)}, nil
}

// methodCaller checks the caller's headers: x-ms-edge-moduleId must name a module of this
// edge device (else 401; a missing or malformed header is 400), and Authorization must be
// a SAS token that authenticates that module, checked as an MQTT password is (against the
// identity cache, then Deps.Resolver; a token of the edge device itself also authenticates
// its modules).
func (s *Server) methodCaller(r *http.Request) (sas.Identity, error) {
	h := r.Header.Get(moduleIDHeader)
	if h == "" {
		return sas.Identity{}, apiErrorf(http.StatusBadRequest, "the %s header is missing", moduleIDHeader)
	}
	d, m, err := iothub.ParseClientID(h)
	if err != nil {
		return sas.Identity{}, apiErrorf(http.StatusBadRequest, "the %s header: %v", moduleIDHeader, err)
	}
	if d != s.opts.EdgeDeviceID || m == "" {
		return sas.Identity{}, apiErrorf(http.StatusUnauthorized, "Only modules on the same device can invoke DirectMethods (caller %q)", h)
	}
	caller := sas.Identity{DeviceID: d, ModuleID: m}
	password := r.Header.Get("Authorization")
	tok, err := sas.Parse(password)
	if err != nil {
		return sas.Identity{}, apiErrorf(http.StatusUnauthorized, "Authorization: %v", err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.AuthTimeout)
	defer cancel()
	// Exactly as a CONNECT password: the identity cache, then Deps.Resolver if it fails.
	if _, err := s.auth.verifyOrResolve(ctx, tok, password, caller, s.opts.Now()); err != nil {
		return sas.Identity{}, apiErrorf(http.StatusUnauthorized, "the token does not authenticate %q: %v", caller, err)
	}
	return caller, nil
}

// readMethodRequest reads and checks the body (protocol notes 6.2): a known JSON object,
// a valid method name, a payload of at most 128 KB, timeouts within their ranges.
func readMethodRequest(r *http.Request) (methodRequest, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxMethodRequestBody+1))
	if err != nil {
		return methodRequest{}, apiErrorf(http.StatusBadRequest, "reading the body: %v", err)
	}
	if len(body) > maxMethodRequestBody {
		return methodRequest{}, apiErrorf(http.StatusBadRequest, "body larger than %d bytes", maxMethodRequestBody)
	}
	var req methodRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return methodRequest{}, apiErrorf(http.StatusBadRequest, "body: %v", err)
	}
	if err := iothub.ValidateMethodName(req.MethodName); err != nil {
		return methodRequest{}, apiErrorf(http.StatusBadRequest, "methodName: %v", err)
	}
	if n := len(req.Payload); n > iothub.MaxMethodPayloadSize {
		return methodRequest{}, apiErrorf(http.StatusBadRequest, "payload of %d bytes, the limit is %d", n, iothub.MaxMethodPayloadSize)
	}
	if v := req.ResponseTimeoutInSeconds; v != nil && (*v < minMethodResponseSecs || *v > maxMethodResponseSecs) {
		return methodRequest{}, apiErrorf(http.StatusBadRequest, "responseTimeoutInSeconds %d is outside %d..%d", *v, minMethodResponseSecs, maxMethodResponseSecs)
	}
	if v := req.ConnectTimeoutInSeconds; v != nil && (*v < 0 || *v > maxMethodConnectSecs) {
		return methodRequest{}, apiErrorf(http.StatusBadRequest, "connectTimeoutInSeconds %d is outside 0..%d", *v, maxMethodConnectSecs)
	}
	return req, nil
}

// methodListener is the HTTPS listener of the method API, bound by New.
type methodListener struct {
	ln  net.Listener
	srv *http.Server
}

// listenMethods binds Options.HTTPSAddr (with Options.TLS), if set.
func (s *Server) listenMethods() error {
	if s.opts.HTTPSAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.opts.HTTPSAddr)
	if err != nil {
		return fmt.Errorf("listen https %q: %w", s.opts.HTTPSAddr, err)
	}
	idle := methodIdleTimeout
	if testMethodIdleTimeout > 0 {
		idle = testMethodIdleTimeout
	}
	s.httpsLn = &methodListener{ln: ln, srv: &http.Server{
		Handler:           s.MethodHandler(),
		TLSConfig:         s.opts.TLS,
		ReadHeaderTimeout: methodHeaderTimeout,
		ReadTimeout:       methodReadTimeout,
		IdleTimeout:       idle,
		MaxHeaderBytes:    methodMaxHeaderBytes,
		// net/http logs failed handshakes and the like; they are debug noise here.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}}
	return nil
}

// HTTPSAddr returns the bound address of the method API listener ("" without one).
func (s *Server) HTTPSAddr() string {
	if s.httpsLn == nil {
		return ""
	}
	return s.httpsLn.ln.Addr().String()
}

// serveMethods serves the method API until closeMethods.
func (s *Server) serveMethods() {
	if s.httpsLn == nil {
		return
	}
	ml := s.httpsLn
	s.bg.goFunc(func() {
		if err := ml.srv.ServeTLS(ml.ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("method API stopped", "err", err)
		}
	})
}

// closeMethods closes the method API listener and its connections.
func (s *Server) closeMethods() {
	if s.httpsLn != nil {
		_ = s.httpsLn.srv.Close()
		_ = s.httpsLn.ln.Close()
	}
}
