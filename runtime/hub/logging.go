package hub

import (
	"context"
	"log/slog"
)

// mochiHandler adapts the hub's slog handler for mochi's logs:
//
//   - mochi's Info lines (hooks added, listeners attached, starting, stopping) repeat what
//     the hub logs itself, so they become Debug;
//   - mochi's listeners log every connection whose goroutine ends with an error (EOF on a
//     normal disconnect, a refused CONNECT, a closed socket) as a Warn with an empty
//     message; the hub logs the cases that matter, so those become Debug "connection ended";
//   - mochi warns "error processing packet" with the whole packet, payload included, when
//     a hook closed a connection; the hub has logged why, so it becomes Debug, without the
//     packet.
//
// Other warnings and errors pass unchanged.
type mochiHandler struct{ slog.Handler }

func (h mochiHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if l == slog.LevelInfo {
		l = slog.LevelDebug
	}
	return h.Handler.Enabled(ctx, l)
}

func (h mochiHandler) Handle(ctx context.Context, r slog.Record) error {
	level, msg, drop := r.Level, r.Message, ""
	switch {
	case msg == "":
		level, msg = slog.LevelDebug, "connection ended"
	case msg == "error processing packet":
		level, drop = slog.LevelDebug, "pk"
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
		if a.Key != drop {
			out.AddAttrs(a)
		}
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h mochiHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return mochiHandler{h.Handler.WithAttrs(as)}
}

func (h mochiHandler) WithGroup(name string) slog.Handler {
	return mochiHandler{h.Handler.WithGroup(name)}
}
