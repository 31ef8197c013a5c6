package agent

import "time"

// ManagementSocket is the file name of the management API's unix socket in
// the agent's data directory.
const ManagementSocket = "mgmt.sock"

// ModuleInfo is one module as the management API's GET /modules lists it
// (edgectl list). Times are zero when unknown.
type ModuleInfo struct {
	Name string `json:"name"`
	// RuntimeStatus is the status the agent reports for the module
	// (StatusOf): running, stopped, failed, backoff, downloading...
	RuntimeStatus RuntimeStatus `json:"runtimeStatus"`
	// Description is the short text of edgectl list, from Describe: "Up 3
	// minutes", "Failed (1) 5 seconds ago", "Back-off, restart in 20s"...
	Description string `json:"description"`
	// StatusDescription is the agent's longer reason, as in the reported
	// properties (registry passwords redacted); empty when there is none.
	StatusDescription string `json:"statusDescription,omitempty"`
	// Image is the module's image: as created when the runtime has the
	// module, else as desired.
	Image string `json:"image,omitempty"`
	// ExitCode is the exit code of the last run of an exited module.
	ExitCode *int `json:"exitCode,omitempty"`
	// RestartCount counts the agent's restarts since the history was reset.
	RestartCount int       `json:"restartCount"`
	StartedAt    time.Time `json:"startedAt,omitzero"`
	ExitedAt     time.Time `json:"exitedAt,omitzero"`
	// RestartAt is when a module in back-off will be restarted.
	RestartAt time.Time `json:"restartAt,omitzero"`
	// DownloadProgress is the fraction (0..1) of its image downloaded,
	// while downloading and when the runtime reports sizes.
	DownloadProgress *float64 `json:"downloadProgress,omitempty"`
	// Desired is true for modules of the current deployment; false for
	// modules the runtime still has but the deployment dropped.
	Desired bool `json:"desired"`
}

// AgentStatus is the management API's GET /status (edgectl status).
type AgentStatus struct {
	Version        string    `json:"version,omitempty"`
	Runtime        string    `json:"runtime,omitempty"` // module runtime: process or docker
	DeviceID       string    `json:"deviceId,omitempty"`
	IoTHubHostName string    `json:"iotHubHostName,omitempty"`
	DataDir        string    `json:"dataDir,omitempty"`
	PID            int       `json:"pid"`
	StartedAt      time.Time `json:"startedAt"` // when the management API started
	Hub            HubStatus `json:"hub"`
	// Deployment is what the agent last reported about its deployment.
	Deployment DeploymentStatus `json:"deployment"`
}

// Hub connection states of HubStatus.State.
const (
	HubConnected    = "connected"
	HubDisconnected = "disconnected" // was connected, lost it; reconnecting
	HubConnecting   = "connecting"   // never connected since the agent started
	HubUnknown      = "unknown"      // no agent attached to the management API
)

// HubStatus is the agent's connection to IoT Hub.
type HubStatus struct {
	State string `json:"state"`
	// Since is when State began, when known.
	Since time.Time `json:"since,omitzero"`
	// LastError is the latest connection error (secrets redacted).
	LastError string `json:"lastError,omitempty"`
}

// DeploymentStatus is lastDesiredVersion and lastDesiredStatus as the
// agent last reported them, plus the version of the saved deployment.
type DeploymentStatus struct {
	// DesiredVersion is the $version of the newest desired document the
	// agent has read from its twin; 0 before it read one.
	DesiredVersion int64 `json:"desiredVersion"`
	// SavedVersion is the $version of the deployment the agent runs (saved
	// in its state database); 0 when it has none.
	SavedVersion int64 `json:"savedVersion"`
	// LastDesiredVersion, Code and Description are the reported
	// lastDesiredVersion and lastDesiredStatus; Code 0 before the first
	// reconcile.
	LastDesiredVersion int64  `json:"lastDesiredVersion"`
	Code               int    `json:"code"`
	Description        string `json:"description,omitempty"`
}

// ManagementError is the body of every management API error answer.
type ManagementError struct {
	Message string `json:"message"`
}

// ConfigFile is the file name, in the agent's data directory, of the
// agent's effective configuration (EffectiveConfig as JSON), written by
// cmd/edgeagent at every start so that edgectl config and edgectl check
// can read it while the agent is not running.
const ConfigFile = "config.json"

// EffectiveConfig is the agent's configuration after flags, environment
// variables and defaults, as GET /config answers it and ConfigFile holds
// it. It holds no secret: the connection string stays in its file.
type EffectiveConfig struct {
	ConnectionStringFile string `json:"connectionStringFile"`
	DeviceID             string `json:"deviceId,omitempty"`
	IoTHubHostName       string `json:"iotHubHostName,omitempty"`
	DataDir              string `json:"dataDir"`
	Runtime              string `json:"runtime"`
	ImageDir             string `json:"imageDir,omitempty"`
	GatewayHostName      string `json:"gatewayHostName"`
	ParentHostName       string `json:"parentHostName,omitempty"`
	CAFile               string `json:"caFile,omitempty"`
	ModuleCAFile         string `json:"moduleCaFile,omitempty"`
	ServiceURL           string `json:"serviceUrl"`
	MQTTPort             int    `json:"mqttPort"`
	ReconcilePeriod      string `json:"reconcilePeriod"`
	LogFormat            string `json:"logFormat"`
	LogLevel             string `json:"logLevel"`
	// Version is the agent's version; WrittenAt when the agent started
	// with this configuration.
	Version   string    `json:"version,omitempty"`
	WrittenAt time.Time `json:"writtenAt,omitzero"`
}
