package cli

import "strings"

// List is a repeatable string flag: every use adds its comma-separated items (blank ones
// dropped), so --device a,b --device c gives [a b c]. Its environment variable is
// comma-separated too; in a configuration file it is an array of strings.
//
//	fs.Var((*cli.List)(&c.devices), "device", "...")
type List []string

// String implements flag.Value.
func (l *List) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

// Set implements flag.Value.
func (l *List) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*l = append(*l, item)
		}
	}
	return nil
}

// Get implements flag.Getter: the items, as a []string.
func (l *List) Get() any { return []string(*l) }
