package fakehub

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// apiError is an error answered in IoT Hub's REST error shape. Every error the HTTP layer
// returns uses the same body (docs/fakehub.md "Errors"):
//
//	HTTP/1.1 404 Not Found
//	iothub-errorcode: DeviceNotFound
//
//	{"Message":"{\"errorCode\":404001,\"trackingId\":\"...\",\"message\":\"...\",\"info\":{},\"timestampUtc\":\"...\"}",
//	 "ExceptionMessage":"ErrorCode:DeviceNotFound;..."}
//
// Message holds a JSON document as a string, which is what IoT Hub sends and what the
// service SDKs parse for the six-digit errorCode (azure-iot-sdk-csharp
// ExceptionHandlingHelper); the iothub-errorcode header carries the name, the SDKs' fallback.
// ExceptionMessage repeats the name and the text in the older "ErrorCode:Name;text" form,
// readable from curl.
type apiError struct {
	status  int            // HTTP status
	code    int            // six-digit IoT Hub error code, e.g. 404001
	name    string         // IoT Hub error name, e.g. "DeviceNotFound"
	message string         // what went wrong, naming the subject
	info    map[string]any // optional "info" object (DeviceNotOnline carries the timeout)
}

func (e apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.code, e.name, e.message) }

// errorBody is the outer JSON object of every error response.
type errorBody struct {
	Message          string `json:"Message"`
	ExceptionMessage string `json:"ExceptionMessage"`
}

// errorDetail is the document carried, as a string, in errorBody.Message.
type errorDetail struct {
	ErrorCode    int            `json:"errorCode"`
	TrackingID   string         `json:"trackingId"`
	Message      string         `json:"message"`
	Info         map[string]any `json:"info"`
	TimestampUTC string         `json:"timestampUtc"`
}

// writeError answers err. An apiError is written as is; any other error is an internal
// error, logged here (its only owner) and answered as 500 ServerError.
func (a *restAPI) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae apiError
	if !errors.As(err, &ae) {
		a.logger().Error("service API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = apiError{status: http.StatusInternalServerError, code: 500001, name: "ServerError", message: "internal error in the fake hub: " + err.Error()}
	}
	info := ae.info
	if info == nil {
		info = map[string]any{}
	}
	detail, merr := json.Marshal(errorDetail{
		ErrorCode:    ae.code,
		TrackingID:   trackingID(),
		Message:      ae.message,
		Info:         info,
		TimestampUTC: a.now().UTC().Format(time.RFC3339Nano),
	})
	if merr != nil {
		// info holds only strings and numbers we put there; this cannot happen.
		detail = []byte(`{}`)
	}
	a.logger().LogAttrs(r.Context(), slog.LevelDebug, "service API error",
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", ae.status), slog.String("error_code", ae.name), slog.String("reason", ae.message))
	w.Header().Set("iothub-errorcode", ae.name)
	a.writeJSON(w, ae.status, errorBody{
		Message:          string(detail),
		ExceptionMessage: "ErrorCode:" + ae.name + ";" + ae.message,
	})
}

// trackingID returns a random id like IoT Hub's trackingId (32 hex digits).
func trackingID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// coreError maps an error of the Server's Go API onto its REST error. deviceID and
// moduleID name the resource of the request (moduleID "" for device-level requests) and
// decide between the device and module flavours of "not found" and "already exists".
func (a *restAPI) coreError(err error, deviceID, moduleID string) error {
	switch {
	case errors.Is(err, ErrNotFound):
		if moduleID != "" {
			if _, derr := a.s.GetDevice(deviceID); derr == nil {
				return apiError{status: http.StatusNotFound, code: 404010, name: "ModuleNotFound",
					message: fmt.Sprintf("module %q not found on device %q", moduleID, deviceID)}
			}
		}
		return apiError{status: http.StatusNotFound, code: 404001, name: "DeviceNotFound",
			message: fmt.Sprintf("device %q not found", deviceID)}
	case errors.Is(err, ErrConflict):
		if moduleID != "" {
			return apiError{status: http.StatusConflict, code: 409301, name: "ModuleAlreadyExistsOnDevice",
				message: fmt.Sprintf("module %q already exists on device %q; send If-Match with its etag (or \"*\") to update it", moduleID, deviceID)}
		}
		return apiError{status: http.StatusConflict, code: 409001, name: "DeviceAlreadyExists",
			message: fmt.Sprintf("device %q already exists; send If-Match with its etag (or \"*\") to update it", deviceID)}
	case errors.Is(err, ErrPreconditionFailed):
		return apiError{status: http.StatusPreconditionFailed, code: 412001, name: "PreconditionFailed", message: err.Error()}
	case errors.Is(err, ErrInvalid):
		return argumentInvalid(err.Error())
	case errors.Is(err, ErrTooLarge):
		return apiError{status: http.StatusRequestEntityTooLarge, code: 413001, name: "MessageTooLarge", message: err.Error()}
	case errors.Is(err, ErrQueueFull):
		return apiError{status: http.StatusForbidden, code: 403004, name: "DeviceMaximumQueueDepthExceeded", message: err.Error()}
	case errors.Is(err, ErrThrottled):
		return apiError{status: http.StatusTooManyRequests, code: 429001, name: "ThrottlingException", message: err.Error()}
	case errors.Is(err, ErrDeviceNotOnline):
		return apiError{status: http.StatusNotFound, code: 404103, name: "DeviceNotOnline", message: "Timed out waiting for device to connect."}
	case errors.Is(err, ErrTimeout):
		return apiError{status: http.StatusGatewayTimeout, code: 504101, name: "GatewayTimeout", message: "Timed out waiting for the response from device."}
	}
	return err
}

func argumentInvalid(msg string) apiError {
	return apiError{status: http.StatusBadRequest, code: 400004, name: "ArgumentInvalid", message: msg}
}
