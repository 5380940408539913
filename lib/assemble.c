/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Assembly: pick the fresh units of a scanned array by events counter and
 * role table, refuse an incomplete array naming the missing roles, open the
 * units for the engine, and write superblock updates to all of them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <raidtool/assemble.h>
#include <raidtool/log.h>
#include <raidtool/unit.h>
#include "assemble-internal.h"
#include "member.h"
#include "scan-internal.h"

#define UNIT_FLAGS (RT_UNIT_WRITE | RT_UNIT_EXCL | RT_UNIT_DIRECT)

static unsigned spare_roles(const struct rt_sb *sb)
{
	return sb_max_missing(sb->array.level, sb->array.n_devices);
}

/* Is @u, as scan classed it, the unit for slot @slot of the fresh table? */
static bool unit_is_slot(const struct rt_sb *fresh, const struct rt_scan_unit *u, uint32_t slot)
{
	return scan_unit_usable(u) && u->sb.unit.slot == slot &&
	       !memcmp(u->sb.unit.uuid, fresh->slots[slot].uuid, RT_UUID_SIZE);
}

/* Append ", N" (or ", N (faulty)" when the role table says why) to a list of roles. */
static void list_append(char *buf, size_t len, uint32_t n, uint32_t slot_state)
{
	size_t used = strlen(buf);

	if (used >= len)
		return;
	if (slot_state == RT_SLOT_ACTIVE || slot_state == RT_SLOT_MISSING)
		snprintf(buf + used, len - used, "%s%u", used ? ", " : "", n);
	else
		snprintf(buf + used, len - used, "%s%u (%s)", used ? ", " : "", n,
			 sb_slot_state_name(slot_state));
}

/* A unit carrying the freshest events: whose role table assembly follows. */
static const struct rt_scan_unit *freshest_unit(const struct rt_scan_array *a)
{
	for (size_t i = 0; i < a->n_units; i++)
		if (a->units[i]->cls == RT_UNIT_CURRENT)
			return a->units[i];
	return NULL;
}

/* Report every unit that will not be used, and why (scan's classification). */
static void report_unused(const struct rt_scan_array *a, bool can_start)
{
	const struct rt_sb *fresh = &a->sb;
	const struct rt_scan_unit *ref = freshest_unit(a);

	for (size_t i = 0; i < a->n_units; i++) {
		const struct rt_scan_unit *u = a->units[i];

		switch (u->cls) {
		case RT_UNIT_CURRENT:
			break;
		case RT_UNIT_CURRENT_BEHIND:
			rt_log(RT_LOG_INFO, "'%s': unit '%s' is one event behind (%llu, the array "
			       "is at %llu): an update was interrupted before it reached this "
			       "unit; used, and brought to current", fresh->array.name, u->dev,
			       (unsigned long long)u->sb.events, (unsigned long long)fresh->events);
			break;
		case RT_UNIT_STALE:
			if (scan_unit_replaced(a, u)) {
				rt_log(RT_LOG_WARN, "'%s': unit '%s' was replaced; not used ('raidtool "
				       "zero' it to use the disk again)", fresh->array.name, u->dev);
				break;
			}
			/* Re-adding rebuilds over it: advise it only when nothing needs its data. */
			rt_log(RT_LOG_WARN, "'%s': unit '%s' is stale (%s); not used%s",
			       fresh->array.name, u->dev, u->why, can_start ?
			       " (add it again to rebuild onto it)" :
			       "; it may still hold data the array needs: do not zero or add it "
			       "(see 'activate --force')");
			break;
		case RT_UNIT_CONFLICT:
			rt_log(RT_LOG_WARN, "'%s': unit '%s' (hashcode %08x) contradicts the role "
			       "table of '%s' (events %llu): %s; refused, not used",
			       fresh->array.name, u->dev, u->sb.unit.hashcode, ref ? ref->dev : "?",
			       (unsigned long long)fresh->events, u->why);
			break;
		case RT_UNIT_SUSPECT:
			rt_log(RT_LOG_WARN, "'%s': unit '%s' (hashcode %08x) is suspect: %s; left "
			       "out, its superblock is not trusted", u->sb.array.name, u->dev,
			       u->sb.unit.hashcode, u->why);
			break;
		}
	}
}

/*
 * Every update reaches all members with one events value, so two units at
 * the freshest events whose role tables differ ran apart (each was started
 * without the other) or were changed behind raidtool's back. mdadm aborts
 * such an assembly; so does this, before anything is written.
 */
static int check_tables(const struct rt_scan_array *a)
{
	const struct rt_sb *fresh = &a->sb;
	const struct rt_scan_unit *ref = freshest_unit(a);

	for (size_t i = 0; i < a->n_units; i++) {
		const struct rt_scan_unit *u = a->units[i];

		if (!u->table_differs)
			continue;
		rt_log(RT_LOG_ERROR, "'%s': cannot start: the superblock of unit '%s' (hashcode "
		       "%08x) contradicts the freshest one, of unit '%s' (hashcode %08x), both "
		       "at events %llu: %s; the units ran apart or a superblock was changed "
		       "behind raidtool's back. Nothing was written; decide which holds the "
		       "data you want, detach the other, start the array, and only then "
		       "wipe the detached unit ('raidtool zero') and add it to rebuild",
		       fresh->array.name, u->dev, u->sb.unit.hashcode, ref ? ref->dev : "?",
		       ref ? ref->sb.unit.hashcode : 0, (unsigned long long)fresh->events, u->why);
		return -EUCLEAN;
	}
	return 0;
}

/*
 * The fresh unit for slot @slot: NULL when none, and -ENOTUNIQ in @err
 * when two devices carry the same fresh unit (a copied image, say).
 */
static const struct rt_scan_unit *find_slot(const struct rt_scan_array *a, uint32_t slot,
					    bool spare, int *err)
{
	const struct rt_scan_unit *found = NULL;

	*err = 0;
	for (size_t i = 0; i < a->n_units; i++) {
		const struct rt_scan_unit *u = a->units[i];

		if (!unit_is_slot(&a->sb, u, slot))
			continue;
		if (found) {
			rt_log(spare ? RT_LOG_WARN : RT_LOG_ERROR, "'%s': %s: '%s' and '%s' both "
			       "claim slot %u with the same unit UUID and events; remove one",
			       a->sb.array.name, spare ? "spare left out" : "cannot start",
			       found->dev, u->dev, slot);
			*err = -ENOTUNIQ;
			return NULL;
		}
		found = u;
	}
	return found;
}

static int open_unit(struct rt_assembly *as, const struct rt_scan_unit *su, unsigned idx)
{
	int r;

	r = unit_open_seen(su->dev, UNIT_FLAGS, &su->sb, &as->units[idx]);
	if (r == -ESTALE)
		return r;	/* logged, naming the device */
	if (r < 0) {
		unit_log_open_error_in(as->sb.array.name, su->dev, r);
		as->units[idx] = NULL;
		return r;
	}
	as->own[idx] = su->sb.unit;
	as->disk_events[idx] = su->sb.events;
	snprintf(as->dev[idx], sizeof(as->dev[idx]), "%s", su->dev);
	return 0;
}

/*
 * Forced assembly (mdadm --assemble --force): the unit that may stand in
 * for role @role although the freshest table does not count on it: the
 * unit the freshest table still names for that role (it recorded the unit
 * leaving, faulty or missing, or the unit fell behind), whose own
 * superblock agrees that it holds the role, not suspect, with the highest
 * events of such units.
 */
static const struct rt_scan_unit *force_candidate(const struct rt_scan_array *a, uint32_t role)
{
	const struct rt_scan_unit *best = NULL;

	for (size_t i = 0; i < a->n_units; i++) {
		const struct rt_scan_unit *u = a->units[i];

		if (u->cls != RT_UNIT_STALE || u->sb.unit.slot != role ||
		    memcmp(u->sb.unit.uuid, a->sb.slots[role].uuid, RT_UUID_SIZE))
			continue;
		if (!best || u->sb.events > best->sb.events)
			best = u;
	}
	return best;
}

/*
 * Too many roles missing: with @force, take for missing roles (the
 * freshest candidates first) the units force_candidate finds until the
 * level can run; marks them in @forced. Without it, says what --force
 * would do. Returns the roles still missing.
 */
static unsigned force_roles(const struct rt_scan_array *a, const struct rt_scan_unit **chosen,
			    bool *forced, unsigned n_missing, bool force)
{
	const struct rt_sb *fresh = &a->sb;

	while (n_missing > spare_roles(fresh)) {
		const struct rt_scan_unit *pick = NULL, *c;
		uint32_t role = 0;

		for (uint32_t r = 0; r < fresh->array.n_devices; r++) {
			if (chosen[r] || forced[r])
				continue;
			c = force_candidate(a, r);
			if (c && (!pick || c->sb.events > pick->sb.events)) {
				pick = c;
				role = r;
			}
		}
		if (!pick)
			break;
		if (!force) {
			rt_log(RT_LOG_ERROR, "'%s': 'activate --force' would start it with unit '%s' "
			       "for role %u (events %llu, the array is at %llu; the freshest role "
			       "table has it %s): writes that reached only the units that failed "
			       "can be lost, and what the other units got after it left is "
			       "resynced; see 'Forced assembly' in raidtool(8)", fresh->array.name,
			       pick->dev, role, (unsigned long long)pick->sb.events,
			       (unsigned long long)fresh->events,
			       sb_slot_state_name(fresh->slots[role].state));
			return n_missing;
		}
		chosen[role] = pick;
		forced[role] = true;
		n_missing--;
	}
	return n_missing;
}

int assemble_open(const struct rt_scan_array *a, bool force, struct rt_assembly **out)
{
	bool forced[RT_MAX_UNITS] = { false };
	const struct rt_scan_unit *chosen[RT_MAX_UNITS] = { 0 };
	const struct rt_sb *fresh;
	struct rt_assembly *as;
	char missing[RT_MAX_UNITS * 16] = "";
	unsigned n_missing = 0, n_spares = 0;
	int r;

	if (!a || !out || !a->n_units)
		return -EINVAL;
	*out = NULL;
	fresh = &a->sb;
	if (a->all_suspect) {
		report_unused(a, false);
		rt_log(RT_LOG_ERROR, "'%s': cannot start: every unit found is suspect",
		       fresh->array.name);
		return -EUCLEAN;
	}
	if (fresh->array.n_devices == 0 || fresh->array.n_devices > RT_MAX_UNITS)
		return -EUCLEAN;
	r = check_tables(a);
	if (r < 0)
		return r;

	for (uint32_t role = 0; role < fresh->array.n_devices; role++) {
		const struct rt_slot *s = &fresh->slots[role];

		chosen[role] = NULL;
		if (s->state == RT_SLOT_ACTIVE || s->state == RT_SLOT_REBUILDING) {
			chosen[role] = find_slot(a, role, false, &r);
			if (r < 0)
				return r;
		}
		if (!chosen[role] || s->state != RT_SLOT_ACTIVE) {
			list_append(missing, sizeof(missing), role, s->state);
			n_missing++;
		}
	}
	report_unused(a, n_missing <= spare_roles(fresh));
	if (n_missing > spare_roles(fresh)) {
		unsigned left = force_roles(a, chosen, forced, n_missing, force);

		if (left <= spare_roles(fresh)) {
			/* Rebuild the list of what is still missing after forcing. */
			missing[0] = '\0';
			for (uint32_t role = 0; role < fresh->array.n_devices; role++)
				if (!chosen[role] || (!forced[role] &&
						      fresh->slots[role].state != RT_SLOT_ACTIVE))
					list_append(missing, sizeof(missing), role,
						    fresh->slots[role].state);
			n_missing = left;
		}
	}
	if (n_missing > spare_roles(fresh)) {
		rt_log(RT_LOG_ERROR, "'%s': cannot start: role%s %s missing (have %u of %u units); "
		       "%s runs with at most %u missing%s",
		       fresh->array.name, n_missing > 1 ? "s" : "", missing,
		       fresh->array.n_devices - n_missing, fresh->array.n_devices,
		       sb_level_name(fresh->array.level), spare_roles(fresh),
		       a->n_suspect ? " (a suspect unit named above is left out: put its "
		       "superblock right)" : "");
		return -ENODEV;
	}

	as = calloc(1, sizeof(*as));
	if (!as)
		return -ENOMEM;
	as->sb = *fresh;
	as->n_roles = fresh->array.n_devices;
	as->n_missing = n_missing;
	snprintf(as->missing, sizeof(as->missing), "%s", missing);
	for (unsigned role = 0; role < as->n_roles; role++) {
		if (chosen[role]) {
			r = open_unit(as, chosen[role], role);
			if (r < 0)
				goto fail;
			as->forced[role] = forced[role];
			if (forced[role])
				rt_log(RT_LOG_WARN, "'%s': --force: unit '%s' takes role %u again "
				       "(events %llu, the array is at %llu; the freshest role table "
				       "has it %s): brought to current as an active member",
				       fresh->array.name, chosen[role]->dev, role,
				       (unsigned long long)chosen[role]->sb.events,
				       (unsigned long long)fresh->events,
				       sb_slot_state_name(fresh->slots[role].state));
		} else {
			as->own[role].slot = role;
		}
		as->n_units++;
	}
	/* Fresh spares are held too, so that their superblocks follow the array's. */
	for (uint32_t slot = as->n_roles; slot < fresh->array.n_slots && slot < RT_MAX_UNITS;
	     slot++) {
		const struct rt_scan_unit *su;

		bool spare = fresh->slots[slot].state == RT_SLOT_SPARE;

		/* And a replace's new unit: it is written like the others until it ends. */
		if (!spare && fresh->slots[slot].state != RT_SLOT_REPLACING)
			continue;
		/*
		 * A spare holds no data: one that cannot be had (claimed twice,
		 * held open elsewhere) is left out, not a reason to keep the
		 * array from starting. Its superblock falls behind; it is stale.
		 */
		su = find_slot(a, slot, spare, &r);
		if (r < 0 && !spare)
			goto fail;
		if (!su)
			continue;
		r = open_unit(as, su, as->n_units);
		if (r < 0 && spare) {
			rt_log(RT_LOG_WARN, "'%s': spare '%s' left out: %s", fresh->array.name,
			       su->dev, strerror(-r));
			continue;
		}
		if (r < 0)
			goto fail;
		as->n_units++;
		n_spares++;
	}
	rt_log(RT_LOG_DEBUG, "'%s': assembled %u units, %u spares, events %llu",
	       fresh->array.name, as->n_roles, n_spares, (unsigned long long)fresh->events);
	*out = as;
	return 0;
fail:
	assemble_close(as);
	return r;
}

int assemble_verdict(const struct rt_scan_array *a, char *why, size_t len)
{
	unsigned spare = spare_roles(&a->sb);
	unsigned missing = a->sb.array.n_devices > a->n_active_roles ?
			   a->sb.array.n_devices - a->n_active_roles : 0;

	why[0] = '\0';
	if (a->all_suspect) {
		snprintf(why, len, "every unit found is suspect");
		return -EUCLEAN;
	}
	for (size_t i = 0; i < a->n_units; i++) {
		if (a->units[i]->table_differs) {
			snprintf(why, len, "unit '%s' contradicts the freshest superblock: %s",
				 a->units[i]->dev, a->units[i]->why);
			return -EUCLEAN;
		}
	}
	if (missing > spare) {
		snprintf(why, len, "%u of %u roles have a current unit; %s runs with at most %u "
			 "missing", a->n_active_roles, a->sb.array.n_devices,
			 sb_level_name(a->sb.array.level), spare);
		return -ENODEV;
	}
	if (missing && a->sb.array.level == RT_LEVEL_5 && a->sb.state == RT_ARRAY_DIRTY) {
		snprintf(why, len, "degraded and not stopped cleanly (the raid5 write hole)");
		return 1;
	}
	return 0;
}

void assemble_close(struct rt_assembly *as)
{
	if (!as)
		return;
	for (unsigned i = 0; i < RT_MAX_UNITS; i++)
		unit_close(as->units[i]);
	free(as);
}

int assemble_sb_update(struct rt_assembly *as, assemble_mutate_fn mutate, void *arg)
{
	struct rt_unit *units[RT_MAX_UNITS];
	struct rt_unit_desc own[RT_MAX_UNITS];
	uint64_t events[RT_MAX_UNITS];
	unsigned idx[RT_MAX_UNITS];
	struct rt_sb sb;
	size_t n = 0;
	int r;

	if (!as)
		return -EINVAL;
	sb = as->sb;
	if (mutate) {
		r = mutate(&sb, arg);
		if (r < 0)
			return r;
	}
	sb.events++;
	sb.utime = (uint64_t)time(NULL);
	/*
	 * Only the units the table still holds as members get it: a faulty or
	 * removed unit keeps its old superblock, recognisably stale later.
	 */
	for (unsigned i = 0; i < as->n_units; i++) {
		uint32_t slot = as->own[i].slot;
		const struct rt_slot *s;

		if (!as->units[i] || slot >= RT_MAX_UNITS)
			continue;
		s = &sb.slots[slot];
		if (s->state == RT_SLOT_FAULTY || s->state == RT_SLOT_MISSING ||
		    s->state == RT_SLOT_EMPTY || memcmp(s->uuid, as->own[i].uuid, RT_UUID_SIZE))
			continue;
		units[n] = as->units[i];
		own[n] = as->own[i];
		events[n] = as->disk_events[i];
		idx[n] = i;
		n++;
	}
	if (!n) {
		r = -ENODEV;
		as->sb.events = sb.events;
		return r;
	}
	/* lib/array.c owns the one loop that writes a superblock to many units. */
	r = member_write_sb_all(units, own, events, n, &as->sb, &sb);
	for (size_t k = 0; k < n; k++)
		as->disk_events[idx[k]] = events[k];
	if (r < 0) {
		bool reached = false;

		for (size_t k = 0; k < n; k++)
			reached = reached || events[k] == sb.events;
		/*
		 * Units that took the update hold its content at its events: the
		 * copy in memory must be theirs, or a later catch-up would write
		 * the old content under the same events value (two tables at one
		 * events: "ran apart"). Else never reuse this events value.
		 */
		if (reached)
			as->sb = sb;
		else
			as->sb.events = sb.events;
		return r;
	}
	as->sb = sb;
	return 0;
}

static int set_state(struct rt_sb *sb, void *arg)
{
	sb->state = *(const uint32_t *)arg;
	return 0;
}

int assemble_set_state(struct rt_assembly *as, uint32_t state)
{
	return assemble_sb_update(as, set_state, &state);
}
