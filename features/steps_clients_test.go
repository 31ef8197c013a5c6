package features

import (
	"context"
	"errors"
	"fmt"

	"github.com/cucumber/godog"

	"github.com/outpost-edge/outpost/runtime/moduleclient"
)

// nameList matches a step's list of quoted names: `"a"`, `"a" and "b"`,
// `"a", "b" and "c"`.
const nameList = `((?:"[^"]+"(?:, | and )?)+)`

// registerClientSteps: modules and leaf devices, their identities and
// connections to the edge hub.
func registerClientSteps(sc *godog.ScenarioContext, w *world) {
	sc.Step(`^modules? `+nameList+` (?:is|are) connected to edgeHub$`, w.modulesConnected)
	sc.Step(`^leaf devices? `+nameList+` (?:is|are) connected to edgeHub$`, w.leavesConnected)
	sc.Step(`^modules? `+nameList+` and leaf devices? `+nameList+` are connected to edgeHub$`, w.modulesAndLeavesConnected)
	sc.Step(`^IoT Hub has module identit(?:y|ies) `+nameList+` of the edge device$`, w.moduleIdentities)
	sc.Step(`^IoT Hub has leaf devices? `+nameList+`, (?:a child|children) of the edge device$`, w.leafIdentities)
	sc.Step(`^"([^"]*)" has connected to edgeHub once, and disconnected$`, w.connectedOnce)
	sc.Step(`^"([^"]*)" can connect to edgeHub$`, w.canConnect)
	sc.Step(`^"([^"]*)" is refused by edgeHub as not authorized$`, w.refused)
}

func (w *world) addAll(ctx context.Context, list string, module bool) ([]*localClient, error) {
	names, err := quotedNames(list)
	if err != nil {
		return nil, err
	}
	var out []*localClient
	for _, n := range names {
		c, err := w.addIdentity(ctx, n, module)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (w *world) connectAll(ctx context.Context, list string, module bool) error {
	cs, err := w.addAll(ctx, list, module)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if err := w.connect(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

func (w *world) modulesConnected(ctx context.Context, list string) error {
	return w.connectAll(ctx, list, true)
}

func (w *world) leavesConnected(ctx context.Context, list string) error {
	return w.connectAll(ctx, list, false)
}

func (w *world) modulesAndLeavesConnected(ctx context.Context, modules, leaves string) error {
	if err := w.connectAll(ctx, modules, true); err != nil {
		return err
	}
	return w.connectAll(ctx, leaves, false)
}

func (w *world) moduleIdentities(ctx context.Context, list string) error {
	_, err := w.addAll(ctx, list, true)
	return err
}

func (w *world) leafIdentities(ctx context.Context, list string) error {
	_, err := w.addAll(ctx, list, false)
	return err
}

// connectedOnce connects the client and closes its connection: the edge
// hub has met it (and had IoT Hub vouch for it) once.
func (w *world) connectedOnce(ctx context.Context, name string) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	if err := w.connect(ctx, c); err != nil {
		return err
	}
	c.disconnect()
	return nil
}

func (w *world) canConnect(ctx context.Context, name string) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	return w.connect(ctx, c)
}

// refused checks that a connection attempt with the client's own
// credentials is refused with CONNACK "not authorized".
func (w *world) refused(ctx context.Context, name string) error {
	c, err := w.client(name)
	if err != nil {
		return err
	}
	if c.c != nil {
		c.disconnect()
	}
	err = w.connect(ctx, c)
	if err == nil {
		return fmt.Errorf("edgeHub accepted %s", c.kind())
	}
	if !errors.Is(err, moduleclient.ErrNotAuthorized) {
		return fmt.Errorf("want a refusal as not authorized, got: %w", err)
	}
	return nil
}
