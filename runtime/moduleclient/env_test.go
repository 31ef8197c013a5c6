package moduleclient

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadEnvironment(t *testing.T) {
	const edge = "HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=a2V5;GatewayHostName=gw"
	const hub = "HostName=h;DeviceId=d;ModuleId=other;SharedAccessKey=a2V5"
	tests := []struct {
		name        string
		env         map[string]string
		wantConn    string
		wantVar     string
		wantCA      string
		wantErr     error
		errMentions []string
	}{
		{
			name:     "EdgeHubConnectionString and CA file",
			env:      map[string]string{EnvEdgeHubConnectionString: edge, EnvCACertificateFile: "/certs/ca.pem"},
			wantConn: edge, wantVar: EnvEdgeHubConnectionString, wantCA: "/certs/ca.pem",
		},
		{
			name:     "EdgeHubConnectionString without CA file",
			env:      map[string]string{EnvEdgeHubConnectionString: edge},
			wantConn: edge, wantVar: EnvEdgeHubConnectionString,
		},
		{
			name:     "IotHubConnectionString as the fallback",
			env:      map[string]string{EnvIotHubConnectionString: hub, EnvCACertificateFile: "/ca.pem"},
			wantConn: hub, wantVar: EnvIotHubConnectionString, wantCA: "/ca.pem",
		},
		{
			name:     "EdgeHubConnectionString wins over IotHubConnectionString",
			env:      map[string]string{EnvEdgeHubConnectionString: edge, EnvIotHubConnectionString: hub},
			wantConn: edge, wantVar: EnvEdgeHubConnectionString,
		},
		{
			name:     "blank EdgeHubConnectionString counts as unset",
			env:      map[string]string{EnvEdgeHubConnectionString: "  ", EnvIotHubConnectionString: hub},
			wantConn: hub, wantVar: EnvIotHubConnectionString,
		},
		{
			name:     "connection string wins over workload variables",
			env:      map[string]string{EnvEdgeHubConnectionString: edge, EnvWorkloadURI: "unix:///w.sock"},
			wantConn: edge, wantVar: EnvEdgeHubConnectionString,
		},
		{
			name:        "nothing set",
			env:         map[string]string{},
			wantErr:     ErrEnvironment,
			errMentions: []string{EnvEdgeHubConnectionString, EnvIotHubConnectionString},
		},
		{
			name:        "only the CA file",
			env:         map[string]string{EnvCACertificateFile: "/ca.pem"},
			wantErr:     ErrEnvironment,
			errMentions: []string{EnvEdgeHubConnectionString, EnvIotHubConnectionString},
		},
		{
			name:        "empty values",
			env:         map[string]string{EnvEdgeHubConnectionString: "", EnvIotHubConnectionString: ""},
			wantErr:     ErrEnvironment,
			errMentions: []string{EnvEdgeHubConnectionString},
		},
		{
			name: "workload variables only",
			env: map[string]string{
				EnvWorkloadURI: "unix:///var/run/iotedge/workload.sock", "IOTEDGE_DEVICEID": "d",
				"IOTEDGE_MODULEID": "m", "IOTEDGE_MODULEGENERATIONID": "g", "IOTEDGE_IOTHUBHOSTNAME": "h",
				"IOTEDGE_AUTHSCHEME": "sasToken",
			},
			wantErr:     ErrUnsupported,
			errMentions: []string{EnvWorkloadURI, "IOTEDGE_MODULEGENERATIONID", "workload API", EnvEdgeHubConnectionString},
		},
		{
			name:        "IOTEDGE ids without a workload URI",
			env:         map[string]string{"IOTEDGE_DEVICEID": "d", "IOTEDGE_MODULEID": "m"},
			wantErr:     ErrEnvironment,
			errMentions: []string{EnvEdgeHubConnectionString},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readEnvironment(func(k string) (string, bool) {
				v, ok := tt.env[k]
				return v, ok
			})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				for _, s := range tt.errMentions {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got.connString != tt.wantConn || got.connVar != tt.wantVar || got.caFile != tt.wantCA {
				t.Errorf("got (%q from %s, CA %q), want (%q from %s, CA %q)",
					got.connString, got.connVar, got.caFile, tt.wantConn, tt.wantVar, tt.wantCA)
			}
		})
	}
}

func TestNewFromEnvironment_ModuleIdentity(t *testing.T) {
	t.Setenv(EnvEdgeHubConnectionString, "HostName=hub.example;DeviceId=edge1;ModuleId=filter;SharedAccessKey="+testKey+";GatewayHostName=edgehub")
	t.Setenv(EnvIotHubConnectionString, "")
	t.Setenv(EnvCACertificateFile, writeCA(t))
	c, err := NewFromEnvironment(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if d, m := c.Identity(); d != "edge1" || m != "filter" {
		t.Errorf("Identity() = %q, %q; want edge1, filter", d, m)
	}
	if c.tls.ServerName != "edgehub" || c.tls.RootCAs == nil {
		t.Errorf("TLS: ServerName %q, RootCAs set %v; want the gateway name and the CA file", c.tls.ServerName, c.tls.RootCAs != nil)
	}
	if !strings.HasPrefix(c.username, "hub.example/edge1/filter/?api-version=") {
		t.Errorf("username %q does not name the IoT Hub host and the module", c.username)
	}
}

func TestNewFromEnvironment_Errors(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		wantErr  error
		mentions string
	}{
		{"missing connection string", map[string]string{}, ErrEnvironment, EnvEdgeHubConnectionString},
		{"workload API only", map[string]string{EnvWorkloadURI: "unix:///w.sock"}, ErrUnsupported, EnvWorkloadURI},
		{"unparsable connection string", map[string]string{EnvEdgeHubConnectionString: "HostName=h;nonsense"},
			ErrInvalidConfig, EnvEdgeHubConnectionString},
		{"missing CA file", map[string]string{
			EnvEdgeHubConnectionString: "HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=" + testKey,
			EnvCACertificateFile:       "/nonexistent/ca.pem",
		}, ErrInvalidConfig, "/nonexistent/ca.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range append([]string{EnvEdgeHubConnectionString, EnvIotHubConnectionString, EnvCACertificateFile}, workloadVariables...) {
				t.Setenv(k, tt.env[k])
			}
			_, err := NewFromEnvironment(Options{})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.mentions) {
				t.Errorf("error %q does not mention %q", err, tt.mentions)
			}
		})
	}
}

func TestNewFromEnvironment_ExplicitCAFileWins(t *testing.T) {
	ca := writeCA(t)
	t.Setenv(EnvEdgeHubConnectionString, "HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey="+testKey)
	t.Setenv(EnvCACertificateFile, filepath.Join(t.TempDir(), "missing.pem"))
	c, err := NewFromEnvironment(Options{CAFile: ca})
	if err != nil {
		t.Fatalf("the environment's CA file was used instead of Options.CAFile: %v", err)
	}
	c.Close()
}

// writeCA writes a self-signed CA certificate to a temporary PEM file.
func writeCA(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, selfSignedPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
