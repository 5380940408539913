/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <stdlib.h>
#include <raidtool/control.h>
#include <raidtool/dirtylog.h>
#include <raidtool/scan.h>
#include <raidtool/thin.h>
#include <raidtool/unit.h>
#include "cli.h"
#include "commands.h"
#include "describe.h"
#include "json-out.h"

static const char *copy_status(int err)
{
	switch (err) {
	case 0: return "valid";
	case -ENODATA: return "no superblock (magic missing)";
	case -EINVAL: return "truncated (unit too short)";
	case -EBADMSG: return "checksum mismatch";
	case -EPROTONOSUPPORT: return "unsupported format version";
	case -EOPNOTSUPP: return "unknown incompatible feature";
	case -EUCLEAN: return "inconsistent fields";
	default: return strerror(-err);
	}
}

/* udev-style KEY=value lines; every value is from a restricted alphabet. */
static void examine_export(const struct rt_sb *sb)
{
	char uuid[37], role[16];

	printf("RAIDTOOL_TYPE=unit\n");
	printf("RAIDTOOL_NAME=%s\n", sb->array.name);
	printf("RAIDTOOL_HASHCODE=%08x\n", sb->array.hashcode);
	cli_format_uuid(sb->array.uuid, uuid);
	printf("RAIDTOOL_UUID=%s\n", uuid);
	printf("RAIDTOOL_LEVEL=%s\n", sb_level_name(sb->array.level));
	printf("RAIDTOOL_N_DEVICES=%u\n", sb->array.n_devices);
	printf("RAIDTOOL_UNIT_HASHCODE=%08x\n", sb->unit.hashcode);
	cli_format_uuid(sb->unit.uuid, uuid);
	printf("RAIDTOOL_UNIT_UUID=%s\n", uuid);
	printf("RAIDTOOL_ROLE=%s\n", describe_role(sb, sb->unit.slot, role, sizeof(role)));
	printf("RAIDTOOL_UNIT_STATE=%s\n", sb_slot_state_name(sb->slots[sb->unit.slot].state));
	printf("RAIDTOOL_EVENTS=%" PRIu64 "\n", sb->events);
	printf("RAIDTOOL_STATE=%s\n", sb_array_state_name(sb->state));
}

/*
 * A running thin volume's block device: udev names it by its array and its
 * name (/dev/disk/by-id/raidtool-vol-NAME-VOL, raidtool-vol-uuid-UUID-VOL)
 * and makes the engine's /dev/raidtool/LINK/VOL too. LINK is the array's
 * link name, what its engine's ".pool" link says. 0 when @dev is one (its
 * lines printed), else -ENODEV.
 */
static int examine_export_volume(const char *dev)
{
	char vol[THIN_NAME_MAX + 1], uuid[37], link[RT_NAME_MAX + 32], *dot;
	uint8_t u[RT_UUID_SIZE];
	struct rt_control_probe p;
	const char *base;

	if (scan_volume_of_device(dev, u, vol, sizeof(vol)) < 0 || control_probe(u, &p) < 0 ||
	    !(base = strrchr(p.link, '/')) || !base[1])
		return -ENODEV;
	snprintf(link, sizeof(link), "%s", base + 1);
	dot = strrchr(link, '.');
	if (dot && !strcmp(dot, ".pool"))
		*dot = '\0';
	cli_format_uuid(u, uuid);
	printf("RAIDTOOL_TYPE=volume\n");
	printf("RAIDTOOL_NAME=%s\n", link);
	printf("RAIDTOOL_UUID=%s\n", uuid);
	printf("RAIDTOOL_VOLUME=%s\n", vol);
	printf("RAIDTOOL_LINK=%s/%s\n", link, vol);
	return 0;
}

/*
 * The block device of a running array: udev names it by the array's UUID
 * (/dev/disk/by-id/raidtool-uuid-UUID). 0 when @dev is one (its lines printed),
 * else -ENODEV.
 */
static int examine_export_array(const char *dev)
{
	char name[RT_NAME_MAX + 1], uuid[37];
	uint8_t u[RT_UUID_SIZE], byname[RT_UUID_SIZE];
	struct rt_control_probe p;
	const char *base;

	if (control_array_of_device(dev, name, sizeof(name), u) < 0)
		return examine_export_volume(dev);
	cli_format_uuid(u, uuid);
	printf("RAIDTOOL_TYPE=array\n");
	printf("RAIDTOOL_NAME=%s\n", name);
	printf("RAIDTOOL_UUID=%s\n", uuid);
	/*
	 * The engine's own /dev/raidtool/ link name, so that udev makes it too
	 * (systemd waits for .device units udev knows): NAME while the array
	 * holds its name, else the one the engine wrote (HASHCODE).
	 */
	if (control_name_lookup(name, byname) == 0 && !memcmp(byname, u, RT_UUID_SIZE))
		printf("RAIDTOOL_LINK=%s\n", name);
	else if (control_probe(u, &p) == 0 && (base = strrchr(p.link, '/')) && base[1])
		printf("RAIDTOOL_LINK=%s\n", base + 1);
	return 0;
}

/* The unit's dirty-region log, as read by unit_read_dirtylog. */
struct examine_log {
	int err;
	struct rt_dlog_header h;
	uint8_t *bits;
	uint64_t n_dirty;
};

static void examine_read_log(struct rt_unit *u, const struct rt_sb *sb, struct examine_log *lg)
{
	size_t len = RT_DATA_ALIGN / 8 + 1;	/* more bits than any log area holds */

	memset(lg, 0, sizeof(*lg));
	lg->bits = calloc(1, len);
	if (!lg->bits) {
		lg->err = -ENOMEM;
		return;
	}
	lg->err = unit_read_dirtylog(u, sb, &lg->h, lg->bits, len);
	for (uint64_t i = 0; lg->err == 0 && i < lg->h.n_regions; i++)
		lg->n_dirty += (lg->bits[i / 8] >> (i % 8)) & 1;
}

static bool log_bit(const struct examine_log *lg, uint64_t i)
{
	return (lg->bits[i / 8] >> (i % 8)) & 1;
}

/* "0-3,7": the dirty regions as ranges. */
static void print_dirty_ranges(const struct examine_log *lg)
{
	const char *sep = "";

	for (uint64_t i = 0; i < lg->h.n_regions; i++) {
		uint64_t j = i;

		if (!log_bit(lg, i))
			continue;
		while (j + 1 < lg->h.n_regions && log_bit(lg, j + 1))
			j++;
		if (j == i)
			printf("%s%" PRIu64, sep, i);
		else
			printf("%s%" PRIu64 "-%" PRIu64, sep, i, j);
		sep = ",";
		i = j;
	}
}

static void examine_log_json(struct json *j, const struct examine_log *lg)
{
	json_object_begin(j, "dirty_log");
	json_str(j, "status", lg->err == 0 ? "valid" : lg->err == -ENODATA ? "absent"
		 : strerror(-lg->err));
	if (lg->err == 0) {
		json_u64(j, "events", lg->h.events);
		json_u64(j, "region_size", lg->h.region_size);
		json_u64(j, "regions", lg->h.n_regions);
		json_u64(j, "dirty", lg->n_dirty);
		json_array_begin(j, "dirty_regions");
		for (uint64_t i = 0; i < lg->h.n_regions; i++)
			if (log_bit(lg, i))
				json_u64(j, NULL, i);
		json_array_end(j);
	}
	json_object_end(j);
}

static void examine_log_text(const struct examine_log *lg)
{
	if (lg->err == -ENODATA) {
		printf("  dirty-region log: none written yet\n");
		return;
	} else if (lg->err < 0) {
		printf("  dirty-region log: unreadable (%s)\n", strerror(-lg->err));
		return;
	}
	printf("  dirty-region log: %" PRIu64 " of %" PRIu64 " regions dirty (region %" PRIu64
	       " bytes, events %" PRIu64 ")", lg->n_dirty, lg->h.n_regions, lg->h.region_size,
	       lg->h.events);
	if (lg->n_dirty) {
		printf(": ");
		print_dirty_ranges(lg);
	}
	printf("\n");
}

static void examine_json(const char *path, const struct rt_sb *sb, const struct rt_sb_status *st,
			 const struct examine_log *lg)
{
	struct json j;

	json_init(&j, stdout);
	json_object_begin(&j, NULL);
	json_str(&j, "unit", path);
	json_array_begin(&j, "copies");
	for (int c = 0; c < 2; c++) {
		json_object_begin(&j, NULL);
		json_u64(&j, "copy", (uint64_t)c);
		json_u64(&j, "offset", sb->unit.sb_offset[c]);
		json_str(&j, "status", copy_status(st->copy_err[c]));
		json_bool(&j, "valid", st->copy_err[c] == 0);
		if (st->copy_err[c] == 0)
			json_u64(&j, "events", st->copy_events[c]);
		json_bool(&j, "chosen", st->chosen == c);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_u64(&j, "version", sb->version);
	json_u64(&j, "feature_compat", sb->feature_compat);
	json_u64(&j, "feature_incompat", sb->feature_incompat);
	json_u64(&j, "feature_ro_compat", sb->feature_ro_compat);
	json_u64(&j, "events", sb->events);
	json_str(&j, "state", sb_array_state_name(sb->state));
	json_u64(&j, "utime", sb->utime);
	json_object_begin(&j, "array");
	describe_array_json(&j, sb);
	json_u64(&j, "region_size", sb->array.region_size);
	json_object_end(&j);
	json_object_begin(&j, "this_unit");
	describe_unit_json(&j, sb);
	json_object_end(&j);
	describe_slots_json(&j, "roles", sb);
	examine_log_json(&j, lg);
	json_object_end(&j);
	json_finish(&j);
}

static void examine_text(const char *path, const struct rt_sb *sb, const struct rt_sb_status *st,
			 const struct examine_log *lg)
{
	char when[64];

	printf("%s:\n", path);
	for (int c = 0; c < 2; c++) {
		printf("  superblock copy %d (offset %" PRIu64 "): %s", c, sb->unit.sb_offset[c],
		       copy_status(st->copy_err[c]));
		if (st->copy_err[c] == 0)
			printf(", events %" PRIu64, st->copy_events[c]);
		printf("%s\n", st->chosen == c ? " (used)" : "");
	}
	cli_format_time(sb->utime, when, sizeof(when));
	printf("  format version: %u  features: compat %#" PRIx64 " incompat %#" PRIx64
	       " ro_compat %#" PRIx64 "\n", sb->version, sb->feature_compat,
	       sb->feature_incompat, sb->feature_ro_compat);
	printf("  updated: %s\n\n", when);
	printf("Array\n");
	describe_array_text(stdout, sb);
	printf(" region size: %" PRIu64 " bytes\n\nThis unit\n", sb->array.region_size);
	describe_unit_text(stdout, sb);
	printf("  superblocks: %" PRIu64 ", %" PRIu64 "\n", sb->unit.sb_offset[0],
	       sb->unit.sb_offset[1]);
	printf("  log area: %" PRIu64 " bytes at %" PRIu64 "\n", sb->unit.log_size,
	       sb->unit.log_offset);
	examine_log_text(lg);
	printf("\nRole table\n");
	describe_slots_text(stdout, sb);
}

static int as_json = 0, as_export = 0;

static const struct poptOption examine_opts[] = {
	{ "json", 0, POPT_ARG_NONE, &as_json, 0, "print JSON", NULL },
	{ "export", 0, POPT_ARG_NONE, &as_export, 0,
	  "print RAIDTOOL_*=value lines for udev; nothing for a non-unit", NULL },
	POPT_TABLEEND
};

static int run_examine(int n, const char **args)
{
	struct examine_log lg;
	struct rt_sb_status st;
	struct rt_unit *u = NULL;
	struct rt_sb sb;
	int r;

	if (as_json && as_export) {
		r = cli_usage_error("examine", "--json and --export exclude each other");
		goto out;
	}
	if (as_export && examine_export_array(args[0]) == 0) {
		r = EXIT_OK;
		goto out;
	}
	r = cli_read_unit(args[0], &sb, &st, as_export, as_export ? NULL : &u);
	if (r < 0) {
		/* For udev, a device without a superblock is simply not ours. */
		r = as_export && r == -ENODATA ? EXIT_OK : cli_exit_code(r);
		goto out;
	}
	if (as_export) {
		examine_export(&sb);
	} else {
		examine_read_log(u, &sb, &lg);
		unit_close(u);
		if (as_json)
			examine_json(args[0], &sb, &st, &lg);
		else
			examine_text(args[0], &sb, &st, &lg);
		free(lg.bits);
	}
	r = EXIT_OK;
out:
	return r;
}

const struct cli_command cmd_examine = {
	.name = "examine", .run = run_examine, .opts = examine_opts,
	.args = "UNIT", .min_args = 1, .max_args = 1,
	.summary = "dump a unit's superblocks",
};
