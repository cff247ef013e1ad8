package ferrite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrite-edge/ferrite/ingest"
	"github.com/ferrite-edge/ferrite/store"
	"github.com/prometheus/client_golang/prometheus"
)

// haTestSource is a haSource whose registry the test sets.
type haTestSource struct{ infos []ingest.SensorInfo }

func (s *haTestSource) Sensors() []ingest.SensorInfo { return s.infos }
func (s *haTestSource) CurrentBucket(string) (ingest.Bucket, bool) {
	return ingest.Bucket{}, false
}
func (s *haTestSource) Gateway() haGatewayState { return haGatewayState{} }

// retainedMap is the broker's retained store (persisted across
// restarts): topic → last non-empty payload; an empty one removes it.
type retainedMap struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (r *retainedMap) publish(topic string, payload []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(payload) == 0 {
		delete(r.m, topic)
	} else {
		r.m[topic] = append([]byte(nil), payload...)
	}
	return nil
}

// configsNaming returns the retained sensor config topics whose entity is
// named sensor.
func (r *retainedMap) configsNaming(sensor string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for topic, p := range r.m {
		if !strings.HasSuffix(topic, "/config") {
			continue
		}
		var c map[string]any
		if json.Unmarshal(p, &c) == nil && c["name"] == sensor {
			out = append(out, topic+" unique_id="+fmt.Sprint(c["unique_id"]))
		}
	}
	return out
}

// openHAStore opens a store on dir, the node's data dir, kept across
// restarts of the publisher.
func openHAStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{NodeID: "gw-1", Dir: dir, Logger: quietLogger(),
		SweepInterval: -1, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// newSlugPublisher makes a publisher that keeps its slug table in st,
// loaded as the node loads it at start.
func newSlugPublisher(t *testing.T, src haSource, ret *retainedMap, st haSlugStore) *haPublisher {
	t.Helper()
	cfg := DefaultConfig().HomeAssistant
	p, err := newHAPublisher(cfg, "gw-1", "m", src, ret.publish, 0, quietLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	p.slugStore = st
	if err := p.loadSlugs(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p
}

// Two ids with one slug: the one seen first keeps the plain slug, the
// other gets a hash suffix, and that must hold across restarts (or
// unique_ids swap and Home Assistant attaches one sensor's history to the
// other). SENSOR.FORGET broke it while the slugs were recomputed at each
// start from the sensors registered then:
//
//   - forgetting the plain-slug owner: after a restart the other sensor
//     took the plain slug (a new unique_id, a second entity), and its old
//     suffixed config stayed retained: Home Assistant showed it twice;
//   - the forgotten one coming back: live it took its plain slug again,
//     after a restart (first seen later now) the two swapped unique_ids.
//
// The slug table in the data dir keeps every slug where it was.
func TestForgetHASlugsStableAcrossRestart(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := ingest.SensorInfo{ID: "kitchen/temp", FirstSeen: t0, Count: 1}
	b := ingest.SensorInfo{ID: "kitchen-temp", FirstSeen: t0.Add(time.Second), Count: 1}
	aBack := ingest.SensorInfo{ID: "kitchen/temp", FirstSeen: t0.Add(time.Hour), Count: 1}
	for _, back := range []bool{false, true} {
		t.Run(fmt.Sprintf("comes_back=%v", back), func(t *testing.T) {
			dir := t.TempDir()
			st := openHAStore(t, dir)
			ret := &retainedMap{m: map[string][]byte{}}
			src := &haTestSource{infos: []ingest.SensorInfo{b, a}} // sorted by id
			live := newSlugPublisher(t, src, ret, storeSlugs{st})
			if err := live.poll(ctx); err != nil {
				t.Fatal(err)
			}
			if live.sensors[a.ID].slug != "kitchen_temp" || live.sensors[b.ID].slug != "kitchen_temp_"+shortHash(b.ID) {
				t.Fatalf("slugs before: a %q b %q", live.sensors[a.ID].slug, live.sensors[b.ID].slug)
			}
			src.infos = []ingest.SensorInfo{b} // SENSOR.FORGET kitchen/temp
			if err := live.poll(ctx); err != nil {
				t.Fatal(err)
			}
			if back {
				src.infos = []ingest.SensorInfo{b, aBack}
				if err := live.poll(ctx); err != nil {
					t.Fatal(err)
				}
			}
			before := map[string]string{}
			for id, s := range live.sensors {
				before[id] = s.slug
			}
			// Restart: a new publisher over the same registry, data dir and
			// broker's persisted retained messages.
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			restarted := newSlugPublisher(t, src, ret, storeSlugs{openHAStore(t, dir)})
			if err := restarted.poll(ctx); err != nil {
				t.Fatal(err)
			}
			for id, slug := range before {
				if got := restarted.sensors[id].slug; got != slug {
					t.Errorf("%s: slug %q before the restart, %q after (its unique_id changed)", id, slug, got)
				}
			}
			if cs := ret.configsNaming(b.ID); len(cs) != 1 {
				t.Errorf("Home Assistant sees %d retained entities of %s: %v", len(cs), b.ID, cs)
			}
		})
	}
}

// A forgotten sensor's slug is not given to another one, not even after
// a restart: Home Assistant would attach the new sensor to the old one's
// history (its entity id and statistics).
func TestHASlugNotReusedAfterForget(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openHAStore(t, dir)
	ret := &retainedMap{m: map[string][]byte{}}
	src := &haTestSource{infos: []ingest.SensorInfo{{ID: "kitchen/temp", Count: 1}}}
	p := newSlugPublisher(t, src, ret, storeSlugs{st})
	if err := p.poll(ctx); err != nil {
		t.Fatal(err)
	}
	src.infos = nil // SENSOR.FORGET kitchen/temp
	if err := p.poll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	src.infos = []ingest.SensorInfo{{ID: "kitchen-temp", Count: 1}}
	p = newSlugPublisher(t, src, ret, storeSlugs{openHAStore(t, dir)})
	if err := p.poll(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := p.sensors["kitchen-temp"].slug, "kitchen_temp_"+shortHash("kitchen-temp"); got != want {
		t.Fatalf("the new sensor got slug %q, want %q (kitchen_temp was the forgotten sensor's)", got, want)
	}
}

// failingSlugs is a slug store whose saves fail until ok is set.
type failingSlugs struct {
	ok    bool
	saved map[string]string
}

func (f *failingSlugs) LoadSlugs(context.Context) (map[string]string, error) { return nil, nil }
func (f *failingSlugs) SaveSlugs(_ context.Context, m map[string]string) error {
	if !f.ok {
		return errors.New("disk gone")
	}
	f.saved = m
	return nil
}

// A sensor is announced only once its slug is stored: announced first, a
// restart could give it another slug.
func TestHASlugStoredBeforeTheConfig(t *testing.T) {
	ctx := context.Background()
	ret := &retainedMap{m: map[string][]byte{}}
	slugs := &failingSlugs{}
	p := newSlugPublisher(t, &haTestSource{infos: []ingest.SensorInfo{{ID: "x", Count: 1}}}, ret, slugs)
	if err := p.poll(ctx); err != nil {
		t.Fatal(err)
	}
	if cs := ret.configsNaming("x"); len(cs) != 0 {
		t.Fatalf("announced with an unstored slug: %v", cs)
	}
	slugs.ok = true
	if err := p.poll(ctx); err != nil {
		t.Fatal(err)
	}
	if cs := ret.configsNaming("x"); len(cs) != 1 || slugs.saved["x"] != "x" {
		t.Fatalf("configs %v, stored table %v", cs, slugs.saved)
	}
}
