package sas

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Token
	}{
		{"python order sr sig se", tokDev1, Token{Resource: srDev1, Signature: sigDev1, Expiry: se1700}},
		{"python order with skn", tokOwner, Token{Resource: hub, Signature: "2OKt4+Y0+6cqcTg9nowxljYyZyhM3Q5Yo3lToHFIa4Q=", Expiry: se1700, KeyName: "iothubowner"}},
		{
			"docs order sig se skn sr",
			"SharedAccessSignature sig=MEZbjk0k2j%2FS9ubA7lTOiyHLfwOuYHIEW3NLGbh73YQ%3D&se=1700000000&skn=device&sr=" + srDev1,
			Token{Resource: srDev1, Signature: sigDev1, Expiry: se1700, KeyName: "device"},
		},
		{
			"keys are case-insensitive",
			"SharedAccessSignature SR=" + srDev1 + "&Sig=abc%3D&SE=5&SKN=p",
			Token{Resource: srDev1, Signature: "abc=", Expiry: 5, KeyName: "p"},
		},
		{"lowercase escapes in sr kept verbatim", tokLower, Token{Resource: "h.azure-devices.net%2fdevices%2fdev1", Signature: "rJ+ame7rqBUjZIyXlul6m8ujN2LiMROqGRdVxot5yNI=", Expiry: se1700}},
		{"raw plus in sig stays plus", "SharedAccessSignature sr=h&sig=a+b/c=&se=1", Token{Resource: "h", Signature: "a+b/c=", Expiry: 1}},
		{"lowercase escapes in sig decoded", "SharedAccessSignature sr=h&sig=a%2bb%2fc%3d&se=1", Token{Resource: "h", Signature: "a+b/c=", Expiry: 1}},
		{"empty skn is absent", "SharedAccessSignature sr=h&sig=s&se=1&skn=", Token{Resource: "h", Signature: "s", Expiry: 1}},
		{"skn decoded", "SharedAccessSignature sr=h&sig=s&se=1&skn=my%20policy", Token{Resource: "h", Signature: "s", Expiry: 1, KeyName: "my policy"}},
		{"se zero", "SharedAccessSignature sr=h&sig=s&se=0", Token{Resource: "h", Signature: "s", Expiry: 0}},
		{"se max int64", "SharedAccessSignature sr=h&sig=s&se=9223372036854775807", Token{Resource: "h", Signature: "s", Expiry: 1<<63 - 1}},
		{"se URL-encoded digits", "SharedAccessSignature sr=h&sig=s&se=%31%32", Token{Resource: "h", Signature: "s", Expiry: 12}},
		{"sr value holding =", "SharedAccessSignature sr=a=b&sig=s&se=1", Token{Resource: "a=b", Signature: "s", Expiry: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got != tt.want {
				t.Errorf("Parse = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParse_Errors(t *testing.T) {
	const secret = "c2VjcmV0c2lnbmF0dXJl"
	tests := []struct {
		name, in, mention string
	}{
		{"empty", "", "SharedAccessSignature"},
		{"no scheme", "sr=h&sig=" + secret + "&se=1", "SharedAccessSignature"},
		{"scheme wrong case", "sharedaccesssignature sr=h&sig=" + secret + "&se=1", "SharedAccessSignature"},
		{"scheme without space", "SharedAccessSignaturesr=h&sig=" + secret + "&se=1", "SharedAccessSignature"},
		{"two spaces", "SharedAccessSignature  sr=h&sig=" + secret + "&se=1", "whitespace"},
		{"trailing newline", "SharedAccessSignature sr=h&sig=" + secret + "&se=1\n", "whitespace"},
		{"space inside value", "SharedAccessSignature sr=h&sig=" + secret + " x&se=1", "whitespace"},
		{"no fields", "SharedAccessSignature ", "no '='"},
		{"field without =", "SharedAccessSignature sr=h&sig=" + secret + "&se", "field 3"},
		{"trailing &", "SharedAccessSignature sr=h&sig=" + secret + "&se=1&", "field 4"},
		{"unknown key", "SharedAccessSignature sr=h&sig=" + secret + "&se=1&foo=bar", `"foo"`},
		{"duplicate sr", "SharedAccessSignature sr=h&sig=" + secret + "&se=1&sr=h", `"sr"`},
		{"duplicate sig differing case", "SharedAccessSignature sr=h&sig=" + secret + "&se=1&SIG=" + secret, `"sig"`},
		{"duplicate se", "SharedAccessSignature sr=h&sig=" + secret + "&se=1&se=2", `"se"`},
		{"duplicate skn", "SharedAccessSignature sr=h&sig=" + secret + "&se=1&skn=a&skn=b", `"skn"`},
		{"missing sr", "SharedAccessSignature sig=" + secret + "&se=1", `missing field "sr"`},
		{"missing sig", "SharedAccessSignature sr=h&se=1", `missing field "sig"`},
		{"missing se", "SharedAccessSignature sr=h&sig=" + secret, `missing field "se"`},
		{"empty sr", "SharedAccessSignature sr=&sig=" + secret + "&se=1", `empty field "sr"`},
		{"empty sig", "SharedAccessSignature sr=h&sig=&se=1", `empty field "sig"`},
		{"empty se", "SharedAccessSignature sr=h&sig=" + secret + "&se=", `empty field "se"`},
		{"negative se", "SharedAccessSignature sr=h&sig=" + secret + "&se=-1", `"se"`},
		{"plus-signed se", "SharedAccessSignature sr=h&sig=" + secret + "&se=+1", `"se"`},
		{"fractional se", "SharedAccessSignature sr=h&sig=" + secret + "&se=1.5", `"se"`},
		{"leading zero se", "SharedAccessSignature sr=h&sig=" + secret + "&se=01", "leading zero"},
		{"se overflows int64", "SharedAccessSignature sr=h&sig=" + secret + "&se=9223372036854775808", "out of range"},
		{"bad escape in sig", "SharedAccessSignature sr=h&sig=" + secret + "%zz&se=1", `"sig"`},
		{"bad escape in skn", "SharedAccessSignature sr=h&sig=" + secret + "&se=1&skn=%4", `"skn"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in)
			checkErr(t, err, ErrMalformedToken, tt.mention)
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q echoes the signature", err)
			}
		})
	}
}

func TestToken_String(t *testing.T) {
	tests := []struct {
		name string
		tok  Token
		want string
	}{
		{"device token in python order", Token{Resource: srDev1, Signature: sigDev1, Expiry: se1700}, tokDev1},
		{"policy token with skn", mustParse(t, tokOwner), tokOwner},
		{"docs order re-rendered in python order", mustParse(t, "SharedAccessSignature sig=s&se=7&skn=p&sr=h"), "SharedAccessSignature sr=h&sig=s&se=7&skn=p"},
		{"lowercase sr kept", mustParse(t, tokLower), tokLower},
		{"space in sig and skn written as %20", Token{Resource: "h", Signature: "a b", Expiry: 1, KeyName: "x y&z"}, "SharedAccessSignature sr=h&sig=a%20b&se=1&skn=x%20y%26z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tok.String(); got != tt.want {
				t.Errorf("String = %q, want %q", got, tt.want)
			}
			if back := mustParse(t, tt.tok.String()); back != tt.tok {
				t.Errorf("Parse(String) = %+v, want %+v", back, tt.tok)
			}
		})
	}
}

func TestToken_ExpiresAt(t *testing.T) {
	got := Token{Expiry: se1700}.ExpiresAt()
	want := time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)
	if !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("ExpiresAt = %v, want %v", got, want)
	}
}

func TestToken_Expired(t *testing.T) {
	tok := Token{Expiry: se1700}
	se := time.Unix(se1700, 0)
	tests := []struct {
		name string
		tok  Token
		now  time.Time
		want bool
	}{
		{"before expiry", tok, se.Add(-time.Hour), false},
		{"at expiry", tok, se, false},
		{"inside skew", tok, se.Add(ClockSkew - time.Second), false},
		{"exactly at skew boundary", tok, se.Add(ClockSkew), false},
		{"one nanosecond past boundary", tok, se.Add(ClockSkew + time.Nanosecond), true},
		{"one second past boundary", tok, se.Add(ClockSkew + time.Second), true},
		{"boundary in another time zone", tok, se.Add(ClockSkew).In(time.FixedZone("X", 7*3600)), false},
		{"far-future expiry never overflows", Token{Expiry: 1<<63 - 1}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"epoch expiry", Token{Expiry: 0}, time.Unix(301, 0), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tok.Expired(tt.now); got != tt.want {
				t.Errorf("Expired(%v) = %v, want %v", tt.now, got, tt.want)
			}
		})
	}
}

func TestToken_Audience(t *testing.T) {
	tests := []struct {
		name string
		sr   string
		want Audience
	}{
		{"device uppercase escapes", srDev1, Audience{Host: hub, DeviceID: "dev1"}},
		{"device lowercase escapes", "h.azure-devices.net%2fdevices%2fdev1", Audience{Host: hub, DeviceID: "dev1"}},
		{"device unescaped", "h.azure-devices.net/devices/dev1", Audience{Host: hub, DeviceID: "dev1"}},
		{"module", "h.azure-devices.net%2Fdevices%2Fedge1%2Fmodules%2F%24edgeHub", Audience{Host: hub, DeviceID: "edge1", ModuleID: "$edgeHub"}},
		{"hub only (policy)", hub, Audience{Host: hub}},
		{"hub/devices prefix (policy)", "h.azure-devices.net%2Fdevices", Audience{Host: hub}},
		{"C# double-encoded ids", "h.azure-devices.net%2Fdevices%2Fmy%2523dev%2Fmodules%2Fmod%253F1", Audience{Host: hub, DeviceID: "my#dev", ModuleID: "mod?1"}},
		{"C# double-encoded plus", "h%2Fdevices%2Fa%252Bb", Audience{Host: "h", DeviceID: "a+b"}},
		{"python-encoded plus stays plus", "h%2Fdevices%2Fa%2Bb", Audience{Host: "h", DeviceID: "a+b"}},
		{"raw plus stays plus", "h%2Fdevices%2Fa+b", Audience{Host: "h", DeviceID: "a+b"}},
		{"literal percent in id kept when not an escape", "h%2Fdevices%2F50%25off", Audience{Host: "h", DeviceID: "50%off"}},
		{"segment names case-insensitive", "h%2FDevices%2Fd%2FModules%2Fm", Audience{Host: "h", DeviceID: "d", ModuleID: "m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Token{Resource: tt.sr}.Audience()
			if err != nil {
				t.Fatalf("Audience: %v", err)
			}
			if got != tt.want {
				t.Errorf("Audience = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestToken_Audience_Errors(t *testing.T) {
	tests := []struct {
		name, sr, mention string
	}{
		{"empty", "", "empty host"},
		{"leading slash", "%2Fdevices%2Fd", "empty host"},
		{"four segments", "h%2Fdevices%2Fd%2Fmodules", "4 segments"},
		{"six segments", "h%2Fdevices%2Fd%2Fmodules%2Fm%2Fx", "6 segments"},
		{"trailing slash", "h%2Fdevices%2Fd%2F", "4 segments"},
		{"not devices", "h%2Fthings%2Fd", `"devices"`},
		{"not devices in prefix form", "h%2Ftwins", `"devices"`},
		{"not modules", "h%2Fdevices%2Fd%2Fmods%2Fm", `"modules"`},
		{"empty device", "h%2Fdevices%2F", "empty device id"},
		{"empty module", "h%2Fdevices%2Fd%2Fmodules%2F", "empty module id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Token{Resource: tt.sr}.Audience()
			checkErr(t, err, ErrMalformedToken, tt.mention)
		})
	}
}
