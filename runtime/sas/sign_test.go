package sas

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestSign(t *testing.T) {
	exp := time.Unix(se1700, 0)
	tests := []struct {
		name, uri, key, keyName string
		expiry                  time.Time
		want                    string
	}{
		{"documented example device dev1", hub + "/devices/dev1", keyK, "", exp, tokDev1},
		{"module", hub + "/devices/dev1/modules/filter", keyK, "", exp, tokFilter},
		{"policy with skn", hub, keyK, "iothubowner", exp, tokOwner},
		{"secondary key", hub + "/devices/dev1", keyK2, "", exp, tokDev1K2},
		{"sub-second expiry truncated", hub + "/devices/dev1", keyK, "", exp.Add(999 * time.Millisecond), tokDev1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Sign(tt.uri, tt.key, tt.keyName, tt.expiry)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if got != tt.want {
				t.Errorf("Sign =\n %q, want\n %q", got, tt.want)
			}
		})
	}
}

func TestSign_StringToSign(t *testing.T) {
	// The documented example: the string to sign is the encoded sr, "\n", se.
	tok := mustParse(t, tokDev1)
	if tok.Resource != "h.azure-devices.net%2Fdevices%2Fdev1" {
		t.Fatalf("sr = %q", tok.Resource)
	}
	key, _ := base64.StdEncoding.DecodeString(keyK)
	if got := signature(key, "h.azure-devices.net%2Fdevices%2Fdev1", 1700000000); got != sigDev1 {
		t.Errorf("signature = %q, want %q", got, sigDev1)
	}
}

func TestSign_Errors(t *testing.T) {
	exp := time.Unix(se1700, 0)
	tests := []struct {
		name, uri, key string
		expiry         time.Time
		want           error
		mention        string
	}{
		{"key not base64", hub, "not*base64", exp, ErrInvalidKey, "base64"},
		{"key truncated padding", hub, "AAECAwQ", exp, ErrInvalidKey, "base64"},
		{"empty key", hub, "", exp, ErrInvalidKey, "empty"},
		{"empty resource", "", keyK, exp, ErrMalformedToken, "resource"},
		{"expiry before epoch", hub, keyK, time.Unix(-1, 0), ErrMalformedToken, "epoch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Sign(tt.uri, tt.key, "", tt.expiry)
			checkErr(t, err, tt.want, tt.mention)
			if tt.key != "" && strings.Contains(err.Error(), tt.key) {
				t.Errorf("error %q echoes the key", err)
			}
		})
	}
}

func TestSign_RoundTrip(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	uri := hub + "/devices/a b+c%d#e/modules/$edgeHub"
	s, err := Sign(uri, key, "", time.Unix(se1700, 0))
	if err != nil {
		t.Fatal(err)
	}
	tok := mustParse(t, s)
	if err := tok.VerifySignature(Keys{Primary: key}); err != nil {
		t.Errorf("VerifySignature: %v", err)
	}
	a, err := tok.Audience()
	if err != nil {
		t.Fatal(err)
	}
	if want := (Audience{Host: hub, DeviceID: "a b+c%d#e", ModuleID: "$edgeHub"}); a != want {
		t.Errorf("Audience = %+v, want %+v", a, want)
	}
}

func TestNewKey(t *testing.T) {
	k1, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(k1)
	if err != nil || len(b) != 32 {
		t.Errorf("NewKey = %q: %d bytes, err %v; want 32 bytes of base64", k1, len(b), err)
	}
	if k1 == k2 {
		t.Errorf("two NewKey calls returned the same key %q", k1)
	}
}

func TestToken_VerifySignature(t *testing.T) {
	tampered := mustParse(t, tokDev1)
	tampered.Signature = "A" + tampered.Signature[1:]
	otherSe := mustParse(t, tokDev1)
	otherSe.Expiry++
	reencoded := mustParse(t, tokLower)
	reencoded.Resource = strings.ReplaceAll(reencoded.Resource, "%2f", "%2F")

	tests := []struct {
		name string
		tok  Token
		keys Keys
		want error
	}{
		{"primary", mustParse(t, tokDev1), Keys{Primary: keyK, Secondary: keyK2}, nil},
		{"secondary", mustParse(t, tokDev1K2), Keys{Primary: keyK, Secondary: keyK2}, nil},
		{"only secondary set", mustParse(t, tokDev1K2), Keys{Secondary: keyK2}, nil},
		{"lowercase %2f sr signed verbatim", mustParse(t, tokLower), Keys{Primary: keyK}, nil},
		{"lowercase sr re-encoded uppercase fails", reencoded, Keys{Primary: keyK}, ErrSignature},
		{"C# double-encoded sr", mustParse(t, tokDouble), Keys{Primary: keyK}, nil},
		{"docs field order", mustParse(t, "SharedAccessSignature sig=MEZbjk0k2j%2FS9ubA7lTOiyHLfwOuYHIEW3NLGbh73YQ%3D&se=1700000000&sr="+srDev1), Keys{Primary: keyK}, nil},
		{"tampered sig", tampered, Keys{Primary: keyK, Secondary: keyK2}, ErrSignature},
		{"tampered se", otherSe, Keys{Primary: keyK}, ErrSignature},
		{"wrong keys", mustParse(t, tokDev1), Keys{Primary: keyK2}, ErrSignature},
		{"no keys", mustParse(t, tokDev1), Keys{}, ErrSignature},
		{"bad primary", mustParse(t, tokDev1), Keys{Primary: "%%%", Secondary: keyK}, ErrInvalidKey},
		{"bad secondary", mustParse(t, tokDev1), Keys{Primary: keyK, Secondary: "%%%"}, ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, tt.tok.VerifySignature(tt.keys), tt.want)
		})
	}
}
