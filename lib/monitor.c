/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Events from successive looks at the running arrays: see monitor.h.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>
#include <raidtool/control.h>
#include <raidtool/monitor.h>
#include "control-internal.h"

const char *monitor_event_name(enum rt_monitor_event ev)
{
	static const char *const names[] = {
		[RT_MONITOR_FAIL] = "Fail",
		[RT_MONITOR_FAIL_SPARE] = "FailSpare",
		[RT_MONITOR_DEGRADED_ARRAY] = "DegradedArray",
		[RT_MONITOR_SPARE_ACTIVE] = "SpareActive",
		[RT_MONITOR_REBUILD_STARTED] = "RebuildStarted",
		[RT_MONITOR_REBUILD_FINISHED] = "RebuildFinished",
		[RT_MONITOR_CHECK_FINISHED] = "CheckFinished",
		[RT_MONITOR_DEVICE_DISAPPEARED] = "DeviceDisappeared",
		[RT_MONITOR_NEW_ARRAY] = "NewArray",
		[RT_MONITOR_STOPPED] = "Stopped",
	};

	if ((unsigned)ev >= sizeof(names) / sizeof(names[0]) || !names[ev])
		return "Unknown";
	return names[ev];
}

bool monitor_event_critical(enum rt_monitor_event ev)
{
	return ev == RT_MONITOR_FAIL || ev == RT_MONITOR_FAIL_SPARE ||
	       ev == RT_MONITOR_DEGRADED_ARRAY || ev == RT_MONITOR_DEVICE_DISAPPEARED;
}

void monitor_array_from_status(const struct rt_control_status *st, struct rt_monitor_array *a)
{
	memset(a, 0, sizeof(*a));
	memcpy(a->uuid, st->uuid, RT_UUID_SIZE);
	snprintf(a->name, sizeof(a->name), "%s", st->name);
	a->hashcode = st->hashcode;
	a->n_devices = st->n_devices;
	a->health = st->health;
	a->walk = st->walk;
	/*
	 * Whether the walk walks, not walk_running: that stays true while the
	 * end is recorded, when the rebuilt unit is already active, and
	 * SpareActive would come before its RebuildFinished.
	 */
	a->walk_running = st->walk_active;
	a->walk_result = st->walk_result;
	a->walk_role = st->walk_role;
	a->walk_done = st->walk_done;
	a->walk_total = st->walk_total;
	a->mismatches = st->mismatches;
	a->repaired = st->repaired;
	a->events = st->events;
	a->n_units = st->n_units < RT_MAX_UNITS ? st->n_units : RT_MAX_UNITS;
	for (unsigned i = 0; i < a->n_units; i++) {
		memcpy(a->units[i].uuid, st->units[i].uuid, RT_UUID_SIZE);
		a->units[i].slot = st->units[i].slot;
		snprintf(a->units[i].device, sizeof(a->units[i].device), "%s",
			 st->units[i].device);
		a->units[i].state = st->units[i].state;
	}
}

/* ---- comparing two looks (pure) ----------------------------------------- */

/* The slot of @u: its role, or for the unit a replace fills, the role it is to take. */
static int32_t unit_role(const struct rt_monitor_array *a, const struct rt_monitor_unit *u)
{
	return u->state == RT_UNIT_STATE_REPLACING ? (int32_t)a->walk_role : (int32_t)u->slot;
}

static void emit(rt_monitor_fn fn, void *arg, const struct rt_monitor_array *a,
		 enum rt_monitor_event event, const struct rt_monitor_unit *u, const char *detail,
		 enum rt_walk_kind walk)
{
	struct rt_monitor_event_info ev = { .event = event, .role = -1 };

	snprintf(ev.array, sizeof(ev.array), "%s", a->name);
	memcpy(ev.uuid, a->uuid, RT_UUID_SIZE);
	ev.hashcode = a->hashcode;
	if (u) {
		snprintf(ev.unit, sizeof(ev.unit), "%s", u->device);
		ev.role = unit_role(a, u);
	}
	snprintf(ev.detail, sizeof(ev.detail), "%s", detail ? detail : "");
	snprintf(ev.walk, sizeof(ev.walk), "%s", control_walk_name(walk));
	fn(&ev, arg);
}

/*
 * A rebuild or resync restores redundancy (mdadm's "rebuild" covers both);
 * a replace (raidtool replace) fills a new unit as a rebuild does, and is
 * reported the same way, with "replacing" as the walk.
 */
static bool walk_rebuilds(enum rt_walk_kind walk)
{
	return walk == RT_WALK_RECOVER || walk == RT_WALK_RESYNC || walk == RT_WALK_REPLACE;
}

static bool walk_checks(enum rt_walk_kind walk)
{
	return walk == RT_WALK_CHECK || walk == RT_WALK_REPAIR;
}

/* How bad: none and clean alike (a first look at a clean array says nothing). */
static int health_rank(enum rt_health health)
{
	return health == RT_HEALTH_DEGRADED ? 1 : health == RT_HEALTH_FAILED ? 2 : 0;
}

/*
 * The unit a rebuild writes: the one holding the walk's role; a replace's
 * new unit while it is being filled, and the role's once it took it.
 */
static const struct rt_monitor_unit *walk_unit(const struct rt_monitor_array *a)
{
	bool replacing = a->walk == RT_WALK_REPLACE;

	if (a->walk != RT_WALK_RECOVER && !replacing)
		return NULL;
	for (unsigned i = 0; i < a->n_units && replacing; i++)
		if (a->units[i].state == RT_UNIT_STATE_REPLACING)
			return &a->units[i];
	for (unsigned i = 0; i < a->n_units; i++)
		if (a->units[i].slot == a->walk_role && a->units[i].state != RT_UNIT_STATE_FAULTY &&
		    a->units[i].state != RT_UNIT_STATE_MISSING)
			return &a->units[i];
	return NULL;
}

static const char *walk_outcome(int32_t result)
{
	return result == 0 ? "finished" : result == -ECANCELED ? "cancelled" : "failed";
}

/* A walk that ended: @end holds its record (kind, result, mismatches). */
static void walk_ended(const struct rt_monitor_array *a, const struct rt_monitor_array *end,
		       const struct rt_monitor_unit *u, rt_monitor_fn fn, void *arg)
{
	char detail[32];

	if (walk_rebuilds(end->walk)) {
		emit(fn, arg, a, RT_MONITOR_REBUILD_FINISHED, u, walk_outcome(end->walk_result),
		     end->walk);
	} else if (walk_checks(end->walk)) {
		snprintf(detail, sizeof(detail), "%" PRIu64, end->mismatches);
		emit(fn, arg, a, RT_MONITOR_CHECK_FINISHED, NULL, detail, end->walk);
	}
}

static bool same_walk_record(const struct rt_monitor_array *x, const struct rt_monitor_array *y)
{
	return x->walk == y->walk && x->walk_result == y->walk_result &&
	       x->walk_role == y->walk_role && x->walk_done == y->walk_done &&
	       x->walk_total == y->walk_total && x->mismatches == y->mismatches &&
	       x->repaired == y->repaired;
}

static void compare_walks(const struct rt_monitor_array *prev, const struct rt_monitor_array *cur,
			  rt_monitor_fn fn, void *arg)
{
	bool same = prev->walk_running && cur->walk_running && prev->walk == cur->walk &&
		    prev->walk_role == cur->walk_role && cur->walk_done >= prev->walk_done;

	if (prev->walk_running && !same) {
		/* Its record is the current one unless another walk started since. */
		const struct rt_monitor_array *end = !cur->walk_running &&
			prev->walk == cur->walk ? cur : prev;
		struct rt_monitor_array ended;

		if (end == prev) {
			ended = *prev;
			ended.walk_result = 0;
			end = &ended;
		}
		walk_ended(cur, end, walk_unit(prev), fn, arg);
	} else if (!prev->walk_running && !cur->walk_running && cur->walk != RT_WALK_NONE &&
		   !same_walk_record(prev, cur)) {
		/* A whole walk between two looks. */
		if (walk_rebuilds(cur->walk))
			emit(fn, arg, cur, RT_MONITOR_REBUILD_STARTED, walk_unit(cur), NULL,
			     cur->walk);
		walk_ended(cur, cur, walk_unit(cur), fn, arg);
	}
}

static const struct rt_monitor_unit *find_unit(const struct rt_monitor_array *a,
					       const struct rt_monitor_unit *u)
{
	for (unsigned i = 0; i < a->n_units; i++)
		if (!memcmp(a->units[i].uuid, u->uuid, RT_UUID_SIZE) &&
		    a->units[i].slot == u->slot)
			return &a->units[i];
	return NULL;
}

static bool state_is(const struct rt_monitor_unit *u, enum rt_unit_state state)
{
	return u->state == state;
}

static void compare_units(const struct rt_monitor_array *prev, const struct rt_monitor_array *cur,
			  rt_monitor_fn fn, void *arg)
{
	for (unsigned i = 0; i < cur->n_units; i++) {
		const struct rt_monitor_unit *u = &cur->units[i];
		const struct rt_monitor_unit *p = find_unit(prev, u);

		if (!p)
			continue;
		if (state_is(u, RT_UNIT_STATE_FAULTY) && state_is(p, RT_UNIT_STATE_ACTIVE) &&
		    u->slot < cur->n_devices)
			emit(fn, arg, cur, RT_MONITOR_FAIL, u, NULL, RT_WALK_NONE);
		else if (state_is(u, RT_UNIT_STATE_FAULTY) &&
			 (state_is(p, RT_UNIT_STATE_ACTIVE) || state_is(p, RT_UNIT_STATE_SPARE) ||
			  state_is(p, RT_UNIT_STATE_REBUILDING)))
			emit(fn, arg, cur, RT_MONITOR_FAIL_SPARE, u, NULL, RT_WALK_NONE);
		else if (state_is(u, RT_UNIT_STATE_ACTIVE) &&
			 (state_is(p, RT_UNIT_STATE_SPARE) || state_is(p, RT_UNIT_STATE_REBUILDING)))
			emit(fn, arg, cur, RT_MONITOR_SPARE_ACTIVE, u, NULL, RT_WALK_NONE);
	}
}

void monitor_compare(const struct rt_monitor_array *prev, const struct rt_monitor_array *cur,
		     rt_monitor_fn fn, void *arg)
{
	if (!prev) {
		if (health_rank(cur->health) > 0)
			emit(fn, arg, cur, RT_MONITOR_DEGRADED_ARRAY, NULL,
			     control_health_name(cur->health), RT_WALK_NONE);
		if (cur->walk_running && walk_rebuilds(cur->walk))
			emit(fn, arg, cur, RT_MONITOR_REBUILD_STARTED, walk_unit(cur), NULL,
			     cur->walk);
		return;
	}
	/* In the order things happen: a walk ends, units change, health follows, a walk starts. */
	compare_walks(prev, cur, fn, arg);
	compare_units(prev, cur, fn, arg);
	if (health_rank(cur->health) > health_rank(prev->health))
		emit(fn, arg, cur, RT_MONITOR_DEGRADED_ARRAY, NULL,
		     control_health_name(cur->health), RT_WALK_NONE);
	if (cur->walk_running && walk_rebuilds(cur->walk) &&
	    !(prev->walk_running && prev->walk == cur->walk &&
	      prev->walk_role == cur->walk_role && cur->walk_done >= prev->walk_done))
		emit(fn, arg, cur, RT_MONITOR_REBUILD_STARTED, walk_unit(cur), NULL, cur->walk);
}

/* ---- the run directory -------------------------------------------------- */

int monitor_list_running(uint8_t (*uuids)[RT_UUID_SIZE], size_t max, size_t *n)
{
	DIR *d = opendir(control_rundir());
	struct dirent *de;

	*n = 0;
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		struct rt_control_probe p;
		uint8_t uuid[RT_UUID_SIZE];

		/* <rundir>/<NAME> links to the same directories: UUIDs only. */
		if (de->d_type == DT_LNK || uuid_parse(de->d_name, uuid) != 0)
			continue;
		if (control_probe(uuid, &p) < 0 || p.state == RT_CONTROL_INACTIVE)
			continue;
		if (*n < max)
			memcpy(uuids[*n], uuid, RT_UUID_SIZE);
		(*n)++;
	}
	closedir(d);
	return 0;
}

/* The name of an array whose engine died: its mount point <rundir>/<UUID>/mnt/<NAME>. */
static void dead_array_name(const uint8_t uuid[RT_UUID_SIZE], char *name, size_t len)
{
	char path[4096];
	struct dirent *de;
	DIR *d;

	name[0] = '\0';
	if (control_path(uuid, RT_CONTROL_MNT, path, sizeof(path)) < 0 || !(d = opendir(path)))
		return;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.') {
			size_t l = strnlen(de->d_name, len - 1);

			memcpy(name, de->d_name, l);
			name[l] = '\0';
			break;
		}
	closedir(d);
}

/* ---- the monitor -------------------------------------------------------- */

enum tracked_state { TRACKED_RUNNING, TRACKED_DEAD };

struct tracked {
	struct rt_monitor_array a;
	enum tracked_state state;
	bool seen;			/* at this look */
};

struct rt_monitor {
	const char *const *ids;
	size_t n_ids;
	bool looked;			/* a first look was taken */
	size_t n, cap;
	struct tracked *t;
	struct rt_control_status *st;	/* scratch: large */
};

int monitor_new(const char *const *ids, size_t n_ids, struct rt_monitor **out)
{
	struct rt_monitor *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (!m)
		return -ENOMEM;
	m->st = calloc(1, sizeof(*m->st));
	if (!m->st) {
		free(m);
		return -ENOMEM;
	}
	m->ids = ids;
	m->n_ids = n_ids;
	*out = m;
	return 0;
}

void monitor_free(struct rt_monitor *m)
{
	if (!m)
		return;
	free(m->t);
	free(m->st);
	free(m);
}

static bool wanted(const struct rt_monitor *m, const char *name, uint32_t hashcode,
		   const uint8_t uuid[RT_UUID_SIZE])
{
	char hash[16], us[37];

	if (!m->n_ids)
		return true;
	snprintf(hash, sizeof(hash), "%08x", hashcode);
	uuid_unparse_lower(uuid, us);
	for (size_t i = 0; i < m->n_ids; i++)
		if (!strcmp(m->ids[i], name) || !strcasecmp(m->ids[i], hash) ||
		    !strcasecmp(m->ids[i], us))
			return true;
	return false;
}

static struct tracked *find_tracked(struct rt_monitor *m, const uint8_t uuid[RT_UUID_SIZE])
{
	for (size_t i = 0; i < m->n; i++)
		if (!memcmp(m->t[i].a.uuid, uuid, RT_UUID_SIZE))
			return &m->t[i];
	return NULL;
}

static struct tracked *add_tracked(struct rt_monitor *m)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 8;
		struct tracked *t = realloc(m->t, cap * sizeof(*t));

		if (!t)
			return NULL;
		m->t = t;
		m->cap = cap;
	}
	memset(&m->t[m->n], 0, sizeof(m->t[0]));
	return &m->t[m->n++];
}

/* An engine that answers: compare with the last look, or report it as new. */
static int look_running(struct rt_monitor *m, const uint8_t uuid[RT_UUID_SIZE],
			struct tracked *t, rt_monitor_fn fn, void *arg)
{
	struct rt_monitor_array *cur;

	/* Starting (no socket yet) or stopping: look again next time. */
	if (control_status(uuid, "", m->st) < 0 || memcmp(m->st->uuid, uuid, RT_UUID_SIZE)) {
		if (t)
			t->seen = true;
		return 0;
	}
	if (!wanted(m, m->st->name, m->st->hashcode, uuid))
		return 0;
	cur = malloc(sizeof(*cur));
	if (!cur)
		return -ENOMEM;
	monitor_array_from_status(m->st, cur);
	if (t && t->state == TRACKED_RUNNING) {
		monitor_compare(&t->a, cur, fn, arg);
	} else {
		if (!t)
			t = add_tracked(m);
		if (!t) {
			free(cur);
			return -ENOMEM;
		}
		if (m->looked)
			emit(fn, arg, cur, RT_MONITOR_NEW_ARRAY, NULL, NULL, RT_WALK_NONE);
		monitor_compare(NULL, cur, fn, arg);
	}
	t->a = *cur;
	t->state = TRACKED_RUNNING;
	t->seen = true;
	free(cur);
	return 0;
}

/* Run files left by an engine that died: reported once. */
static int look_dead(struct rt_monitor *m, const uint8_t uuid[RT_UUID_SIZE], struct tracked *t,
		     rt_monitor_fn fn, void *arg)
{
	if (!t) {
		char name[RT_NAME_MAX + 1];

		dead_array_name(uuid, name, sizeof(name));
		/* No hashcode without an engine to ask: matched by name or UUID. */
		if (!wanted(m, name, 0, uuid))
			return 0;
		t = add_tracked(m);
		if (!t)
			return -ENOMEM;
		memcpy(t->a.uuid, uuid, RT_UUID_SIZE);
		snprintf(t->a.name, sizeof(t->a.name), "%s", name);
		t->state = TRACKED_RUNNING;
	}
	if (t->state == TRACKED_RUNNING)
		emit(fn, arg, &t->a, RT_MONITOR_DEVICE_DISAPPEARED, NULL, NULL, RT_WALK_NONE);
	t->state = TRACKED_DEAD;
	t->seen = true;
	return 0;
}

int monitor_poll(struct rt_monitor *m, rt_monitor_fn fn, void *arg)
{
	uint8_t (*uuids)[RT_UUID_SIZE] = NULL;
	size_t n = 0, max = 64;
	int r;

	for (;;) {
		free(uuids);
		uuids = calloc(max, RT_UUID_SIZE);
		if (!uuids)
			return -ENOMEM;
		r = monitor_list_running(uuids, max, &n);
		if (r < 0 || n <= max)
			break;
		max = n + 16;
	}
	if (r < 0)
		goto out;
	for (size_t i = 0; i < m->n; i++)
		m->t[i].seen = false;
	for (size_t i = 0; i < n && r == 0; i++) {
		struct rt_control_probe p;
		struct tracked *t = find_tracked(m, uuids[i]);

		if (control_probe(uuids[i], &p) < 0)
			continue;
		if (p.state == RT_CONTROL_ACTIVE)
			r = look_running(m, uuids[i], t, fn, arg);
		else if (p.state == RT_CONTROL_STALE)
			r = look_dead(m, uuids[i], t, fn, arg);
	}
	if (r < 0)
		goto out;
	/* Gone from the run directory: stopped (or cleaned up after it died). */
	for (size_t i = 0; i < m->n;) {
		struct tracked *t = &m->t[i];

		if (t->seen) {
			i++;
			continue;
		}
		if (t->state == TRACKED_RUNNING)
			emit(fn, arg, &t->a, RT_MONITOR_STOPPED, NULL, NULL, RT_WALK_NONE);
		m->t[i] = m->t[--m->n];
	}
	m->looked = true;
out:
	free(uuids);
	return r;
}
