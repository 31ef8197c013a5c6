package fakehub

import (
	"log/slog"
	"net/http"
	"time"
)

// This file wires the HTTP surface of the fake hub: the IoT Hub service REST API
// (service_*.go) and the fake-only API under /fake/ (control*.go). Both listeners (HTTPS
// and the optional plain one) serve the same handler with the same authorisation.
//
// Every route declares who may call it (a route value); guard enforces that, then
// throttling, before the handler runs. Handlers only translate between HTTP and the
// Server's Go API; the hub's behaviour lives in the core files.

// serviceHandler returns the handler served on the HTTP listeners. Start calls it once
// per listener; it holds no state of its own beyond the routing table.
func (s *Server) serviceHandler() http.Handler {
	a := &restAPI{s: s}
	mux := http.NewServeMux()
	for _, rt := range a.routes() {
		mux.Handle(rt.pattern, a.guard(rt))
	}
	return a.logRequests(a.notFound(mux))
}

// restAPI holds the HTTP handlers. It is a separate type so that its helpers do not
// crowd the Server's method set.
type restAPI struct {
	s *Server
}

// route is one entry of the routing table.
type route struct {
	pattern string // http.ServeMux pattern, with method ("GET /devices/{d}")
	right   right  // policy right needed; rightNone means no authorisation at all
	// edge lets the {d} edge device call the route with its own device SAS token
	// (module identity management by the edge agent, design.md section 3).
	edge bool
	// throttled routes answer 429 while Server.Throttled reports true. Only the IoT Hub
	// service API is throttled: the fake-only API must keep working to observe and to
	// switch throttling off again.
	throttled bool
	handler   http.HandlerFunc
}

// routes is the routing table. docs/fakehub.md lists the same paths; keep them in step.
func (a *restAPI) routes() []route {
	return []route{
		// Identity registry (protocol notes section 7).
		{pattern: "GET /devices", right: rightRegistryRead, throttled: true, handler: a.listDevices},
		{pattern: "PUT /devices/{d}", right: rightRegistryWrite, throttled: true, handler: a.putDevice},
		{pattern: "GET /devices/{d}", right: rightRegistryRead, throttled: true, handler: a.getDevice},
		{pattern: "DELETE /devices/{d}", right: rightRegistryWrite, throttled: true, handler: a.deleteDevice},
		{pattern: "GET /devices/{d}/modules", right: rightRegistryRead, edge: true, throttled: true, handler: a.listModules},
		{pattern: "PUT /devices/{d}/modules/{m}", right: rightRegistryWrite, edge: true, throttled: true, handler: a.putModule},
		{pattern: "GET /devices/{d}/modules/{m}", right: rightRegistryRead, edge: true, throttled: true, handler: a.getModule},
		{pattern: "DELETE /devices/{d}/modules/{m}", right: rightRegistryWrite, edge: true, throttled: true, handler: a.deleteModule},
		{pattern: "POST /devices/query", right: rightRegistryRead, throttled: true, handler: a.query},
		{pattern: "POST /devices/{d}/applyConfigurationContent", right: rightRegistryWrite, throttled: true, handler: a.applyConfigurationContent},

		// Twins and direct methods.
		{pattern: "GET /twins/{d}", right: rightTwinRead, throttled: true, handler: a.getTwin},
		{pattern: "PATCH /twins/{d}", right: rightServiceConnect, throttled: true, handler: a.patchTwin},
		{pattern: "PUT /twins/{d}", right: rightServiceConnect, throttled: true, handler: a.replaceTwin},
		{pattern: "GET /twins/{d}/modules/{m}", right: rightTwinRead, edge: true, throttled: true, handler: a.getTwin},
		{pattern: "PATCH /twins/{d}/modules/{m}", right: rightServiceConnect, throttled: true, handler: a.patchTwin},
		{pattern: "PUT /twins/{d}/modules/{m}", right: rightServiceConnect, throttled: true, handler: a.replaceTwin},
		{pattern: "POST /twins/{d}/methods", right: rightServiceConnect, throttled: true, handler: a.invokeMethod},
		{pattern: "POST /twins/{d}/modules/{m}/methods", right: rightServiceConnect, throttled: true, handler: a.invokeMethod},

		// Fake-only API (docs/fakehub.md "Fake-only API").
		{pattern: "GET /fake/health", right: rightNone, handler: a.health},
		// The web console's static files (console.go); its API calls carry their own tokens.
		{pattern: "GET /console/", right: rightNone, handler: a.console},
		{pattern: "GET /fake/events", right: rightServiceConnect, handler: a.listEvents},
		{pattern: "GET /fake/events/stream", right: rightServiceConnect, handler: a.streamEvents},
		{pattern: "POST /fake/devices/{d}/messages/devicebound", right: rightServiceConnect, handler: a.sendC2D},
		{pattern: "GET /fake/connections", right: rightServiceConnect, handler: a.connections},
		{pattern: "POST /fake/control/network/cut", right: rightServiceConnect, handler: a.cutNetwork},
		{pattern: "POST /fake/control/network/restore", right: rightServiceConnect, handler: a.restoreNetwork},
		{pattern: "PUT /fake/control/auth", right: rightServiceConnect, handler: a.setRefuseAuth},
		{pattern: "PUT /fake/control/delay", right: rightServiceConnect, handler: a.setDelay},
		{pattern: "PUT /fake/control/throttle", right: rightServiceConnect, handler: a.setThrottle},
	}
}

// guard authorises the caller of rt, applies throttling and then runs the handler.
func (a *restAPI) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt.right != rightNone {
			if err := a.authorize(r, rt); err != nil {
				a.writeError(w, r, err)
				return
			}
		}
		if rt.throttled && a.s.Throttled() {
			a.writeError(w, r, apiError{
				status: http.StatusTooManyRequests, code: 429001, name: "ThrottlingException",
				message: "the fake hub is throttling (PUT /fake/control/throttle turns it off)",
			})
			return
		}
		rt.handler(w, r)
	})
}

// notFound answers requests that match no route with an IoT Hub style error body instead
// of ServeMux's plain-text 404/405 pages. Path values are only set by ServeMux.ServeHTTP,
// so matched requests go through it unchanged.
func (a *restAPI) notFound(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// Let ServeMux decide between 404, 405 (with Allow) and a path-cleaning redirect,
		// then replace its plain-text body.
		rec := &statusRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		switch rec.status {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", rec.header.Get("Allow"))
			a.writeError(w, r, apiError{
				status: http.StatusMethodNotAllowed, code: 405000, name: "MethodNotAllowed",
				message: "method " + r.Method + " is not supported on " + r.URL.Path + " (allowed: " + rec.header.Get("Allow") + ")",
			})
		case http.StatusNotFound:
			a.writeError(w, r, apiError{
				status: http.StatusNotFound, code: 404000, name: "NotFound",
				message: "no such endpoint: " + r.Method + " " + r.URL.Path + " (docs/fakehub.md lists the supported paths)",
			})
		default:
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.status)
		}
	})
}

// statusRecorder captures the status and headers of ServeMux's built-in error handlers.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header { return r.header }

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return len(b), nil
}

func (r *statusRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

// logRequests logs one debug line per request. It never logs headers: the Authorization
// header carries a SAS token.
func (a *restAPI) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		lw := &loggingWriter{ResponseWriter: w}
		next.ServeHTTP(lw, r)
		status := lw.status
		if status == 0 {
			status = http.StatusOK
		}
		a.logger().LogAttrs(r.Context(), slog.LevelDebug, "http request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.Duration("duration", time.Since(start)),
		)
	})
}

// loggingWriter records the status code. Unwrap lets http.ResponseController reach the
// underlying writer (the event stream needs Flush).
type loggingWriter struct {
	http.ResponseWriter
	status int
}

func (w *loggingWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *loggingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *loggingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logger returns the server's logger or a discarding one.
func (a *restAPI) logger() *slog.Logger {
	if a.s.Logger != nil {
		return a.s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// now returns the server's clock reading.
func (a *restAPI) now() time.Time {
	if a.s.Now != nil {
		return a.s.Now()
	}
	return time.Now()
}

// hostname returns the IoT Hub host name that tokens must name.
func (a *restAPI) hostname() string {
	if a.s.Hostname != "" {
		return a.s.Hostname
	}
	return "localhost"
}
