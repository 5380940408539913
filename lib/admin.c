/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Admin operations on an array whether it runs or not (admin.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <raidtool/admin.h>
#include <raidtool/array.h>
#include <raidtool/lock.h>
#include <raidtool/log.h>
#include <raidtool/scan.h>
#include <raidtool/unit.h>
#include "control-internal.h"
#include "scan-internal.h"

int admin_engine_request(const uint8_t uuid[RT_UUID_SIZE], const char *name,
			 const struct rt_control_req *rq, char *msg, size_t len,
			 struct rt_control_unit *unit)
{
	struct rt_control_probe p;
	int r, lock_fd = -1;

	r = lock_take_array(uuid, &lock_fd);
	if (r < 0)
		return r;
	/* The lock's holder may have been a deactivate. */
	if (control_probe(uuid, &p) < 0 || p.state != RT_CONTROL_ACTIVE) {
		control_log_not_running(name, "it stopped while this command waited for the "
					"array's lock");
		r = -ESHUTDOWN;
	} else {
		r = control_call_unit(uuid, name, rq, msg, len, unit);
	}
	lock_release(lock_fd);
	return r;
}

/* A running array: one request per unit, by absolute path (the engine's cwd is /). */
static int add_running(const char *const *units, size_t n, const struct rt_add_opts *o,
		       struct rt_add_result *res)
{
	struct rt_control_req rq = { .verb = RT_VERB_SPEED };
	char arg[32], path[PATH_MAX];
	int r;

	if (o->speed_limit >= 0) {
		snprintf(arg, sizeof(arg), "%lld", (long long)o->speed_limit);
		rq.arg = arg;
		r = admin_engine_request(res->uuid, res->name, &rq, NULL, 0, NULL);
		if (r < 0)
			return r;
	}
	rq = (struct rt_control_req){ .verb = RT_VERB_ADD, .force = o->force };
	for (size_t i = 0; i < n; i++) {
		struct rt_added_unit *a = &res->added[res->n_added];

		if (!realpath(units[i], path)) {
			r = -errno;
			unit_log_open_error(units[i], r);
			return r;
		}
		rq.arg = path;
		snprintf(a->path, sizeof(a->path), "%s", units[i]);
		a->unit = control_unit_new();
		if (!a->unit)
			return -ENOMEM;
		r = admin_engine_request(res->uuid, res->name, &rq, a->msg, sizeof(a->msg),
					 a->unit);
		if (r < 0)
			return r;
		res->n_added++;
	}
	return 0;
}

static int add_stopped(const char *id, const char *const *units, size_t n,
		       const struct rt_add_opts *o, struct rt_add_result *res)
{
	struct rt_unit_desc added[RT_MAX_UNITS];
	struct rt_sb sb;
	int r;

	if (o->speed_limit >= 0) {
		control_log_not_running(res->name, "--speed-limit is for a running array's "
					"rebuild; see RAIDTOOL_SYNC_SPEED_MAX");
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		res->added[i].unit = control_unit_new();
		if (!res->added[i].unit)
			return -ENOMEM;
	}
	r = array_add(id, units, n, o->force, &sb, added);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct rt_added_unit *a = &res->added[i];
		uint32_t slot = added[i].slot;

		snprintf(a->path, sizeof(a->path), "%s", units[i]);
		a->unit->slot = slot;
		snprintf(a->unit->device, sizeof(a->unit->device), "%s", units[i]);
		memcpy(a->unit->uuid, added[i].uuid, RT_UUID_SIZE);
		a->unit->hashcode = added[i].hashcode;
		a->unit->state = control_unit_state_of_slot(slot < RT_MAX_UNITS ?
							    sb.slots[slot].state : 0);
	}
	res->n_added = n;
	return 0;
}

void admin_add_result_free(struct rt_add_result *res)
{
	if (!res)
		return;
	for (size_t i = 0; i < RT_MAX_UNITS; i++)
		control_unit_free(res->added[i].unit);
	free(res);
}

int admin_add_units(const char *id, const char *const *units, size_t n_units,
		    const struct rt_add_opts *o, struct rt_add_result **out)
{
	const struct rt_scan_array *a;
	struct rt_add_result *res;
	struct rt_control_probe p;
	struct rt_scan *scan = NULL;
	int r, array_fd = -1, names_fd = -1;

	*out = NULL;
	if (n_units > RT_MAX_UNITS)
		return -E2BIG;
	res = calloc(1, sizeof(*res));
	if (!res)
		return -ENOMEM;
	*out = res;
	r = scan_devices_find(id, &scan, &a);
	if (r == 0) {
		snprintf(res->name, sizeof(res->name), "%s", a->sb.array.name);
		memcpy(res->uuid, a->sb.array.uuid, RT_UUID_SIZE);
		res->hashcode = a->sb.array.hashcode;
		res->n_devices = a->sb.array.n_devices;
	}
	scan_free(scan);
	if (r < 0)
		return r;
	/* Under both locks (lib/lock.h's order), so that no activate starts it meanwhile. */
	r = lock_take_array(res->uuid, &array_fd);
	if (r == 0)
		r = lock_take(RT_LOCK_NAMES, &names_fd);
	if (r < 0)
		goto out;
	res->running = control_probe(res->uuid, &p) == 0 && p.state == RT_CONTROL_ACTIVE;
	if (res->running) {
		/* Each request to the engine takes the array's lock itself. */
		lock_release(names_fd);
		lock_release(array_fd);
		names_fd = array_fd = -1;
		r = add_running(units, n_units, o, res);
	} else {
		r = add_stopped(id, units, n_units, o, res);
	}
out:
	lock_release(names_fd);
	lock_release(array_fd);
	return r;
}
