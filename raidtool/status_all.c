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

	for (r = 0; r < st->n_devices && r + 1 < len; r++) {
		map[r] = '_';
		for (unsigned i = 0; i < st->n_units; i++)
			if (st->units[i].slot == r && !strcmp(st->units[i].state, "active")) {
				map[r] = 'U';
				up++;
				break;
			}
	}
	map[r] = '\0';
	return up;
}

static const char *unit_name(const struct rt_control_unit *u)
{
	const char *base = strrchr(u->device, '/');

	if (!u->device[0])
		return "-";
	return base ? base + 1 : u->device;
}

static uint64_t seconds_left(const struct rt_control_status *st)
{
	return st->walk_speed ? (st->walk_total - st->walk_done) / st->walk_speed : 0;
}

static double walk_percent(const struct rt_control_status *st)
{
	return st->walk_total ? 100.0 * (double)st->walk_done / (double)st->walk_total : 0.0;
}

static void print_block(const struct rt_overview_array *oa)
{
	const struct rt_control_status *st = &oa->st;
	char map[RT_MAX_UNITS + 1], size[32], speed[32];
	unsigned up = role_map(st, map, sizeof(map));

	cli_format_size(st->size, size, sizeof(size));
	printf("%s : %s %s [%u/%u] [%s] %s\n", st->name, st->state, sb_level_name(st->level),
	       st->n_devices, up, map, overview_health_name(oa->health));
	printf("      %08x, %s", st->hashcode, size);
	if (st->device[0])
		printf(", %s (%s)", st->link, st->device);
	printf("\n      units:");
	for (unsigned i = 0; i < st->n_units; i++) {
		const struct rt_control_unit *u = &st->units[i];

		printf(" %s[%u]", unit_name(u), u->slot);
		if (strcmp(u->state, "active"))
			printf("(%s)", u->state);
	}
	putchar('\n');
	if (st->walk_running) {
		cli_format_size(st->walk_speed, speed, sizeof(speed));
		printf("      %s", control_walk_name(st->walk));
		if (describe_walk_has_role(st->walk))
			printf(" role %u", st->walk_role);
		printf(": %.1f%% (%" PRIu64 " of %" PRIu64 " bytes), %s/s", walk_percent(st),
		       st->walk_done, st->walk_total, speed);
		if (st->walk_speed)
			printf(", %" PRIu64 " s left", seconds_left(st));
		putchar('\n');
	} else if (st->unsynced) {
		printf("      not yet synced\n");
	}
	putchar('\n');
}

static void print_array_json(struct json *j, const struct rt_overview_array *oa)
{
	const struct rt_control_status *st = &oa->st;
	char map[RT_MAX_UNITS + 1], role[16];
	unsigned up = role_map(st, map, sizeof(map));

	json_object_begin(j, NULL);
	json_str(j, "name", st->name);
	json_hash(j, "hashcode", st->hashcode);
	json_uuid(j, "uuid", st->uuid);
	json_str(j, "state", st->state);
	json_str(j, "level", sb_level_name(st->level));
	json_u64(j, "size", st->size);
	json_u64(j, "n_devices", st->n_devices);
	json_u64(j, "roles_up", up);
	json_str(j, "map", map);
	json_str(j, "health", overview_health_name(oa->health));
	json_str(j, "device", st->device[0] ? st->link : NULL);
	json_str(j, "loop_device", st->device[0] ? st->device : NULL);
	json_array_begin(j, "units");
	for (unsigned i = 0; i < st->n_units; i++) {
		const struct rt_control_unit *u = &st->units[i];

		if (u->slot < st->n_devices)
			snprintf(role, sizeof(role), "%u", u->slot);
		else
			snprintf(role, sizeof(role), "spare");
		json_object_begin(j, NULL);
		json_str(j, "role", role);
		json_u64(j, "slot", u->slot);
		json_str(j, "state", u->state);
		json_str(j, "device", u->device[0] ? u->device : NULL);
		json_object_end(j);
	}
	json_array_end(j);
	if (st->walk_running) {
		json_object_begin(j, "walk");
		json_str(j, "kind", control_walk_name(st->walk));
		json_u64(j, "role", st->walk_role);
		json_u64(j, "done", st->walk_done);
		json_u64(j, "total", st->walk_total);
		json_u64(j, "percent", (uint64_t)walk_percent(st));
		json_u64(j, "bytes_per_sec", st->walk_speed);
		json_u64(j, "seconds_left", seconds_left(st));
		json_object_end(j);
	} else {
		json_str(j, "walk", NULL);
	}
	json_bool(j, "synced", !st->unsynced);
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
