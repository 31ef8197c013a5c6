package deployment

import (
	"strconv"
	"strings"
)

// dotnetVersion mirrors System.Version: two to four numeric components, the
// missing ones being -1. Azure compares schema versions with it, so "1" does
// not parse and "1.1.0.0" is greater than "1.1.0".
type dotnetVersion [4]int

func parseDotnetVersion(s string) (dotnetVersion, bool) {
	v := dotnetVersion{-1, -1, -1, -1}
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) < 2 || len(parts) > 4 {
		return v, false
	}
	for i, p := range parts {
		if p == "" || strings.TrimLeft(p, "0123456789") != "" {
			return v, false
		}
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil {
			return v, false
		}
		v[i] = int(n)
	}
	return v, true
}

func (v dotnetVersion) compare(o dotnetVersion) int {
	for i := range v {
		switch {
		case v[i] < o[i]:
			return -1
		case v[i] > o[i]:
			return 1
		}
	}
	return 0
}

// maxAgentSchema is Azure's EdgeAgentConnection.ExpectedSchemaVersion.
var maxAgentSchema = dotnetVersion{1, 1, 0, -1}

// checkAgentSchema applies A.2: the version must parse, have major 1 and be at
// most 1.1.0. Every failure is a 412.
func checkAgentSchema(root *value) (string, *Error) {
	p := path{"schemaVersion"}
	fail := func(reason string) *Error {
		return &Error{Code: CodeSchemaVersion, Field: p.String(), Reason: reason}
	}
	v := root.get("schemaVersion")
	if !v.present() {
		return "", fail(`required; supported versions are "1.0" and "1.1"`)
	}
	if v.kind != kindString {
		return "", fail("must be a string such as \"1.1\" (got " + v.kind.String() + ")")
	}
	ver, ok := parseDotnetVersion(v.str)
	if !ok {
		return "", fail("must be a version such as \"1.1\" (got " + quoteValue(v.str) + ")")
	}
	if ver[0] != 1 || ver.compare(maxAgentSchema) > 0 {
		return "", fail("unsupported version " + quoteValue(v.str) + `; supported versions are "1.0" and "1.1"`)
	}
	return v.str, nil
}

// checkHubSchema applies A.3: major 1, minor 0..3. The hub reports only 200 or
// 400, so failures are 400. It returns the minor version.
func checkHubSchema(root *value) (string, int, *Error) {
	p := path{"schemaVersion"}
	const supported = `supported versions are "1.0" to "1.3"`
	v := root.get("schemaVersion")
	if !v.present() {
		return "", 0, invalidf(p, "required; %s", supported)
	}
	if v.kind != kindString {
		return "", 0, wrongType(p, `a string such as "1.1"`, v)
	}
	ver, ok := parseDotnetVersion(v.str)
	if !ok {
		return "", 0, invalidf(p, `must be a version such as "1.1" (got %s)`, quoteValue(v.str))
	}
	if ver[0] != 1 || ver[1] > 3 {
		return "", 0, invalidf(p, "unsupported version %s; %s", quoteValue(v.str), supported)
	}
	return v.str, ver[1], nil
}
