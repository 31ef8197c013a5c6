package fakehub_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
)

func TestServer_ZeroValueStartsAndCleansUp(t *testing.T) {
	var s fakehub.Server
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Hostname != "localhost" || s.Logger == nil || s.Now == nil {
		t.Fatalf("defaults not filled in: hostname %q, logger set %v, clock set %v", s.Hostname, s.Logger != nil, s.Now != nil)
	}
	for name, addr := range map[string]string{"mqtt": s.MQTTAddress(), "https": s.HTTPAddress()} {
		if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
			t.Errorf("%s address %q", name, addr)
		}
	}
	if s.PlainMQTTAddress() != "" || s.PlainHTTPAddress() != "" {
		t.Errorf("plain listeners on by default: %q %q", s.PlainMQTTAddress(), s.PlainHTTPAddress())
	}
	if !strings.HasPrefix(s.ServiceConnectionString(), "HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=") {
		t.Errorf("service connection string %q", s.ServiceConnectionString())
	}
	dir := filepath.Dir(s.CAFile())
	if _, err := os.Stat(filepath.Join(dir, "registry.db")); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err == nil {
		t.Fatal("second Start succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("temporary data dir left behind: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.PutDevice(fakehub.Device{DeviceID: "late"}, ""); err == nil {
		t.Fatal("PutDevice on a closed server succeeded")
	}
}

func TestServer_CloseReleasesWaiters(t *testing.T) {
	s := &fakehub.Server{DataDir: t.TempDir()}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutDevice(fakehub.Device{DeviceID: "dev1"}, ""); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	go func() {
		_, err := s.WaitEvents(context.Background(), 0, 0)
		done <- err
	}()
	go func() {
		_, err := s.InvokeMethod(context.Background(), "dev1", "", fakehub.MethodRequest{MethodName: "m", ConnectTimeoutInSeconds: 300})
		if err == nil {
			err = errors.New("invocation succeeded")
		} else {
			err = nil
		}
		done <- err
	}()
	stream := s.SubscribeEvents(context.Background(), 1)
	time.Sleep(20 * time.Millisecond) // let both calls block; the assertion below does not depend on it
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a waiter was not released by Close")
		}
	}
	select {
	case _, ok := <-stream:
		if ok {
			t.Fatal("event on a closed server")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("event stream not closed by Close")
	}
}

func TestRun_StopsWithContext(t *testing.T) {
	s := &fakehub.Server{DataDir: t.TempDir()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, "serving", func() bool { return s.MQTTAddress() != "" })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}
