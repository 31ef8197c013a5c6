package sas

import (
	"strings"
	"testing"
	"time"
)

func TestParseConnectionString(t *testing.T) {
	tests := []struct {
		name, in string
		want     ConnectionString
	}{
		{
			"device",
			"HostName=h.azure-devices.net;DeviceId=dev1;SharedAccessKey=" + keyK,
			ConnectionString{HostName: hub, DeviceID: "dev1", SharedAccessKey: keyK},
		},
		{
			"module",
			"HostName=h.azure-devices.net;DeviceId=edge1;ModuleId=filter;SharedAccessKey=" + keyK,
			ConnectionString{HostName: hub, DeviceID: "edge1", ModuleID: "filter", SharedAccessKey: keyK},
		},
		{
			"through a gateway",
			"HostName=h.azure-devices.net;DeviceId=edge1;ModuleId=filter;SharedAccessKey=" + keyK + ";GatewayHostName=edge.local",
			ConnectionString{HostName: hub, DeviceID: "edge1", ModuleID: "filter", SharedAccessKey: keyK, GatewayHostName: "edge.local"},
		},
		{
			"x509",
			"HostName=h.azure-devices.net;DeviceId=dev1;x509=true",
			ConnectionString{HostName: hub, DeviceID: "dev1", X509: true},
		},
		{
			"X509Cert alias, value in any case",
			"HostName=h.azure-devices.net;DeviceId=dev1;X509Cert=TRUE",
			ConnectionString{HostName: hub, DeviceID: "dev1", X509: true},
		},
		{
			"x509=false with a key",
			"HostName=h.azure-devices.net;DeviceId=dev1;SharedAccessKey=" + keyK + ";x509=False",
			ConnectionString{HostName: hub, DeviceID: "dev1", SharedAccessKey: keyK},
		},
		{
			"pre-made token with spaces, & and =",
			"HostName=h.azure-devices.net;DeviceId=dev1;SharedAccessSignature=" + tokDev1,
			ConnectionString{HostName: hub, DeviceID: "dev1", SharedAccessSignature: tokDev1},
		},
		{
			"service",
			"HostName=h.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=" + keyK,
			ConnectionString{HostName: hub, SharedAccessKeyName: "iothubowner", SharedAccessKey: keyK},
		},
		{
			"device through a DeviceConnect policy",
			"HostName=h.azure-devices.net;DeviceId=dev1;SharedAccessKeyName=device;SharedAccessKey=" + keyK,
			ConnectionString{HostName: hub, DeviceID: "dev1", SharedAccessKeyName: "device", SharedAccessKey: keyK},
		},
		{
			"keys case-insensitive, any order",
			"sharedaccesskey=" + keyK + ";DEVICEID=dev1;hostname=h.azure-devices.net;MODULEID=m;gatewayhostname=g",
			ConnectionString{HostName: hub, DeviceID: "dev1", ModuleID: "m", SharedAccessKey: keyK, GatewayHostName: "g"},
		},
		{
			"trailing ; and empty parts ignored, whitespace trimmed",
			" HostName = h.azure-devices.net ;; DeviceId=dev1 ;\tSharedAccessKey= " + keyK + " ; ",
			ConnectionString{HostName: hub, DeviceID: "dev1", SharedAccessKey: keyK},
		},
		{
			"empty value counts as absent",
			"HostName=h.azure-devices.net;DeviceId=dev1;SharedAccessKey=" + keyK + ";GatewayHostName=",
			ConnectionString{HostName: hub, DeviceID: "dev1", SharedAccessKey: keyK},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConnectionString(tt.in)
			if err != nil {
				t.Fatalf("ParseConnectionString: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseConnectionString_Errors(t *testing.T) {
	const badKey = "bm90IGJhc2U2NA*secret"
	tests := []struct {
		name, in, mention string
		alsoIs            error
	}{
		{name: "empty", in: "", mention: "missing HostName"},
		{name: "only separators", in: ";;", mention: "missing HostName"},
		{name: "part without =", in: "HostName=h;DeviceId=d;DeviceId", mention: "part 3: no '='"},
		{name: "key glued to its name", in: "HostName=h;DeviceId=d;SharedAccessKey" + keyK, mention: "part 3: unknown key starting with SharedAccessKey"},
		{name: "long unknown key not echoed", in: "HostName=h;DeviceId=d;AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=x", mention: "part 3: unknown key"},
		{name: "unknown key", in: "HostName=h;DeviceId=d;SharedAccessKey=" + keyK + ";Foo=bar", mention: `part 4: unknown key "Foo"`},
		{name: "unknown key Endpoint", in: "Endpoint=sb://x/;SharedAccessKeyName=a;SharedAccessKey=" + keyK, mention: `"Endpoint"`},
		{name: "duplicate HostName", in: "HostName=h;HostName=h;DeviceId=d;SharedAccessKey=" + keyK, mention: "duplicate key HostName"},
		{name: "duplicate DeviceId differing case", in: "HostName=h;DeviceId=d;deviceid=d;SharedAccessKey=" + keyK, mention: "duplicate key DeviceId"},
		{name: "duplicate ModuleId", in: "HostName=h;DeviceId=d;ModuleId=m;ModuleId=m;SharedAccessKey=" + keyK, mention: "duplicate key ModuleId"},
		{name: "duplicate SharedAccessKeyName", in: "HostName=h;SharedAccessKeyName=a;SharedAccessKeyName=a;SharedAccessKey=" + keyK, mention: "duplicate key SharedAccessKeyName"},
		{name: "duplicate SharedAccessKey", in: "HostName=h;DeviceId=d;SharedAccessKey=" + keyK + ";SharedAccessKey=" + keyK, mention: "duplicate key SharedAccessKey"},
		{name: "duplicate SharedAccessSignature", in: "HostName=h;DeviceId=d;SharedAccessSignature=" + tokDev1 + ";SharedAccessSignature=" + tokDev1, mention: "duplicate key SharedAccessSignature"},
		{name: "duplicate GatewayHostName", in: "HostName=h;DeviceId=d;SharedAccessKey=" + keyK + ";GatewayHostName=g;GatewayHostName=g", mention: "duplicate key GatewayHostName"},
		{name: "x509 and X509Cert together", in: "HostName=h;DeviceId=d;x509=true;X509Cert=true", mention: "duplicate key x509"},
		{name: "x509 not a boolean", in: "HostName=h;DeviceId=d;x509=yes", mention: "x509"},
		{name: "missing HostName", in: "DeviceId=d;SharedAccessKey=" + keyK, mention: "missing HostName"},
		{name: "empty HostName", in: "HostName=;DeviceId=d;SharedAccessKey=" + keyK, mention: "missing HostName"},
		{name: "ModuleId without DeviceId", in: "HostName=h;ModuleId=m;SharedAccessKey=" + keyK, mention: "ModuleId without DeviceId"},
		{name: "device without credential", in: "HostName=h;DeviceId=d", mention: "exactly one"},
		{name: "device with x509=false only", in: "HostName=h;DeviceId=d;x509=false", mention: "exactly one"},
		{name: "device with key and signature", in: "HostName=h;DeviceId=d;SharedAccessKey=" + keyK + ";SharedAccessSignature=" + tokDev1, mention: "exactly one"},
		{name: "device with key and x509", in: "HostName=h;DeviceId=d;SharedAccessKey=" + keyK + ";x509=true", mention: "exactly one"},
		{name: "device with signature and x509", in: "HostName=h;DeviceId=d;SharedAccessSignature=" + tokDev1 + ";x509=true", mention: "exactly one"},
		{name: "module without credential", in: "HostName=h;DeviceId=d;ModuleId=m", mention: "exactly one"},
		{name: "device with key name but no key", in: "HostName=h;DeviceId=d;SharedAccessKeyName=device;x509=true", mention: "SharedAccessKeyName without SharedAccessKey"},
		{name: "service without key name", in: "HostName=h;SharedAccessKey=" + keyK, mention: "SharedAccessKeyName"},
		{name: "service without key", in: "HostName=h;SharedAccessKeyName=iothubowner", mention: "SharedAccessKey"},
		{name: "service with only a signature", in: "HostName=h;SharedAccessSignature=" + tokOwner, mention: "SharedAccessKeyName"},
		{name: "service with a signature too", in: "HostName=h;SharedAccessKeyName=o;SharedAccessKey=" + keyK + ";SharedAccessSignature=" + tokOwner, mention: "SharedAccessSignature"},
		{name: "service with x509", in: "HostName=h;SharedAccessKeyName=o;SharedAccessKey=" + keyK + ";x509=true", mention: "x509"},
		{name: "key not base64", in: "HostName=h;DeviceId=d;SharedAccessKey=" + badKey, mention: "SharedAccessKey", alsoIs: ErrInvalidKey},
		{name: "service key not base64", in: "HostName=h;SharedAccessKeyName=o;SharedAccessKey=" + badKey, mention: "SharedAccessKey", alsoIs: ErrInvalidKey},
		{name: "signature does not parse", in: "HostName=h;DeviceId=d;SharedAccessSignature=SharedAccessSignature sr=h&sig=c2VjcmV0&se=x", mention: "SharedAccessSignature", alsoIs: ErrMalformedToken},
		{name: "signature without scheme", in: "HostName=h;DeviceId=d;SharedAccessSignature=sr=h&sig=c2VjcmV0&se=1", mention: "SharedAccessSignature", alsoIs: ErrMalformedToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConnectionString(tt.in)
			checkErr(t, err, ErrMalformedConnectionString, tt.mention)
			if tt.alsoIs != nil {
				checkErr(t, err, tt.alsoIs)
			}
			for _, secret := range []string{keyK[:20], badKey, "c2VjcmV0", "MEZbjk0k2j"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains a secret", err)
				}
			}
		})
	}
}

func TestConnectionString_String(t *testing.T) {
	tests := []struct {
		name               string
		in                 string
		want, wantRedacted string
	}{
		{
			"module canonical order",
			"SharedAccessKey=" + keyK + ";gatewayhostname=g;moduleid=m;deviceid=d;hostname=h",
			"HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=" + keyK + ";GatewayHostName=g",
			"HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=***;GatewayHostName=g",
		},
		{
			"service",
			"HostName=h;SharedAccessKeyName=iothubowner;SharedAccessKey=" + keyK,
			"HostName=h;SharedAccessKeyName=iothubowner;SharedAccessKey=" + keyK,
			"HostName=h;SharedAccessKeyName=iothubowner;SharedAccessKey=***",
		},
		{
			"pre-made token",
			"HostName=h;DeviceId=d;SharedAccessSignature=" + tokDev1 + ";GatewayHostName=g",
			"HostName=h;DeviceId=d;SharedAccessSignature=" + tokDev1 + ";GatewayHostName=g",
			"HostName=h;DeviceId=d;SharedAccessSignature=***;GatewayHostName=g",
		},
		{
			"x509 alias canonicalised",
			"X509Cert=True;HostName=h;DeviceId=d",
			"HostName=h;DeviceId=d;x509=true",
			"HostName=h;DeviceId=d;x509=true",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConnectionString(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.String(); got != tt.want {
				t.Errorf("String = %q, want %q", got, tt.want)
			}
			if got := c.Redacted(); got != tt.wantRedacted {
				t.Errorf("Redacted = %q, want %q", got, tt.wantRedacted)
			}
			back, err := ParseConnectionString(c.String())
			if err != nil || back != c {
				t.Errorf("ParseConnectionString(String) = %+v, %v; want %+v", back, err, c)
			}
		})
	}
}

func TestConnectionString_Accessors(t *testing.T) {
	tests := []struct {
		name                string
		c                   ConnectionString
		service             bool
		resource, connectTo string
	}{
		{"device", ConnectionString{HostName: hub, DeviceID: "dev1"}, false, hub + "/devices/dev1", hub},
		{"module through gateway", ConnectionString{HostName: hub, DeviceID: "edge1", ModuleID: "$edgeHub", GatewayHostName: "edge.local"}, false, hub + "/devices/edge1/modules/$edgeHub", "edge.local"},
		{"service", ConnectionString{HostName: hub, SharedAccessKeyName: "iothubowner"}, true, hub, hub},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.IsService(); got != tt.service {
				t.Errorf("IsService = %v, want %v", got, tt.service)
			}
			if got := tt.c.ResourceURI(); got != tt.resource {
				t.Errorf("ResourceURI = %q, want %q", got, tt.resource)
			}
			if got := tt.c.ConnectHost(); got != tt.connectTo {
				t.Errorf("ConnectHost = %q, want %q", got, tt.connectTo)
			}
		})
	}
}

func TestConnectionString_Token(t *testing.T) {
	now := time.Unix(se1700, 0).Add(-time.Hour)
	parse := func(s string) ConnectionString {
		c, err := ParseConnectionString(s)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name string
		c    ConnectionString
		ttl  time.Duration
		want string
		err  error
	}{
		{name: "device (documented example)", c: parse("HostName=h.azure-devices.net;DeviceId=dev1;SharedAccessKey=" + keyK + ";GatewayHostName=edge.local"), ttl: time.Hour, want: tokDev1},
		{name: "module", c: parse("HostName=h.azure-devices.net;DeviceId=dev1;ModuleId=filter;SharedAccessKey=" + keyK), ttl: time.Hour, want: tokFilter},
		{name: "service signs with skn", c: parse("HostName=h.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=" + keyK), ttl: time.Hour, want: tokOwner},
		{name: "device through a policy carries skn", c: parse("HostName=h.azure-devices.net;DeviceId=dev1;SharedAccessKeyName=device;SharedAccessKey=" + keyK), ttl: time.Hour, want: tokDev1 + "&skn=device"},
		{name: "pre-made token returned as is", c: parse("HostName=h.azure-devices.net;DeviceId=dev1;SharedAccessSignature=" + tokLower), ttl: time.Minute, want: tokLower},
		{name: "x509 has no key", c: parse("HostName=h.azure-devices.net;DeviceId=dev1;x509=true"), ttl: time.Hour, err: ErrNoKey},
		{name: "zero ttl", c: parse("HostName=h.azure-devices.net;DeviceId=dev1;SharedAccessKey=" + keyK), ttl: 0, err: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.c.Token(now, tt.ttl)
			if tt.err == errAny {
				if err == nil {
					t.Fatalf("Token = %q, want an error", got)
				}
				return
			}
			checkErr(t, err, tt.err)
			if got != tt.want {
				t.Errorf("Token =\n %q, want\n %q", got, tt.want)
			}
		})
	}
}

// errAny marks a table row that expects some error without a sentinel.
var errAny = errorString("any error")

type errorString string

func (e errorString) Error() string { return string(e) }
