/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_CONTROL_INTERNAL_H
#define RAIDTOOL_CONTROL_INTERNAL_H

/*
 * A status's and a unit's members, for the library's modules that fill or
 * compare them (the engine's status, the overview, the monitor) and for the
 * wire's field table (control.c); callers outside lib/ read them through
 * the getters of control.h.
 */
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <raidtool/control.h>

struct rt_control_unit {
	uint32_t slot;			/* role (< n_devices) or a spare's slot */
	char device[256];
	uint8_t uuid[RT_UUID_SIZE];
	uint32_t hashcode;
	enum rt_unit_state state;
	uint64_t reads, writes, read_bytes, write_bytes, errors;
	uint64_t retries;		/* I/Os tried again after an error */
	bool no_space;			/* its last write failed for want of space */
};

struct rt_control_status {
	char state[16];			/* "active" / "inactive" */
	char name[RT_NAME_MAX + 1];
	uint8_t uuid[RT_UUID_SIZE];
	uint32_t hashcode;
	int32_t level;			/* enum rt_level */
	uint64_t size;			/* bytes */
	uint64_t nblocks;
	uint32_t blocksize, chunk_size, n_devices;
	uint64_t events;
	uint32_t array_state;		/* enum rt_array_state (superblock) */
	char device[64];		/* "" when inactive */
	char link[RT_NAME_MAX + 32];
	pid_t pid;			/* 0 when inactive */
	uint64_t started;		/* seconds since the epoch */
	unsigned n_units;
	struct rt_control_unit units[RT_MAX_UNITS];
	struct rt_control_stats stats;
	/* Failure and recovery (appended). */
	enum rt_health health;		/* RT_HEALTH_NONE when inactive */
	enum rt_walk_kind walk;		/* the running or last walk; RT_WALK_NONE: none yet */
	bool walk_running;		/* false: @walk is the last walk, which ended */
	int32_t walk_result;		/* of the last finished walk: 0 or -errno */
	uint32_t walk_role;		/* rebuilding: the role */
	uint64_t walk_done, walk_total;	/* bytes of a role's data area */
	uint64_t walk_speed;		/* bytes per second */
	uint64_t mismatches, repaired;	/* check/repair */
	uint64_t regions, regions_total;/* resync */
	/* The initial sync has not finished (appended). */
	bool unsynced;
	uint64_t unsynced_left, unsynced_total;	/* regions still to sync, of all */
	/* raid1 repair (appended): stripes with a tie left as found; bit r: role r's copy settled a tie */
	uint64_t ties, kept_roles;
	/* Errors that are not the disk's fault (appended). */
	uint64_t nospace_mask;		/* bit r: role r is out of space */
	uint32_t retry_count, retry_window_ms;
	/* Background walks' speed limit (appended): bytes per second, 0: none. */
	uint64_t walk_speed_max;
	/* The FUSE transport (appended): "io_uring" or "/dev/fuse", "" when inactive. */
	char transport[16];
	uint64_t fuse_ring_requests, fuse_dev_requests;
	uint32_t fuse_queues, fuse_queue_depth;	/* io_uring queues, entries each */
	uint64_t fuse_worker_requests;	/* of the ring's, served by a worker (appended) */
	uint32_t fuse_poll_us;		/* the queues' poll time (appended) */
	uint64_t fuse_polled;		/* waits a poll ended without sleeping (appended) */
	/*
	 * The walk itself walking (appended): walk_running without the end's
	 * bookkeeping and a rebuild to follow. A unit the walk made active is
	 * never seen with this still true.
	 */
	bool walk_active;
};

#endif
