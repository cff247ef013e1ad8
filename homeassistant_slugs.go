package ferrite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/ferrite-edge/ferrite/store"
)

// Slugs that outlive sensors and restarts.
//
// A sensor's slug makes its discovery topic, unique_id and entity id, so
// it must never change and never pass to another sensor. Computed afresh
// at every start, the slugs of two ids that slug alike depended on which
// ids were registered then: after SENSOR.FORGET of the one with the plain
// slug, a restart gave the other that slug (a new unique_id: Home
// Assistant showed it twice), and a forgotten sensor coming back swapped
// unique_ids with the other (each got the other's history).
//
// So the publisher keeps every slug it ever gave, slug → sensor id, in a
// table stored in the node's data dir before a config uses the slug. A
// slug is never given to another sensor, not even once its sensor is
// forgotten; a sensor that comes back gets its old slug again. The table
// grows by one small entry per sensor ever announced.

// haSlugStore keeps the slug table across restarts.
type haSlugStore interface {
	// LoadSlugs returns the stored table, slug → sensor id (nil if none).
	LoadSlugs(ctx context.Context) (map[string]string, error)
	// SaveSlugs stores the whole table durably.
	SaveSlugs(ctx context.Context, slugs map[string]string) error
}

// haSlugRecord names the table's record in the store's local records
// (SetSyncState: never replicated, fsynced, written at the Critical level
// too, like the other bookkeeping records).
const haSlugRecord = "homeassistant:slugs"

// storeSlugs is haSlugStore over the node's store, as one JSON record.
type storeSlugs struct{ st *store.Store }

func (s storeSlugs) LoadSlugs(ctx context.Context) (map[string]string, error) {
	raw, err := s.st.SyncState(ctx, haSlugRecord)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("record %s: %w", haSlugRecord, err)
	}
	return m, nil
}

func (s storeSlugs) SaveSlugs(ctx context.Context, slugs map[string]string) error {
	b, err := json.Marshal(slugs)
	if err != nil {
		return err
	}
	return s.st.SetSyncState(ctx, haSlugRecord, b)
}

// loadSlugs adds the stored table to the publisher's (before it runs). A
// table that cannot be read is logged and replaced: slugs are then given
// as before the table existed, which is better than no discovery at all.
func (p *haPublisher) loadSlugs(ctx context.Context) error {
	if p.slugStore == nil {
		return nil
	}
	m, err := p.slugStore.LoadSlugs(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		p.log.Warn("home assistant slug table unreadable: starting a new one", "error", err)
		return nil
	}
	for slug, id := range m {
		if owner, taken := p.slugs[slug]; id == "" || (taken && owner == "") {
			continue // reserved for the gateway's entities
		}
		p.slugs[slug] = id
	}
	return nil
}

// slugFor is id's slug: the first of slugify(id), then that with id's
// hash, then with a counter, that no other sensor has. Since no slug is
// ever released, a sensor that had one finds it again the same way.
func (p *haPublisher) slugFor(id string) string {
	base := slugify(id)
	slug := base
	for i := 1; ; i++ {
		if owner, taken := p.slugs[slug]; !taken || owner == id {
			return slug
		}
		slug = base + "_" + shortHash(id)
		if i > 1 {
			slug += "_" + strconv.Itoa(i)
		}
	}
}

// saveSlugs stores the table if slugs were given since the last save. If
// that fails, the sensors that got them are unregistered again, to be
// announced at a later poll: announced now, a restart could give them
// other slugs.
func (p *haPublisher) saveSlugs(ctx context.Context) error {
	if len(p.unsaved) == 0 {
		return nil
	}
	var err error
	if p.slugStore != nil {
		table := make(map[string]string, len(p.slugs))
		for slug, id := range p.slugs {
			if id != "" {
				table[slug] = id
			}
		}
		err = p.slugStore.SaveSlugs(ctx, table)
	}
	if err != nil {
		for _, slug := range p.unsaved {
			delete(p.sensors, p.slugs[slug])
			delete(p.slugs, slug)
		}
	}
	p.unsaved = p.unsaved[:0]
	return err
}
