/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_SCAN_INTERNAL_H
#define RAIDTOOL_SCAN_INTERNAL_H

/*
 * A scan's members, for the library's modules (assembly, updates, the
 * incremental verdict, the overview); callers outside lib/ read a scan
 * through the getters of scan.h.
 */
#include <stdbool.h>
#include <stddef.h>
#include <raidtool/format.h>
#include <raidtool/scan.h>

struct rt_scan_unit {
	char dev[256];			/* block device path */
	char backing[4096];		/* backing file for a loop device, else "" */
	struct rt_sb sb;		/* the freshest valid copy (suspect: as read) */
	struct rt_sb_status status;
	enum rt_unit_class cls;
	bool table_differs;		/* conflict: at the freshest events, another shared part */
	char why[256];			/* stale, conflict, suspect: the field and reason */
};

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

#endif
