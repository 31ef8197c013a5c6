package features

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cucumber/godog"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/runtime/moduleclient"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// registerAuthSteps: who may connect to edgeHub, and what a connected
// client may do.
func registerAuthSteps(sc *godog.ScenarioContext, w *world) {
	sc.Step(`^IoT Hub has device "([^"]*)", which is not a child of the edge device$`, w.strangerIdentity)
	sc.Step(`^edgeHub refuses these connections as not authorized:$`, w.refusesTable)
	sc.Step(`^IoT Hub disables leaf device "([^"]*)"$`, w.disableDevice)
	sc.Step(`^edgeHub disconnects "([^"]*)"$`, w.hubDisconnects)
	sc.Step(`^"([^"]*)" connects to edgeHub with a plain MQTT client$`, w.rawConnect)
	sc.Step(`^"([^"]*)" subscribes to the inputs of "([^"]*)"$`, w.rawSubscribeOther)
	sc.Step(`^edgeHub refuses that subscription and keeps the connection$`, w.subscriptionRefused)
	sc.Step(`^"([^"]*)" publishes a message on the telemetry topic of "([^"]*)"$`, w.rawPublishOther)
	sc.Step(`^edgeHub closes the connection of "([^"]*)" without acknowledging the message$`, w.rawClosed)
}

// strangerIdentity creates a device with no parent: the edge device may
// not act for it.
func (w *world) strangerIdentity(ctx context.Context, name string) error {
	if _, ok := w.clients[name]; ok {
		return fmt.Errorf("%q exists already in this scenario", name)
	}
	d, err := w.api.createDevice(ctx, name)
	if err != nil {
		return err
	}
	cs := sas.ConnectionString{HostName: hubHostName, GatewayHostName: gatewayHost, DeviceID: name, SharedAccessKey: d.Authentication.SymmetricKey.PrimaryKey}
	if w.clients == nil {
		w.clients = map[string]*localClient{}
	}
	w.clients[name] = &localClient{name: name, cs: cs, generationID: d.GenerationID, next: 1, desired: map[string]any{}}
	return nil
}

// Values of the "key" column of "edgeHub refuses these connections".
const (
	keyOwn   = "its own"
	keyWrong = "not its own"
)

// refusesTable tries each row's connection once: each must be refused
// with CONNACK "not authorized".
func (w *world) refusesTable(ctx context.Context, table *godog.Table) error {
	rows, err := tableRows(table, "client", "key")
	if err != nil {
		return err
	}
	for _, row := range rows {
		c, err := w.client(row["client"])
		if err != nil {
			return err
		}
		cs := c.cs
		switch row["key"] {
		case keyOwn:
		case keyWrong:
			if cs.SharedAccessKey, err = sas.NewKey(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("key %q: want %q or %q", row["key"], keyOwn, keyWrong)
		}
		mc, err := w.newSDKClient(cs, c.name+" ("+row["key"]+" key)")
		if err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, connectTimeout)
		err = mc.Connect(cctx)
		cancel()
		mc.Close()
		switch {
		case err == nil:
			return fmt.Errorf("edgeHub accepted %s with %s key", c.kind(), row["key"])
		case !errors.Is(err, moduleclient.ErrNotAuthorized):
			return fmt.Errorf("%s with %s key: want a refusal as not authorized, got: %w", c.kind(), row["key"], err)
		}
	}
	return nil
}

func (w *world) disableDevice(ctx context.Context, name string) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	if c.module {
		return fmt.Errorf("%s: IoT Hub disables devices (and with them their modules)", c.kind())
	}
	return w.api.setDeviceStatus(ctx, c.name, "disabled")
}

// hubDisconnects waits until the client lost its connection.
func (w *world) hubDisconnects(ctx context.Context, name string) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	return eventually(ctx, reportTimeout, fmt.Sprintf("edgeHub disconnects %q", name), func(context.Context) error {
		if _, downs := c.connections(); downs == 0 {
			return errors.New("it is still connected")
		}
		return nil
	})
}

// rawClient is a plain MQTT client (paho) with a client's own credentials,
// for what the device SDK would never send.
type rawClient struct {
	mqtt.Client
	lost      atomic.Bool
	subResult map[string]byte
	pub       mqtt.Token
}

// rawConnect connects a plain MQTT 3.1.1 client as the module, exactly as
// the SDKs do: client id, IoT Hub user name, SAS token.
func (w *world) rawConnect(ctx context.Context, name string) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	h, err := w.hubSettings()
	if err != nil {
		return err
	}
	pem, err := os.ReadFile(h.caFile())
	if err != nil {
		return fmt.Errorf("the edge CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tok, err := c.cs.Token(time.Now(), time.Hour)
	if err != nil {
		return err
	}
	id := c.identity()
	rc := &rawClient{}
	opts := mqtt.NewClientOptions().
		AddBroker("tls://127.0.0.1:" + strconv.Itoa(h.tlsPort)).
		SetClientID(id).
		SetUsername(hubHostName + "/" + id + "/?api-version=2021-04-12").
		SetPassword(tok).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetTLSConfig(&tls.Config{RootCAs: pool, ServerName: gatewayHost, MinVersion: tls.VersionTLS12}).
		SetConnectionLostHandler(func(mqtt.Client, error) { rc.lost.Store(true) })
	rc.Client = mqtt.NewClient(opts)
	t := rc.Connect()
	if !t.WaitTimeout(connectTimeout) {
		return fmt.Errorf("%s: no CONNACK within %s", c.kind(), connectTimeout)
	}
	if err := t.Error(); err != nil {
		return fmt.Errorf("%s connecting with a plain MQTT client: %w", c.kind(), err)
	}
	if w.rawClients == nil {
		w.rawClients = map[string]*rawClient{}
	}
	w.rawClients[name] = rc
	return nil
}

func (w *world) raw(name string) (*rawClient, error) {
	rc, ok := w.rawClients[name]
	if !ok {
		return nil, fmt.Errorf("%q has no plain MQTT client connected", name)
	}
	return rc, nil
}

// inputsFilter is the topic filter of a module's inputs.
func inputsFilter(module string) string {
	return "devices/" + edgeDevice + "/modules/" + module + "/inputs/#"
}

func (w *world) rawSubscribeOther(name, other string) error {
	rc, err := w.raw(name)
	if err != nil {
		return err
	}
	t := rc.Subscribe(inputsFilter(other), 1, func(mqtt.Client, mqtt.Message) {})
	if !t.WaitTimeout(connectTimeout) {
		return fmt.Errorf("no SUBACK within %s", connectTimeout)
	}
	if err := t.Error(); err != nil {
		return fmt.Errorf("subscribing: %w", err)
	}
	rc.subResult = t.(*mqtt.SubscribeToken).Result()
	w.lastSub = name
	return nil
}

// subscriptionRefused checks the SUBACK of the last subscription: the
// failure code 0x80 for its filter, and the connection still open, as IoT
// Hub does.
func (w *world) subscriptionRefused(ctx context.Context) error {
	rc, err := w.raw(w.lastSub)
	if err != nil {
		return err
	}
	if len(rc.subResult) == 0 {
		return fmt.Errorf("%q has no SUBACK", w.lastSub)
	}
	for filter, code := range rc.subResult {
		if code != 0x80 {
			return fmt.Errorf("edgeHub granted %q the subscription %q (SUBACK code %#x)", w.lastSub, filter, code)
		}
	}
	return consistently(ctx, quietPeriod, "the connection stays open", func(context.Context) error {
		if rc.lost.Load() || !rc.IsConnectionOpen() {
			return fmt.Errorf("edgeHub closed the connection of %q", w.lastSub)
		}
		return nil
	})
}

// forgedSeq marks the message published on another identity's topic: a
// sequence number its owner never uses.
const forgedSeq = 999

func (w *world) rawPublishOther(name, other string) error {
	rc, err := w.raw(name)
	if err != nil {
		return err
	}
	topic := "devices/" + edgeDevice + "/modules/" + other + "/messages/events/" + propSeq + "=" + strconv.Itoa(forgedSeq) + "&forged=true"
	rc.pub = rc.Publish(topic, 1, false, []byte(`{"forged":true}`))
	return nil
}

// rawClosed waits until the connection is gone and checks that the publish
// was never acknowledged.
func (w *world) rawClosed(ctx context.Context, name string) error {
	rc, err := w.raw(name)
	if err != nil {
		return err
	}
	err = eventually(ctx, reportTimeout, fmt.Sprintf("edgeHub closes the connection of %q", name), func(context.Context) error {
		if !rc.lost.Load() {
			return errors.New("it is still open")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if rc.pub != nil && rc.pub.WaitTimeout(0) && rc.pub.Error() == nil {
		return errors.New("edgeHub acknowledged the message published on another identity's topic")
	}
	return nil
}
