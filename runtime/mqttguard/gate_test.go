package mqttguard

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		limit int
		want  int
		size  int
		err   error
	}{
		{"empty", nil, 100, 0, 0, nil},
		{"type byte only", []byte{0x10}, 100, 0, 0, nil},
		{"small connect", []byte{0x10, 0x20}, 100, 32, 2, nil},
		{"with body bytes", []byte{0x10, 0x02, 0, 4, 'M'}, 100, 2, 2, nil},
		{"two length bytes", []byte{0x10, 0x80, 0x01}, 200, 128, 3, nil},
		{"length pending", []byte{0x10, 0x80}, 200, 0, 0, nil},
		{"at the limit", []byte{0x10, 0x80, 0x01}, 128, 128, 3, nil},
		{"over the limit", []byte{0x10, 0x81, 0x01}, 128, 0, 0, ErrConnectTooLarge},
		{"1,000,000 announced", []byte{0x10, 0xC0, 0x84, 0x3D}, 16 << 10, 0, 0, ErrConnectTooLarge},
		{"five length bytes", []byte{0x10, 0x80, 0x80, 0x80, 0x80}, 1 << 30, 0, 0, ErrConnectTooLarge},
		{"publish first", []byte{0x30, 0x02}, 100, 0, 0, ErrNotConnect},
		{"connect with flags", []byte{0x12, 0x02}, 100, 0, 0, ErrNotConnect},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, size, err := parseHeader(tt.in, tt.limit)
			if !errors.Is(err, tt.err) || got != tt.want || size != tt.size {
				t.Fatalf("parseHeader(% x, %d) = %d, %v, %v; want %d, %v, %v", tt.in, tt.limit, got, size, err, tt.want, tt.size, tt.err)
			}
		})
	}
}

func TestGate(t *testing.T) {
	connect := []byte{0x10, 0x03, 'a', 'b', 'c', 0xC0, 0x00} // CONNECT (3-byte body), then a PINGREQ
	tests := []struct {
		name string
		send []byte
		err  error // from reading everything
	}{
		{"connect passes byte for byte", connect, nil},
		{"oversized connect closed", []byte{0x10, 0xC0, 0x84, 0x3D}, ErrConnectTooLarge},
		{"subscribe first closed", []byte{0x82, 0x02, 0, 1}, ErrNotConnect},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGate(1, 64)
			server, client := net.Pipe()
			defer client.Close()
			c, ok := g.Wrap(server)
			if !ok {
				t.Fatal("first connection refused")
			}
			if _, ok := g.Wrap(server); ok || g.Refused() != 1 {
				t.Fatalf("second pending connection admitted (refused %d), cap is 1", g.Refused())
			}
			go func() {
				_, _ = client.Write(tt.send)
				client.Close()
			}()
			got, err := io.ReadAll(c)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("read error %v, want %v", err, tt.err)
				}
				if len(got) != 0 {
					t.Fatalf("delivered % x from a refused connection", got)
				}
			} else if err != nil || !bytes.Equal(got, tt.send) {
				t.Fatalf("read % x, %v; want % x", got, err, tt.send)
			}
			if g.Pending() != 0 {
				t.Fatalf("%d pending after the CONNECT was read or refused", g.Pending())
			}
			c.Close()
			if g.Pending() != 0 {
				t.Fatalf("%d pending after close (released twice?)", g.Pending())
			}
		})
	}
}

func TestGate_SlotHeldUntilConnectRead(t *testing.T) {
	g := NewGate(1, 64)
	server, client := net.Pipe()
	defer client.Close()
	c, _ := g.Wrap(server)
	go func() { _, _ = client.Write([]byte{0x10, 0x03, 'a'}) }()
	buf := make([]byte, 3)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if g.Pending() != 1 {
		t.Fatalf("pending %d with 2 CONNECT bytes unread, want 1", g.Pending())
	}
	go func() { _, _ = client.Write([]byte{'b', 'c'}) }()
	if _, err := io.ReadFull(c, buf[:2]); err != nil {
		t.Fatal(err)
	}
	if g.Pending() != 0 {
		t.Fatalf("pending %d after the whole CONNECT, want 0", g.Pending())
	}
}
