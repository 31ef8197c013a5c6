// Package deployment parses and validates Azure IoT Edge deployment
// manifests: the desired properties of the $edgeAgent and $edgeHub module
// twins, and the modulesContent document that carries them.
//
// # Basics
//
// ParseAgent and ParseHub read one twin's "properties.desired" object;
// ParseManifest reads a whole {"modulesContent": …} document (also the az CLI
// layout {"content": {"modulesContent": …}}). Every rejection is an *Error
// holding the lastDesiredStatus code the agent reports (400, 412, 417) and the
// JSON path of the offending field; StatusCode and Description turn any error,
// including plan failures from elsewhere, into the reported {code,
// description}. Defaults follow Azure's code, not its JSON schema: a module
// without restartPolicy gets "on-unhealthy", edgeHub gets "always", and
// edgeAgent always runs first with restart policy "always".
//
// createOptions longer than a twin value (512 characters) travel as
// "createOptions", "createOptions01" … "createOptions99"; ParseAgent joins
// them and ChunkCreateOptions splits them again for reported properties.
//
// # Caveats: where this package deliberately differs from Azure
//
//   - schemaVersion is checked before the rest of $edgeAgent, so a document
//     of a newer schema gets 412 rather than a 400 about a field it does not
//     understand. A schemaVersion written as a JSON number is rejected, not
//     coerced.
//   - createOptions chunk numbers must be exactly two digits (01..99), and
//     only keys that are exactly createOptions[NN] count; Azure's unanchored
//     pattern and int parsing accept more.
//   - Enum values (status, restartPolicy, imagePullPolicy) match
//     case-insensitively, like Newtonsoft, but their integer forms are
//     rejected. Boolean env values become "true"/"false".
//   - runtime.settings.minDockerVersion is optional.
//   - Module names are checked as IoT Hub module identities, and a user
//     module may not be called edgeAgent or edgeHub.
//   - In $edgeHub, a storeAndForwardConfiguration without timeToLiveSecs
//     means 7200 seconds (Azure would read 0), and route names must be
//     non-empty in every schema version.
//
// Reasons never quote registry passwords; use AgentConfig.Redacted for
// reported properties and AgentConfig.RedactText for foreign error text.
package deployment
