package fakehub

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

// Registry values as IoT Hub spells them.
const (
	statusEnabled  = "enabled"
	statusDisabled = "disabled"

	stateConnected    = "Connected"
	stateDisconnected = "Disconnected"

	authSAS        = "sas"
	authSelfSigned = "selfSigned"
	authCA         = "certificateAuthority"
	authNone       = "none"

	// Module identities IoT Hub creates with every edge device.
	moduleEdgeAgent = "$edgeAgent"
	moduleEdgeHub   = "$edgeHub"

	edgeScopePrefix = "ms-azure-iot-edge://"
)

// identityKey is the map and store key of an identity: "{d}" or "{d}/{m}", the MQTT client id.
func identityKey(deviceID, moduleID string) string { return iothub.ClientID(deviceID, moduleID) }

// edgeScope is the device scope IoT Hub gives an edge device.
func edgeScope(deviceID, generationID string) string {
	return edgeScopePrefix + deviceID + "-" + generationID
}

// newGenerationID returns an 18-digit decimal string, the shape of IoT Hub generation ids
// (for example "637587365431251327").
func newGenerationID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generation id: %w", err)
	}
	n := binary.BigEndian.Uint64(b[:])%900_000_000_000_000_000 + 100_000_000_000_000_000
	return strconv.FormatUint(n, 10), nil
}

// newEtag returns an identity etag: base64 of a random decimal number, the shape IoT Hub uses
// (for example "MTIzNDU2Nzg5").
func newEtag() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("etag: %w", err)
	}
	return base64.StdEncoding.EncodeToString([]byte(strconv.FormatUint(uint64(binary.BigEndian.Uint32(b[:])), 10))), nil
}

// twinEtag derives a twin's etag from its version, in IoT Hub's shape: base64 of the 8-byte
// big-endian version ("AAAAAAAAAAE=" for version 1).
func twinEtag(version int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(version))
	return base64.StdEncoding.EncodeToString(b[:])
}

// newMessageID returns a random UUID (version 4), the form IoT Hub and the SDKs use for
// message ids.
func newMessageID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("message id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// normalizeEtag strips the quotes an HTTP If-Match header carries ("\"abc\"" -> "abc") and a
// weak-validator prefix, so callers may pass the header value as is.
func normalizeEtag(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "W/")
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	return s
}

// checkEtag applies If-Match rules to an existing record: "" and "*" match anything.
func checkEtag(ifMatch, etag string) bool {
	ifMatch = normalizeEtag(ifMatch)
	return ifMatch == "" || ifMatch == "*" || ifMatch == etag
}
