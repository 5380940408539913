/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_RUN_INTERNAL_H
#define RAIDTOOL_RUN_INTERNAL_H

/*
 * Shared by the run path's modules (run.c the supervisor, run-admin.c the
 * admin operations, daemon.c, deactivate.c): the state of a running array.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <raidtool/assemble.h>
#include <raidtool/control.h>
#include <raidtool/engine.h>
#include <raidtool/export.h>
#include <raidtool/rebuild.h>
#include "assemble-internal.h"
#include "control-internal.h"

struct thin_run;

struct run {
	char name[RT_NAME_MAX + 1];
	/*
	 * The array as the commands that messages suggest name it: its name,
	 * or its hashcode when another running array has the name.
	 */
	char id[RT_NAME_MAX + 1];
	uint8_t uuid[RT_UUID_SIZE];	/* keys the run directory */
	int lock_fd;
	int sig_fd;
	int stop_fd;			/* eventfd: the control thread accepted a `stop` */
	/*
	 * eventfd: the main thread looks for a rebuild to start (next_rebuild):
	 * a role failed while a spare was present, or a walk ended.
	 */
	int rebuild_fd;
	sigset_t old_mask;
	bool mask_set;
	bool locked_memory;
	uint64_t started;

	struct rt_assembly *as;
	struct rt_engine *e;
	struct rt_export *x;
	struct thin_run *thin;		/* the array's thin pool, when it holds one */
	struct control_server *cs;

	pthread_mutex_t lock;
	pthread_mutex_t sb_lock;	/* superblock updates and run->as->sb readers */
	pthread_mutex_t admin_lock;	/* add, remove, fail, taking a spare: one at a time */
	_Atomic int admin_fail;		/* the role `raidtool fail` is failing, or -1 */
	bool force;			/* start a degraded, dirty raid5 */
	bool readonly;			/* activate --readonly: nothing written to any unit */
	bool stopping;
	bool resync_pending;		/* a resync started and has not finished */
	/*
	 * A rebuild waits for the walk running now (one walk at a time) and
	 * starts when it ends: status shows a walk running meanwhile, so
	 * that `wait` waits for that rebuild too.
	 */
	atomic_bool rebuild_next;
	/*
	 * Failures that found a spare (the failure handler counts them) and
	 * how many of them the main thread has handled: a spare about to
	 * take a role is a rebuild to come for `wait`, as rebuild_next is.
	 */
	atomic_uint spare_wakes, spare_handled;
	/*
	 * An add or replace put a unit in the role table and is about to
	 * start its walk (it does so without sb_lock): a walk to come for
	 * `wait`, as rebuild_next is; cleared once the walk runs or could not
	 * start.
	 */
	atomic_bool walk_starting;
	/*
	 * Bit r: role r's rebuild failed or was cancelled in this run. It is
	 * not resumed when another walk ends (a source that failed would fail
	 * it again at once) until a rebuild of it is started anew (an add, a
	 * spare) or the next start.
	 */
	_Atomic uint64_t rebuild_stopped;
	uint64_t walk_speed_max;	/* RAIDTOOL_SYNC_SPEED_MAX, bytes/s; 0: none */
	long stripe_wait_us;		/* RAIDTOOL_STRIPE_WAIT_US; -1: the engine's default */
	enum rt_fuse_transport transport;	/* RAIDTOOL_FUSE_TRANSPORT */
	unsigned fuse_poll_us;		/* RAIDTOOL_FUSE_POLL_US */
	/* run_resync_owed: the main thread's look and a check may ask at once. */
	pthread_mutex_t owed_mu;
	uint64_t owed_all;		/* engine_resync_owed's @all for the running resync */
	bool owed_warned;
	int excl_fd;			/* the loop device, held O_EXCL from the stop decision on */
};

struct slot_change {
	uint32_t slot;
	uint32_t state;
	bool forget;			/* zero the slot's unit identity (remove) */
	bool io_error;			/* it failed an I/O: no rebuild from the log alone */
};

typedef void (*ready_fn)(struct run *run, void *arg);

/* run.c: the supervisor */
void run_init(struct run *run);
/* Run array @id until it is stopped; @ready once its block device is there. */
int run_array(const char *id, ready_fn ready, void *ready_arg, struct run *run);
/* A superblock update of the running array (the engine learns the events). */
int run_sb_update(struct run *run, assemble_mutate_fn mutate, void *arg);
int run_change_slot(struct rt_sb *sb, void *arg);	/* mutate: struct slot_change */
int run_find_spare(const struct rt_assembly *as);	/* index of a spare, or -1 */
enum rt_health run_health(int state);			/* of an enum rt_engine_state */
void run_on_failure(uint32_t role, void *ctx);
void run_on_walk_done(int kind, uint32_t role, int result, void *ctx);
int run_detach_failed_unit(struct run *run, uint32_t role, struct rt_unit **u);
int run_walk_start(struct run *run, struct rt_walk_params *p);
int run_resync_owed(struct run *run);	/* 0: a resync of owed regions started */
int run_start_rebuild_regions(struct run *run, uint32_t role, uint64_t start,
			      const uint8_t *regions, uint64_t region_size);
int run_start_rebuild(struct run *run, uint32_t role, uint64_t start);
/* raidtool replace: fill the replacement of @role (engine_replace_start done). */
int run_start_replace(struct run *run, uint32_t role, uint64_t start, const uint8_t *regions,
		      uint64_t region_size);
int run_replacing_index(const struct rt_assembly *as);	/* or -1 */
int run_teardown(struct run *run, char *msg, size_t msglen);
/* What an engine that died left (loop device, mount, links); we hold its lock. */
int run_recover_leftovers(const char *name, const uint8_t uuid[RT_UUID_SIZE], char *did,
			  size_t didlen);
void run_remove_files(struct run *run, bool keep_log);

/* run-admin.c: the admin operations on a running array */
void run_take_spare(struct run *run);	/* md's hot spare, on the main thread */
int run_admin_command(void *ctx, const struct rt_control_req *rq, char *msg, size_t len,
		      struct rt_control_unit *unit);

/* Unit @i of the assembly as status shows it: slot, device, uuid, hashcode, state. */
void run_unit_describe(struct run *run, unsigned i, struct rt_control_unit *u);

#endif
