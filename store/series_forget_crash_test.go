package store

import (
	"context"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// SENSOR.FORGET's order of durable effects, as the node makes them: the
// store batch that deletes the sensor is fsynced, then the Home Assistant
// publisher's empty retained config reaches the broker's persistence as a
// broker record deletion, written without an fsync; then the node syncs
// the WAL, and only then the command replies. Without that sync, a crash
// right after the reply kept the sensor's deletion and lost the clear: the
// retained config came back with the sensor gone. Here the crash right
// after the reply keeps both.
func TestForgetRetainedClearDurableAtReply(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewCrashableMem()
	o := crashOptions("/data/node-1", 0)
	o.FS = fs
	s, err := Open(ctx, o)
	check(t, err)
	const retained = "rhomeassistant/sensor/gw-1_tmep_001/config"
	check(t, s.AppendReadings(ctx, []Reading{{Sensor: "tmep-001", TS: 1, Value: 21}}))
	check(t, s.SetBrokerRecord(ctx, retained, []byte(`{"name":"tmep-001"}`)))
	check(t, s.SyncWAL(ctx)) // any later synced write makes it durable
	// SENSOR.FORGET: the store batch (fsynced)...
	_, err = s.ForgetSensor(ctx, "tmep-001", map[string][]byte{"ingest:state:1": {1, 0}})
	check(t, err)
	// ...then the HA poll's empty retained config (the broker's hook)...
	check(t, s.SetBrokerRecord(ctx, retained, nil))
	// ...made durable before the reply (the node's forgetHAEntity).
	check(t, s.SyncWAL(ctx))
	// The reply is sent; kill -9.
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	check(t, s.Close())
	o.FS = crashed
	s, err = Open(ctx, o)
	check(t, err)
	defer s.Close()
	if len(s.Sensors()) != 0 {
		t.Fatalf("the sensor is back: %+v", s.Sensors())
	}
	var back bool
	check(t, s.BrokerRecords(ctx, retained, func(string, []byte) error { back = true; return nil }))
	if back {
		t.Fatal("after a crash right after SENSOR.FORGET replied, the sensor is gone but its retained Home Assistant config is back")
	}
}
