/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_INCREMENTAL_H
#define RAIDTOOL_INCREMENTAL_H

/*
 * Incremental assembly: units arrive one at a time (udev reports each block
 * device as it appears) and an array is started once all its units are
 * there. What has arrived is kept in a map under the run directory,
 * <rundir>/map (format: raidtool-control(7)), so that every udev event sees
 * the units of the events before it.
 *
 * An array is started when every role its freshest role table expects has
 * arrived. One that could run degraded, with roles still missing, is not
 * started while more units may still come: only after a timeout (a waiter
 * process, or a systemd timer) or when asked to with `run`.
 */
#include <stdbool.h>
#include <stdint.h>
#include <raidtool/format.h>

struct rt_scan_array;

enum rt_incremental_started {
	RT_INC_NO = 0,		/* too few units to run, even degraded */
	RT_INC_UNSAFE = 1,	/* could run degraded; waiting for the rest */
	RT_INC_YES = 2,		/* started (or, with no_start, ready to be started) */
	RT_INC_ALREADY = 3,	/* already running */
};

const char *incremental_started_name(int started);	/* "no", "unsafe", "yes", "already" */

/*
 * The decision for a scanned array (pure): YES when every expected role is
 * present (or @run and the missing ones are few enough for the level), UNSAFE
 * when it could run degraded but roles may still come, NO otherwise.
 */
int incremental_verdict(const struct rt_scan_array *a, bool run);

struct rt_incremental_opts {
	bool run;		/* start degraded now if the level allows */
	bool no_start;		/* decide only: the caller (systemd) starts it */
	unsigned timeout;	/* seconds before a waiting array starts degraded; 0: never */
};

struct rt_incremental_result {
	int started;				/* enum rt_incremental_started */
	char name[RT_NAME_MAX + 1];
	uint8_t uuid[RT_UUID_SIZE];
	uint32_t hashcode;
	uint32_t unit_hashcode;			/* of the unit added or removed */
	unsigned n_devices;			/* roles of the array */
	unsigned n_expected, n_present;		/* roles expected by the role table, arrived */
	bool waiter;				/* a degraded start is scheduled */
	bool readded;				/* the unit went back into its running array */
	char link[RT_NAME_MAX + 32];		/* /dev/raidtool/NAME when running */
	char msg[256];				/* the engine's answer to a removal or re-add */
};

/*
 * A block device appeared (or changed): record it in the map when it is a
 * unit and start its array when that is now complete (see above). Only an
 * appearance starts anything: the same unit on the same device with the
 * same diskseq as recorded is an event about a unit already counted, and
 * reports NO for an array that is not running (or ALREADY). A unit of a
 * running array that left it (its role missing under this unit's UUID) and
 * appears again is added back (readded, the engine's answer in msg). Returns 0
 * with @res filled; -ENODATA when @dev carries no raidtool superblock,
 * -ENOTBLK when it is not a block device; a failed start returns the
 * activation's error with @res filled (started = NO).
 */
int incremental_add(const char *dev, const struct rt_incremental_opts *o,
		    struct rt_incremental_result *res);

/*
 * A block device went away: forget it, and when its array is running, fail
 * and remove the unit there (the array goes on degraded, or stops writes if
 * the level cannot spare it). -ENOENT when the map does not know @dev.
 */
int incremental_remove(const char *dev, struct rt_incremental_result *res);

/*
 * Start the arrays of the map that are not running yet and can (degraded
 * too, with @o->run): what a waiter does when its timeout ends, and what
 * `incremental --scan` does at the end of a boot. @cb is called per array.
 */
int incremental_start_waiting(const struct rt_incremental_opts *o,
			      void (*cb)(const struct rt_incremental_result *res, int err, void *arg),
			      void *arg);

#endif
