package cli

import (
	"flag"
	"fmt"
	"strings"
)

// EnvName returns the environment variable that sets flag: prefix, '_', then the flag name in
// upper case with '-' as '_' (EnvName("EDGEHUB", "data-dir") is EDGEHUB_DATA_DIR).
func EnvName(prefix, flag string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// ApplyEnv sets every flag of fs whose environment variable (EnvName, read with getenv) is
// not empty. Call it before fs.Parse, so that the command line wins over the environment.
// It stops at the first value a flag rejects, with an error naming the variable and value.
func ApplyEnv(fs *flag.FlagSet, prefix string, getenv func(string) string) error {
	var envErr error
	// VisitAll cannot stop early: once a value is rejected, the rest are left alone.
	fs.VisitAll(func(f *flag.Flag) {
		if envErr != nil {
			return
		}
		name := EnvName(prefix, f.Name)
		if v := getenv(name); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("environment variable %s=%q: %w", name, v, err)
			}
		}
	})
	return envErr
}
