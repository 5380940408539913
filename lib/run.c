/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The supervisor of a running array: scan, assemble, mark dirty, start the
 * engine, export the block device, serve the control socket, react to
 * failures, start and follow the background walks, wait, tear down, mark
 * clean. The admin operations on it are in run-admin.c, the daemon in
 * daemon.c, deactivate in deactivate.c.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <raidtool/assemble.h>
#include <raidtool/control.h>
#include <raidtool/engine.h>
#include <raidtool/export.h>
#include <raidtool/log.h>
#include <raidtool/rebuild.h>
#include <raidtool/scan.h>
#include <raidtool/thin.h>
#include <raidtool/unit.h>
#include <raidtool/util.h>
#include "member.h"
#include "run-internal.h"
#include "scan-internal.h"

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

static void unlink_run_file(const uint8_t uuid[RT_UUID_SIZE], const char *file)
{
	char path[PATH_MAX];

	if (control_path(uuid, file, path, sizeof(path)) == 0)
		unlink(path);
}

static void rmdir_run(const uint8_t uuid[RT_UUID_SIZE], const char *sub)
{
	char path[PATH_MAX];

	if (control_path(uuid, sub, path, sizeof(path)) == 0)
		rmdir(path);
}

static int write_run_file(const uint8_t uuid[RT_UUID_SIZE], const char *file,
			  const char *content)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	size_t len = strlen(content);
	int fd, r = 0;

	r = control_path(uuid, file, path, sizeof(path));
	if (r < 0)
		return r;
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, content, len) != (ssize_t)len)
		r = -EIO;
	close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

/* The FUSE transport in use and what it carried, for status. */
static void fuse_status(const struct rt_export *x, struct rt_control_status *st)
{
	struct rt_fuse_stats fs;

	export_fuse_stats(x, &fs);
	snprintf(st->transport, sizeof(st->transport), "%s", export_transport(x));
	st->fuse_ring_requests = fs.ring_requests;
	st->fuse_dev_requests = fs.dev_requests;
	st->fuse_queues = fs.queues;
	st->fuse_queue_depth = fs.queue_depth;
	st->fuse_worker_requests = fs.worker_requests;
	st->fuse_poll_us = fs.poll_us;
	st->fuse_polled = fs.polled;
}

void run_unit_describe(struct run *run, unsigned i, struct rt_control_unit *u)
{
	const struct rt_assembly *as = run->as;
	uint32_t slot = as->own[i].slot;

	u->slot = slot;
	snprintf(u->device, sizeof(u->device), "%s", as->dev[i]);
	memcpy(u->uuid, as->own[i].uuid, RT_UUID_SIZE);
	u->hashcode = as->own[i].hashcode;
	u->state = control_unit_state_of_slot(slot < RT_MAX_UNITS ? as->sb.slots[slot].state : 0);
	if (slot < as->n_roles && !as->units[i]) {
		u->state = RT_UNIT_STATE_MISSING;
	} else if (slot < as->n_roles && as->sb.slots[slot].state == RT_SLOT_ACTIVE &&
		   engine_role_state(run->e, slot) == RT_ROLE_FAULTY) {
		/* Failed, and its superblock update did not get through. */
		u->state = RT_UNIT_STATE_FAULTY;
	}
}

static int on_status(void *ctx, struct rt_control_status *st)
{
	struct run *run = ctx;
	const struct rt_assembly *as = run->as;
	struct rt_engine_stats *es;

	es = calloc(1, sizeof(*es));
	if (!es)
		return -ENOMEM;
	engine_get_stats(run->e, es);
	pthread_mutex_lock(&run->sb_lock);
	snprintf(st->state, sizeof(st->state), run->readonly ? "read-only" : "active");
	st->health = run_health(engine_state(run->e));
	snprintf(st->name, sizeof(st->name), "%s", as->sb.array.name);
	memcpy(st->uuid, as->sb.array.uuid, RT_UUID_SIZE);
	st->hashcode = as->sb.array.hashcode;
	st->level = as->sb.array.level;
	st->size = engine_size(run->e);
	st->nblocks = as->sb.array.nblocks;
	st->blocksize = as->sb.array.blocksize;
	st->chunk_size = as->sb.array.chunk_size;
	st->n_devices = as->sb.array.n_devices;
	st->events = as->sb.events;
	st->array_state = as->sb.state;
	snprintf(st->device, sizeof(st->device), "%s", export_device(run->x));
	snprintf(st->link, sizeof(st->link), "%s", export_link(run->x));
	fuse_status(run->x, st);
	st->pid = getpid();
	st->started = run->started;
	st->n_units = as->n_units;
	for (unsigned i = 0; i < as->n_units; i++) {
		struct rt_control_unit *u = &st->units[i];
		uint32_t slot = as->own[i].slot;

		run_unit_describe(run, i, u);
		if (slot < as->n_roles) {
			u->reads = es->unit[slot].reads;
			u->writes = es->unit[slot].writes;
			u->read_bytes = es->unit[slot].read_bytes;
			u->write_bytes = es->unit[slot].write_bytes;
			u->errors = es->unit[slot].errors;
			u->retries = es->unit[slot].retries;
			u->no_space = (es->nospace_mask >> slot) & 1;
		}
	}
	st->stats.reads = es->reads;
	st->stats.writes = es->writes;
	st->stats.flushes = es->flushes;
	st->stats.read_bytes = es->read_bytes;
	st->stats.write_bytes = es->write_bytes;
	st->stats.errors = es->errors;
	st->stats.stripe_full = es->stripe_full;
	st->stats.stripe_merged = es->stripe_merged;
	st->stats.stripe_rmw = es->stripe_rmw;
	st->stats.stripe_rcw = es->stripe_rcw;
	st->stats.discards = es->discards;
	st->stats.discard_bytes = es->discard_bytes;
	st->stats.walk_loop_pieces = es->walk_loop_pieces;
	st->stats.walk_own_pieces = es->walk_own_pieces;
	st->nospace_mask = es->nospace_mask;
	st->retry_count = es->retry_count;
	st->retry_window_ms = es->retry_window_ms;
	{
		/*
		 * A rebuild to follow: not done yet for `wait`. Read before the
		 * walk, in the order next_rebuild writes them backwards: a walk
		 * starting meanwhile is seen either way.
		 */
		bool next = atomic_load(&run->spare_wakes) != atomic_load(&run->spare_handled) ||
			    atomic_load(&run->rebuild_next) || atomic_load(&run->walk_starting);
		struct rt_walk_progress wp;

		engine_walk_progress(run->e, &wp);
		st->walk = wp.kind;
		st->walk_running = wp.running || wp.ending || next;
		st->walk_active = wp.running;
		st->walk_result = wp.result;
		st->walk_role = wp.role;
		st->walk_done = wp.done;
		st->walk_total = wp.total;
		st->walk_speed = wp.bytes_per_sec;
		st->walk_speed_max = __atomic_load_n(&run->walk_speed_max, __ATOMIC_RELAXED);
		st->mismatches = wp.mismatches;
		st->repaired = wp.repaired;
		st->ties = wp.ties;
		st->kept_roles = wp.kept_roles;
		st->regions = wp.regions;
		st->regions_total = wp.regions_total;
	}
	st->unsynced = sb_unsynced(&as->sb);
	if (st->unsynced &&
	    engine_dirtylog_unsynced(run->e, &st->unsynced_left, &st->unsynced_total) < 0)
		st->unsynced_left = st->unsynced_total = 0;
	pthread_mutex_unlock(&run->sb_lock);
	free(es);
	return 0;
}

/* ---- failure and recovery ------------------------------------------------ */

int run_change_slot(struct rt_sb *sb, void *arg)
{
	const struct slot_change *c = arg;

	sb->slots[c->slot].state = c->state;
	if (c->io_error)
		sb->io_failed |= 1ull << c->slot;
	/* A role back in sync: whatever failed on it before is history. */
	if (c->state == RT_SLOT_ACTIVE && c->slot < sb->array.n_devices)
		sb->io_failed &= ~(1ull << c->slot);
	if (c->forget) {
		memset(sb->slots[c->slot].uuid, 0, RT_UUID_SIZE);
		sb->slots[c->slot].hashcode = 0;
		sb->slots[c->slot].recovery_offset = 0;
	}
	return 0;
}

/* From the role table (the failure handler must not ask the engine). */
static const char *role_table_health(const struct rt_sb *sb)
{
	unsigned lost = 0, spare;

	for (uint32_t r = 0; r < sb->array.n_devices; r++)
		if (sb->slots[r].state != RT_SLOT_ACTIVE)
			lost++;
	spare = sb->array.level == RT_LEVEL_1 ? sb->array.n_devices - 1 :
		sb->array.level == RT_LEVEL_5 ? 1 : 0;
	return control_health_name(!lost ? RT_HEALTH_OK : lost <= spare ? RT_HEALTH_DEGRADED :
				   RT_HEALTH_FAILED);
}

/*
 * Every superblock update of a running array: the engine learns the new
 * events value, which its dirty-region log records when it clears bits.
 */
int run_sb_update(struct run *run, assemble_mutate_fn mutate, void *arg)
{
	int r = assemble_sb_update(run->as, mutate, arg);

	engine_dirtylog_set_events(run->e, run->as->sb.events);
	return r;
}

/* A spare present (index into run->as), or -1. */
int run_find_spare(const struct rt_assembly *as)
{
	for (unsigned i = as->n_roles; i < as->n_units; i++)
		if (as->units[i] && as->own[i].slot < RT_MAX_UNITS &&
		    as->sb.slots[as->own[i].slot].state == RT_SLOT_SPARE)
			return (int)i;
	return -1;
}

enum rt_health run_health(int state)
{
	return state == RT_ENGINE_OK ? RT_HEALTH_OK : state == RT_ENGINE_DEGRADED ?
	       RT_HEALTH_DEGRADED : RT_HEALTH_FAILED;
}

/*
 * A failure the engine goes on from whatever the units took: the copy in
 * memory must record it even when no unit did (else the next update, say
 * the clean stop, writes the old state back and a later start trusts a
 * unit that missed writes). One more try gets past a transient error.
 * Caller holds sb_lock.
 */
static int record_failure(struct run *run, assemble_mutate_fn mutate, void *arg)
{
	int r = run_sb_update(run, mutate, arg);

	if (r < 0) {
		mutate(&run->as->sb, arg);
		r = run_sb_update(run, NULL, NULL);
	}
	return r;
}

/*
 * The engine's failure handler: a role failed an I/O (or was failed). Its
 * slot becomes FAULTY in every remaining unit's superblock.
 */
void run_on_failure(uint32_t role, void *ctx)
{
	struct run *run = ctx;
	struct slot_change c = { .slot = role, .state = RT_SLOT_FAULTY,
				 .io_error = atomic_load(&run->admin_fail) != (int)role };
	uint64_t one = 1;
	bool spare;
	char dev[256];
	int r;

	pthread_mutex_lock(&run->sb_lock);
	snprintf(dev, sizeof(dev), "%s", role < run->as->n_units && run->as->dev[role][0] ?
		 run->as->dev[role] : "-");
	if (run->readonly) {
		/* Recorded in memory only: a read-only start writes no superblock. */
		run_change_slot(&run->as->sb, &c);
		pthread_mutex_unlock(&run->sb_lock);
		rt_log(RT_LOG_WARN, "'%s': unit '%s' (role %u) failed; read-only: its superblocks "
		       "are left as they are; the array is %s", run->name, dev, role,
		       role_table_health(&run->as->sb));
		return;
	}
	r = record_failure(run, run_change_slot, &c);
	spare = run_find_spare(run->as) >= 0;
	pthread_mutex_unlock(&run->sb_lock);
	/*
	 * md's hot spare: the main thread moves it in (the engine is busy
	 * here). Until it has, `wait` must see a rebuild to come, not return
	 * with nothing to wait for (run->spare_wakes).
	 */
	/* Not woken: the main thread looks at the count once a second too. */
	if (spare) {
		atomic_fetch_add(&run->spare_wakes, 1);
		if (write(run->rebuild_fd, &one, sizeof(one)) < 0)
			rt_log(RT_LOG_ERROR, "'%s': cannot wake the spare handling: %s",
			       run->name, strerror(errno));
	}
	if (r < 0)
		rt_log(RT_LOG_ERROR, "'%s': unit '%s' (role %u) failed, and marking it faulty "
		       "in the remaining superblocks failed too: %s; the next superblock update "
		       "records it", run->name, dev, role, strerror(-r));
	else
		rt_log(RT_LOG_WARN, "'%s': unit '%s' (role %u) failed; marked faulty in the "
		       "remaining superblocks (events %llu); the array is %s", run->name, dev,
		       role, (unsigned long long)run->as->sb.events, role_table_health(&run->as->sb));
}

/* ---- background walks (lib/rebuild.c) ----------------------------------- */

/*
 * Take the unit of faulty @role out of the engine. A rebuild that was
 * stopped by failing its unit ends its walk on its own within a batch;
 * until then the engine says -EBUSY.
 */
int run_detach_failed_unit(struct run *run, uint32_t role, struct rt_unit **u)
{
	int r = -EBUSY;

	for (int k = 0; k < 100 && r == -EBUSY; k++) {
		r = engine_detach_unit(run->e, role, u);
		if (r == -EBUSY)
			rt_sleep_ms(50);
	}
	return r;
}

struct slot_offset {
	uint32_t slot;
	uint64_t offset;
};

static int set_recovery_offset(struct rt_sb *sb, void *arg)
{
	const struct slot_offset *o = arg;

	if (sb->slots[o->slot].state != RT_SLOT_REBUILDING)
		return -ESTALE;
	sb->slots[o->slot].recovery_offset = o->offset;
	return 0;
}

/*
 * A walk's checkpoint (walk thread): @set records @offset in every
 * superblock; a walk that ended meanwhile (-ESTALE) has nothing to record.
 */
static void record_walk_offset(struct run *run, const char *walk, uint32_t role,
			       uint64_t offset, assemble_mutate_fn set,
			       void *arg)
{
	int r;

	pthread_mutex_lock(&run->sb_lock);
	r = run_sb_update(run, set, arg);
	pthread_mutex_unlock(&run->sb_lock);
	if (r < 0 && r != -ESTALE)
		rt_log(RT_LOG_ERROR, "'%s': cannot record the %s of role %u at %llu bytes "
		       "in the superblocks: %s", run->name, walk, role, (unsigned long long)offset,
		       strerror(-r));
}

/* A rebuild's checkpoint: the role's recovery offset. */
static void on_walk_checkpoint(uint32_t role, uint64_t offset, void *ctx)
{
	struct slot_offset o = { .slot = role, .offset = offset };

	record_walk_offset(ctx, "rebuild", role, offset, set_recovery_offset, &o);
}

/*
 * Only a role still rebuilding becomes active: the engine made it active
 * before @done ran, and a failure in between (a read of the new unit, an
 * admin's fail) recorded it faulty, which must stay.
 */
static int finish_rebuild_slot(struct rt_sb *sb, void *arg)
{
	const struct slot_change *c = arg;

	if (sb->slots[c->slot].state != RT_SLOT_REBUILDING)
		return -ESTALE;
	return run_change_slot(sb, arg);
}

/* A rebuild of @role that reached the end: the role is active again. */
static void rebuild_finished(struct run *run, uint32_t role)
{
	struct slot_change c = { .slot = role, .state = RT_SLOT_ACTIVE };
	int r;

	pthread_mutex_lock(&run->sb_lock);
	r = run_sb_update(run, finish_rebuild_slot, &c);
	pthread_mutex_unlock(&run->sb_lock);
	if (r == -ESTALE)
		rt_log(RT_LOG_WARN, "'%s': role %u is rebuilt, but its unit failed as the rebuild "
		       "ended: the role stays failed", run->name, c.slot);
	else if (r < 0)
		rt_log(RT_LOG_ERROR, "'%s': role %u is rebuilt, but marking it active in the "
		       "superblocks failed: %s", run->name, c.slot, strerror(-r));
	else
		rt_log(RT_LOG_INFO, "'%s': role %u rebuilt and active (events %llu); the array "
		       "is %s", run->name, c.slot, (unsigned long long)run->as->sb.events,
		       role_table_health(&run->as->sb));
}

static int clear_unsynced(struct rt_sb *sb, void *arg)
{
	(void)arg;
	sb->feature_compat &= ~RT_FEATURE_COMPAT_UNSYNCED;
	return 0;
}

/* A resync that reached the end made every region consistent: the initial sync is done. */
static void initial_sync_finished(struct run *run)
{
	int r = 0;
	bool was;

	pthread_mutex_lock(&run->sb_lock);
	was = sb_unsynced(&run->as->sb);
	if (was)
		r = run_sb_update(run, clear_unsynced, NULL);
	pthread_mutex_unlock(&run->sb_lock);
	if (!was)
		return;
	if (r < 0)
		rt_log(RT_LOG_ERROR, "'%s': the initial sync finished, but recording it in the "
		       "superblocks failed: %s; it runs again at the next start", run->name,
		       strerror(-r));
	else
		rt_log(RT_LOG_INFO, "'%s': initial sync finished: parity and copies agree "
		       "(events %llu)", run->name, (unsigned long long)run->as->sb.events);
}

/* ---- hot replace (raidtool replace) ------------------------------------- */

static int set_replace_offset(struct rt_sb *sb, void *arg)
{
	const uint64_t *offset = arg;
	int slot = sb_replacing_slot(sb);

	if (slot < 0)
		return -ESTALE;
	sb->slots[slot].recovery_offset = *offset;
	return 0;
}

/* A replace's checkpoint: the replacing slot's recovery offset. */
static void on_replace_checkpoint(uint32_t role, uint64_t offset, void *ctx)
{
	record_walk_offset(ctx, "replace", role, offset, set_replace_offset, &offset);
}

/* The index in run->as of the unit in the replacing slot, or -1. */
int run_replacing_index(const struct rt_assembly *as)
{
	int slot = sb_replacing_slot(&as->sb);

	for (unsigned i = as->n_roles; i < as->n_units && slot >= 0; i++)
		if (as->units[i] && as->own[i].slot == (uint32_t)slot)
			return (int)i;
	return -1;
}

/*
 * The replacement takes the role; the unit it replaces moves to the
 * replacement's slot as "replaced" (or, when the role had no unit, the
 * slot is left empty).
 */
static int swap_replaced(struct rt_sb *sb, void *arg)
{
	const uint32_t *slot = arg;
	uint32_t role = sb->replace_role;
	struct rt_slot old = sb->slots[role];

	sb->slots[role] = sb->slots[*slot];
	sb->slots[role].state = RT_SLOT_ACTIVE;
	sb->slots[role].recovery_offset = 0;
	sb->io_failed &= ~(1ull << role);
	memset(&sb->slots[*slot], 0, sizeof(sb->slots[0]));
	if (memcmp(old.uuid, (const uint8_t[RT_UUID_SIZE]){ 0 }, RT_UUID_SIZE)) {
		sb->slots[*slot] = old;
		sb->slots[*slot].state = RT_SLOT_REPLACED;
		sb->slots[*slot].recovery_offset = 0;
	}
	sb->replace_role = 0;
	return 0;
}

static int forget_replacing(struct rt_sb *sb, void *arg)
{
	int slot = sb_replacing_slot(sb);

	(void)arg;
	if (slot >= 0)
		memset(&sb->slots[slot], 0, sizeof(sb->slots[0]));
	sb->replace_role = 0;
	return 0;
}

/*
 * A replace that cannot go on (its unit or every source failed): the
 * replacement leaves the engine and the role table; the role stays as it is.
 */
static void replace_abandon(struct run *run, uint32_t role, int why)
{
	struct rt_assembly *as = run->as;
	struct rt_unit *u = NULL;
	int i, r;

	/* Abandoned already (the walk's end and the main thread's look both may). */
	if (engine_replace_abort(run->e, &u) == -ENOENT)
		return;
	pthread_mutex_lock(&run->sb_lock);
	/* The replica failure handler may have taken it out of the role table already. */
	r = sb_replacing_slot(&as->sb) >= 0 ? run_sb_update(run, forget_replacing, NULL) : 0;
	for (i = (int)as->n_roles; u && i < (int)as->n_units; i++)
		if (as->units[i] == u) {
			as->units[i] = NULL;
			as->dev[i][0] = '\0';
		}
	pthread_mutex_unlock(&run->sb_lock);
	unit_close(u);
	rt_log(RT_LOG_ERROR, "'%s': the replace of role %u stopped (%s): the replacement is out "
	       "of the array%s", run->name, role, strerror(-why),
	       r < 0 ? ", but recording that in the superblocks failed" : "");
}

/*
 * The engine's replica failure handler: the replacement failed an I/O, and
 * from now on misses writes. It leaves the superblocks' role table before
 * any such write is acknowledged (a replace resumed from its checkpoint
 * after a crash or a stop would trust what it missed). The engine lets go
 * of it when the walk ends, or, with none running (a paused replace), when
 * the main thread looks (next_rebuild).
 */
static void run_on_replica_failure(uint32_t role, void *ctx)
{
	struct run *run = ctx;
	uint64_t one = 1;
	int r = 0;

	pthread_mutex_lock(&run->sb_lock);
	if (sb_replacing_slot(&run->as->sb) >= 0)
		r = record_failure(run, forget_replacing, NULL);
	pthread_mutex_unlock(&run->sb_lock);
	if (r < 0)
		rt_log(RT_LOG_ERROR, "'%s': the replacement of role %u failed, and taking it out "
		       "of the superblocks failed too: %s; the next superblock update records it",
		       run->name, role, strerror(-r));
	if (write(run->rebuild_fd, &one, sizeof(one)) < 0)
		rt_log(RT_LOG_ERROR, "'%s': cannot wake the rebuild handling: %s", run->name,
		       strerror(errno));
}

/* A replace whose replacement failed while no walk runs (paused by a cancel). */
static void replace_abandon_failed(struct run *run)
{
	struct rt_walk_progress wp;
	int role = engine_replace_role(run->e);

	engine_walk_progress(run->e, &wp);
	if (role >= 0 && engine_replace_failed(run->e) && !wp.running && !wp.ending)
		replace_abandon(run, (uint32_t)role, -EIO);
}

/* The swap of a finished replace, recorded while the engine is drained. */
struct replace_swap {
	struct run *run;
	uint32_t role;
	int index;			/* the replacement in run->as, -1: not known */
	int r;				/* the superblock update */
	struct rt_unit_desc oldown;
	char olddev[256];
};

/*
 * engine_replace_finish's commit: with no request in flight, the
 * superblocks record the replacement in the role before the engine stops
 * writing the unit it replaces (else a write acknowledged in between would
 * be on the new unit alone while a crash brought the old one back).
 */
static void replace_commit(void *arg)
{
	struct replace_swap *sw = arg;
	struct run *run = sw->run;
	struct rt_assembly *as = run->as;
	uint32_t role = sw->role, slot;
	int i;

	pthread_mutex_lock(&run->sb_lock);
	i = sw->index = run_replacing_index(as);
	if (i < 0) {
		/* Cannot be: the replacing unit is held from start to end. */
		pthread_mutex_unlock(&run->sb_lock);
		return;
	}
	slot = as->own[i].slot;
	snprintf(sw->olddev, sizeof(sw->olddev), "%s", as->units[role] ? as->dev[role] : "-");
	sw->oldown = as->own[role];
	sw->oldown.slot = slot;
	as->units[role] = as->units[i];
	as->own[role] = as->own[i];
	as->own[role].slot = role;
	as->disk_events[role] = as->disk_events[i];
	memcpy(as->dev[role], as->dev[i], sizeof(as->dev[role]));
	/* The entry the status lists: the released unit, in the slot it now has. */
	as->units[i] = NULL;
	as->own[i] = sw->oldown;
	as->dev[i][0] = '\0';
	sw->r = run_sb_update(run, swap_replaced, &slot);
	pthread_mutex_unlock(&run->sb_lock);
}

/* The replace walk reached the end: swap the units, the superblocks under the engine's drain. */
static void replace_finished(struct run *run, uint32_t role)
{
	struct rt_assembly *as = run->as;
	struct replace_swap sw = { .run = run, .role = role, .index = -1 };
	struct rt_unit *old = NULL;
	int r;

	r = engine_replace_finish(run->e, role, &old, replace_commit, &sw);
	if (r < 0) {
		replace_abandon(run, role, r);
		return;
	}
	if (sw.index < 0) {
		unit_close(old);
		rt_log(RT_LOG_ERROR, "'%s': the replace of role %u finished, but its unit is no "
		       "longer known", run->name, role);
		return;
	}
	r = sw.r;
	/* Recorded: `wait` need not wait for the released unit's own superblock below. */
	engine_walk_outcome_recorded(run->e);
	/*
	 * The released unit learns it too (examine shows it replaced); this
	 * is its last update, the next one of the array leaves it stale.
	 * Best effort: it may be the unit that failed, so its I/O, which may
	 * hang, runs without sb_lock (a failure handler waits for that lock
	 * while it holds the engine's).
	 */
	if (r == 0 && old) {
		struct rt_sb sb;

		pthread_mutex_lock(&run->sb_lock);
		sb = as->sb;
		pthread_mutex_unlock(&run->sb_lock);
		if (member_write_sb_all(&old, &sw.oldown, NULL, 1, NULL, &sb) < 0)
			rt_log(RT_LOG_WARN, "'%s': cannot mark '%s' replaced in its own superblock",
			       run->name, sw.olddev);
	}
	unit_close(old);
	if (r < 0)
		rt_log(RT_LOG_ERROR, "'%s': '%s' took the place of '%s' in role %u, but recording "
		       "it in the superblocks failed: %s", run->name, as->dev[role], sw.olddev, role,
		       strerror(-r));
	else
		rt_log(RT_LOG_INFO, "'%s': '%s' replaced '%s' in role %u (events %llu); '%s' is "
		       "released and marked replaced", run->name, as->dev[role], sw.olddev, role,
		       (unsigned long long)as->sb.events, sw.olddev);
}

/*
 * Fill the replacement of @role from @start bytes on; only the regions set
 * in @regions (of @region_size bytes) when not NULL.
 */
int run_start_replace(struct run *run, uint32_t role, uint64_t start, const uint8_t *regions,
		      uint64_t region_size)
{
	struct rt_walk_params p = {
		.kind = RT_WALK_REPLACE, .role = role, .start = start,
		.regions = regions, .region_size = region_size,
		.checkpoint = on_replace_checkpoint, .done = run_on_walk_done, .ctx = run,
	};

	return run_walk_start(run, &p);
}

/* The end of a walk (on its thread; the engine must not be re-entered). */
void run_on_walk_done(int kind, uint32_t role, int result, void *ctx)
{
	struct run *run = ctx;
	uint64_t one = 1;

	if (result == 0 && kind == RT_WALK_RECOVER)
		rebuild_finished(run, role);
	if (kind == RT_WALK_REPLACE && result == 0)
		replace_finished(run, role);
	else if (kind == RT_WALK_REPLACE &&
		 (result != -ECANCELED || engine_replace_failed(run->e)))
		replace_abandon(run, role, result != -ECANCELED ? result : -EIO);
	if (result == 0 && kind == RT_WALK_RESYNC) {
		run->resync_pending = false;
		initial_sync_finished(run);
		engine_resync_owed_done(run->e, run->owed_all);
		run->owed_all = 0;
	}
	if (result == 0)
		rt_log(RT_LOG_INFO, "'%s': %s finished", run->name, control_walk_name(kind));
	else if (result == -ECANCELED)
		rt_log(RT_LOG_INFO, "'%s': %s cancelled", run->name, control_walk_name(kind));
	else
		rt_log(RT_LOG_ERROR, "'%s': %s failed: %s", run->name, control_walk_name(kind),
		       strerror(-result));
	if (kind == RT_WALK_RECOVER && result != 0)
		atomic_fetch_or(&run->rebuild_stopped, 1ull << role);
	/* A cancel (a stop, or the admin's) leaves the rest to the next start. */
	if (result == -ECANCELED)
		atomic_store(&run->rebuild_next, false);
	else if (write(run->rebuild_fd, &one, sizeof(one)) < 0)
		rt_log(RT_LOG_ERROR, "'%s': cannot wake the rebuild handling: %s", run->name,
		       strerror(errno));
}

/* Every walk of this run starts here: the speed limit applies to all of them. */
int run_walk_start(struct run *run, struct rt_walk_params *p)
{
	p->max_bytes_per_sec = __atomic_load_n(&run->walk_speed_max, __ATOMIC_RELAXED);
	return engine_walk_start(run->e, p);
}

/* RAIDTOOL_SYNC_SPEED_MAX (a size per second, as 4M): checked before anything is written. */
static int read_walk_speed_max(struct run *run)
{
	const char *v = getenv("RAIDTOOL_SYNC_SPEED_MAX");
	int r;

	run->walk_speed_max = 0;
	if (!v || !*v)
		return 0;
	r = sb_size_parse(v, &run->walk_speed_max);
	if (r < 0)
		rt_log(RT_LOG_ERROR, "RAIDTOOL_SYNC_SPEED_MAX '%s': not a size per second "
		       "(such as 512K or 4M; 0 for no limit)", v);
	return r;
}

/* RAIDTOOL_STRIPE_WAIT_US (raid5 gathering window): checked before anything is written. */
static int read_stripe_wait(struct run *run)
{
	const char *v = getenv("RAIDTOOL_STRIPE_WAIT_US");
	char *end;

	run->stripe_wait_us = -1;
	if (!v || !*v)
		return 0;
	errno = 0;
	run->stripe_wait_us = strtol(v, &end, 10);
	if (errno || *end || run->stripe_wait_us < 0 || run->stripe_wait_us > 1000000) {
		rt_log(RT_LOG_ERROR, "RAIDTOOL_STRIPE_WAIT_US '%s': not a number of "
		       "microseconds from 0 to 1000000", v);
		return -EINVAL;
	}
	return 0;
}

/* RAIDTOOL_FUSE_TRANSPORT (dev, uring or auto): checked before anything is written. */
static int read_fuse_transport(struct run *run)
{
	const char *v = getenv("RAIDTOOL_FUSE_TRANSPORT");
	int r = rt_fuse_transport_parse(v, &run->transport);

	if (r < 0)
		rt_log(RT_LOG_ERROR, "RAIDTOOL_FUSE_TRANSPORT '%s': not a FUSE transport "
		       "(dev, uring or auto)", v);
	return r;
}

/* RAIDTOOL_FUSE_POLL_US (0 to RT_FUSE_POLL_US_MAX): checked before anything is written. */
static int read_fuse_poll(struct run *run)
{
	const char *v = getenv("RAIDTOOL_FUSE_POLL_US");
	unsigned long us;
	char *end;

	run->fuse_poll_us = RT_FUSE_POLL_US_DEFAULT;
	if (!v || !*v)
		return 0;
	errno = 0;
	us = strtoul(v, &end, 10);
	if (errno || *end || !isdigit((unsigned char)*v) || us > RT_FUSE_POLL_US_MAX) {
		rt_log(RT_LOG_ERROR, "RAIDTOOL_FUSE_POLL_US '%s': not a number of "
		       "microseconds from 0 to %u", v, RT_FUSE_POLL_US_MAX);
		return -EINVAL;
	}
	run->fuse_poll_us = (unsigned)us;
	return 0;
}

/* Regions owed a resync by writes that failed for want of space, or all (no log)? */
static bool resync_owed_any(struct run *run)
{
	uint64_t n_owed = 0, all = 0;

	return engine_resync_owed(run->e, NULL, 0, &n_owed, &all) == 0 && (n_owed || all);
}

/*
 * Regions owed a resync (pinned in the log): a raid1/raid5 write that failed
 * for want of space on some units, what is left of an initial sync that
 * stopped when a unit failed, or the regions an unclean stop left dirty
 * while a rebuild or replace ran first. Once every unit takes writes
 * again, the array is whole and no walk runs, resync them: the main thread
 * once a second, and a check first (it would report what the
 * resync mends). Returns 0 when the resync started.
 */
static int resync_owed_locked(struct run *run)
{
	struct rt_walk_params p = { .kind = RT_WALK_RESYNC, .done = run_on_walk_done, .ctx = run };
	uint64_t region_size = 0, n_regions = 0, n_owed = 0, all = 0;
	struct rt_walk_progress wp;
	uint8_t *bitmap = NULL;
	int r;

	if (engine_nospace(run->e) || engine_state(run->e) != RT_ENGINE_OK)
		return -EAGAIN;
	engine_walk_progress(run->e, &wp);
	if (wp.running || !resync_owed_any(run))
		return -EAGAIN;
	r = engine_dirtylog_info(run->e, &region_size, &n_regions);
	if (r == 0) {
		bitmap = calloc((n_regions + 7) / 8, 1);
		r = bitmap ? 0 : -ENOMEM;
	} else if (r == -EOPNOTSUPP) {
		r = 0;
	}
	if (r == 0)
		r = engine_resync_owed(run->e, bitmap, (n_regions + 7) / 8, &n_owed, &all);
	if (r == 0 && !all) {
		p.regions = bitmap;
		p.region_size = region_size;
	}
	run->owed_all = all;
	if (r == 0)
		r = run_walk_start(run, &p);
	if (r == 0) {
		run->owed_warned = false;
		rt_log(RT_LOG_WARN, "'%s': every unit takes writes again: resyncing %s%llu "
		       "region%s owed a resync (writes that reached only some units, or the "
		       "rest of the initial sync)",
		       run->name, all ? "the whole array; " : "", (unsigned long long)n_owed,
		       n_owed == 1 ? "" : "s");
	} else if (r != -EBUSY && !run->owed_warned) {
		/* Busy: another walk (or the same resync, asked by a check) got there first. */
		run->owed_warned = true;
		rt_log(RT_LOG_ERROR, "'%s': the resync of regions owed one did not start: %s; "
		       "trying again", run->name, strerror(-r));
	}
	free(bitmap);
	return r;
}

int run_resync_owed(struct run *run)
{
	int r;

	pthread_mutex_lock(&run->owed_mu);
	r = resync_owed_locked(run);
	pthread_mutex_unlock(&run->owed_mu);
	return r;
}

/*
 * A stop of a whole array that owes some regions a resync (a forced start's
 * dirty regions, writes that reached only some units) runs it first, so the
 * array is left clean: a walk that ran meanwhile (a check) can have kept it
 * from starting, and left dirty, a later degraded start of a raid5 is
 * refused (the write hole). Only for regions: a whole-array resync is left
 * to the next start, and so is an initial sync (the unsynced flag carries
 * it, and the array may be marked clean).
 */
static void resync_owed_before_stop(struct run *run)
{
	uint64_t n_owed = 0, all = 0;
	struct rt_walk_progress wp;

	if (run->readonly || sb_unsynced(&run->as->sb) ||
	    engine_resync_owed(run->e, NULL, 0, &n_owed, &all) < 0 || !n_owed || all)
		return;
	rt_log(RT_LOG_INFO, "'%s': resyncing the %llu region%s owed a resync before stopping",
	       run->name, (unsigned long long)n_owed, n_owed == 1 ? "" : "s");
	(void)run_resync_owed(run);
	for (;;) {
		engine_walk_progress(run->e, &wp);
		if (!wp.running)
			break;
		rt_sleep_ms(20);
	}
}

/*
 * Rebuild @role onto the unit attached to it, from @start bytes of its data
 * area; only in the regions set in @regions (log regions of @region_size
 * bytes) when not NULL.
 */
int run_start_rebuild_regions(struct run *run, uint32_t role, uint64_t start,
			      const uint8_t *regions, uint64_t region_size)
{
	struct rt_walk_params p = {
		.kind = RT_WALK_RECOVER, .role = role, .start = start,
		.regions = regions, .region_size = region_size,
		.checkpoint = on_walk_checkpoint, .done = run_on_walk_done, .ctx = run,
	};
	int r;

	atomic_fetch_and(&run->rebuild_stopped, ~(1ull << role));
	r = run_walk_start(run, &p);
	if (r < 0)
		rt_log(RT_LOG_ERROR, "'%s': cannot start rebuilding role %u: %s", run->name,
		       role, strerror(-r));
	else
		rt_log(RT_LOG_INFO, "'%s': rebuilding role %u from %llu bytes%s", run->name, role,
		       (unsigned long long)start, regions ? ", dirty regions only" : "");
	return r;
}

int run_start_rebuild(struct run *run, uint32_t role, uint64_t start)
{
	return run_start_rebuild_regions(run, role, start, NULL, 0);
}

static bool rebuild_walk_running(struct run *run)
{
	struct rt_walk_progress wp;

	engine_walk_progress(run->e, &wp);
	return wp.running && wp.kind == RT_WALK_RECOVER;
}

/*
 * Does a rebuild wait for the walk @wp (one walk at a time)? A role whose
 * unit is present and REBUILDING in the superblocks that no walk rebuilds,
 * or a failed role with a spare at hand. Caller holds sb_lock.
 */
static bool rebuild_waits(struct run *run, const struct rt_walk_progress *wp)
{
	const struct rt_assembly *as = run->as;
	bool failed = false;

	for (uint32_t role = 0; role < as->n_roles; role++) {
		uint32_t state = as->sb.slots[role].state;

		if (state == RT_SLOT_REBUILDING && as->units[role] &&
		    !(atomic_load(&run->rebuild_stopped) & (1ull << role)) &&
		    !(wp->running && wp->kind == RT_WALK_RECOVER && wp->role == role))
			return true;
		failed = failed || state == RT_SLOT_FAULTY || state == RT_SLOT_MISSING;
	}
	return failed && run_find_spare(as) >= 0;
}

/* After a walk started, or none could: does a rebuild wait for the one running? */
static void note_rebuild_next(struct run *run)
{
	struct rt_walk_progress wp;
	bool waits;

	engine_walk_progress(run->e, &wp);
	pthread_mutex_lock(&run->sb_lock);
	waits = wp.running && rebuild_waits(run, &wp);
	pthread_mutex_unlock(&run->sb_lock);
	atomic_store(&run->rebuild_next, waits);
}

/*
 * Rebuild the first role whose unit waits in the assembly (REBUILDING in
 * the superblocks, no walk on it) from its recovery offset. Returns true
 * when its walk runs.
 */
static bool resume_rebuild(struct run *run)
{
	struct rt_assembly *as = run->as;
	struct rt_unit *u;
	bool started = false;
	uint64_t at;
	int r;

	pthread_mutex_lock(&run->admin_lock);
	for (uint32_t role = 0; role < as->n_roles && !started; role++) {
		pthread_mutex_lock(&run->sb_lock);
		u = as->sb.slots[role].state == RT_SLOT_REBUILDING &&
		    !(atomic_load(&run->rebuild_stopped) & (1ull << role)) ? as->units[role] : NULL;
		at = as->sb.slots[role].recovery_offset;
		pthread_mutex_unlock(&run->sb_lock);
		if (!u)
			continue;
		/* Attached already when an earlier try could not start its walk. */
		r = engine_role_rebuilding(run->e, role) ? 0 : engine_attach_unit(run->e, role, u);
		if (r < 0) {
			rt_log(RT_LOG_ERROR, "'%s': cannot attach '%s' to role %u for its rebuild: "
			       "%s", run->name, as->dev[role], role, strerror(-r));
			continue;
		}
		if (run_start_rebuild(run, role, at) < 0)
			continue;
		rt_log(RT_LOG_WARN, "'%s': resuming the rebuild of role %u onto '%s' at %llu "
		       "bytes", run->name, role, as->dev[role], (unsigned long long)at);
		started = true;
	}
	pthread_mutex_unlock(&run->admin_lock);
	return started;
}

/*
 * The next rebuild (main thread: at a start, when a walk ended, when a role
 * failed with a spare present), one walk at a time: a role whose unit
 * waits in the assembly, from its recovery offset (a start resumes one
 * such role, the others follow one by one as each rebuild ends, as md's
 * recovery goes on with the next device); else a spare takes a failed
 * role (run_take_spare, which waits for a rebuild or replace running, and
 * cancels a check). Returns true when a rebuild runs.
 */
static bool next_rebuild(struct run *run)
{
	unsigned wakes = atomic_load(&run->spare_wakes);
	struct rt_walk_progress wp;
	bool running;

	replace_abandon_failed(run);
	engine_walk_progress(run->e, &wp);
	if (wp.running || !resume_rebuild(run))
		run_take_spare(run);
	running = rebuild_walk_running(run);
	note_rebuild_next(run);
	/* After note_rebuild_next: `wait` never sees a gap between the two. */
	atomic_store(&run->spare_handled, wakes);
	return running;
}

/*
 * Decide whether we may stop: the device must be neither mounted nor open.
 * When free, it is claimed (export_claim): nobody opens it any more, and
 * run_teardown's close of run->excl_fd detaches it.
 */
static int claim_for_stop(struct run *run, char *why, size_t whylen)
{
	char reason[PATH_MAX];
	int fd, r;

	pthread_mutex_lock(&run->lock);
	if (run->stopping) {
		pthread_mutex_unlock(&run->lock);
		snprintf(why, whylen, "already stopping");
		return -EALREADY;
	}
	/* The volumes first: export_claim is the point of no return. */
	r = run->thin ? thin_run_busy(run->thin, reason, sizeof(reason)) : 0;
	if (r == 0)
		r = export_claim(run->x, &fd, reason, sizeof(reason));
	if (r == 0) {
		run->stopping = true;
		run->excl_fd = fd;
	} else if (r == -EBUSY) {
		snprintf(why, whylen, "cannot stop: %s", reason);
	} else {
		snprintf(why, whylen, "cannot stop: cannot check whether %s is in use: %s",
			 export_device(run->x), strerror(-r));
	}
	pthread_mutex_unlock(&run->lock);
	return r;
}

static int on_stop(void *ctx, char *why, size_t whylen)
{
	struct run *run = ctx;
	int r;

	r = claim_for_stop(run, why, whylen);
	if (r < 0) {
		rt_log(RT_LOG_WARN, "'%s': stop refused: %s", run->name, why);
		return r;
	}
	if (eventfd_write(run->stop_fd, 1) < 0) {
		/* Cannot happen with an eventfd below its maximum. */
	}
	return 0;
}

/* ---- setup and run_teardown ------------------------------------------------- */

static int block_signals(struct run *run)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/* Every thread created from now on inherits this mask. */
	if (pthread_sigmask(SIG_BLOCK, &set, &run->old_mask))
		return -EINVAL;
	run->mask_set = true;
	run->sig_fd = signalfd(-1, &set, SFD_CLOEXEC);
	if (run->sig_fd < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/* The loop-over-FUSE hazard: never wait on our own page cache or reclaim. */
static void harden_memory(struct run *run)
{
	if (mlockall(MCL_CURRENT | MCL_FUTURE) < 0)
		rt_log(RT_LOG_WARN, "'%s': cannot lock the engine in memory: %s; under memory "
		       "pressure the device may stall", run->name, strerror(errno));
	else
		run->locked_memory = true;
	if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) < 0 && errno != EPERM && errno != EINVAL)
		rt_log(RT_LOG_DEBUG, "'%s': PR_SET_IO_FLUSHER: %s", run->name, strerror(errno));
}

/* The first line of run file @file ("" when there is none). */
static void read_run_file(const uint8_t uuid[RT_UUID_SIZE], const char *file, char *buf,
			  size_t len)
{
	char path[PATH_MAX];
	FILE *f;

	buf[0] = '\0';
	if (control_path(uuid, file, path, sizeof(path)) < 0 || !(f = fopen(path, "re")))
		return;
	if (!fgets(buf, (int)len, f))
		buf[0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

/* Leftovers of an engine that died (we hold the lock, so it is dead). */
int run_recover_leftovers(const char *name, const uint8_t uuid[RT_UUID_SIZE], char *did,
			  size_t didlen)
{
	char mnt[PATH_MAX], hint[64], link[PATH_MAX];
	int r;

	r = control_path(uuid, RT_CONTROL_MNT, mnt, sizeof(mnt));
	if (r < 0)
		return r;
	read_run_file(uuid, RT_CONTROL_DEVICE, hint, sizeof(hint));
	/* Died before it wrote its link: the name's, removed only if it points at its device. */
	read_run_file(uuid, RT_CONTROL_LINK, link, sizeof(link));
	if (strncmp(link, RT_DEV_DIR "/", strlen(RT_DEV_DIR "/")) != 0)
		snprintf(link, sizeof(link), RT_DEV_DIR "/%s", name);
	r = export_recover(name, link, mnt, hint, did, didlen);
	if (r < 0)
		return r;
	unlink_run_file(uuid, RT_CONTROL_DEVICE);
	unlink_run_file(uuid, RT_CONTROL_LINK);
	unlink_run_file(uuid, RT_CONTROL_SOCK);
	return 0;
}

/* Remove the run files; the pid file goes last, just before its lock. */
void run_remove_files(struct run *run, bool keep_log)
{
	unlink_run_file(run->uuid, RT_CONTROL_DEVICE);
	unlink_run_file(run->uuid, RT_CONTROL_LINK);
	unlink_run_file(run->uuid, RT_CONTROL_SOCK);
	rmdir_run(run->uuid, RT_CONTROL_MNT);
	if (!keep_log)
		unlink_run_file(run->uuid, RT_CONTROL_LOG);
	if (run->lock_fd >= 0) {
		/* While we still hold the pid lock: nobody takes the name meanwhile. */
		control_name_release(run->name, run->uuid);
		unlink_run_file(run->uuid, RT_CONTROL_PID);
		close(run->lock_fd);
		run->lock_fd = -1;
	}
	rmdir_run(run->uuid, NULL);
}

/*
 * An array holding a thin pool: its volumes become the block devices
 * (lib/thin-run.c) and its own file is exported read-only, as
 * /dev/raidtool/NAME.pool (NAME is the volumes' directory).
 */
static int start_thin(struct run *run, struct rt_export_params *xp, const char *link_name)
{
	struct thin_run_params tp;
	int r;

	if (run->readonly) {
		/*
		 * The pool would commit its metadata; read-only, the array's
		 * own device is all there is (a pool on it stays as it was).
		 */
		if (thin_run_probe(run->e) > 0)
			rt_log(RT_LOG_WARN, "'%s': read-only: its thin pool's volumes are not "
			       "exported; the array's own device is", run->name);
		return 0;
	}
	tp = (struct thin_run_params){ .link_name = link_name,
				       .blocksize = run->as->sb.array.blocksize };
	r = thin_run_start(run->e, &tp, &run->thin);
	if (r <= 0)
		return r;
	xp->link_name = thin_run_array_link(run->thin);
	xp->backend = thin_run_array_backend(run->thin);
	return 0;
}

/*
 * Everything after the engine started, in reverse. Returns the first error
 * with its message in @msg (for a pending `stop`).
 */
int run_teardown(struct run *run, char *msg, size_t msglen)
{
	int r = 0, q;

	msg[0] = '\0';
	control_server_stop(run->cs);
	q = thin_run_stop(run->thin);
	run->thin = NULL;
	if (q < 0) {
		r = q;
		snprintf(msg, msglen, "the thin pool did not stop cleanly: %s", strerror(-q));
	}
	if (run->x) {
		q = export_stop(run->x, run->excl_fd);
		run->excl_fd = -1;
		run->x = NULL;
		if (q < 0 && !r) {
			r = q;
			snprintf(msg, msglen, "the block device did not detach cleanly: %s",
				 strerror(-q));
		}
	}
	if (run->excl_fd >= 0) {
		close(run->excl_fd);
		run->excl_fd = -1;
	}
	if (run->e) {
		struct rt_engine_stats st;
		uint64_t faulty_before, lost;
		bool owed;

		/* A walk in progress stops first (a rebuild checkpoints as it ends). */
		engine_walk_cancel(run->e);
		resync_owed_before_stop(run);
		owed = !run->readonly && resync_owed_any(run);
		engine_get_stats(run->e, &st);
		faulty_before = st.faulty_mask;
		q = engine_flush(run->e);
		/*
		 * A unit that failed the final flush is faulty now (the handler
		 * recorded it): the stop goes on, but the admin must hear of it,
		 * as the engine's log goes with a clean stop.
		 */
		engine_get_stats(run->e, &st);
		lost = st.faulty_mask & ~faulty_before;
		if (lost) {
			uint32_t role = (uint32_t)__builtin_ctzll(lost);

			r = -EIO;
			snprintf(msg, msglen, "unit '%s' (role %u) failed the final flush and is "
				 "marked faulty in the superblocks of the others",
				 role < run->as->n_units && run->as->dev[role][0] ?
				 run->as->dev[role] : "-", role);
		}
		if (q == 0 && !run->readonly) {
			/* Regions still to be resynced stay dirty in the log. */
			q = engine_dirtylog_clean(run->e);
			if (q == -EOPNOTSUPP)
				q = 0;
		}
		engine_destroy(run->e);
		run->e = NULL;
		/*
		 * Regions owed a resync (a walk cut short, writes that failed for
		 * want of space) keep the array dirty, so that the next start
		 * resyncs them; not yet synced, the flag already makes it do so.
		 */
		if (q == 0 && !sb_unsynced(&run->as->sb) && (run->resync_pending || owed)) {
			snprintf(msg, msglen, "superblocks left dirty: the resync %s; it runs when "
				 "the array is activated again", run->resync_pending ?
				 "did not finish" : "owed to some regions did not run");
			rt_log(RT_LOG_WARN, "'%s': %s", run->name, msg);
			/*
			 * Dirty still, but the roles as they are now reach every
			 * member: a unit failed while its handler's own update
			 * failed is recorded here, as by a clean stop.
			 */
			q = run->readonly ? 0 : assemble_set_state(run->as, RT_ARRAY_DIRTY);
			if (q < 0 && !r) {
				r = q;
				snprintf(msg, msglen, "cannot update the superblocks: %s",
					 strerror(-q));
			}
		} else if (q < 0) {
			rt_log(RT_LOG_ERROR, "'%s': final flush failed: %s; the array stays "
			       "marked dirty", run->name, strerror(-q));
			if (!r) {
				r = q;
				snprintf(msg, msglen, "final flush failed: %s", strerror(-q));
			}
		} else if (run->as && !run->readonly) {
			/*
			 * Not yet synced: the flag and the regions the log keeps
			 * pinned carry what is left of the initial sync, so the
			 * array may be marked clean (nothing was being written).
			 */
			if (run->resync_pending)
				rt_log(RT_LOG_WARN, "'%s': the initial sync did not finish; it "
				       "goes on when the array is activated again", run->name);
			q = assemble_set_state(run->as, RT_ARRAY_CLEAN);
			if (q < 0 && !r) {
				r = q;
				snprintf(msg, msglen, "cannot mark the superblocks clean: %s",
					 strerror(-q));
			}
		}
	}
	assemble_close(run->as);
	run->as = NULL;
	return r;
}

/* Wait for a signal or an accepted `stop`. */
static void wait_for_stop(struct run *run)
{
	for (;;) {
		struct pollfd pfd[3] = {
			{ .fd = run->sig_fd, .events = POLLIN },
			{ .fd = run->stop_fd, .events = POLLIN },
			{ .fd = run->rebuild_fd, .events = POLLIN },
		};
		struct signalfd_siginfo si;
		char why[PATH_MAX + 128];
		uint64_t n;

		int k = poll(pfd, 3, 1000);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			rt_log(RT_LOG_ERROR, "'%s': poll: %s; stopping", run->name, strerror(errno));
			return;
		}
		if (k == 0) {
			if (!run->readonly && atomic_load(&run->spare_wakes) !=
					      atomic_load(&run->spare_handled))
				next_rebuild(run);
			if (!run->readonly)
				(void)run_resync_owed(run);
			continue;
		}
		if (pfd[1].revents & POLLIN)
			return;
		/*
		 * A walk ended (or a role failed): the next rebuild. A resync owed
		 * waits for the idle look above, so that `wait` reports the walk
		 * that ended (a check asked meanwhile starts it: admin_walk).
		 */
		if ((pfd[2].revents & POLLIN) && read(run->rebuild_fd, &n, sizeof(n)) == sizeof(n) &&
		    !run->readonly)
			next_rebuild(run);
		if (!(pfd[0].revents & POLLIN))
			continue;
		if (read(run->sig_fd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (claim_for_stop(run, why, sizeof(why)) == 0) {
			rt_log(RT_LOG_INFO, "'%s': %s received, stopping", run->name,
			       strsignal((int)si.ssi_signo));
			return;
		}
		if (run->stopping)
			return;
		rt_log(RT_LOG_WARN, "'%s': %s received, but not stopping: %s", run->name,
		       strsignal((int)si.ssi_signo), why);
	}
}

/*
 * A degraded raid5 whose initial sync had not finished. Every write through
 * raidtool into a region not yet synced computed its stripe's parity from
 * the data (reconstruct-write), so the missing role's blocks written since
 * create are reconstructed right; its blocks never written were never
 * data. After an unclean stop the stripes being written at that moment may
 * still be torn (the write hole), as on any raid5: refused unless --force.
 */
static int check_degraded_unsynced(struct run *run)
{
	const struct rt_assembly *as = run->as;

	if (as->sb.state == RT_ARRAY_DIRTY && !run->force) {
		rt_log(RT_LOG_ERROR, "'%s': cannot start: the array is degraded (role %s missing), "
		       "its initial sync had not finished and it was not stopped cleanly: parity "
		       "of the stripes being written when it stopped may not match their data "
		       "(the raid5 write hole), so the missing role's blocks there could be "
		       "reconstructed wrong; bring the missing unit back, or use --force to start "
		       "anyway", run->name, as->missing);
		return -EUCLEAN;
	}
	rt_log(RT_LOG_WARN, "'%s': the initial sync had not finished: role %s's blocks written "
	       "through raidtool since the array was created are reconstructed from parity "
	       "computed from their data%s; its blocks never written read back as whatever the "
	       "other units' old contents give", run->name, as->missing,
	       as->sb.state == RT_ARRAY_DIRTY ?
	       " (--force: except in stripes being written when it stopped)" : "");
	return 0;
}

/* A degraded start: say so; refuse a degraded, dirty raid5 unless forced. */
static int check_degraded(struct run *run)
{
	const struct rt_assembly *as = run->as;
	unsigned n = as->n_missing;
	int r;

	if (!n)
		return 0;
	if (as->sb.array.level == RT_LEVEL_5 && sb_unsynced(&as->sb)) {
		r = check_degraded_unsynced(run);
		if (r < 0)
			return r;
	} else if (as->sb.array.level == RT_LEVEL_5 && as->sb.state == RT_ARRAY_DIRTY) {
		if (!run->force) {
			rt_log(RT_LOG_ERROR, "'%s': cannot start: the array is degraded (role %s "
			       "missing) and was not stopped cleanly: parity of the stripes being "
			       "written when it stopped may not match their data (the raid5 write "
			       "hole), so the missing role's blocks there could be reconstructed "
			       "wrong; bring the missing unit back, or use --force to start anyway",
			       run->name, as->missing);
			return -EUCLEAN;
		}
		rt_log(RT_LOG_WARN, "'%s': starting a degraded array that was not stopped "
		       "cleanly (--force): blocks of role %s in stripes written at the crash "
		       "may be wrong (the raid5 write hole)", run->name, as->missing);
	}
	rt_log(RT_LOG_WARN, "'%s': starting degraded: role%s %s missing (%u of %u units)",
	       run->name, n > 1 ? "s" : "", as->missing, as->n_roles - n, as->n_roles);
	return 0;
}

/* The start's superblock update: dirty, and roles without a unit recorded as missing. */
static int mark_running(struct rt_sb *sb, void *arg)
{
	const struct rt_assembly *as = arg;

	sb->state = RT_ARRAY_DIRTY;
	for (unsigned role = 0; role < as->n_roles; role++) {
		/*
		 * A role whose unit is absent leaves in this very update (a
		 * rebuilding one too): else, back one event behind after a crash
		 * of this run, it would pass for current without this run's writes.
		 */
		if (!as->units[role] && (sb->slots[role].state == RT_SLOT_ACTIVE ||
					 sb->slots[role].state == RT_SLOT_REBUILDING)) {
			sb->slots[role].state = RT_SLOT_MISSING;
			sb->slots[role].recovery_offset = 0;
		}
		/* --force: the unit the table had given up is an active member again. */
		if (as->forced[role]) {
			sb->slots[role].state = RT_SLOT_ACTIVE;
			sb->slots[role].recovery_offset = 0;
		}
	}
	/* A spare that was not found is not written either: it leaves the table. */
	for (uint32_t slot = as->n_roles; slot < sb->array.n_slots && slot < RT_MAX_UNITS; slot++) {
		bool held = false;

		for (unsigned i = as->n_roles; i < as->n_units && !held; i++)
			held = as->units[i] && as->own[i].slot == slot;
		if ((sb->slots[slot].state == RT_SLOT_SPARE ||
		     sb->slots[slot].state == RT_SLOT_REPLACING) && !held)
			memset(&sb->slots[slot], 0, sizeof(sb->slots[slot]));
	}
	return 0;
}

/*
 * After an unclean stop, or while the initial sync is unfinished: resync the
 * regions the dirty log holds (all without one).
 */
static void start_resync(struct run *run)
{
	struct rt_walk_params p = { .kind = RT_WALK_RESYNC, .done = run_on_walk_done, .ctx = run };
	uint64_t region_size, n_regions = 1, n_dirty = 1;
	bool unsynced = sb_unsynced(&run->as->sb);
	const char *why = unsynced ? "initial sync (parity and copies never made to agree)" :
			  "not stopped cleanly";
	uint8_t *bitmap = NULL;
	int r;

	if (run->as->sb.array.level != RT_LEVEL_1 && run->as->sb.array.level != RT_LEVEL_5)
		return;
	r = engine_dirtylog_info(run->e, &region_size, &n_regions);
	if (r == 0) {
		bitmap = calloc((n_regions + 7) / 8, 1);
		if (!bitmap) {
			r = -ENOMEM;
			goto out;
		}
		r = engine_dirtylog_load(run->e, bitmap, (n_regions + 7) / 8, &n_dirty);
		if (r == -ENODATA) {
			n_dirty = n_regions;
			r = 0;
		} else if (r == 0) {
			p.regions = bitmap;
			p.region_size = region_size;
		}
	} else if (r == -EOPNOTSUPP) {
		r = 0;
	}
	if (r < 0)
		goto out;
	if (!n_dirty) {
		rt_log(RT_LOG_WARN, "'%s': %s, but no region was being written: nothing to "
		       "resync", run->name, why);
		if (unsynced)
			initial_sync_finished(run);
		goto out;
	}
	run->resync_pending = true;
	if (run->as->sb.array.level == RT_LEVEL_5 && run->as->n_missing) {
		/*
		 * Degraded (an unfinished initial sync, or a dirty start forced past the
		 * write hole): no redundancy to make agree; a rebuild comes first.
		 */
		rt_log(RT_LOG_WARN, "'%s': %s: %llu of %llu regions still to sync once the array "
		       "is whole again", run->name, why, (unsigned long long)n_dirty,
		       (unsigned long long)n_regions);
		goto out;
	}
	r = run_walk_start(run, &p);
	if (r < 0)
		goto out;
	rt_log(RT_LOG_WARN, "'%s': %s: resyncing %llu of %llu regions%s", run->name, why,
	       (unsigned long long)n_dirty, (unsigned long long)n_regions,
	       p.regions ? "" : " (no valid dirty-region log)");
out:
	if (r < 0)
		rt_log(RT_LOG_ERROR, "'%s': %s, and the resync did not start: %s; the array stays "
		       "marked %s", run->name, why, strerror(-r), unsynced ? "unsynced" : "dirty");
	free(bitmap);
}

/*
 * A replace interrupted by a stop goes on from its checkpoint. After an
 * unclean stop, the regions the log holds dirty below it are copied again
 * too: a write under way at the crash may have reached one unit only.
 * Returns 1 when its walk runs, 0 when there is no replace to resume.
 */
static int resume_replace(struct run *run, bool was_dirty)
{
	struct rt_assembly *as = run->as;
	uint64_t at, region_size = 0, n_regions = 0, n_dirty = 0;
	uint8_t *bitmap = NULL;
	uint32_t role = as->sb.replace_role;
	int i = run_replacing_index(as), r;

	if (i < 0)
		return 0;
	at = as->sb.slots[as->own[i].slot].recovery_offset;
	r = engine_replace_start(run->e, role, as->units[i]);
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "'%s': cannot resume the replace of role %u by '%s': %s",
		       run->name, role, as->dev[i], strerror(-r));
		return 0;
	}
	if (was_dirty && at && engine_dirtylog_info(run->e, &region_size, &n_regions) == 0) {
		bitmap = calloc((n_regions + 7) / 8, 1);
		if (bitmap && engine_dirtylog_load(run->e, bitmap, (n_regions + 7) / 8,
						   &n_dirty) == 0) {
			for (uint64_t k = at / region_size; k < n_regions; k++)
				bitmap[k / 8] |= (uint8_t)(1u << (k % 8));
		} else {
			free(bitmap);
			bitmap = NULL;
		}
	}
	if (was_dirty && at && !bitmap)
		at = 0;	/* no log to say what the crash may have left unequal: from the start */
	r = run_start_replace(run, role, bitmap ? 0 : at, bitmap, region_size);
	free(bitmap);
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "'%s': cannot resume the replace of role %u by '%s': %s; "
		       "writes still reach it, the walk runs at the next start", run->name, role,
		       as->dev[i], strerror(-r));
		return 0;
	}
	rt_log(RT_LOG_WARN, "'%s': resuming the replace of role %u by '%s' at %llu bytes%s",
	       run->name, role, as->dev[i], (unsigned long long)as->sb.slots[as->own[i].slot].
	       recovery_offset, was_dirty ? (bitmap || !at ? ", with the regions the crash "
					    "left dirty below it" : "") : "");
	return 1;
}

/*
 * The walk a start begins: a rebuild interrupted by a stop resumes from its
 * checkpoint; else, after an unclean stop, the resync.
 */
static void start_recovery(struct run *run, bool was_dirty)
{
	/* Stopped cleanly: what the log holds is a degraded run's history, not a resync's debt. */
	if (!was_dirty)
		engine_dirtylog_unpin_loaded(run->e);
	if (resume_replace(run, was_dirty) > 0) {
		note_rebuild_next(run);
		goto rebuilding;
	}
	/*
	 * A rebuild interrupted by the stop; else, degraded with a spare at
	 * hand, the spare takes the missing role at once, as in md.
	 */
	if (next_rebuild(run))
		goto rebuilding;
	if (was_dirty)
		start_resync(run);
	return;
rebuilding:
	if (atomic_load(&run->rebuild_next))
		rt_log(RT_LOG_WARN, "'%s': more roles wait for a rebuild: each starts when the "
		       "one before it ends", run->name);
	if (was_dirty) {
		/* One walk at a time: the regions it left dirty stay owed until then. */
		run->resync_pending = true;
		rt_log(RT_LOG_WARN, "'%s': not stopped cleanly: the resync of the regions it "
		       "left dirty follows the rebuild", run->name);
	}
}

/*
 * Run the array in this process. @ready is called once the device is up;
 * returns after a clean (0) or failed shutdown.
 */
int run_array(const char *id, ready_fn ready, void *ready_arg, struct run *run)
{
	const struct rt_scan_array *a;
	struct rt_control_probe probe;
	struct rt_scan *scan = NULL;
	struct rt_export_params xp;
	struct control_ops ops;
	char path[PATH_MAX], did[1024], msg[512], line[PATH_MAX], link_name[RT_NAME_MAX + 1];
	uint8_t dead[RT_UUID_SIZE];
	bool dirty = false, was_dirty;
	int fd, r;

	/*
	 * Leftovers of a dead engine first when @id is the name it ran under:
	 * a start after a crash finds a clean slate.
	 */
	if (sb_name_check(id) == 0 && control_name_lookup(id, dead) == 0 &&
	    control_probe(dead, &probe) == 0 && probe.state == RT_CONTROL_STALE &&
	    control_lock(dead, &fd) == 0) {
		r = run_recover_leftovers(id, dead, did, sizeof(did));
		if (r == 0) {
			if (did[0])
				rt_log(RT_LOG_WARN, "'%s': an earlier engine (pid %d) died; cleaned "
				       "up: %s", id, (int)probe.pid, did);
			snprintf(run->name, sizeof(run->name), "%s", id);
			memcpy(run->uuid, dead, RT_UUID_SIZE);
			run->lock_fd = fd;
			run_remove_files(run, true);
		} else {
			close(fd);
		}
	}
	r = read_walk_speed_max(run);
	if (r == 0)
		r = read_stripe_wait(run);
	if (r == 0)
		r = read_fuse_transport(run);
	if (r == 0)
		r = read_fuse_poll(run);
	if (r < 0)
		goto out_nolock;
	r = scan_devices_find(id, &scan, &a);
	if (r < 0)
		goto out_nolock;
	snprintf(run->name, sizeof(run->name), "%s", a->sb.array.name);
	snprintf(run->id, sizeof(run->id), "%s", run->name);
	memcpy(run->uuid, a->sb.array.uuid, RT_UUID_SIZE);

	r = control_lock(run->uuid, &run->lock_fd);
	if (r == -EALREADY) {
		struct rt_control_probe p;

		control_probe(run->uuid, &p);
		rt_log(RT_LOG_ERROR, "'%s': already active (engine pid %d%s%s)", run->name,
		       (int)p.pid, p.link[0] ? ", device " : "", p.link);
		goto out_nolock;
	}
	if (r < 0)
		goto out_nolock;
	r = run_recover_leftovers(run->name, run->uuid, did, sizeof(did));
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "'%s': an earlier engine died and its device is still in "
		       "use; see 'raidtool deactivate %s'", run->name, run->name);
		close(run->lock_fd);	/* its run files stay for deactivate */
		run->lock_fd = -1;
		goto out_nolock;
	}
	if (did[0])
		rt_log(RT_LOG_WARN, "'%s': an earlier engine died; cleaned up: %s", run->name, did);

	r = assemble_open(a, run->force, &run->as);
	if (r < 0)
		goto out;
	scan_free(scan);
	scan = NULL;
	r = check_degraded(run);
	if (r < 0)
		goto out;

	r = block_signals(run);
	if (r < 0)
		goto out;
	run->stop_fd = eventfd(0, EFD_CLOEXEC);
	run->rebuild_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (run->stop_fd < 0 || run->rebuild_fd < 0) {
		r = -errno;
		goto out;
	}
	harden_memory(run);

	/*
	 * Owed a resync: stopped uncleanly, the initial sync has not finished,
	 * or a forced unit missed what the dirty-region log marks.
	 */
	was_dirty = run->as->sb.state == RT_ARRAY_DIRTY || sb_unsynced(&run->as->sb);
	for (unsigned role = 0; role < run->as->n_roles; role++)
		was_dirty = was_dirty || run->as->forced[role];
	if (!run->readonly) {
		r = assemble_sb_update(run->as, mark_running, run->as);
		if (r < 0)
			goto out;
		dirty = true;
	}
	r = (run->readonly ? engine_create_readonly : engine_create)(&run->as->sb, run->as->units,
								     run->as->n_roles, &run->e);
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "'%s': cannot start the engine: %s", run->name, strerror(-r));
		goto out;
	}
	engine_set_failure_handler(run->e, run_on_failure, run);
	engine_set_replica_failure_handler(run->e, run_on_replica_failure, run);
	if (run->stripe_wait_us >= 0)
		(void)engine_set_gather_window(run->e, (unsigned)run->stripe_wait_us);
	run->started = (uint64_t)time(NULL);
	if (!run->readonly)
		start_recovery(run, was_dirty);

	r = control_path(run->uuid, RT_CONTROL_MNT, path, sizeof(path));
	if (r < 0)
		goto out;
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		rt_log(RT_LOG_ERROR, "'%s': cannot create '%s': %s", run->name, path, strerror(-r));
		goto out;
	}
	/* The first running array of a name is /dev/raidtool/NAME, a second one its hashcode. */
	r = control_name_claim(run->name, run->uuid);
	if (r == 0) {
		snprintf(link_name, sizeof(link_name), "%s", run->name);
	} else if (r == -EEXIST) {
		snprintf(link_name, sizeof(link_name), "%08x", run->as->sb.array.hashcode);
		snprintf(run->id, sizeof(run->id), "%s", link_name);
		rt_log(RT_LOG_WARN, "'%s': another array of that name runs; this one is "
		       RT_DEV_DIR "/%s", run->name, link_name);
	} else {
		rt_log(RT_LOG_ERROR, "'%s': cannot link the run directory to the name: %s",
		       run->name, strerror(-r));
		goto out;
	}
	xp = (struct rt_export_params){
		.name = run->name,
		.link_name = link_name,
		.mountpoint = path,
		.blocksize = run->as->sb.array.blocksize,
	};
	xp.transport = run->transport;
	xp.poll_us = run->fuse_poll_us;
	xp.readonly = run->readonly;
	r = start_thin(run, &xp, link_name);
	if (r < 0)
		goto out;
	r = export_start(run->e, &xp, &run->x);
	if (r == 0 && run->thin)
		r = thin_run_export(run->thin, run->x);	/* the volumes' files in its mount */
	if (r < 0)
		goto out;
	snprintf(line, sizeof(line), "%s\n", export_link(run->x));
	r = write_run_file(run->uuid, RT_CONTROL_LINK, line);
	if (r == 0) {
		snprintf(line, sizeof(line), "%s\n", export_device(run->x));
		r = write_run_file(run->uuid, RT_CONTROL_DEVICE, line);
	}
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "'%s': cannot write its run files: %s", run->name,
		       strerror(-r));
		goto out;
	}
	ops = (struct control_ops){ .ctx = run, .status = on_status, .stop = on_stop,
				    .command = run_admin_command };
	r = control_server_start(run->uuid, run->name, &ops, &run->cs);
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "'%s': cannot start the control socket: %s", run->name,
		       strerror(-r));
		goto out;
	}
	rt_log(RT_LOG_INFO, "'%s': active on %s (%s)", run->name, export_link(run->x),
	       export_device(run->x));
	ready(run, ready_arg);

	wait_for_stop(run);
	r = run_teardown(run, msg, sizeof(msg));
	if (r == 0)
		rt_log(RT_LOG_INFO, "'%s': stopped; %s", run->name, run->readonly ?
		       "read-only: nothing was written to the units" :
		       msg[0] ? msg : "superblocks marked clean");
	run_remove_files(run, r < 0);
	control_server_finish(run->cs, r, msg);
	run->cs = NULL;
	goto done;
out:
	/* A start that failed. Without an engine nothing was written: clean again. */
	if (dirty && !run->e && run->as)
		assemble_set_state(run->as, RT_ARRAY_CLEAN);
	run_teardown(run, msg, sizeof(msg));
	control_server_finish(run->cs, r, NULL);
	run->cs = NULL;
	run_remove_files(run, false);
	goto done;
out_nolock:
	;
done:
	scan_free(scan);
	if (run->stop_fd >= 0)
		close(run->stop_fd);
	if (run->rebuild_fd >= 0)
		close(run->rebuild_fd);
	if (run->sig_fd >= 0)
		close(run->sig_fd);
	if (run->mask_set)
		pthread_sigmask(SIG_SETMASK, &run->old_mask, NULL);
	if (run->locked_memory)
		munlockall();
	return r;
}

void run_init(struct run *run)
{
	memset(run, 0, sizeof(*run));
	run->lock_fd = run->sig_fd = run->stop_fd = run->rebuild_fd = run->excl_fd = -1;
	atomic_store(&run->admin_fail, -1);
	pthread_mutex_init(&run->lock, NULL);
	pthread_mutex_init(&run->admin_lock, NULL);
	pthread_mutex_init(&run->sb_lock, NULL);
	pthread_mutex_init(&run->owed_mu, NULL);
}
