package cli

import "errors"

// Errors of the configuration file; each comes wrapped with the file, the line when known
// and the key.
var (
	// ErrUnknownKey: the key is not a setting of the binary (the keys are its flag names).
	ErrUnknownKey = errors.New("not a setting")
	// ErrWrongType: the TOML value's type does not fit the setting (a string for a number, ...).
	ErrWrongType = errors.New("wrong type")
	// ErrNotInFile: the setting exists but cannot come from the file (the file's own flag,
	// and flags that only make sense on the command line).
	ErrNotInFile = errors.New("cannot be set in the configuration file")
	// ErrFileTooLarge: the file is larger than MaxFileBytes.
	ErrFileTooLarge = errors.New("configuration file too large")
)
