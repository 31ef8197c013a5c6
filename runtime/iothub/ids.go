package iothub

import (
	"fmt"
	"strings"
)

// idSpecials are the non-alphanumeric characters IoT Hub allows in device and module ids.
const idSpecials = "-.+%_#*?!(),=@$'"

// methodNameForbidden are the characters IoT Hub forbids in method names (section 6.1), plus
// '#' and '+', which MQTT forbids in the topic name the hub publishes the request on.
const methodNameForbidden = "$()<>@,;:\\\"/[]?={} \t#+"

// ValidateDeviceID checks a device id against IoT Hub's rule: 1 to 128 characters, ASCII
// letters and digits plus - . + % _ # * ? ! ( ) , = @ $ '. Errors wrap ErrInvalidID.
func ValidateDeviceID(id string) error {
	if err := validateID(id); err != nil {
		return fmt.Errorf("device id %q: %w", truncate(id), err)
	}
	return nil
}

// ValidateModuleID checks a module id; the rule is the same as for device ids.
func ValidateModuleID(id string) error {
	if err := validateID(id); err != nil {
		return fmt.Errorf("module id %q: %w", truncate(id), err)
	}
	return nil
}

func validateID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty", ErrInvalidID)
	}
	if len(id) > MaxIDLength {
		return fmt.Errorf("%w: %d characters, more than %d", ErrInvalidID, len(id), MaxIDLength)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !isAlnum(c) && strings.IndexByte(idSpecials, c) < 0 {
			return fmt.Errorf("%w: character %q at offset %d is not allowed", ErrInvalidID, c, i)
		}
	}
	return nil
}

// ValidateMethodName checks a direct method name before it is put in a request topic:
// non-empty, at most MaxMethodNameLength bytes, no control characters, and none of
// $ ( ) < > @ , ; : \ " / [ ] ? = { } space tab (IoT Hub's list) nor # + (MQTT wildcards,
// not allowed in a PUBLISH topic). Errors wrap ErrInvalidID.
func ValidateMethodName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("method name: %w: empty", ErrInvalidID)
	case len(name) > MaxMethodNameLength:
		return fmt.Errorf("method name %q: %w: %d bytes, more than %d", truncate(name), ErrInvalidID, len(name), MaxMethodNameLength)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if isControl(c) || strings.IndexByte(methodNameForbidden, c) >= 0 {
			return fmt.Errorf("method name %q: %w: character %q at offset %d is not allowed", truncate(name), ErrInvalidID, c, i)
		}
	}
	return nil
}

// ValidateRequestID checks that a $rid value survives the positional parsers of the C and C#
// SDKs when written into a response or request topic (sections 5.1, 6.1, 11): non-empty, at
// most MaxRequestIDLength bytes, no '/', '&', '#', '+' and no control characters. The topic
// builders do not call it (they echo whatever they are given); the hub should call it before
// echoing a client's rid and before choosing its own. Errors wrap ErrInvalidID.
func ValidateRequestID(rid string) error {
	switch {
	case rid == "":
		return fmt.Errorf("request id: %w: empty", ErrInvalidID)
	case len(rid) > MaxRequestIDLength:
		return fmt.Errorf("request id %q: %w: %d bytes, more than %d", truncate(rid), ErrInvalidID, len(rid), MaxRequestIDLength)
	}
	for i := 0; i < len(rid); i++ {
		c := rid[i]
		if isControl(c) || c == '/' || c == '&' || c == '#' || c == '+' {
			return fmt.Errorf("request id %q: %w: character %q at offset %d is not allowed", truncate(rid), ErrInvalidID, c, i)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
}

func isControl(c byte) bool { return c < 0x20 || c == 0x7f }
