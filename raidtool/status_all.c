/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * raidtool status without a name: every array the machine knows, running
 * or not, one block each as /proc/mdstat shows md arrays.
 */
#include <inttypes.h>
#include <string.h>
#include <raidtool/overview.h>
#include "cli.h"
#include "describe.h"
#include "json-out.h"
#include "status_all.h"

/* "UU_": one letter per role, U when an active unit holds it. */
static unsigned role_map(const struct rt_control_status *st, char *map, size_t len)
{
	unsigned up = 0, r;

	for (r = 0; r < control_status_n_devices(st) && r + 1 < len; r++) {
		map[r] = '_';
		for (unsigned i = 0; i < control_status_unit_count(st); i++) {
			const struct rt_control_unit *u = control_status_unit_at(st, i);

			if (control_unit_slot(u) == r &&
			    control_unit_state(u) == RT_UNIT_STATE_ACTIVE) {
				map[r] = 'U';
				up++;
				break;
			}
		}
	}
	map[r] = '\0';
	return up;
}

static const char *unit_name(const struct rt_control_unit *u)
{
	const char *dev = control_unit_device(u), *base = strrchr(dev, '/');

	if (!dev[0])
		return "-";
	return base ? base + 1 : dev;
}

static uint64_t seconds_left(const struct rt_control_walk *w)
{
	return w->speed ? (w->total - w->done) / w->speed : 0;
}

static double walk_percent(const struct rt_control_walk *w)
{
	return w->total ? 100.0 * (double)w->done / (double)w->total : 0.0;
}

static void print_block(const struct rt_overview_array *oa)
{
	const struct rt_control_status *st = oa->st;
	const struct rt_control_walk w = control_status_walk(st);
	const char *device = control_status_device(st);
	char map[RT_MAX_UNITS + 1], size[32], speed[32];
	unsigned up = role_map(st, map, sizeof(map));

	cli_format_size(control_status_size(st), size, sizeof(size));
	printf("%s : %s %s [%u/%u] [%s] %s\n", control_status_name(st), control_status_state(st),
	       sb_level_name(control_status_level(st)),
	       control_status_n_devices(st), up, map, overview_health_name(oa->health));
	printf("      %08x, %s", control_status_hashcode(st), size);
	if (device[0])
		printf(", %s (%s)", control_status_link(st), device);
	printf("\n      units:");
	for (unsigned i = 0; i < control_status_unit_count(st); i++) {
		const struct rt_control_unit *u = control_status_unit_at(st, i);

		printf(" %s[%u]", unit_name(u), control_unit_slot(u));
		if (control_unit_state(u) != RT_UNIT_STATE_ACTIVE)
			printf("(%s)", control_unit_state_name(control_unit_state(u)));
	}
	putchar('\n');
	if (w.running) {
		cli_format_size(w.speed, speed, sizeof(speed));
		printf("      %s", control_walk_name(w.kind));
		if (describe_walk_has_role(w.kind))
			printf(" role %u", w.role);
		printf(": %.1f%% (%" PRIu64 " of %" PRIu64 " bytes), %s/s", walk_percent(&w),
		       w.done, w.total, speed);
		if (w.speed)
			printf(", %" PRIu64 " s left", seconds_left(&w));
		putchar('\n');
	} else if (control_status_unsynced(st)) {
		printf("      not yet synced\n");
	}
	putchar('\n');
}

static void print_array_json(struct json *j, const struct rt_overview_array *oa)
{
	const struct rt_control_status *st = oa->st;
	const struct rt_control_walk w = control_status_walk(st);
	const char *device = control_status_device(st);
	char map[RT_MAX_UNITS + 1], role[16];
	unsigned up = role_map(st, map, sizeof(map));

	json_object_begin(j, NULL);
	json_str(j, "name", control_status_name(st));
	json_hash(j, "hashcode", control_status_hashcode(st));
	json_uuid(j, "uuid", control_status_uuid(st));
	json_str(j, "state", control_status_state(st));
	json_str(j, "level", sb_level_name(control_status_level(st)));
	json_u64(j, "size", control_status_size(st));
	json_u64(j, "n_devices", control_status_n_devices(st));
	json_u64(j, "roles_up", up);
	json_str(j, "map", map);
	json_str(j, "health", overview_health_name(oa->health));
	json_str(j, "device", device[0] ? control_status_link(st) : NULL);
	json_str(j, "loop_device", device[0] ? device : NULL);
	json_array_begin(j, "units");
	for (unsigned i = 0; i < control_status_unit_count(st); i++) {
		const struct rt_control_unit *u = control_status_unit_at(st, i);
		const char *dev = control_unit_device(u);

		if (control_unit_slot(u) < control_status_n_devices(st))
			snprintf(role, sizeof(role), "%u", control_unit_slot(u));
		else
			snprintf(role, sizeof(role), "spare");
		json_object_begin(j, NULL);
		json_str(j, "role", role);
		json_u64(j, "slot", control_unit_slot(u));
		json_str(j, "state", control_unit_state_name(control_unit_state(u)));
		json_str(j, "device", dev[0] ? dev : NULL);
		json_object_end(j);
	}
	json_array_end(j);
	if (w.running) {
		json_object_begin(j, "walk");
		json_str(j, "kind", control_walk_name(w.kind));
		json_u64(j, "role", w.role);
		json_u64(j, "done", w.done);
		json_u64(j, "total", w.total);
		json_u64(j, "percent", (uint64_t)walk_percent(&w));
		json_u64(j, "bytes_per_sec", w.speed);
		json_u64(j, "seconds_left", seconds_left(&w));
		json_object_end(j);
	} else {
		json_str(j, "walk", NULL);
	}
	json_bool(j, "synced", !control_status_unsynced(st));
	json_object_end(j);
}

int status_all(bool json)
{
	struct rt_overview *o;
	struct json j;
	int r;

	r = overview_collect(&o);
	if (r < 0)
		return cli_fail(r, "status: cannot scan for arrays");
	if (json) {
		json_init(&j, stdout);
		json_object_begin(&j, NULL);
		json_array_begin(&j, "arrays");
		for (size_t i = 0; i < o->n; i++)
			print_array_json(&j, &o->arrays[i]);
		json_array_end(&j);
		json_object_end(&j);
		json_finish(&j);
	} else {
		for (size_t i = 0; i < o->n; i++)
			print_block(&o->arrays[i]);
	}
	overview_free(o);
	return EXIT_OK;
}
