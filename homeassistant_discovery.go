package ferrite

import (
	"fmt"
	"hash/fnv"
	"strings"
)

// This file holds what Home Assistant's MQTT discovery needs to know about
// one sensor: its unit and device class (derived from the unit the payload
// carried and the sensor's name), a slug for its ids, and the discovery
// payloads themselves. Everything here is pure; homeassistant.go publishes.

// haClass is how Home Assistant should present a sensor.
type haClass struct {
	Unit        string // unit_of_measurement ("" when none)
	DeviceClass string // "" when the unit implies none
	StateClass  string // measurement, or total_increasing for energy meters
}

// haUnits maps lower-cased units as devices send them (SenML names, Tasmota's
// TempUnit letters, zigbee2mqtt's units, plain words) to the spelling Home
// Assistant validates against each device class.
var haUnits = map[string]string{
	"°c": "°C", "c": "°C", "cel": "°C", "celsius": "°C", "degc": "°C", "℃": "°C",
	"°f": "°F", "f": "°F", "fahrenheit": "°F", "degf": "°F", "℉": "°F",
	"k": "K", "kelvin": "K",
	"%": "%", "%rh": "%", "%el": "%", "percent": "%",
	"pa": "Pa", "hpa": "hPa", "kpa": "kPa", "mbar": "mbar", "bar": "bar", "mmhg": "mmHg", "inhg": "inHg", "psi": "psi",
	"w": "W", "kw": "kW", "wh": "Wh", "kwh": "kWh",
	"va": "VA", "var": "var",
	"v": "V", "mv": "mV", "a": "A", "ma": "mA",
	"lx": "lx", "lux": "lx",
	"ppm": "ppm", "ppb": "ppb",
	"µg/m³": "µg/m³", "ug/m3": "µg/m³", "µg/m3": "µg/m³",
	"\u03bcg/m³": "µg/m³", "\u03bcg/m3": "µg/m³", // Greek mu, as Home Assistant now writes it
	"db": "dB", "dbm": "dBm", "hz": "Hz",
}

// haUnitsExact are units whose case matters (milli and mega): "mwh" could
// be a battery's mWh or a plant's MWh, a factor of 10^9. Matched as sent;
// any other spelling passes through without a device class.
var haUnitsExact = map[string]string{"MWh": "MWh"}

// haUnitClasses are the device classes a unit alone implies.
var haUnitClasses = map[string]string{
	"°C": "temperature", "°F": "temperature", "K": "temperature",
	"Pa": "pressure", "hPa": "pressure", "kPa": "pressure", "mbar": "pressure", "bar": "pressure",
	"mmHg": "pressure", "inHg": "pressure", "psi": "pressure",
	"W": "power", "kW": "power", "Wh": "energy", "kWh": "energy", "MWh": "energy",
	"VA": "apparent_power", "var": "reactive_power",
	"V": "voltage", "mV": "voltage", "A": "current", "mA": "current",
	"lx": "illuminance", "Hz": "frequency",
}

// haNameClasses give a unit-less reading a unit and class when its name
// says what it is and the unit is not in doubt (Tasmota's ENERGY fields,
// zigbee2mqtt exposes without a unit table entry).
var haNameClasses = map[string]haClass{
	"humidity":      {"%", "humidity", "measurement"},
	"battery":       {"%", "battery", "measurement"},
	"power":         {"W", "power", "measurement"},
	"apparentpower": {"VA", "apparent_power", "measurement"},
	"reactivepower": {"var", "reactive_power", "measurement"},
	"factor":        {"", "power_factor", "measurement"},
	"voltage":       {"V", "voltage", "measurement"},
	"current":       {"A", "current", "measurement"},
	"energy":        {"kWh", "energy", "total_increasing"},
	"illuminance":   {"lx", "illuminance", "measurement"},
	"co2":           {"ppm", "carbon_dioxide", "measurement"},
}

// haBinaryNames are zigbee2mqtt fields that carry a boolean (ON/OFF,
// true/false become 1/0).
var haBinaryNames = map[string]bool{
	"occupancy": true, "presence": true, "contact": true, "water_leak": true, "smoke": true,
	"tamper": true, "battery_low": true, "vibration": true, "state": true, "child_lock": true,
}

// classify derives a sensor's Home Assistant unit, device class and state
// class from its id and the unit its readings carried. A device class is
// only set with a unit Home Assistant accepts for it, so the entity never
// fails validation; an unknown unit is passed through without a class.
func classify(sensor, unit string) haClass {
	raw := strings.TrimSpace(unit)
	u, known := haUnitsExact[raw]
	if !known {
		u, known = haUnits[strings.ToLower(raw)]
	}
	if !known {
		u = raw
	}
	name, parent := sensorName(sensor)
	c := haClass{Unit: u, StateClass: "measurement"}
	switch {
	case haBinaryNames[name]:
		// A 0/1 state (zigbee2mqtt occupancy, contact, ...): no statistics.
		c.StateClass = ""
	case u == "":
		switch {
		case parent == "energy" && (name == "total" || name == "today"):
			return haClass{"kWh", "energy", "total_increasing"}
		case parent == "energy" && name == "yesterday":
			// One value per day: not a running total, so no statistics
			// (as total_increasing the energy dashboard counted it again).
			return haClass{"kWh", "energy", ""}
		}
		if nc, ok := haNameClasses[name]; ok {
			return nc
		}
		if name == "illuminance_lux" {
			return haNameClasses["illuminance"]
		}
	case haUnitClasses[u] != "":
		c.DeviceClass = haUnitClasses[u]
		if c.DeviceClass == "energy" {
			c.StateClass = "total_increasing"
		}
	case u == "%":
		lu := strings.ToLower(raw)
		switch {
		case lu == "%rh" || strings.Contains(name, "humid"):
			c.DeviceClass = "humidity"
		case lu == "%el" || strings.Contains(name, "battery"):
			c.DeviceClass = "battery"
		case strings.Contains(name, "moisture"):
			c.DeviceClass = "moisture"
		}
	case u == "ppm" && (strings.Contains(name, "co2") || strings.Contains(name, "carbon_dioxide")):
		c.DeviceClass = "carbon_dioxide"
	case u == "µg/m³" && (strings.Contains(name, "pm25") || strings.Contains(name, "pm2_5") || strings.Contains(name, "pm2.5")):
		c.DeviceClass = "pm25"
	case u == "µg/m³" && strings.Contains(name, "pm10"):
		c.DeviceClass = "pm10"
	case (u == "dB" || u == "dBm") && (strings.Contains(name, "rssi") || strings.Contains(name, "signal")):
		c.DeviceClass = "signal_strength"
	}
	return c
}

// sensorName returns the last level of a sensor id and the one before it,
// lower-cased ("plug/ENERGY/Power" → "power", "energy").
func sensorName(id string) (name, parent string) {
	id = strings.ToLower(id)
	i := strings.LastIndexByte(id, '/')
	if i < 0 {
		return id, ""
	}
	name, rest := id[i+1:], id[:i]
	if j := strings.LastIndexByte(rest, '/'); j >= 0 {
		rest = rest[j+1:]
	}
	return name, rest
}

// maxSlug bounds a slug; longer ones are cut and made unique by a hash.
const maxSlug = 64

// slugify makes the part of an entity id Home Assistant accepts in a
// discovery topic and an entity id: [a-z0-9_], no leading, trailing or
// repeated '_' ("plug/AM2301/Temperature" → "plug_am2301_temperature").
func slugify(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	under := true // suppress a leading '_'
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			under = false
		} else if !under {
			b.WriteByte('_')
			under = true
		}
	}
	out := strings.TrimSuffix(b.String(), "_")
	if len(out) > maxSlug {
		out = strings.TrimSuffix(out[:maxSlug], "_") + "_" + shortHash(s)
	}
	if out == "" {
		out = "sensor_" + shortHash(s)
	}
	return out
}

// shortHash is 8 hex digits of FNV-1a: enough to tell apart the few ids
// whose slugs collide.
func shortHash(s string) string {
	h := fnv.New32a()
	h.Write([]byte(s))
	return fmt.Sprintf("%08x", h.Sum32())
}

// haDevice is the gateway as a Home Assistant device; every entity of the
// node names it, so they are grouped on one device page.
type haDevice struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer"`
	Model        string   `json:"model"`
	SWVersion    string   `json:"sw_version"`
}

// haOrigin tells Home Assistant which software published the config
// (shown in its logs and the entity's MQTT info).
type haOrigin struct {
	Name       string `json:"name"`
	SWVersion  string `json:"sw_version"`
	SupportURL string `json:"support_url"`
}

// haConfig is one discovery payload. object_id is deprecated since Home
// Assistant 2025.10 in favour of default_entity_id and removed in 2026.4;
// both are sent (older versions drop the key they do not know).
type haConfig struct {
	Name                   string   `json:"name"`
	UniqueID               string   `json:"unique_id"`
	ObjectID               string   `json:"object_id"`
	DefaultEntityID        string   `json:"default_entity_id"`
	StateTopic             string   `json:"state_topic"`
	ValueTemplate          string   `json:"value_template"`
	JSONAttributesTopic    string   `json:"json_attributes_topic,omitempty"`
	JSONAttributesTemplate string   `json:"json_attributes_template,omitempty"`
	UnitOfMeasurement      string   `json:"unit_of_measurement,omitempty"`
	DeviceClass            string   `json:"device_class,omitempty"`
	StateClass             string   `json:"state_class,omitempty"`
	Options                []string `json:"options,omitempty"`
	EntityCategory         string   `json:"entity_category,omitempty"`
	Icon                   string   `json:"icon,omitempty"`
	AvailabilityTopic      string   `json:"availability_topic"`
	PayloadAvailable       string   `json:"payload_available"`
	PayloadNotAvailable    string   `json:"payload_not_available"`
	Device                 haDevice `json:"device"`
	Origin                 haOrigin `json:"origin"`
}

// Availability payloads.
const (
	haOnline  = "online"
	haOffline = "offline"
)

// haSensorState is the JSON on a sensor's state topic: the latest value
// (value_template) and its attributes (json_attributes_template).
type haSensorState struct {
	Value      float64      `json:"value"`
	Time       string       `json:"ts"`
	Attributes haAttributes `json:"attributes"`
}

// haAttributes are a sensor's entity attributes: its running aggregates
// since it first appeared and, once it has one, its current bucket.
type haAttributes struct {
	Sensor   string  `json:"sensor"`
	Node     string  `json:"node"`
	Unit     string  `json:"unit,omitempty"` // as the device sent it
	LastSeen string  `json:"last_seen"`
	Readings uint64  `json:"readings"`
	Min      float64 `json:"min"`
	Max      float64 `json:"max"`
	Avg      float64 `json:"avg"`
	*haBucketAttrs
}

// haBucketAttrs is the sensor's newest bucket of the narrowest width,
// usually still open (its figures grow until it closes).
type haBucketAttrs struct {
	BucketStart string  `json:"bucket_start"`
	BucketWidth string  `json:"bucket_width"`
	BucketCount uint64  `json:"bucket_count"`
	BucketMin   float64 `json:"bucket_min"`
	BucketMax   float64 `json:"bucket_max"`
	BucketAvg   float64 `json:"bucket_avg"`
}

// haGatewayState is the JSON on the gateway's state topic; its entities
// pick their field with a value_template. Fields absent in a mode (no
// syncer on a hub) are null.
type haGatewayState struct {
	SyncStatus    *string  `json:"sync_status"`
	PendingOps    *int     `json:"pending_ops"`
	HubConnected  *bool    `json:"hub_connected"`
	LastSync      *string  `json:"last_sync"`
	ResourceLevel *string  `json:"resource_level"`
	MemoryPercent *float64 `json:"memory_percent"`
	DiskPercent   *float64 `json:"disk_percent"`
	Sensors       int      `json:"sensors"`
}

// haEntity describes one gateway entity (the sensors' entities are built
// from classify).
type haEntity struct {
	component string // sensor or binary_sensor
	slug      string
	name      string
	template  string
	cfg       func(c *haConfig)
	needs     func(g *haGatewayState) bool // announced only when true
}

// haGatewayEntities are the node's own entities, all diagnostic.
var haGatewayEntities = []haEntity{
	{"sensor", "sync_status", "Sync status", "{{ value_json.sync_status }}",
		func(c *haConfig) { c.Icon = "mdi:cloud-sync" },
		func(g *haGatewayState) bool { return g.SyncStatus != nil }},
	{"sensor", "pending_ops", "Pending ops", "{{ value_json.pending_ops }}",
		func(c *haConfig) { c.StateClass, c.UnitOfMeasurement, c.Icon = "measurement", "ops", "mdi:tray-full" },
		func(g *haGatewayState) bool { return g.PendingOps != nil }},
	{"binary_sensor", "hub_link", "Hub link", "{{ 'ON' if value_json.hub_connected else 'OFF' }}",
		func(c *haConfig) { c.DeviceClass = "connectivity" },
		func(g *haGatewayState) bool { return g.HubConnected != nil }},
	{"sensor", "last_sync", "Last sync", "{{ value_json.last_sync }}",
		func(c *haConfig) { c.DeviceClass = "timestamp" },
		func(g *haGatewayState) bool { return g.SyncStatus != nil }},
	{"sensor", "resource_level", "Resource level", "{{ value_json.resource_level }}",
		func(c *haConfig) {
			c.DeviceClass, c.Icon = "enum", "mdi:gauge"
			c.Options = []string{"normal", "warning", "high", "critical"}
		},
		func(g *haGatewayState) bool { return g.ResourceLevel != nil }},
	{"sensor", "memory_used", "Memory used", "{{ value_json.memory_percent }}",
		func(c *haConfig) { c.StateClass, c.UnitOfMeasurement, c.Icon = "measurement", "%", "mdi:memory" },
		func(g *haGatewayState) bool { return g.MemoryPercent != nil }},
	{"sensor", "disk_used", "Disk used", "{{ value_json.disk_percent }}",
		func(c *haConfig) { c.StateClass, c.UnitOfMeasurement, c.Icon = "measurement", "%", "mdi:harddisk" },
		func(g *haGatewayState) bool { return g.DiskPercent != nil }},
	{"sensor", "sensors", "Sensors", "{{ value_json.sensors }}",
		func(c *haConfig) { c.StateClass, c.Icon = "measurement", "mdi:counter" },
		func(*haGatewayState) bool { return true }},
}

// gatewaySlug prefixes the gateway entities' slugs so that no sensor
// (whose slugs are not prefixed) can take them.
func gatewaySlug(slug string) string { return "gateway_" + slug }
