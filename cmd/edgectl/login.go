package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/outpost-edge/outpost/runtime/agent"
)

// maxPasswordBytes bounds the password read from stdin (registry tokens
// are long, but not that long).
const maxPasswordBytes = 64 << 10

// loginOutput is the JSON of login and logout.
type loginOutput struct {
	Address  string `json:"address"`
	Username string `json:"username,omitempty"`
	File     string `json:"file"`
	// Result is "stored", "replaced" or "removed".
	Result string `json:"result"`
}

func newLoginCmd(a *app) *cobra.Command {
	var address, username string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login --address REGISTRY --username USER --password-stdin",
		Short: "Store a container registry login for the agent's pulls",
		Long: `Store a container registry login on this device, as iotedgectl login did: the
agent uses it to pull images from REGISTRY when the deployment's
registryCredentials have no entry for that registry (the deployment wins for
the same registry). The login is saved in <data-dir>/registries.json (mode
0600) and the running agent uses it from its next pull, without a restart.

The password is read from standard input, never from the command line, and
is never printed or logged:

  echo "$TOKEN" | edgectl login --address myacr.azurecr.io --username myacr --password-stdin` + "\n" + exitHelp,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if address == "" || username == "" {
				return usage(errors.New("--address and --username are required"))
			}
			if !passwordStdin {
				return usage(errors.New("pass the password on standard input with --password-stdin (a password on the command line would show in the process list and the shell history)"))
			}
			password, err := readPassword(a.Stdin)
			if err != nil {
				return failed(err)
			}
			return a.login(agent.RegistryLogin{Address: strings.TrimSpace(address), Username: username, Password: password})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&address, "address", "", "the registry's address (myacr.azurecr.io, localhost:5000)")
	fl.StringVar(&username, "username", "", "the user name")
	fl.BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input (required)")
	return cmd
}

func newLogoutCmd(a *app) *cobra.Command {
	var address string
	cmd := &cobra.Command{
		Use:   "logout --address REGISTRY",
		Short: "Remove a registry login stored by edgectl login",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if address == "" {
				return usage(errors.New("--address is required"))
			}
			return a.logout(address)
		},
	}
	cmd.Flags().StringVar(&address, "address", "", "the registry's address")
	return cmd
}

// readPassword reads the first line of r (a trailing newline is not part
// of the password).
func readPassword(r io.Reader) (string, error) {
	if r == nil {
		return "", errors.New("no password on standard input")
	}
	line, err := bufio.NewReader(io.LimitReader(r, maxPasswordBytes)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from standard input: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return "", errors.New("no password on standard input")
	}
	return password, nil
}

// registriesPath is the logins file of the data directory.
func (a *app) registriesPath() string { return filepath.Join(a.dataDir, agent.RegistriesFile) }

// login stores l, replacing a login for the same registry.
func (a *app) login(l agent.RegistryLogin) error {
	if err := os.MkdirAll(a.dataDir, 0o700); err != nil {
		return failed(fmt.Errorf("data directory: %w", err))
	}
	path := a.registriesPath()
	logins, err := agent.ReadRegistries(path)
	if err != nil {
		return failed(err)
	}
	out := loginOutput{Address: l.Address, Username: l.Username, File: path, Result: "stored"}
	kept := logins[:0]
	for _, old := range logins {
		if agent.SameRegistry(old.Address, l.Address) {
			out.Result = "replaced"
			continue
		}
		kept = append(kept, old)
	}
	if err := agent.WriteRegistries(path, append(kept, l)); err != nil {
		return failed(err)
	}
	if a.json() {
		return a.printJSON(out)
	}
	fmt.Fprintf(a.Stdout, "Login %s for %s as %s in %s.\n", out.Result, l.Address, l.Username, path)
	fmt.Fprintf(a.Stdout, "The agent uses it for pulls from %s that the deployment's registryCredentials do not cover.\n", l.Address)
	return nil
}

// logout removes the login for address.
func (a *app) logout(address string) error {
	path := a.registriesPath()
	logins, err := agent.ReadRegistries(path)
	if err != nil {
		return failed(err)
	}
	kept := logins[:0]
	for _, l := range logins {
		if !agent.SameRegistry(l.Address, address) {
			kept = append(kept, l)
		}
	}
	if len(kept) == len(logins) {
		return failed(fmt.Errorf("no login stored for %s in %s", address, path))
	}
	if err := agent.WriteRegistries(path, kept); err != nil {
		return failed(err)
	}
	if a.json() {
		return a.printJSON(loginOutput{Address: address, File: path, Result: "removed"})
	}
	fmt.Fprintf(a.Stdout, "Login for %s removed from %s.\n", address, path)
	return nil
}

// storedLogins describes the stored logins without their passwords, for
// edgectl config.
func storedLogins(dataDir string) ([]string, error) {
	logins, err := agent.ReadRegistries(filepath.Join(dataDir, agent.RegistriesFile))
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(logins))
	for _, l := range logins {
		out = append(out, fmt.Sprintf("%s (user %s, password ***)", l.Address, l.Username))
	}
	return out, nil
}
