package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/cmd/internal/modulemain"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// otherModule is the identity whose topic the identity fault publishes on.
const otherModule = "someone-else"

// faultTimeout bounds the identity fault's connection and publish.
const faultTimeout = 10 * time.Second

// publishAsAnother is the identity fault: with the module's own credentials, it connects
// and publishes a telemetry message on another module's topic. An edge hub that enforces
// identities refuses it and closes the connection; the module then goes on normally.
func publishAsAnother(getenv func(string) string, log *slog.Logger) error {
	cs, err := sas.ParseConnectionString(strings.TrimSpace(getenv(moduleclient.EnvEdgeHubConnectionString)))
	if err != nil {
		return err
	}
	tlsCfg := &tls.Config{ServerName: cs.ConnectHost(), MinVersion: tls.VersionTLS12}
	if f := strings.TrimSpace(getenv(moduleclient.EnvCACertificateFile)); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		tlsCfg.RootCAs = x509.NewCertPool()
		if !tlsCfg.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s: no certificate", f)
		}
	}
	port := moduleclient.DefaultPort
	if p := strings.TrimSpace(getenv(modulemain.EnvPort)); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return fmt.Errorf("%s: %w", modulemain.EnvPort, err)
		}
	}
	token, err := cs.Token(time.Now(), time.Hour)
	if err != nil {
		return err
	}
	o := mqtt.NewClientOptions().
		AddBroker("ssl://" + net.JoinHostPort(cs.ConnectHost(), strconv.Itoa(port))).
		SetClientID(iothub.ClientID(cs.DeviceID, cs.ModuleID)).
		SetUsername(iothub.FormatUsername(cs.HostName, cs.DeviceID, cs.ModuleID, nil)).
		SetPassword(token).
		SetProtocolVersion(4).
		SetTLSConfig(tlsCfg).
		SetAutoReconnect(false).
		SetConnectTimeout(faultTimeout)
	pc := mqtt.NewClient(o)
	if tok := pc.Connect(); !tok.WaitTimeout(faultTimeout) || tok.Error() != nil {
		return errors.Join(errors.New("connect"), tok.Error())
	}
	defer pc.Disconnect(0)
	topic := iothub.TelemetryTopic(cs.DeviceID, otherModule, nil)
	tok := pc.Publish(topic, 1, false, []byte(`{"from":"not me"}`))
	tok.WaitTimeout(faultTimeout)
	log.Warn("fault: published on another module's topic", "topic", topic, "result", fmt.Sprint(tok.Error()))
	return nil
}
