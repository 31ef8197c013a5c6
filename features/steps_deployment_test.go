package features

import (
	"context"
	"fmt"
	"strings"

	"github.com/cucumber/godog"
)

// registerDeploymentSteps: building, applying and changing deployments.
func registerDeploymentSteps(sc *godog.ScenarioContext, w *world) {
	sc.Step(`^a deployment with module "([^"]*)" that ([^,]+)$`, w.withModule)
	sc.Step(`^a deployment with module "([^"]*)" that ([^,]+), with restart policy "([^"]*)"$`, w.withModulePolicy)
	sc.Step(`^a deployment with module "([^"]*)" at version "([^"]*)"$`, w.withModuleVersion)
	sc.Step(`^a deployment with these modules:$`, w.withModules)
	sc.Step(`^the deployment's registry password is wrong$`, w.wrongPassword)
	sc.Step(`^the deployment has no registry credentials$`, w.noCredentials)
	sc.Step(`^the deployment is applied$`, w.apply)
	sc.Step(`^the deployment is changed so that "([^"]*)" runs version "([^"]*)"$`, w.changeVersion)
	sc.Step(`^the deployment is changed so that "([^"]*)" is removed$`, w.changeRemove)
	sc.Step(`^the deployment is changed so that "([^"]*)" has desired status "([^"]*)"$`, w.changeStatus)
	sc.Step(`^a deployment is applied in which module "([^"]*)" has restart policy "([^"]*)"$`, w.applyBadPolicy)
	sc.Step(`^a deployment with schemaVersion "([^"]*)" is applied$`, w.applySchemaVersion)
}

func (w *world) withModule(name, behaviourText string) error {
	b, err := parseBehaviour(behaviourText)
	if err != nil {
		return err
	}
	w.deployment.modules[name] = newModule(name, b)
	return nil
}

func (w *world) withModulePolicy(name, behaviourText, policy string) error {
	if err := w.withModule(name, behaviourText); err != nil {
		return err
	}
	w.deployment.modules[name].restartPolicy = policy
	return nil
}

func (w *world) withModuleVersion(name, version string) error {
	m := newModule(name, behaviour{})
	m.version = version
	w.deployment.modules[name] = m
	return nil
}

// Columns of "a deployment with these modules:"; only "module" is
// required. Empty cells take the default.
const (
	colModule       = "module"         // the module name
	colVersion      = "version"        // default 1.0, also the image tag
	colPolicy       = "restart policy" // default: left out (Azure's default, on-unhealthy)
	colBehaviour    = "behaviour"      // default "keeps running"
	colStartupOrder = "startup order"  // default: left out
	colStatus       = "desired status" // default running
	colImage        = "image"          // "not in the registry" for an image no registry has
)

func (w *world) withModules(table *godog.Table) error {
	if len(table.Rows) < 2 {
		return fmt.Errorf("the modules table needs a header row and at least one module")
	}
	header := table.Rows[0].Cells
	known := map[string]bool{colModule: true, colVersion: true, colPolicy: true, colBehaviour: true, colStartupOrder: true, colStatus: true, colImage: true}
	for _, c := range header {
		if !known[c.Value] {
			return fmt.Errorf("unknown column %q in the modules table; known: module, version, restart policy, behaviour, startup order, desired status, image", c.Value)
		}
	}
	for _, row := range table.Rows[1:] {
		cell := map[string]string{}
		for i, c := range row.Cells {
			cell[header[i].Value] = strings.TrimSpace(c.Value)
		}
		name := cell[colModule]
		if name == "" {
			return fmt.Errorf("a row of the modules table has no module name")
		}
		text := cell[colBehaviour]
		if text == "" {
			text = "keeps running"
		}
		b, err := parseBehaviour(text)
		if err != nil {
			return err
		}
		m := newModule(name, b)
		if v := cell[colVersion]; v != "" {
			m.version = v
		}
		m.restartPolicy = cell[colPolicy]
		if s := cell[colStatus]; s != "" {
			m.status = s
		}
		if s := cell[colStartupOrder]; s != "" {
			if m.startupOrder, err = parseStartupOrder(s); err != nil {
				return err
			}
		}
		switch cell[colImage] {
		case "":
		case "not in the registry":
			m.missingImage = true
		default:
			return fmt.Errorf("image %q: the modules table knows only \"not in the registry\"", cell[colImage])
		}
		w.deployment.modules[name] = m
	}
	return nil
}

func (w *world) wrongPassword() error {
	if len(w.deployment.credentials) == 0 {
		return fmt.Errorf("the deployment has no registry credentials to get wrong")
	}
	for k, c := range w.deployment.credentials {
		c.Password = "wrong-" + randomHex(6)
		w.deployment.credentials[k] = c
	}
	return nil
}

func (w *world) noCredentials() error {
	w.deployment.credentials = nil
	return nil
}

func (w *world) changeVersion(ctx context.Context, name, version string) error {
	return w.change(ctx, func(d *deployment) error {
		m, ok := d.modules[name]
		if !ok {
			return fmt.Errorf("the deployment has no module %q", name)
		}
		m.version = version
		return nil
	})
}

func (w *world) changeRemove(ctx context.Context, name string) error {
	return w.change(ctx, func(d *deployment) error {
		if _, ok := d.modules[name]; !ok {
			return fmt.Errorf("the deployment has no module %q", name)
		}
		delete(d.modules, name)
		return nil
	})
}

func (w *world) changeStatus(ctx context.Context, name, status string) error {
	return w.change(ctx, func(d *deployment) error {
		m, ok := d.modules[name]
		if !ok {
			return fmt.Errorf("the deployment has no module %q", name)
		}
		m.status = status
		return nil
	})
}

// applyBadPolicy applies the current deployment with one module's
// restartPolicy replaced by a value the manifest schema does not allow.
// The world keeps the last good deployment as its deployment.
func (w *world) applyBadPolicy(ctx context.Context, name, policy string) error {
	good := w.deployment
	bad := good.clone()
	m, ok := bad.modules[name]
	if !ok {
		return fmt.Errorf("the deployment has no module %q", name)
	}
	m.restartPolicy = policy
	w.deployment = bad
	defer func() { w.deployment = good }()
	return w.apply(ctx)
}

// applySchemaVersion applies the current deployment under another
// schemaVersion.
func (w *world) applySchemaVersion(ctx context.Context, version string) error {
	good := w.deployment
	bad := good.clone()
	bad.schemaVersion = version
	w.deployment = bad
	defer func() { w.deployment = good }()
	return w.apply(ctx)
}
