package hub

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fixtureEnvelope is the message stored in testdata/envelope-v1.bin.
func fixtureEnvelope() envelope {
	return envelope{
		Sender:   sas.Identity{DeviceID: "edge1", ModuleID: "filter"},
		Enqueued: time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC),
		Message: iothub.Message{
			Body:       []byte(`{"temperature":21.5}`),
			Properties: map[string]string{"level": "hot", "empty": ""},
			System: map[string]string{
				iothub.SysMessageID: "m-1", iothub.SysConnDeviceID: "edge1", iothub.SysConnModuleID: "filter",
				iothub.SysOutputName: "alerts", iothub.SysContentType: "application/json",
			},
		},
	}
}

// TestEnvelope_V1Fixture pins the stored format: a message stored by this version must
// decode the same forever (a layout change needs a new version and a new fixture).
func TestEnvelope_V1Fixture(t *testing.T) {
	path := filepath.Join("testdata", "envelope-v1.bin")
	want := fixtureEnvelope()
	if *update {
		if err := os.WriteFile(path, want.encode(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	got, err := decodeEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded fixture:\n got %+v\nwant %+v", got, want)
	}
	if !bytes.Equal(want.encode(), b) {
		t.Fatal("encoding the fixture message no longer gives the fixture bytes")
	}
}

func TestEnvelope_RoundTrip(t *testing.T) {
	tests := []struct {
		name string
		e    envelope
	}{
		{"fixture", fixtureEnvelope()},
		{"device, no properties, empty body", envelope{
			Sender: sas.Identity{DeviceID: "leaf"}, Enqueued: time.Unix(0, 0).UTC(),
			Message: iothub.Message{Body: []byte{}, Properties: map[string]string{}, System: map[string]string{}},
		}},
		{"before the epoch", envelope{
			Sender: sas.Identity{DeviceID: "d"}, Enqueued: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC),
			Message: iothub.Message{Body: []byte{0, 1, 2}, Properties: map[string]string{"k": "v"}, System: map[string]string{}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeEnvelope(tt.e.encode())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.e) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tt.e)
			}
		})
	}
}

func TestEnvelope_DecodeRejectsDamage(t *testing.T) {
	good := fixtureEnvelope()
	b := good.encode()
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown version", append([]byte{2}, b[1:]...)},
		{"truncated in the header", b[:5]},
		{"huge map size", []byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"string longer than the input", []byte{1, 0, 0x7f, 'a'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeEnvelope(tt.b); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode = %v, want ErrCorrupt", err)
			}
		})
	}
}

// FuzzDecodeEnvelope: decoding never panics, and whatever decodes re-encodes to bytes that
// decode to the same envelope.
func FuzzDecodeEnvelope(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "envelope-v1.bin")); err == nil {
		f.Add(b)
	}
	e := fixtureEnvelope()
	f.Add(e.encode())
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeEnvelope(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := decodeEnvelope(got.encode())
		if err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v", err)
		}
		if !reflect.DeepEqual(normal(again), normal(got)) {
			t.Fatalf("re-encode changed the envelope:\n%+v\n%+v", got, again)
		}
	})
}

// normal makes empty bodies comparable (nil and empty decode alike).
func normal(e envelope) envelope {
	if len(e.Message.Body) == 0 {
		e.Message.Body = nil
	}
	return e
}
