package mqttlog

import (
	"context"
	"log/slog"
)

// Handler wraps the embedder's slog handler for mochi's logs:
//
//   - mochi's Info lines (hooks added, listeners attached, starting, stopping) repeat what
//     the embedder logs itself, so they become Debug;
//   - mochi's listeners log every connection whose goroutine ends with an error (EOF on a
//     normal disconnect, a refused CONNECT, a closed socket) as a Warn with an empty
//     message; the embedder logs the cases that matter, so those become Debug "connection
//     ended";
//   - mochi warns "error processing packet" with the whole packet, payload and CONNECT
//     password included, when a hook closed a connection or a second CONNECT arrived; it
//     becomes Debug, without the packet.
//
// Other warnings and errors pass unchanged.
type Handler struct{ slog.Handler }

// Enabled reports whether the wrapped handler takes level l once demoted.
func (h Handler) Enabled(ctx context.Context, l slog.Level) bool {
	if l == slog.LevelInfo {
		l = slog.LevelDebug
	}
	return h.Handler.Enabled(ctx, l)
}

// secretAttrs are the attributes under which mochi logs whole packets.
var secretAttrs = map[string]bool{"pk": true, "packet": true}

// Handle demotes or rewrites r as described on Handler.
func (h Handler) Handle(ctx context.Context, r slog.Record) error {
	level, msg, strip := r.Level, r.Message, false
	switch {
	case msg == "":
		level, msg = slog.LevelDebug, "connection ended"
	case msg == "error processing packet":
		level, strip = slog.LevelDebug, true
	case level == slog.LevelInfo:
		level = slog.LevelDebug
	default:
		return h.Handler.Handle(ctx, r)
	}
	if !h.Handler.Enabled(ctx, level) {
		return nil
	}
	out := slog.NewRecord(r.Time, level, msg, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if !strip || !secretAttrs[a.Key] {
			out.AddAttrs(a)
		}
		return true
	})
	return h.Handler.Handle(ctx, out)
}

// WithAttrs returns the handler with attributes as added.
func (h Handler) WithAttrs(as []slog.Attr) slog.Handler {
	return Handler{h.Handler.WithAttrs(as)}
}

// WithGroup returns the handler with the group name opened.
func (h Handler) WithGroup(name string) slog.Handler {
	return Handler{h.Handler.WithGroup(name)}
}
