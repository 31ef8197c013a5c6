package cli

import "strings"

// EnvName returns the environment variable that sets flag: prefix, '_', then the flag name in
// upper case with '-' as '_' (EnvName("EDGEHUB", "data-dir") is EDGEHUB_DATA_DIR).
func EnvName(prefix, flag string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}
