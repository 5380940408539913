/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Every array the machine knows, and its health: see overview.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <raidtool/assemble.h>
#include <raidtool/overview.h>
#include "control-internal.h"
#include "scan-internal.h"

static int cmp_slot(const void *a, const void *b)
{
	const struct rt_control_unit *x = a, *y = b;

	return x->slot < y->slot ? -1 : x->slot > y->slot;
}

/* The units found (fresh, stale, conflicting) and the missing roles. */
void overview_status_from_scan(const struct rt_scan_array *a, struct rt_control_status *st)
{
	const struct rt_sb *sb = &a->sb;
	bool present[RT_MAX_UNITS] = { false };
	unsigned n = 0;

	memset(st, 0, sizeof(*st));
	snprintf(st->state, sizeof(st->state), "inactive");
	snprintf(st->name, sizeof(st->name), "%s", sb->array.name);
	memcpy(st->uuid, sb->array.uuid, RT_UUID_SIZE);
	st->hashcode = sb->array.hashcode;
	st->level = sb->array.level;
	st->nblocks = sb->array.nblocks;
	st->blocksize = sb->array.blocksize;
	st->size = sb->array.nblocks * sb->array.blocksize;
	st->chunk_size = sb->array.chunk_size;
	st->n_devices = sb->array.n_devices;
	st->events = sb->events;
	st->array_state = sb->state;
	st->unsynced = sb_unsynced(sb);
	for (size_t i = 0; i < a->n_units && n < RT_MAX_UNITS; i++) {
		const struct rt_scan_unit *u = a->units[i];
		struct rt_control_unit *cu = &st->units[n++];
		uint32_t slot = u->sb.unit.slot;
		enum rt_unit_state state = scan_unit_state(a, u);

		if (slot < RT_MAX_UNITS && state == RT_UNIT_STATE_ACTIVE)
			present[slot] = true;
		cu->slot = slot;
		snprintf(cu->device, sizeof(cu->device), "%s", u->dev);
		memcpy(cu->uuid, u->sb.unit.uuid, RT_UUID_SIZE);
		cu->hashcode = u->sb.unit.hashcode;
		cu->state = state;
	}
	for (uint32_t r = 0; r < sb->array.n_devices && r < RT_MAX_UNITS && n < RT_MAX_UNITS; r++) {
		struct rt_control_unit *cu;

		if (present[r])
			continue;
		cu = &st->units[n++];
		cu->slot = r;
		memcpy(cu->uuid, sb->slots[r].uuid, RT_UUID_SIZE);
		cu->hashcode = sb->slots[r].hashcode;
		cu->state = RT_UNIT_STATE_MISSING;
	}
	st->n_units = n;
	qsort(st->units, n, sizeof(st->units[0]), cmp_slot);
}

const char *overview_health_name(enum rt_health h)
{
	return control_health_name(h);
}

/* Roles with an active unit: what the array can read from. */
static unsigned active_roles(const struct rt_control_status *st)
{
	uint64_t seen = 0;
	unsigned n = 0;

	for (unsigned i = 0; i < st->n_units; i++) {
		uint32_t slot = st->units[i].slot;

		if (slot < st->n_devices && slot < 64 &&
		    st->units[i].state == RT_UNIT_STATE_ACTIVE && !(seen & (1ull << slot))) {
			seen |= 1ull << slot;
			n++;
		}
	}
	return n;
}

enum rt_health overview_scan_health(const struct rt_scan_array *a,
				    const struct rt_control_probe *p)
{
	char why[256];

	if (p->state == RT_CONTROL_STALE)
		return RT_HEALTH_FAILED;
	/* Would it start (does it run), and with every role active? */
	if (assemble_verdict(a, why, sizeof(why)) < 0)
		return RT_HEALTH_FAILED;
	return a->n_active_roles < a->sb.array.n_devices ? RT_HEALTH_DEGRADED : RT_HEALTH_OK;
}

enum rt_health overview_health(const struct rt_scan_array *a, const struct rt_control_status *st,
			       const struct rt_control_probe *p)
{
	if (p->state == RT_CONTROL_STALE)
		return RT_HEALTH_FAILED;
	if (p->state == RT_CONTROL_ACTIVE && st->health != RT_HEALTH_NONE)
		return st->health;
	if (a)
		return overview_scan_health(a, p);
	return active_roles(st) < st->n_devices ? RT_HEALTH_DEGRADED : RT_HEALTH_OK;
}

static int cmp_array(const void *x, const void *y)
{
	const struct rt_overview_array *a = x, *b = y;
	int c = strcmp(a->st->name, b->st->name);

	if (c)
		return c;
	return a->st->hashcode < b->st->hashcode ? -1 : a->st->hashcode > b->st->hashcode;
}

/* A running engine's report; a moment's patience while it starts or stops. */
static int running_status(const struct rt_scan_array *a, struct rt_control_status *st)
{
	int r = -ENOENT;

	for (int tries = 0; tries < 10; tries++) {
		r = control_status(a->sb.array.uuid, a->sb.array.name, st);
		if (r != -ENOENT && r != -ECONNREFUSED)
			break;
		usleep(50 * 1000);
	}
	return r;
}

static int collect(const char *const *devs, size_t n, struct rt_overview **out)
{
	struct rt_overview *o;
	struct rt_scan *s = NULL;
	int r;

	*out = NULL;
	r = devs ? scan_devices_list(devs, n, &s) : scan_devices(&s);
	if (r < 0)
		return r;
	o = calloc(1, sizeof(*o));
	if (!o || !(o->arrays = calloc(s->n_arrays ? s->n_arrays : 1, sizeof(*o->arrays)))) {
		free(o);
		scan_free(s);
		return -ENOMEM;
	}
	for (size_t i = 0; i < s->n_arrays; i++) {
		const struct rt_scan_array *a = &s->arrays[i];
		struct rt_overview_array *oa = &o->arrays[o->n];

		if (a->all_suspect)
			continue;
		oa->st = control_status_new();
		if (!oa->st) {
			overview_free(o);
			scan_free(s);
			return -ENOMEM;
		}
		if (control_probe(a->sb.array.uuid, &oa->probe) < 0)
			memset(&oa->probe, 0, sizeof(oa->probe));
		if (oa->probe.state != RT_CONTROL_ACTIVE || running_status(a, oa->st) < 0) {
			overview_status_from_scan(a, oa->st);
			/* Its engine died, or runs but did not answer in time. */
			if (oa->probe.state == RT_CONTROL_STALE)
				snprintf(oa->st->state, sizeof(oa->st->state), "dead");
			else if (oa->probe.state == RT_CONTROL_ACTIVE)
				snprintf(oa->st->state, sizeof(oa->st->state), "active");
		}
		oa->health = overview_health(a, oa->st, &oa->probe);
		o->n++;
	}
	scan_free(s);
	qsort(o->arrays, o->n, sizeof(o->arrays[0]), cmp_array);
	*out = o;
	return 0;
}

int overview_collect(struct rt_overview **out)
{
	return collect(NULL, 0, out);
}

int overview_collect_list(const char *const *devs, size_t n, struct rt_overview **out)
{
	return collect(devs, n, out);
}

void overview_free(struct rt_overview *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < o->n; i++)
		control_status_free(o->arrays[i].st);
	free(o->arrays);
	free(o);
}
