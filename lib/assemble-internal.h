/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_ASSEMBLE_INTERNAL_H
#define RAIDTOOL_ASSEMBLE_INTERNAL_H

/*
 * An assembly's members, for the library's modules that run or open an
 * assembled array (run.c, run-admin.c, thin-offline.c); callers outside
 * lib/ hold it by its handle (assemble.h).
 */
#include <stdbool.h>
#include <stdint.h>
#include <raidtool/assemble.h>
#include <raidtool/format.h>

struct rt_unit;

struct rt_assembly {
	struct rt_sb sb;			/* shared part: array, slots, events, state */
	unsigned n_roles;			/* = sb.array.n_devices */
	unsigned n_units;			/* roles first, then fresh spares */
	unsigned n_missing;			/* roles without an active unit */
	char missing[RT_MAX_UNITS * 16];	/* "1, 3 (faulty)" */
	struct rt_unit *units[RT_MAX_UNITS];	/* [role] for role < n_roles; NULL: missing */
	struct rt_unit_desc own[RT_MAX_UNITS];	/* each unit's own descriptor */
	char dev[RT_MAX_UNITS][256];		/* the block device of each unit */
	/*
	 * Each unit's events on disk, for writing lagging units first; after a
	 * failed write the old value is kept (what the unit holds is unknown).
	 */
	uint64_t disk_events[RT_MAX_UNITS];
	/* Roles taken by --force from a unit the freshest table had given up. */
	bool forced[RT_MAX_UNITS];
};

#endif
