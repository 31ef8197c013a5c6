package deployment

import (
	"math"
	"strconv"
	"strings"
	"unicode"
)

// role selects the per-module rules of A.2: edgeAgent has status, restart
// policy and startup order forced; edgeHub defaults its restart policy to
// always.
type role int

const (
	roleUser role = iota
	roleAgent
	roleHub
)

var (
	statusValues  = []string{StatusRunning, StatusStopped}
	restartValues = []string{RestartNever, RestartOnFailure, RestartOnUnhealthy, RestartAlways}
	pullValues    = []string{PullOnCreate, PullNever}
)

func parseModules(v *value, p path) (map[string]Module, *Error) {
	obj, err := objectAt(v, p)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Module)
	if obj == nil {
		return out, nil
	}
	for _, m := range obj.members {
		mp := p.child(m.key)
		if err := checkModuleName(m.key, mp); err != nil {
			return nil, err
		}
		if strings.EqualFold(m.key, EdgeAgentName) || strings.EqualFold(m.key, EdgeHubName) {
			return nil, invalidf(mp, "the name is reserved for a system module; configure it under systemModules")
		}
		mod, err := parseModule(m.key, m.val, mp, roleUser)
		if err != nil {
			return nil, err
		}
		out[m.key] = mod // a duplicate key replaces the earlier one, as in Newtonsoft
	}
	return out, nil
}

// checkModuleName applies the IoT Hub identity rules: 1 to 128 ASCII letters,
// digits and - . + % _ # * ? ! ( ) , = @ $ '.
func checkModuleName(name string, p path) *Error {
	if name == "" || len(name) > 128 {
		return invalidf(p, "module name must be 1 to 128 characters")
	}
	for _, r := range name {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-.+%_#*?!(),=@$'", r)) {
			continue
		}
		return invalidf(p, "module name may contain only ASCII letters, digits and - . + %% _ # * ? ! ( ) , = @ $ ' (found %s)", strconv.QuoteRune(r))
	}
	return nil
}

func parseModule(name string, v *value, p path, r role) (Module, *Error) {
	m := Module{Name: name}
	obj, err := requiredObject(v, p)
	if err != nil {
		return m, err
	}

	tp := p.child("type")
	if m.Type, err = requiredString(obj.get("type"), tp); err != nil {
		return m, err
	}
	if m.Type != "docker" {
		return m, invalidf(tp, `must be "docker" (got %s)`, quoteValue(m.Type))
	}

	if m.Version, err = versionText(obj.get("version"), p.child("version")); err != nil {
		return m, err
	}

	switch r {
	case roleAgent:
		// EdgeAgentDockerModule has no status, restartPolicy or startupOrder:
		// whatever the manifest says is ignored.
		m.Status, m.RestartPolicy, m.StartupOrder = StatusRunning, RestartAlways, 0
	default:
		sp := p.child("status")
		if !obj.get("status").present() {
			return m, invalidf(sp, "required (%s)", strings.Join(statusValues, " or "))
		}
		if m.Status, err = enumAt(obj.get("status"), sp, statusValues); err != nil {
			return m, err
		}
		m.RestartPolicy = RestartOnUnhealthy // Azure's Constants.DefaultRestartPolicy
		if r == roleHub {
			m.RestartPolicy = RestartAlways
		}
		if rv := obj.get("restartPolicy"); rv != nil {
			if m.RestartPolicy, err = enumAt(rv, p.child("restartPolicy"), restartValues); err != nil {
				return m, err
			}
		}
		m.StartupOrder = DefaultStartupOrder
		if ov := obj.get("startupOrder"); ov != nil {
			n, err := integerAt(ov, p.child("startupOrder"), 0, math.MaxUint32)
			if err != nil {
				return m, err
			}
			m.StartupOrder = uint32(n)
		}
	}

	m.ImagePullPolicy = PullOnCreate
	if pv := obj.get("imagePullPolicy"); pv.present() {
		if m.ImagePullPolicy, err = enumAt(pv, p.child("imagePullPolicy"), pullValues); err != nil {
			return m, err
		}
	}

	if m.Env, err = parseEnv(obj.get("env"), p.child("env")); err != nil {
		return m, err
	}

	setp := p.child("settings")
	settings, err := requiredObject(obj.get("settings"), setp)
	if err != nil {
		return m, err
	}
	ip := setp.child("image")
	image, err := requiredString(settings.get("image"), ip)
	if err != nil {
		return m, err
	}
	if m.Image, err = normalizeImage(image, ip); err != nil {
		return m, err
	}
	if m.CreateOptions, err = createOptionsFrom(settings, setp); err != nil {
		return m, err
	}

	cp := p.child("configuration")
	conf, err := objectAt(obj.get("configuration"), cp)
	if err != nil {
		return m, err
	}
	if conf != nil {
		if m.ConfigurationID, _, err = stringAt(conf.get("id"), cp.child("id")); err != nil {
			return m, err
		}
	}
	return m, nil
}

// versionText reads the free-text module version. Newtonsoft reads a number
// into a string property, so numbers are kept as written.
func versionText(v *value, p path) (string, *Error) {
	if !v.present() {
		return "", nil
	}
	switch v.kind {
	case kindString, kindNumber:
		return v.str, nil
	}
	return "", wrongType(p, "a string", v)
}

// parseEnv reads env: {NAME: {"value": string|number|boolean}}. Names follow
// the schema pattern ^[^\+#$\s\.]+$.
func parseEnv(v *value, p path) (map[string]string, *Error) {
	obj, err := objectAt(v, p)
	if err != nil || obj == nil {
		return nil, err
	}
	out := make(map[string]string, len(obj.members))
	for _, m := range obj.members {
		ep := p.child(m.key)
		if m.key == "" || strings.ContainsFunc(m.key, func(r rune) bool {
			return r == '+' || r == '#' || r == '$' || r == '.' || unicode.IsSpace(r)
		}) {
			return nil, invalidf(ep, `environment variable name must be non-empty and must not contain "+", "#", "$", "." or whitespace`)
		}
		entry, err := requiredObject(m.val, ep)
		if err != nil {
			return nil, err
		}
		vp := ep.child("value")
		val := entry.get("value")
		switch {
		case val == nil:
			return nil, invalidf(vp, "required")
		case val.kind == kindString, val.kind == kindNumber:
			out[m.key] = val.str
		case val.kind == kindBool:
			out[m.key] = strconv.FormatBool(val.b)
		default:
			return nil, wrongType(vp, "a string, number or boolean", val)
		}
	}
	return out, nil
}
