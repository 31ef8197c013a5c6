package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/outpost-edge/outpost/runtime/moduleclient"
)

// The checks that need the network. Both use the agent's CA (or --ca-file)
// and a short timeout, so that an offline device gets its answer quickly.

// caFile is the CA to trust for the hub: --ca-file, else the agent's.
func (c *checker) caFile() string {
	if c.opts.caFile != "" {
		return c.opts.caFile
	}
	return c.config.CAFile
}

// tlsConfig trusts caFile (system roots when empty) for serverName.
func (c *checker) tlsConfig(serverName string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if f := c.caFile(); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate in it", f)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// hubAddress is where the agent connects: the parent edge device on a
// nested edge, else the hub, at the agent's MQTT port.
func (c *checker) hubAddress() (host, addr string) {
	host = c.device.HostName
	if c.config.ParentHostName != "" {
		host = c.config.ParentHostName
	}
	port := c.config.MQTTPort
	if port == 0 {
		port = moduleclient.DefaultPort
	}
	return host, net.JoinHostPort(host, strconv.Itoa(port))
}

// dialHub opens a TCP connection to addr and completes a TLS handshake.
func dialHub(ctx context.Context, addr string, c *checker) error {
	host, _, _ := net.SplitHostPort(addr)
	cfg, err := c.tlsConfig(host)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.timeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

func checkHub(ctx context.Context, c *checker) outcome {
	if _, err := c.tlsConfig(""); err != nil {
		return failure(err.Error(), "fix --ca-file: it must be a PEM file of the CA that signed the hub's certificate")
	}
	_, addr := c.hubAddress()
	if err := c.dialHub(ctx, addr, c); err != nil {
		return classifyHubError(addr, err)
	}
	return ok("TLS handshake with %s succeeded", addr)
}

// hubHTTPClient is the client for the hub's HTTPS endpoint.
func hubHTTPClient(c *checker) (*http.Client, error) {
	cfg, err := c.tlsConfig("")
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	tr.Proxy = nil
	return &http.Client{Transport: tr, Timeout: c.opts.timeout}, nil
}

// serviceURL is the hub's HTTPS endpoint: the agent's --service-url, else
// https://HostName.
func (c *checker) serviceURL() string {
	if c.config.ServiceURL != "" {
		return c.config.ServiceURL
	}
	return "https://" + c.device.HostName
}

func checkClock(ctx context.Context, c *checker) outcome {
	client, err := c.httpClient(c)
	if err != nil {
		return failure(err.Error(), "fix --ca-file")
	}
	u := c.serviceURL()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u+"/", nil)
	if err != nil {
		return failure(fmt.Sprintf("service URL %q: %v", u, err), "fix edgeagent --service-url")
	}
	t0 := c.now()
	resp, err := client.Do(req)
	t1 := c.now()
	if err != nil {
		return warning(fmt.Sprintf("cannot read the hub's clock from %s: %v", u, err),
			"the MQTT port answers but the HTTPS endpoint does not: the agent needs it to create module identities; check that outbound TCP 443 (or the --service-url port) is open")
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return warning(fmt.Sprintf("%s answered without a usable Date header", u), "nothing to do unless the device fails to connect: check its clock by other means (timedatectl)")
	}
	// Date has whole seconds: its middle is the best guess.
	remote := date.Add(500 * time.Millisecond)
	local := t0.Add(t1.Sub(t0) / 2)
	return evalClockSkew(remote.Sub(local))
}
