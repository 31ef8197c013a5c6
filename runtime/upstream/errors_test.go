package upstream

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

func TestStatusError_MapsStatusesOntoSentinels(t *testing.T) {
	sentinels := []error{ErrUnauthorized, ErrOutOfScope, ErrNotFound, ErrThrottled}
	cases := []struct {
		status    int
		want      error // nil: none
		retryable bool
	}{
		{401, ErrUnauthorized, false},
		{403, ErrOutOfScope, false},
		{404, ErrNotFound, false},
		{429, ErrThrottled, true},
		{400, nil, false},
		{500, nil, true},
		{503, nil, true},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.status), func(t *testing.T) {
			err := fmt.Errorf("wrapped: %w", &StatusError{Status: c.status, Body: []byte(`{"errorCode":1,"message":"m"}`)})
			for _, s := range sentinels {
				if got := errors.Is(err, s); got != (s == c.want) {
					t.Errorf("errors.Is(%d, %v) = %v", c.status, s, got)
				}
			}
			var se *StatusError
			if !errors.As(err, &se) || se.Status != c.status || se.Retryable() != c.retryable {
				t.Fatalf("errors.As: %+v", se)
			}
			if !strings.Contains(err.Error(), fmt.Sprint(c.status)) || !strings.Contains(err.Error(), `"message":"m"`) {
				t.Errorf("message %q", err.Error())
			}
		})
	}
}

func TestTelemetryTopic(t *testing.T) {
	leaf := sas.Identity{DeviceID: "leaf1"}
	mod := sas.Identity{DeviceID: "edge1", ModuleID: "m1"}
	big := make([]byte, iothub.MaxMessageSize+1)
	cases := []struct {
		name    string
		id      sas.Identity
		m       iothub.Message
		want    string
		wantErr error
	}{
		{"leaf, no properties", leaf, iothub.Message{Body: []byte("x")}, "devices/leaf1/messages/events/", nil},
		{"module output, $.cdid/$.cmid matching and stripped", mod, iothub.Message{System: map[string]string{
			iothub.SysOutputName: "out", iothub.SysConnDeviceID: "edge1", iothub.SysConnModuleID: "m1"}},
			"devices/edge1/modules/m1/messages/events/%24.on=out", nil},
		{"application properties encoded", leaf, iothub.Message{Properties: map[string]string{"a b": "c/d"}},
			"devices/leaf1/messages/events/a%20b=c%2Fd", nil},
		{"$.cdid of another device", leaf, iothub.Message{System: map[string]string{iothub.SysConnDeviceID: "other"}}, "", ErrInvalidArgument},
		{"$.cmid on a device's message", leaf, iothub.Message{System: map[string]string{iothub.SysConnModuleID: "m1"}}, "", ErrInvalidArgument},
		{"$.cmid of another module", mod, iothub.Message{System: map[string]string{iothub.SysConnModuleID: "m2"}}, "", ErrInvalidArgument},
		{"too large", leaf, iothub.Message{Body: big}, "", ErrTooLarge},
		{"topic too long", leaf, iothub.Message{Properties: map[string]string{"k": strings.Repeat("/", 30000)}}, "", ErrTooLarge},
		{"empty device id", sas.Identity{}, iothub.Message{}, "", ErrInvalidArgument},
		{"wildcard in an id", sas.Identity{DeviceID: "a+b"}, iothub.Message{}, "", ErrInvalidArgument},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sys := fmt.Sprint(c.m.System)
			got, err := telemetryTopic(c.id, c.m)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("err = %v, want %v", err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
			if fmt.Sprint(c.m.System) != sys {
				t.Fatalf("the caller's message was modified: %v", c.m.System)
			}
		})
	}
}
