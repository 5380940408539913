/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_SCAN_H
#define RAIDTOOL_SCAN_H

/*
 * Find units: enumerate the machine's block devices (loop devices included,
 * the block devices of running arrays not), read raidtool's superblock from
 * each, and group the units into arrays by array hashcode and UUID.
 */
#include <stdbool.h>
#include <stddef.h>
#include <raidtool/format.h>
#include <raidtool/unit.h>

/*
 * What a unit is to its array: decided once, in the scan, by the one rule
 * every command follows (assembly, updates, list, status).
 */
enum rt_unit_class {
	/* At the freshest events, where the freshest role table puts it. */
	RT_UNIT_CURRENT,
	/*
	 * Exactly one event behind, and the freshest role table lists it in
	 * use (active, rebuilding, spare) in its slot: an update was
	 * interrupted before it reached this unit. As good as current.
	 */
	RT_UNIT_CURRENT_BEHIND,
	/* Behind, and the freshest table no longer counts on it. */
	RT_UNIT_STALE,
	/* At the freshest events, but that table does not place it where it claims. */
	RT_UNIT_CONFLICT,
	/*
	 * A field of its superblock makes no sense (why names it): left out,
	 * and never the reason other units are stale.
	 */
	RT_UNIT_SUSPECT,
};

struct rt_scan_unit {
	char dev[256];			/* block device path */
	char backing[4096];		/* backing file for a loop device, else "" */
	struct rt_sb sb;		/* the freshest valid copy (suspect: as read) */
	struct rt_sb_status status;
	enum rt_unit_class cls;
	bool table_differs;		/* conflict: at the freshest events, another shared part */
	char why[256];			/* stale, conflict, suspect: the field and reason */
};

/* "current", "current, one event behind", "stale", "conflict", "suspect". */
const char *scan_unit_class_name(enum rt_unit_class cls);

/* Current or one event behind: assembly and updates use it for its slot. */
bool scan_unit_usable(const struct rt_scan_unit *u);

struct rt_scan_array {
	struct rt_sb sb;		/* freshest superblock among its units (not suspect) */
	size_t n_units;
	struct rt_scan_unit *units[RT_MAX_UNITS * 2];	/* sorted by slot */
	unsigned n_expected_roles;	/* roles the freshest table gives a unit (active, rebuilding) */
	unsigned n_present_roles;	/* ... of them, with a usable unit here */
	unsigned n_active_roles;	/* ... of those, active (not being rebuilt) */
	unsigned n_stale;		/* units classed stale */
	unsigned n_behind;		/* ... current, one event behind */
	unsigned n_conflicts;		/* ... conflict */
	unsigned n_suspect;		/* ... suspect */
	bool all_suspect;		/* no unit to trust: sb is a suspect's */
	bool duplicate_name;		/* another visible array has the same name */
};

struct rt_scan {
	size_t n_units;
	struct rt_scan_unit *units;
	size_t n_arrays;
	struct rt_scan_array *arrays;
};

int scan_devices(struct rt_scan **out);

/*
 * Is @devname the block device of a running (or dead) engine: a loop device
 * on <rundir>/<UUID>/mnt/<NAME>? Decided from sysfs, without opening it.
 * Scans skip these devices.
 */
bool scan_is_array_device(const char *devname);

/*
 * Is @devname a running thin volume's loop device (lib/thin-run.c)? 0 with
 * its array's UUID and the volume's name, else -ENOENT. Reads sysfs only.
 */
int scan_volume_of_device(const char *devname, uint8_t uuid[RT_UUID_SIZE], char *vol,
			  size_t vollen);

/*
 * The same over just the block devices @devs (incremental assembly: the
 * devices udev reported). Paths that are not block devices, or carry no
 * superblock, are left out.
 */
int scan_devices_list(const char *const *devs, size_t n, struct rt_scan **out);
void scan_free(struct rt_scan *s);

/*
 * Find an array by NAME or 8-hex-digit HASHCODE. -ENOENT when none,
 * -ENOTUNIQ when the name is shared by several arrays (a hashcode selects).
 */
int scan_lookup(const struct rt_scan *s, const char *id,
		const struct rt_scan_array **out);

/*
 * scan_lookup, explaining a failure through rt_log: no such array, or a
 * name (hashcode) several arrays share, listing their hashcodes.
 */
int scan_find(const struct rt_scan *s, const char *id, const struct rt_scan_array **out);

/* Log that no array is named (or hashcoded) @id: the one wording of an unknown array. */
void scan_log_no_such_array(const char *id);

/*
 * Scan the machine (scan_devices) and find array @id in it (scan_find),
 * explaining a failure through rt_log. *@scan is the caller's to free,
 * also on failure (NULL when the scan failed).
 */
int scan_devices_find(const char *id, struct rt_scan **scan, const struct rt_scan_array **out);

/*
 * A usable unit: its slot's state in @a's role table ("active", ...); one
 * whose role a replacement took (scan_unit_replaced): "replaced"; else its class.
 */
const char *scan_unit_state(const struct rt_scan_array *a, const struct rt_scan_unit *u);

/* Does @a's freshest role table record unit @u as replaced (raidtool replace)? */
bool scan_unit_replaced(const struct rt_scan_array *a, const struct rt_scan_unit *u);

/* The array with @uuid in the scan, or NULL. */
const struct rt_scan_array *scan_find_uuid(const struct rt_scan *s,
					   const uint8_t uuid[RT_UUID_SIZE]);

/* The scanned unit living on @path (a device, or a file attached to a loop). */
const struct rt_scan_unit *scan_find_unit(const struct rt_scan *s, const char *path);

#endif
