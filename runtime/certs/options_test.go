package certs

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestNames(t *testing.T) {
	tests := []struct {
		name, host string
		want       []string
	}{
		{"host first", "edge.local", []string{"edge.local", "localhost", "127.0.0.1", "::1"}},
		{"no host", "", []string{"localhost", "127.0.0.1", "::1"}},
		{"blank host", "  ", []string{"localhost", "127.0.0.1", "::1"}},
		{"host is localhost", "localhost", []string{"localhost", "127.0.0.1", "::1"}},
		{"host is an IP already listed", "::1", []string{"localhost", "127.0.0.1", "::1"}},
		{"host is another IP", "10.1.2.3", []string{"10.1.2.3", "localhost", "127.0.0.1", "::1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Names(tt.host); !slices.Equal(got, tt.want) {
				t.Fatalf("Names(%q) = %q, want %q", tt.host, got, tt.want)
			}
		})
	}
}

func TestOptions_Defaults(t *testing.T) {
	tests := []struct {
		name                                string
		in                                  Options
		wantCA, wantServer, wantRenewBefore time.Duration
	}{
		{"all defaults", Options{}, DefaultCALifetime, DefaultServerLifetime, DefaultRenewBefore},
		{"short server lifetime caps RenewBefore", Options{ServerLifetime: 3 * time.Minute}, DefaultCALifetime, 3 * time.Minute, time.Minute},
		{"short CA lifetime caps RenewBefore", Options{CALifetime: 30 * time.Minute}, 30 * time.Minute, DefaultServerLifetime, 10 * time.Minute},
		{"RenewBefore kept", Options{ServerLifetime: time.Hour, RenewBefore: 59 * time.Minute}, DefaultCALifetime, time.Hour, 59 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.Dir, in.Names = "/d", Names("")
			o, err := in.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			if o.CALifetime != tt.wantCA || o.ServerLifetime != tt.wantServer || o.RenewBefore != tt.wantRenewBefore {
				t.Errorf("lifetimes CA %v server %v renew %v, want %v %v %v",
					o.CALifetime, o.ServerLifetime, o.RenewBefore, tt.wantCA, tt.wantServer, tt.wantRenewBefore)
			}
			if o.CAPath() != "/d/"+DefaultCAFile || o.CertPath() != "/d/"+DefaultCertFile ||
				o.caKeyPath() != "/d/"+DefaultCAKeyFile || o.keyPath() != "/d/"+DefaultKeyFile {
				t.Errorf("paths %s %s %s %s", o.CAPath(), o.caKeyPath(), o.CertPath(), o.keyPath())
			}
			if o.Now == nil || o.Logger == nil || o.CACommonName != DefaultCACommonName {
				t.Error("Now, Logger or CACommonName not defaulted")
			}
		})
	}
}

func TestLoadOrCreate_BadOptions(t *testing.T) {
	dir := t.TempDir()
	ok := Options{Dir: dir, Names: Names("edge.example")}
	tests := []struct {
		name   string
		change func(o *Options)
		want   error
	}{
		{"no dir", func(o *Options) { o.Dir = "" }, ErrInvalidOptions},
		{"no names", func(o *Options) { o.Names = nil }, ErrNoNames},
		{"empty name", func(o *Options) { o.Names = []string{""} }, ErrInvalidName},
		{"name with a space", func(o *Options) { o.Names = []string{"edge host"} }, ErrInvalidName},
		{"name padded", func(o *Options) { o.Names = []string{" edge"} }, ErrInvalidName},
		{"url", func(o *Options) { o.Names = []string{"mqtts://edge"} }, ErrInvalidName},
		{"host and port", func(o *Options) { o.Names = []string{"edge:8883"} }, ErrInvalidName},
		{"file name with a directory", func(o *Options) { o.CAFile = "sub/ca.pem" }, ErrInvalidOptions},
		{"file name dot-dot", func(o *Options) { o.KeyFile = ".." }, ErrInvalidOptions},
		{"file name used twice", func(o *Options) { o.CertFile = DefaultCAFile }, ErrInvalidOptions},
		{"negative path length", func(o *Options) { o.CAMaxPathLen = -1 }, ErrInvalidOptions},
		{"negative CA lifetime", func(o *Options) { o.CALifetime = -time.Hour }, ErrInvalidOptions},
		{"negative server lifetime", func(o *Options) { o.ServerLifetime = -time.Hour }, ErrInvalidOptions},
		{"negative RenewBefore", func(o *Options) { o.RenewBefore = -time.Hour }, ErrInvalidOptions},
		{"RenewBefore equals the server lifetime", func(o *Options) { o.ServerLifetime, o.RenewBefore = time.Hour, time.Hour }, ErrInvalidOptions},
		{"RenewBefore beyond the CA lifetime", func(o *Options) { o.CALifetime, o.RenewBefore = time.Hour, 2*time.Hour }, ErrInvalidOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.change(&o)
			if _, err := LoadOrCreate(o); !errors.Is(err, tt.want) {
				t.Fatalf("LoadOrCreate err = %v, want %v", err, tt.want)
			}
			if _, err := New(o); !errors.Is(err, tt.want) {
				t.Fatalf("New err = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("missing directory", func(t *testing.T) {
		o := ok
		o.Dir = dir + "/missing"
		if _, err := LoadOrCreate(o); err == nil {
			t.Fatal("LoadOrCreate succeeded in a directory that does not exist")
		}
	})
	t.Run("nothing written for bad options", func(t *testing.T) {
		if _, err := LoadOrCreate(Options{Dir: dir}); err == nil {
			t.Fatal("no error")
		}
		if _, err := Inspect(ok.CAPath()); err == nil {
			t.Fatal("a CA was written although the options were refused")
		}
	})
}
