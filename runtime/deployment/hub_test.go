package deployment

import (
	"reflect"
	"strings"
	"testing"
)

func baseHub(schema string) map[string]any {
	return map[string]any{
		"schemaVersion": schema,
		"routes": map[string]any{
			"r1": "FROM /messages/modules/tempSensor/outputs/temperatureOutput INTO $upstream",
		},
		"storeAndForwardConfiguration": map[string]any{"timeToLiveSecs": 7200},
	}
}

func TestParseHub_Valid(t *testing.T) {
	doc := baseHub("1.1")
	doc["$version"] = 3
	set(doc, "routes.r2", map[string]any{
		"route":          "FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO $upstream",
		"priority":       0,
		"timeToLiveSecs": 86400,
	})
	set(doc, "storeAndForwardConfiguration.storeLimits.maxSizeBytes", 1<<20)
	c, err := ParseHub(mustJSON(t, doc))
	if err != nil {
		t.Fatal(err)
	}
	want := &HubConfig{
		SchemaVersion: "1.1",
		Version:       3,
		Routes: map[string]Route{
			"r1": {Name: "r1", Expr: "FROM /messages/modules/tempSensor/outputs/temperatureOutput INTO $upstream", Priority: DefaultPriority},
			"r2": {Name: "r2", Expr: "FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO $upstream", Priority: 0, TimeToLiveSecs: 86400},
		},
		StoreAndForward: StoreAndForward{TimeToLiveSecs: 7200, MaxSizeBytes: 1 << 20},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got\n%+v\nwant\n%+v", c, want)
	}
}

// TestParseHub_Rules has one row per rule of A.3; the hub reports only 400.
func TestParseHub_Rules(t *testing.T) {
	tests := []struct {
		name   string
		schema string // base document schema; "1.1" when empty
		raw    string
		mutate func(map[string]any)
		field  string // "-" means success
		reason string
		check  func(*testing.T, *HubConfig)
	}{
		{name: "not JSON", raw: `{"schemaVersion"`, field: ""},
		{name: "not an object", raw: `"1.1"`, field: ""},
		{name: "empty object", raw: `{}`, field: "schemaVersion", reason: "required"},
		{name: "$version wrong type", mutate: func(d map[string]any) { d["$version"] = true }, field: "$version"},
		{name: "schemaVersion missing", mutate: func(d map[string]any) { delete(d, "schemaVersion") }, field: "schemaVersion"},
		{name: "schemaVersion bare major", mutate: func(d map[string]any) { d["schemaVersion"] = "1" }, field: "schemaVersion"},
		{name: "schemaVersion number", mutate: func(d map[string]any) { d["schemaVersion"] = 1.1 }, field: "schemaVersion"},
		{name: "schemaVersion major 2", mutate: func(d map[string]any) { d["schemaVersion"] = "2.0" }, field: "schemaVersion", reason: "unsupported"},
		{name: "schemaVersion minor 4", mutate: func(d map[string]any) { d["schemaVersion"] = "1.4" }, field: "schemaVersion"},
		{name: "schemaVersion 1.2 accepted", mutate: func(d map[string]any) {
			d["schemaVersion"] = "1.2"
			d["mqttBroker"] = map[string]any{"authorizations": []any{}}
		}, field: "-"},
		{name: "schemaVersion 1.3 accepted", mutate: func(d map[string]any) { d["schemaVersion"] = "1.3"; d["integrity"] = map[string]any{} }, field: "-"},
		{name: "schemaVersion 1.1.0 accepted", mutate: func(d map[string]any) { d["schemaVersion"] = "1.1.0" }, field: "-"},

		// Schema 1.0.
		{name: "1.0 route object rejected", schema: "1.0", mutate: func(d map[string]any) { set(d, "routes.r2", map[string]any{"route": "FROM /* INTO $upstream"}) }, field: "routes.r2", reason: "schema 1.0"},
		{name: "1.0 route number rejected", schema: "1.0", mutate: func(d map[string]any) { set(d, "routes.r2", 5) }, field: "routes.r2"},
		{name: "1.0 blank and null routes skipped", schema: "1.0", mutate: func(d map[string]any) {
			set(d, "routes.blank", " ")
			set(d, "routes.none", nil)
		}, field: "-", check: func(t *testing.T, c *HubConfig) {
			if len(c.Routes) != 1 {
				t.Errorf("routes %v", c.Routes)
			}
		}},
		{name: "1.0 routes and store-and-forward optional", schema: "1.0", mutate: func(d map[string]any) {
			delete(d, "routes")
			delete(d, "storeAndForwardConfiguration")
		}, field: "-", check: func(t *testing.T, c *HubConfig) {
			if len(c.Routes) != 0 || c.StoreAndForward.TimeToLiveSecs != DefaultTimeToLiveSecs {
				t.Errorf("defaults: %+v", c)
			}
		}},
		{name: "1.0 routes not object", schema: "1.0", mutate: func(d map[string]any) { d["routes"] = []any{"FROM /* INTO $upstream"} }, field: "routes"},

		// Schema 1.1+.
		{name: "routes required", mutate: func(d map[string]any) { delete(d, "routes") }, field: "routes", reason: "required"},
		{name: "routes null", mutate: func(d map[string]any) { d["routes"] = nil }, field: "routes", reason: "required"},
		{name: "routes may be empty", mutate: func(d map[string]any) { d["routes"] = map[string]any{} }, field: "-"},
		{name: "store-and-forward required", mutate: func(d map[string]any) { delete(d, "storeAndForwardConfiguration") }, field: "storeAndForwardConfiguration"},
		{name: "store-and-forward null", mutate: func(d map[string]any) { d["storeAndForwardConfiguration"] = nil }, field: "storeAndForwardConfiguration"},
		{name: "route string blank", mutate: func(d map[string]any) { set(d, "routes.r1", "  ") }, field: "routes.r1"},
		{name: "route value array", mutate: func(d map[string]any) { set(d, "routes.r1", []any{}) }, field: "routes.r1", reason: "a string or an object"},
		{name: "route value null", mutate: func(d map[string]any) { set(d, "routes.r1", nil) }, field: "routes.r1"},
		{name: "route name empty", mutate: func(d map[string]any) { set(d, "routes", map[string]any{"": "FROM /* INTO $upstream"}) }, field: `routes[""]`},
		{name: "route object without route", mutate: func(d map[string]any) { set(d, "routes.r2", map[string]any{"priority": 1}) }, field: "routes.r2.route"},
		{name: "route object blank route", mutate: func(d map[string]any) { set(d, "routes.r2", map[string]any{"route": " "}) }, field: "routes.r2.route"},
		{name: "route object route number", mutate: func(d map[string]any) { set(d, "routes.r2", map[string]any{"route": 1}) }, field: "routes.r2.route"},
		{name: "priority above 9", mutate: func(d map[string]any) {
			set(d, "routes.r2", map[string]any{"route": "FROM /* INTO $upstream", "priority": 10})
		}, field: "routes.r2.priority"},
		{name: "priority negative", mutate: func(d map[string]any) {
			set(d, "routes.r2", map[string]any{"route": "FROM /* INTO $upstream", "priority": -1})
		}, field: "routes.r2.priority"},
		{name: "priority string", mutate: func(d map[string]any) {
			set(d, "routes.r2", map[string]any{"route": "FROM /* INTO $upstream", "priority": "1"})
		}, field: "routes.r2.priority"},
		{name: "priority omitted", mutate: func(d map[string]any) { set(d, "routes.r2", map[string]any{"route": "FROM /* INTO $upstream"}) }, field: "-",
			check: func(t *testing.T, c *HubConfig) {
				if r := c.Routes["r2"]; r.Priority != DefaultPriority || r.TimeToLiveSecs != 0 {
					t.Errorf("defaults: %+v", r)
				}
			}},
		{name: "route TTL negative", mutate: func(d map[string]any) {
			set(d, "routes.r2", map[string]any{"route": "FROM /* INTO $upstream", "timeToLiveSecs": -1})
		}, field: "routes.r2.timeToLiveSecs"},
		{name: "route TTL above uint32", mutate: func(d map[string]any) {
			set(d, "routes.r2", map[string]any{"route": "FROM /* INTO $upstream", "timeToLiveSecs": 1 << 32})
		}, field: "routes.r2.timeToLiveSecs"},
		{name: "global TTL negative means infinite", mutate: func(d map[string]any) { set(d, "storeAndForwardConfiguration.timeToLiveSecs", -1) }, field: "-",
			check: func(t *testing.T, c *HubConfig) {
				if c.StoreAndForward.TimeToLiveSecs != -1 {
					t.Errorf("ttl %d", c.StoreAndForward.TimeToLiveSecs)
				}
			}},
		{name: "global TTL above int32", mutate: func(d map[string]any) { set(d, "storeAndForwardConfiguration.timeToLiveSecs", 1<<31) }, field: "storeAndForwardConfiguration.timeToLiveSecs"},
		{name: "global TTL string", mutate: func(d map[string]any) { set(d, "storeAndForwardConfiguration.timeToLiveSecs", "7200") }, field: "storeAndForwardConfiguration.timeToLiveSecs"},
		{name: "maxSizeBytes negative", mutate: func(d map[string]any) { set(d, "storeAndForwardConfiguration.storeLimits.maxSizeBytes", -1) }, field: "storeAndForwardConfiguration.storeLimits.maxSizeBytes"},
		{name: "storeLimits not object", mutate: func(d map[string]any) { set(d, "storeAndForwardConfiguration.storeLimits", 5) }, field: "storeAndForwardConfiguration.storeLimits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := []byte(tt.raw)
			if tt.raw == "" {
				schema := tt.schema
				if schema == "" {
					schema = "1.1"
				}
				doc := baseHub(schema)
				if tt.mutate != nil {
					tt.mutate(doc)
				}
				input = mustJSON(t, doc)
			}
			c, err := ParseHub(input)
			if tt.field == "-" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if tt.check != nil {
					tt.check(t, c)
				}
				return
			}
			e := wantError(t, err, CodeInvalid, tt.field)
			if !strings.Contains(e.Reason, tt.reason) {
				t.Errorf("reason %q does not contain %q", e.Reason, tt.reason)
			}
		})
	}
}

// TestParseHub_ObjectFormWins: when a name is given as both a string and an
// object, the object is used, whichever comes first (Route_priority_and_TTL.md).
func TestParseHub_ObjectFormWins(t *testing.T) {
	for _, in := range []string{
		`{"schemaVersion":"1.1","storeAndForwardConfiguration":{},"routes":{"r":"FROM /a INTO $upstream","r":{"route":"FROM /b INTO $upstream","priority":3}}}`,
		`{"schemaVersion":"1.1","storeAndForwardConfiguration":{},"routes":{"r":{"route":"FROM /b INTO $upstream","priority":3},"r":"FROM /a INTO $upstream"}}`,
	} {
		c, err := ParseHub([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if r := c.Routes["r"]; r.Expr != "FROM /b INTO $upstream" || r.Priority != 3 {
			t.Errorf("%s: got %+v, want the object form", in, r)
		}
	}
}

func TestParseHub_RoutePriorityExample(t *testing.T) {
	c, err := ParseHub(readFile(t, "testdata/hub/route-priority-ttl.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Route{
		"secCamAlerts":   {Name: "secCamAlerts", Expr: "FROM /messages/modules/SecCamMod/outputs/P0_Alerts INTO $upstream", Priority: 0, TimeToLiveSecs: 86400},
		"floorCamAlerts": {Name: "floorCamAlerts", Expr: "FROM /messages/modules/FloorCamMod/outputs/P0_Alerts INTO $upstream", Priority: 0, TimeToLiveSecs: 86400},
		"secCamData":     {Name: "secCamData", Expr: "FROM /messages/modules/SecCamMod/outputs/P1_Data INTO $upstream", Priority: 1, TimeToLiveSecs: 1800},
		"upstream":       {Name: "upstream", Expr: "FROM /messages/* INTO $upstream", Priority: DefaultPriority},
	}
	if c.SchemaVersion != "1.1.0" || !reflect.DeepEqual(c.Routes, want) || c.StoreAndForward.TimeToLiveSecs != 7200 {
		t.Errorf("got %+v", c)
	}
}
