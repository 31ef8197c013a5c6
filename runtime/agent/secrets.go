package agent

import (
	"log/slog"
	"sort"
	"strings"

	"github.com/outpost-edge/outpost/runtime/deployment"
)

// redacted replaces secrets in reports and logs.
const redacted = "***"

// minSecret is the shortest value treated as a secret: replacing shorter
// strings would mangle ordinary text and hide little.
const minSecret = 4

// setSecrets records the values to redact: every module key the agent
// handed out, the registry passwords of cfg and those of the stored logins.
func (a *Agent) setSecrets(keys []string, cfg *deployment.AgentConfig, logins []RegistryLogin) {
	list := make([]string, 0, len(keys)+4)
	for _, k := range keys {
		if len(k) >= minSecret {
			list = append(list, k)
		}
	}
	if cfg != nil {
		for _, c := range cfg.Runtime.Settings.RegistryCredentials {
			if len(c.Password) >= minSecret {
				list = append(list, c.Password)
			}
		}
	}
	for _, l := range logins {
		if len(l.Password) >= minSecret {
			list = append(list, l.Password)
		}
	}
	// Longest first, so that a secret containing another is replaced whole.
	sort.Slice(list, func(i, j int) bool { return len(list[i]) > len(list[j]) })
	a.secrets.Store(&list)
}

// redact replaces every known secret in s with "***".
func (a *Agent) redact(s string) string {
	for _, sec := range *a.secrets.Load() {
		if strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, redacted)
		}
	}
	return s
}

// logged renders c for logs with secrets redacted: a command's reason may
// quote a runtime error, which may echo a module's environment.
func (a *Agent) logged(c Command) slog.LogValuer {
	return loggedCommand{c: c, a: a}
}

type loggedCommand struct {
	c Command
	a *Agent
}

func (l loggedCommand) LogValue() slog.Value {
	attrs := l.c.LogValue().Group()
	out := make([]slog.Attr, len(attrs))
	for i, at := range attrs {
		if at.Value.Kind() == slog.KindString {
			at.Value = slog.StringValue(l.a.redact(at.Value.String()))
		}
		out[i] = at
	}
	return slog.GroupValue(out...)
}
