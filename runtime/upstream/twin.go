package upstream

import (
	"context"
	"fmt"
	"net/http"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// GetTwin fetches the twin of id and returns IoT Hub's device-facing document,
// {"desired":{...,"$version":n},"reported":{...,"$version":m}}, as the hub hands it to its
// client. id need not be attached. A status other than 200 is a *StatusError (ErrNotFound,
// ErrOutOfScope, ErrThrottled match it).
func (c *Client) GetTwin(ctx context.Context, id sas.Identity) ([]byte, error) {
	if err := checkID(id); err != nil {
		return nil, fmt.Errorf("get twin of %q: %w", id, err)
	}
	a, err := c.request(ctx, iothub.OBOTwinGet, id, nil)
	if err != nil {
		return nil, fmt.Errorf("get twin of %q: %w", id, err)
	}
	if a.status != http.StatusOK {
		return nil, fmt.Errorf("get twin of %q: %w", id, &StatusError{Status: a.status, Body: a.body})
	}
	return a.body, nil
}

// UpdateReported applies a reported-properties patch (a JSON object; null deletes) to the
// twin of id and returns the new reported version IoT Hub answered with (0 if it sent none).
// A status other than 2xx is a *StatusError: 400 for a patch IoT Hub refuses (malformed,
// over a twin limit), which retrying cannot fix (StatusError.Retryable is false).
func (c *Client) UpdateReported(ctx context.Context, id sas.Identity, patch []byte) (int64, error) {
	if err := checkID(id); err != nil {
		return 0, fmt.Errorf("update reported properties of %q: %w", id, err)
	}
	a, err := c.request(ctx, iothub.OBOTwinPatchReported, id, patch)
	if err != nil {
		return 0, fmt.Errorf("update reported properties of %q: %w", id, err)
	}
	if a.status < 200 || a.status > 299 {
		return 0, fmt.Errorf("update reported properties of %q: %w", id, &StatusError{Status: a.status, Body: a.body})
	}
	return a.version, nil
}

// RespondMethod answers the direct method request rid that OnMethod delivered for id:
// status is the method's result code (any integer, 200 by convention), payload its JSON
// result (empty means null). It returns once IoT Hub acknowledged the answer. An answer
// after the caller's timeout is accepted and dropped by IoT Hub.
func (c *Client) RespondMethod(ctx context.Context, id sas.Identity, rid string, status int, payload []byte) error {
	if err := checkID(id); err != nil {
		return fmt.Errorf("respond to method %q of %q: %w", rid, id, err)
	}
	if err := iothub.ValidateRequestID(rid); err != nil {
		return fmt.Errorf("respond to method of %q: %w: %w", id, ErrInvalidArgument, err)
	}
	if len(payload) > iothub.MaxMethodPayloadSize {
		return fmt.Errorf("respond to method %q of %q: %w: %d bytes, over %d", rid, id, ErrTooLarge, len(payload), iothub.MaxMethodPayloadSize)
	}
	cn, err := c.acquire(ctx)
	if err != nil {
		return fmt.Errorf("respond to method %q of %q: %w", rid, id, err)
	}
	defer cn.inflight.Done()
	t := iothub.OBOTopic{Kind: iothub.OBOMethodResponse, DeviceID: id.DeviceID, ModuleID: id.ModuleID, RequestID: rid, Status: status}
	if err := c.publish(ctx, cn, t.String(), payload); err != nil {
		return fmt.Errorf("respond to method %q of %q: %w", rid, id, err)
	}
	return nil
}
