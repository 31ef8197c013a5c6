package deployment

import "testing"

func TestNormalizeImage(t *testing.T) {
	tests := []struct {
		name, in, want string // want "" means rejected
	}{
		{"tag kept", "mcr.microsoft.com/azureiotedge-hub:1.5", "mcr.microsoft.com/azureiotedge-hub:1.5"},
		{"no tag gets latest", "mcr.microsoft.com/azureiotedge-hub", "mcr.microsoft.com/azureiotedge-hub:latest"},
		{"single segment", "alpine", "alpine:latest"},
		{"docker hub user", "user/img", "user/img:latest"},
		{"trimmed", "  alpine:3.19 \n", "alpine:3.19"},
		{"registry with port, no tag", "localhost:5000/filtermodule", "localhost:5000/filtermodule:latest"},
		{"registry with port and tag", "localhost:5000/filtermodule:0.0.1-amd64", "localhost:5000/filtermodule:0.0.1-amd64"},
		{"digest", "myacr.azurecr.io/img@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "myacr.azurecr.io/img@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		{"nested upstream", "$upstream:443/azureiotedge-hub:1.5", "$upstream:443/azureiotedge-hub:1.5"},
		{"nested upstream no tag", "$upstream:443/azureiotedge-hub", "$upstream:443/azureiotedge-hub:latest"},
		{"placeholder text passes the loose check", "{your username}.azurecr.io/transformmodule:0.0.1-amd64", "{your username}.azurecr.io/transformmodule:0.0.1-amd64"},
		{"empty", "", ""},
		{"blank", "   ", ""},
		{"two tags", "img:a:b", ""},
		{"tag and digest", "img:1.0@sha256:abc", ""},
		{"trailing slash", "repo/", ""},
		{"empty tag", "img:", ""},
		{"dollar without upstream", "$registry/img", ""},
		{"upstream without port", "$upstream/img", ""},
		{"upstream port zero", "$upstream:0/img", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := normalizeImage(tt.in, path{"image"})
			if tt.want == "" {
				if err == nil {
					t.Fatalf("accepted %q as %q", tt.in, got)
				}
				if err.Code != CodeInvalid || err.Field != "image" {
					t.Errorf("error %+v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("rejected %q: %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
