package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/spf13/cobra"
)

// defaultUnitPath is where install-service writes the systemd unit.
const defaultUnitPath = "/etc/systemd/system/outpost-edge.service"

// unitTemplate is the systemd unit of the agent. KillMode=process: stopping
// or restarting the service stops the agent only; the modules (their
// supervisors run in sessions of their own, but in the unit's control
// group) keep running and the next agent adopts them. Restart=always is
// the watchdog.
var unitTemplate = template.Must(template.New("unit").Parse(`# Outpost edge agent, written by edgectl install-service.
[Unit]
Description=Outpost edge agent
Documentation=https://github.com/outpost-edge/outpost/blob/main/docs/edgectl.md
Wants=network-online.target
After=network-online.target{{if .Docker}} docker.service
Requires=docker.service{{end}}

[Service]
Type=simple
ExecStart={{.ExecStart}}
Restart=always
RestartSec=5
# Stop the agent only: the modules keep running and the next agent adopts them.
KillMode=process
TimeoutStopSec=90
UMask=0077

[Install]
WantedBy=multi-user.target
`))

// unitData fills unitTemplate.
type unitData struct {
	ExecStart string
	Docker    bool
}

// systemdQuote quotes an ExecStart word when it needs it.
func systemdQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"'\\$%;") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `$$`, `%`, `%%`)
	return `"` + r.Replace(s) + `"`
}

// renderUnit is the unit that runs bin with the setup c.
func renderUnit(c edgeConfig, bin string) (string, error) {
	words := []string{bin, "--config", filepath.Join(c.Agent.DataDir, setupFile)}
	for i, w := range words {
		words[i] = systemdQuote(w)
	}
	var sb strings.Builder
	err := unitTemplate.Execute(&sb, unitData{ExecStart: strings.Join(words, " "), Docker: c.Agent.Runtime == runtimeDocker})
	return sb.String(), err
}

// serviceOutput is edgectl install-service's JSON.
type serviceOutput struct {
	Unit      string `json:"unit"`
	ExecStart string `json:"execStart"`
	// DryRun: the unit was not written; Content is what would be.
	DryRun  bool   `json:"dryRun,omitempty"`
	Content string `json:"content,omitempty"`
}

func newInstallServiceCmd(a *app) *cobra.Command {
	var path, agentBinary string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "install-service",
		Short: "Write a systemd unit that runs the agent and restarts it when it dies",
		Long: `Write a systemd unit that runs the edge agent with the setup of --data-dir
(edgeagent --config <data-dir>/edge.json), for real devices: systemd starts it
at boot and restarts it whenever it dies (Restart=always), and stopping the
service stops the agent only (KillMode=process): the modules keep running and
the next agent adopts them. With the Docker runtime the agent runs on the host
and the unit requires docker.service.

It does not run systemctl. Then:

  systemctl daemon-reload && systemctl enable --now outpost-edge

Use either the service or edgectl start/stop, not both: edgectl start reports an
agent that the service runs as already running.` + "\n" + exitHelp,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := readSetup(a.dataDir)
			if err != nil {
				return failed(err)
			}
			bin, err := (&processBackend{a: a, c: c, agentBinary: agentBinary}).binary()
			if err != nil {
				return failed(err)
			}
			unit, err := renderUnit(c, bin)
			if err != nil {
				return failed(err)
			}
			if dryRun {
				if a.json() {
					return a.printJSON(serviceOutput{Unit: path, ExecStart: bin, DryRun: true, Content: unit})
				}
				fmt.Fprint(a.Stdout, unit)
				return nil
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return failed(err)
			}
			if err := writeFileAtomic(path, []byte(unit), 0o644); err != nil {
				return failed(err)
			}
			name := strings.TrimSuffix(filepath.Base(path), ".service")
			if a.json() {
				return a.printJSON(serviceOutput{Unit: path, ExecStart: bin})
			}
			fmt.Fprintf(a.Stdout, "Wrote %s.\nEnable and start it with: systemctl daemon-reload && systemctl enable --now %s\n", path, name)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&path, "path", defaultUnitPath, "where to write the unit")
	fl.StringVar(&agentBinary, "agent-binary", "", "the edgeagent executable (default: the setup's, next to edgectl, else on PATH)")
	fl.BoolVar(&dryRun, "dry-run", false, "print the unit instead of writing it")
	return cmd
}
