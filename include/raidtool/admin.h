/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_ADMIN_H
#define RAIDTOOL_ADMIN_H

/*
 * Admin operations that work on an array whether it runs or not: the
 * caller names the array and the units, the library finds out whether an
 * engine runs it (and asks that engine) or writes the superblocks itself.
 */
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <raidtool/control.h>
#include <raidtool/format.h>

struct rt_add_opts {
	bool force;			/* overwrite what a unit holds (a filesystem, ...) */
	/* A running array's speed limit of background walks, bytes/s; <0: left as it is. */
	int64_t speed_limit;
};

/* One unit added. */
struct rt_added_unit {
	char path[PATH_MAX];		/* as given */
	/* Its slot, device, uuid, hashcode and state (rebuilding or spare). */
	struct rt_control_unit *unit;
	char msg[512];			/* a running array's engine: what it did; else "" */
};

struct rt_add_result {
	char name[RT_NAME_MAX + 1];
	uint8_t uuid[RT_UUID_SIZE];
	uint32_t hashcode;
	uint32_t n_devices;		/* its roles: a unit in a slot past them is a spare */
	bool running;			/* added to the running engine (one unit at a time) */
	size_t n_added;			/* units added, also when a later one failed */
	struct rt_added_unit added[RT_MAX_UNITS];
};

/*
 * add.unit: add @units to array @id (NAME or HASHCODE), into missing roles
 * first, then as spares. A running array takes them one by one from its
 * engine, which rebuilds onto them in the background; a stopped one gets
 * them all in one superblock update (under the array's and the names'
 * locks, lib/lock.h), or none. 0, or a negative errno with the reason
 * logged; -EINVAL for a speed limit given for an array that is not running.
 * *@out is the caller's to free with admin_add_result_free, also on failure
 * (NULL when it could not be allocated).
 */
int admin_add_units(const char *id, const char *const *units, size_t n_units,
		    const struct rt_add_opts *o, struct rt_add_result **out);
void admin_add_result_free(struct rt_add_result *res);	/* NULL is fine */

/*
 * Send @rq to the engine of the running array @uuid (@name for messages)
 * under the array's admin lock (lib/lock.c: one admin command on an array
 * at a time), as every command that changes a running array does. 0 with
 * the engine's message in @msg (@unit, may be NULL: the unit it changed);
 * else -errno with the reason logged: the lock stayed busy, the engine
 * refused, or the array stopped while this waited for the lock
 * (-ESHUTDOWN, "not running").
 */
int admin_engine_request(const uint8_t uuid[RT_UUID_SIZE], const char *name,
			 const struct rt_control_req *rq, char *msg, size_t len,
			 struct rt_control_unit *unit);

#endif
