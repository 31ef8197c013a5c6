package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/certs"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// The checks that need nothing but the device.

func checkConfig(ctx context.Context, c *checker) outcome {
	ec, source, err := loadConfigFrom(ctx, c.agent, c.dataDir)
	if err != nil {
		return failure(err.Error(), fmt.Sprintf("pass the agent's data directory with --data-dir, or start the agent once: %s", c.hint))
	}
	c.config, c.configSource = ec, source
	if bad := validateConfig(ec); len(bad) > 0 {
		where := "the running agent's configuration"
		if source == sourceFile {
			where = filepath.Join(c.dataDir, agent.ConfigFile)
		}
		return failure(where+": "+strings.Join(bad, "; "), "fix the agent's flags (or EDGEAGENT_* variables) and restart it; it rewrites config.json at start")
	}
	if source == sourceFile {
		return ok("%s (the agent is not running; configuration of its last start)", filepath.Join(c.dataDir, agent.ConfigFile))
	}
	return ok("read from the running agent")
}

func checkConnectionString(ctx context.Context, c *checker) outcome {
	path := c.opts.csFile
	if path == "" {
		path = c.config.ConnectionStringFile
	}
	if path == "" {
		return skipped("the connection string file is not known (no agent configuration): pass --connection-string-file")
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return failure(fmt.Sprintf("%s does not exist", path),
			"write the edge device's connection string (HostName=...;DeviceId=...;SharedAccessKey=...) into it, or fix edgeagent --connection-string-file")
	case errors.Is(err, os.ErrPermission):
		return failure(fmt.Sprintf("cannot read %s: permission denied", path), "run edgectl as the agent's user, or with sudo")
	case err != nil:
		return failure(fmt.Sprintf("cannot read %s: %v", path, err), "check the file and its disk")
	}
	cs, err := sas.ParseConnectionString(strings.TrimSpace(string(b)))
	if err != nil {
		// The parser's errors never quote keys.
		return failure(fmt.Sprintf("%s: %v", path, err),
			"copy the edge device's connection string again from the hub (az iot hub device-identity connection-string show --device-id ID --hub-name HUB)")
	}
	switch {
	case cs.IsService() || cs.ModuleID != "":
		return failure(fmt.Sprintf("%s holds %s, not an edge device's connection string", path, cs.Redacted()),
			"put the edge device's connection string there (HostName, DeviceId, SharedAccessKey; no ModuleId)")
	case cs.SharedAccessKey == "":
		return failure(fmt.Sprintf("%s: the connection string has no SharedAccessKey; the agent derives every module key from it", path),
			"use the device's symmetric-key connection string")
	}
	if _, err := cs.Token(c.now(), time.Hour); err != nil {
		return failure(fmt.Sprintf("%s: the key cannot sign tokens: %v", path, err), "copy the connection string again: the key must be base64")
	}
	c.device = cs
	if h := c.config.IoTHubHostName; h != "" && !strings.EqualFold(h, cs.HostName) {
		return warning(fmt.Sprintf("device %s on %s, but the agent started with hub %s", cs.DeviceID, cs.HostName, h),
			"restart the agent so that it uses the file's connection string")
	}
	return ok("device %s on %s (%s)", cs.DeviceID, cs.HostName, path)
}

// certFiles lists the certificates to check: the hub CA, the edge CA, the
// edge hub's server certificate next to it (edgehub's layout), and --cert.
func (c *checker) certFiles() []certFile {
	var out []certFile
	ca := c.opts.caFile
	if ca == "" {
		ca = c.config.CAFile
	}
	if ca != "" {
		out = append(out, certFile{"hub CA (--ca-file)", ca})
	}
	if m := c.config.ModuleCAFile; m != "" {
		out = append(out, certFile{"edge CA (--module-ca-file)", m})
		server := filepath.Join(filepath.Dir(m), certs.DefaultCertFile)
		if _, err := os.Stat(server); err == nil {
			out = append(out, certFile{"edge hub server certificate", server})
		}
	}
	for _, f := range c.opts.certFiles {
		out = append(out, certFile{"certificate", f})
	}
	return out
}

func checkCerts(ctx context.Context, c *checker) outcome {
	files := c.certFiles()
	if len(files) == 0 && c.configSource == "" {
		return skipped("the agent's configuration is not known: pass --ca-file or --cert to check certificates")
	}
	if len(files) == 0 {
		return ok("no certificate files configured: the hub is trusted through the system roots")
	}
	now := c.now()
	outs := make([]outcome, 0, len(files))
	for _, f := range files {
		info, err := certs.Inspect(f.path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			outs = append(outs, failure(fmt.Sprintf("%s %s does not exist", f.role, f.path), "restore the file, or fix the flag that names it"))
		case errors.Is(err, os.ErrPermission):
			outs = append(outs, failure(fmt.Sprintf("%s %s: permission denied", f.role, f.path), "run edgectl as the agent's user, or with sudo"))
		case err != nil:
			outs = append(outs, failure(fmt.Sprintf("%s %s: %v", f.role, f.path, err), "replace it with a PEM certificate"))
		default:
			outs = append(outs, evalCert(f, info, now, c.opts.certWarning))
		}
	}
	return worst(outs)
}

func checkStorage(ctx context.Context, c *checker) outcome {
	dir := c.dataDir
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return failure(fmt.Sprintf("the data directory %s does not exist", dir), "check --data-dir; the agent creates it at its first start")
	case err != nil:
		return failure(fmt.Sprintf("the data directory %s: %v", dir, err), "run edgectl as the agent's user, or with sudo")
	case !fi.IsDir():
		return failure(fmt.Sprintf("%s is not a directory", dir), "point --data-dir at the agent's data directory")
	}
	if err := probeWrite(dir); err != nil {
		return failure(fmt.Sprintf("cannot write in %s: %v", dir, err),
			"the agent keeps its state there: fix the owner or mode (chown, chmod 700), free the disk, or remount it read-write; edgectl checks with its own rights, so run it as the agent's user")
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return warning(fmt.Sprintf("%s is writable, but its free space is unknown: %v", dir, err), "check the free space with df")
	}
	return evalFreeSpace(dir, int64(st.Bavail)*int64(st.Bsize), c.minFree)
}

// probeWrite writes, syncs and removes a small file in dir.
func probeWrite(dir string) error {
	f, err := os.CreateTemp(dir, ".edgectl-check-*")
	if err != nil {
		return err
	}
	name := f.Name()
	defer os.Remove(name)
	if _, err := f.Write([]byte("edgectl check\n")); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// dockerSocket is Docker's default address.
const dockerSocket = "unix:///var/run/docker.sock"

func checkDocker(ctx context.Context, c *checker) outcome {
	switch {
	case c.config.Runtime == "":
		return skipped("the agent's runtime is not known")
	case c.config.Runtime != "docker":
		return skipped("the agent uses the %s runtime", c.config.Runtime)
	}
	host := c.opts.dockerHost
	if host == "" {
		host = c.getenv("DOCKER_HOST")
	}
	if host == "" {
		host = dockerSocket
	}
	network, addr, found := strings.Cut(host, "://")
	if !found || (network != "unix" && network != "tcp") {
		return failure(fmt.Sprintf("Docker address %q: want unix:///path or tcp://host:port", host), "fix DOCKER_HOST or --docker-host")
	}
	client := &http.Client{Timeout: c.opts.timeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			d := net.Dialer{Timeout: c.opts.timeout}
			return d.DialContext(ctx, network, addr)
		},
	}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	resp, err := client.Do(req)
	switch {
	case errors.Is(err, os.ErrPermission), errors.Is(err, syscall.EACCES):
		return failure(fmt.Sprintf("permission denied on %s", host), "run the agent (and edgectl) as root or as a member of the docker group")
	case err != nil:
		return failure(fmt.Sprintf("Docker Engine does not answer on %s: %v", host, err),
			"start it (systemctl start docker; scripts/docker-up.sh in a development tree), or fix DOCKER_HOST")
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode != http.StatusOK {
		return failure(fmt.Sprintf("Docker Engine on %s answered /_ping with %s: %s", host, resp.Status, strings.TrimSpace(string(body))), "check the Docker daemon's logs (journalctl -u docker)")
	}
	return ok("Docker Engine answers on %s (API %s)", host, resp.Header.Get("Api-Version"))
}

func checkAgent(ctx context.Context, c *checker) outcome {
	st, err := c.agent.Status(ctx)
	if err != nil {
		var ue *unavailableError
		if errors.As(err, &ue) && ue.state == stateStopped {
			return failure(fmt.Sprintf("the agent does not answer on %s", c.socket), "start it with "+c.hint)
		}
		return failure(err.Error(), "")
	}
	c.status = &st
	return ok("version %s, %s runtime, pid %d, hub %s", orDash(st.Version), orDash(st.Runtime), st.PID, st.Hub.State)
}

func checkDeployment(ctx context.Context, c *checker) outcome {
	d := c.status.Deployment
	switch d.Code {
	case 0:
		return warning("the agent has not reported a deployment status yet", "wait a few seconds and check again")
	case 406:
		return warning("no deployment runs yet (406 "+orDash(d.Description)+"): the agent has none saved and has not read one from its twin",
			"deploy one (edgectl deploy MANIFEST), and see hub-reachable below if the agent cannot reach the hub")
	case 417:
		return warning("no deployment has been set for this device (417)", "deploy a manifest: edgectl deploy MANIFEST --service-connection-string-file FILE")
	case 400, 412:
		return failure(fmt.Sprintf("the latest deployment was rejected (%d): %s; the modules of version %d keep running", d.Code, d.Description, d.LastDesiredVersion),
			"fix the manifest and deploy it again (edgectl deploy validates it before sending)")
	case 500:
		return failure("applying the deployment failed: "+d.Description,
			"see edgectl list and edgectl logs MODULE; the agent retries failed modules with back-off")
	case 200:
	default:
		return warning(fmt.Sprintf("the agent reports status %d: %s", d.Code, d.Description), "see the agent's logs")
	}
	mods, err := c.agent.Modules(ctx)
	if err != nil {
		return warning(fmt.Sprintf("deployment version %d applied, but the modules cannot be listed: %v", d.LastDesiredVersion, err), "run edgectl list")
	}
	var bad []string
	running := 0
	for _, m := range mods {
		switch m.RuntimeStatus {
		case agent.StatusRunning:
			running++
		case agent.StatusFailed, agent.StatusDead, agent.StatusBackoff, agent.StatusUnhealthy:
			bad = append(bad, fmt.Sprintf("%s: %s", m.Name, m.Description))
		}
	}
	if len(bad) > 0 {
		return warning(fmt.Sprintf("deployment version %d applied, but: %s", d.LastDesiredVersion, strings.Join(bad, "; ")),
			"see edgectl logs MODULE; the agent restarts modules by their restartPolicy")
	}
	return ok("deployment version %d applied, %d module(s) running", d.LastDesiredVersion, running)
}
