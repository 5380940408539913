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
#include <raidtool/control.h>
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

/*
 * A scan (struct rt_scan), its arrays and their units are handles: read
 * them with the getters below (lib/scan-internal.h has their members).
 */
struct rt_scan;
struct rt_scan_array;
struct rt_scan_unit;

/* "current", "current, one event behind", "stale", "conflict", "suspect". */
const char *scan_unit_class_name(enum rt_unit_class cls);

/* Current or one event behind: assembly and updates use it for its slot. */
bool scan_unit_usable(const struct rt_scan_unit *u);

/* The arrays found, sorted by name, hashcode and UUID. */
size_t scan_array_count(const struct rt_scan *s);
const struct rt_scan_array *scan_array_at(const struct rt_scan *s, size_t i);

/* The freshest superblock among its units (not a suspect's, unless all are). */
const struct rt_sb *scan_array_sb(const struct rt_scan_array *a);
/* Roles the freshest table gives a unit (active, rebuilding) with a usable unit here. */
unsigned scan_array_roles_present(const struct rt_scan_array *a);
/* Units classed stale. */
unsigned scan_array_stale_count(const struct rt_scan_array *a);
/* Another visible array has the same name. */
bool scan_array_name_shared(const struct rt_scan_array *a);
/* Its units found, sorted by slot. */
size_t scan_array_unit_count(const struct rt_scan_array *a);
const struct rt_scan_unit *scan_array_unit_at(const struct rt_scan_array *a, size_t i);

/* The block device of a unit. */
const char *scan_unit_device(const struct rt_scan_unit *u);
/* The backing file of a loop device, else "". */
const char *scan_unit_backing(const struct rt_scan_unit *u);
/* Its freshest valid superblock copy (a suspect's: as read). */
const struct rt_sb *scan_unit_sb(const struct rt_scan_unit *u);
enum rt_unit_class scan_unit_class(const struct rt_scan_unit *u);
/* Stale, conflict, suspect: the field and reason; else "". */
const char *scan_unit_why(const struct rt_scan_unit *u);

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
 * A usable unit: its slot's state in @a's role table (active, ...); one
 * whose role a replacement took (scan_unit_replaced): replaced; else its class.
 */
enum rt_unit_state scan_unit_state(const struct rt_scan_array *a, const struct rt_scan_unit *u);

/* Does @a's freshest role table record unit @u as replaced (raidtool replace)? */
bool scan_unit_replaced(const struct rt_scan_array *a, const struct rt_scan_unit *u);

/* The array with @uuid in the scan, or NULL. */
const struct rt_scan_array *scan_find_uuid(const struct rt_scan *s,
					   const uint8_t uuid[RT_UUID_SIZE]);

/* The scanned unit living on @path (a device, or a file attached to a loop). */
const struct rt_scan_unit *scan_find_unit(const struct rt_scan *s, const char *path);

#endif
