/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The run path: activate (scan, assemble, mark dirty, engine, export,
 * control socket, wait, tear down, mark clean) and deactivate (ask the
 * engine to stop, or clean up after one that died).
 *
 * Background mode forks before anything creates a thread. The child talks
 * to the parent over a pipe: "L<level> <message>\n" lines relay its log
 * until it is ready, then one "R<errno> <link> <dev>\n" line ends it.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
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
#include <uuid/uuid.h>
#include <raidtool/activate.h>
#include <raidtool/array.h>
#include <raidtool/assemble.h>
#include <raidtool/control.h>
#include <raidtool/dirtylog.h>
#include <raidtool/engine.h>
#include <raidtool/export.h>
#include <raidtool/log.h>
#include <raidtool/rebuild.h>
#include <raidtool/scan.h>
#include <raidtool/unit.h>

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

#define EXIT_WAIT_MS 10000		/* for the engine process to go after `stop` */

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
	int spare_fd;			/* eventfd: a role failed while a spare was present */
	sigset_t old_mask;
	bool mask_set;
	bool locked_memory;
	uint64_t started;

	struct rt_assembly *as;
	struct rt_engine *e;
	struct rt_export *x;
	struct control_server *cs;

	pthread_mutex_t lock;
	pthread_mutex_t sb_lock;	/* superblock updates and run->as->sb readers */
	pthread_mutex_t admin_lock;	/* add, remove, fail, taking a spare: one at a time */
	_Atomic int admin_fail;		/* the role `raidtool fail` is failing, or -1 */
	bool force;			/* start a degraded, dirty raid5 */
	bool readonly;			/* activate --readonly: nothing written to any unit */
	bool stopping;
	bool resync_pending;		/* a resync started and has not finished */
	uint64_t walk_speed_max;	/* RAIDTOOL_SYNC_SPEED_MAX, bytes/s; 0: none */
	long stripe_wait_us;		/* RAIDTOOL_STRIPE_WAIT_US; -1: the engine's default */
	enum rt_fuse_transport transport;	/* RAIDTOOL_FUSE_TRANSPORT */
	uint64_t owed_all;		/* engine_resync_owed's @all for the running resync */
	bool owed_warned;
	uint32_t rebuild_role;		/* of the last rebuild started */
	int excl_fd;			/* the loop device, held O_EXCL from the stop decision on */
};

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

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

/* ---- the background child's log --------------------------------------- */

static int relay_fd = -1;		/* the pipe to the parent, until ready */
static int log_file_fd = -1;		/* <rundir>/<NAME>/log, once running */

static void log_to_pipe(int level, const char *msg, void *usrptr)
{
	char line[1100];
	int n;

	(void)usrptr;
	if (relay_fd < 0)
		return;
	n = snprintf(line, sizeof(line), "L%d %s", level, msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	for (int i = 0; i < n; i++)
		if (line[i] == '\n')
			line[i] = ' ';
	line[n++] = '\n';
	if (write(relay_fd, line, (size_t)n) < 0) {
		/* The parent is gone; nothing to tell. */
	}
}

static void log_to_file(int level, const char *msg, void *usrptr)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char line[1200], when[32];
	time_t now = time(NULL);
	struct tm tm;
	int n;

	(void)usrptr;
	if (log_file_fd < 0 || level > RT_LOG_INFO)
		return;
	if (!localtime_r(&now, &tm) || !strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm))
		when[0] = '\0';
	n = snprintf(line, sizeof(line), "%s raidtool[%d]: %s: %s\n", when, (int)getpid(),
		     names[level < 0 ? 0 : level > 3 ? 3 : level], msg);
	if (n > 0 && write(log_file_fd, line, (size_t)n < sizeof(line) ? (size_t)n :
			   sizeof(line) - 1) < 0) {
		/* Nowhere left to complain. */
	}
}

/* ---- control callbacks (on the control thread) ------------------------- */

static const char *walk_name(int kind);

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
	switch (engine_state(run->e)) {
	case RT_ENGINE_OK:
		snprintf(st->health, sizeof(st->health), "clean");
		break;
	case RT_ENGINE_DEGRADED:
		snprintf(st->health, sizeof(st->health), "degraded");
		break;
	default:
		snprintf(st->health, sizeof(st->health), "failed");
		break;
	}
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

		u->slot = slot;
		snprintf(u->device, sizeof(u->device), "%s", as->dev[i]);
		memcpy(u->uuid, as->own[i].uuid, RT_UUID_SIZE);
		u->hashcode = as->own[i].hashcode;
		snprintf(u->state, sizeof(u->state), "%s",
			 sb_slot_state_name(slot < RT_MAX_UNITS ? as->sb.slots[slot].state : 0));
		if (slot < as->n_roles && !as->units[i]) {
			snprintf(u->state, sizeof(u->state), "missing");
		} else if (slot < as->n_roles && as->sb.slots[slot].state == RT_SLOT_ACTIVE &&
			   engine_role_state(run->e, slot) == RT_ROLE_FAULTY) {
			/* Failed, and its superblock update did not get through. */
			snprintf(u->state, sizeof(u->state), "faulty");
		}
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
	st->nospace_mask = es->nospace_mask;
	st->retry_count = es->retry_count;
	st->retry_window_ms = es->retry_window_ms;
	{
		struct rt_walk_progress wp;

		engine_walk_progress(run->e, &wp);
		snprintf(st->walk, sizeof(st->walk), "%s", walk_name(wp.kind));
		st->walk_running = wp.running;
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

struct slot_change {
	uint32_t slot;
	uint32_t state;
	bool forget;			/* zero the slot's unit identity (remove) */
	bool io_error;			/* it failed an I/O: no rebuild from the log alone */
};

static int change_slot(struct rt_sb *sb, void *arg)
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
static const char *sb_health(const struct rt_sb *sb)
{
	unsigned lost = 0, spare;

	for (uint32_t r = 0; r < sb->array.n_devices; r++)
		if (sb->slots[r].state != RT_SLOT_ACTIVE)
			lost++;
	spare = sb->array.level == RT_LEVEL_1 ? sb->array.n_devices - 1 :
		sb->array.level == RT_LEVEL_5 ? 1 : 0;
	return !lost ? "clean" : lost <= spare ? "degraded" : "failed";
}

/*
 * Every superblock update of a running array: the engine learns the new
 * events value, which its dirty-region log records when it clears bits.
 */
static int run_sb_update(struct run *run, assemble_mutate_fn mutate, void *arg)
{
	int r = assemble_sb_update(run->as, mutate, arg);

	engine_dirtylog_set_events(run->e, run->as->sb.events);
	return r;
}

/* A spare present (index into run->as), or -1. */
static int find_spare(const struct rt_assembly *as)
{
	for (unsigned i = as->n_roles; i < as->n_units; i++)
		if (as->units[i] && as->own[i].slot < RT_MAX_UNITS &&
		    as->sb.slots[as->own[i].slot].state == RT_SLOT_SPARE)
			return (int)i;
	return -1;
}

static const char *engine_state_name(int state)
{
	return state == RT_ENGINE_OK ? "clean" : state == RT_ENGINE_DEGRADED ? "degraded" :
	       "failed";
}

/*
 * The engine's failure handler: a role failed an I/O (or was failed). Its
 * slot becomes FAULTY in every remaining unit's superblock.
 */
static void on_failure(uint32_t role, void *ctx)
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
		change_slot(&run->as->sb, &c);
		pthread_mutex_unlock(&run->sb_lock);
		rt_log(RT_LOG_WARN, "'%s': unit '%s' (role %u) failed; read-only: its superblocks "
		       "are left as they are; the array is %s", run->name, dev, role,
		       sb_health(&run->as->sb));
		return;
	}
	r = run_sb_update(run, change_slot, &c);
	if (r < 0) {
		/*
		 * The engine goes on without the role whatever the units took:
		 * the copy in memory must record it even when no unit did (else
		 * the next update, say the clean stop, writes the role back as
		 * active and a later start trusts its stale data). One more try
		 * now gets past a transient error.
		 */
		change_slot(&run->as->sb, &c);
		r = run_sb_update(run, NULL, NULL);
	}
	spare = find_spare(run->as) >= 0;
	pthread_mutex_unlock(&run->sb_lock);
	/* md's hot spare: the main thread moves it in (the engine is busy here). */
	if (spare && write(run->spare_fd, &one, sizeof(one)) < 0)
		rt_log(RT_LOG_ERROR, "'%s': cannot wake the spare handling: %s", run->name,
		       strerror(errno));
	if (r < 0)
		rt_log(RT_LOG_ERROR, "'%s': unit '%s' (role %u) failed, and marking it faulty "
		       "in the remaining superblocks failed too: %s; the next superblock update "
		       "records it", run->name, dev, role, strerror(-r));
	else
		rt_log(RT_LOG_WARN, "'%s': unit '%s' (role %u) failed; marked faulty in the "
		       "remaining superblocks (events %llu); the array is %s", run->name, dev,
		       role, (unsigned long long)run->as->sb.events, sb_health(&run->as->sb));
}

/* ---- background walks (lib/rebuild.c) ----------------------------------- */

/*
 * Take the unit of faulty @role out of the engine. A rebuild that was
 * stopped by failing its unit ends its walk on its own within a batch;
 * until then the engine says -EBUSY.
 */
static int detach_failed_unit(struct run *run, uint32_t role, struct rt_unit **u)
{
	int r = -EBUSY;

	for (int k = 0; k < 100 && r == -EBUSY; k++) {
		r = engine_detach_unit(run->e, role, u);
		if (r == -EBUSY)
			sleep_ms(50);
	}
	return r;
}

static const char *walk_name(int kind)
{
	switch (kind) {
	case RT_WALK_RECOVER:
		return "rebuilding";
	case RT_WALK_RESYNC:
		return "resyncing";
	case RT_WALK_CHECK:
		return "checking";
	case RT_WALK_REPAIR:
		return "repairing";
	default:
		return "";
	}
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

/* A rebuild's checkpoint (walk thread): the role's recovery offset, in every superblock. */
static void on_walk_checkpoint(uint32_t role, uint64_t offset, void *ctx)
{
	struct run *run = ctx;
	struct slot_offset o = { .slot = role, .offset = offset };
	int r;

	pthread_mutex_lock(&run->sb_lock);
	r = run_sb_update(run, set_recovery_offset, &o);
	pthread_mutex_unlock(&run->sb_lock);
	if (r < 0 && r != -ESTALE)
		rt_log(RT_LOG_ERROR, "'%s': cannot record the rebuild of role %u at %llu bytes "
		       "in the superblocks: %s", run->name, role, (unsigned long long)offset,
		       strerror(-r));
}

/* A rebuild that reached the end: the role is active again. */
static void rebuild_finished(struct run *run)
{
	struct slot_change c = { .slot = run->rebuild_role, .state = RT_SLOT_ACTIVE };
	int r;

	pthread_mutex_lock(&run->sb_lock);
	r = run_sb_update(run, change_slot, &c);
	pthread_mutex_unlock(&run->sb_lock);
	if (r < 0)
		rt_log(RT_LOG_ERROR, "'%s': role %u is rebuilt, but marking it active in the "
		       "superblocks failed: %s", run->name, c.slot, strerror(-r));
	else
		rt_log(RT_LOG_INFO, "'%s': role %u rebuilt and active (events %llu); the array "
		       "is %s", run->name, c.slot, (unsigned long long)run->as->sb.events,
		       sb_health(&run->as->sb));
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

/* The end of a walk (on its thread; the engine must not be re-entered). */
static void on_walk_done(int kind, int result, void *ctx)
{
	struct run *run = ctx;

	if (result == 0 && kind == RT_WALK_RECOVER)
		rebuild_finished(run);
	if (result == 0 && kind == RT_WALK_RESYNC) {
		run->resync_pending = false;
		initial_sync_finished(run);
		engine_resync_owed_done(run->e, run->owed_all);
		run->owed_all = 0;
	}
	if (result == 0)
		rt_log(RT_LOG_INFO, "'%s': %s finished", run->name, walk_name(kind));
	else if (result == -ECANCELED)
		rt_log(RT_LOG_INFO, "'%s': %s cancelled", run->name, walk_name(kind));
	else
		rt_log(RT_LOG_ERROR, "'%s': %s failed: %s", run->name, walk_name(kind),
		       strerror(-result));
}

/* Every walk of this run starts here: the speed limit applies to all of them. */
static int walk_start(struct run *run, struct rt_walk_params *p)
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

/* Regions owed a resync by writes that failed for want of space, or all (no log)? */
static bool resync_owed_any(struct run *run)
{
	uint64_t n_owed = 0, all = 0;

	return engine_resync_owed(run->e, NULL, 0, &n_owed, &all) == 0 && (n_owed || all);
}

/*
 * Regions owed a resync (pinned in the log): a raid1/raid5 write that failed
 * for want of space on some units, or what is left of an initial sync that
 * stopped when a unit failed. Once every unit takes writes again, the array
 * is whole and no walk runs, resync them (main thread, polled every second).
 */
static void resync_owed(struct run *run)
{
	struct rt_walk_params p = { .kind = RT_WALK_RESYNC, .done = on_walk_done, .ctx = run };
	uint64_t region_size = 0, n_regions = 0, n_owed = 0, all = 0;
	struct rt_walk_progress wp;
	uint8_t *bitmap = NULL;
	int r;

	if (engine_nospace(run->e) || engine_state(run->e) != RT_ENGINE_OK)
		return;
	engine_walk_progress(run->e, &wp);
	if (wp.running || !resync_owed_any(run))
		return;
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
		r = walk_start(run, &p);
	if (r == 0) {
		run->owed_warned = false;
		rt_log(RT_LOG_WARN, "'%s': every unit takes writes again: resyncing %s%llu "
		       "region%s owed a resync (writes that reached only some units, or the "
		       "rest of the initial sync)",
		       run->name, all ? "the whole array; " : "", (unsigned long long)n_owed,
		       n_owed == 1 ? "" : "s");
	} else if (!run->owed_warned) {
		run->owed_warned = true;
		rt_log(RT_LOG_ERROR, "'%s': the resync of regions owed one did not start: %s; "
		       "trying again", run->name, strerror(-r));
	}
	free(bitmap);
}

/*
 * Rebuild @role onto the unit attached to it, from @start bytes of its data
 * area; only in the regions set in @regions (log regions of @region_size
 * bytes) when not NULL.
 */
static int start_rebuild_regions(struct run *run, uint32_t role, uint64_t start,
				 const uint8_t *regions, uint64_t region_size)
{
	struct rt_walk_params p = {
		.kind = RT_WALK_RECOVER, .role = role, .start = start,
		.regions = regions, .region_size = region_size,
		.checkpoint = on_walk_checkpoint, .done = on_walk_done, .ctx = run,
	};
	int r;

	run->rebuild_role = role;
	r = walk_start(run, &p);
	if (r < 0)
		rt_log(RT_LOG_ERROR, "'%s': cannot start rebuilding role %u: %s", run->name,
		       role, strerror(-r));
	else
		rt_log(RT_LOG_INFO, "'%s': rebuilding role %u from %llu bytes%s", run->name, role,
		       (unsigned long long)start, regions ? ", dirty regions only" : "");
	return r;
}

static int start_rebuild(struct run *run, uint32_t role, uint64_t start)
{
	return start_rebuild_regions(run, role, start, NULL, 0);
}

/* A repair's "prefer=ROLE": the raid1 mirror whose copy settles a tie. */
static int walk_prefer(struct run *run, int kind, const char *arg, struct rt_walk_params *p,
		       char *msg, size_t len)
{
	unsigned long role;
	char *end;

	if (kind != RT_WALK_REPAIR || strncmp(arg, "prefer=", 7) || !isdigit((unsigned char)arg[7])) {
		snprintf(msg, len, "'%s': not an argument of this request", arg);
		return -EINVAL;
	}
	if (run->as->sb.array.level != RT_LEVEL_1) {
		snprintf(msg, len, "--prefer is for raid1 only: a %s repair recomputes the parity "
			 "from the data", sb_level_name(run->as->sb.array.level));
		return -EINVAL;
	}
	errno = 0;
	role = strtoul(arg + 7, &end, 10);
	if (errno || *end || role >= run->as->sb.array.n_devices) {
		snprintf(msg, len, "'%s': no such role (the array has roles 0 to %u)", arg + 7,
			 run->as->sb.array.n_devices - 1);
		return -EINVAL;
	}
	if (engine_role_state(run->e, (uint32_t)role) != RT_ROLE_ACTIVE) {
		snprintf(msg, len, "role %lu is not a working mirror: its copy cannot be preferred",
			 role);
		return -EINVAL;
	}
	p->prefer_set = true;
	p->prefer = (uint32_t)role;
	return 0;
}

static int run_walk_command(struct run *run, const char *cmd, const char *arg, char *msg,
			    size_t len)
{
	struct rt_walk_params p = { .done = on_walk_done, .ctx = run };
	int r;

	if (!strcmp(cmd, "cancel")) {
		r = engine_walk_cancel(run->e);
		if (r < 0) {
			snprintf(msg, len, "nothing to cancel: %s", r == -ESRCH ?
				 "no walk is running" : strerror(-r));
			return r;
		}
		snprintf(msg, len, "cancelled");
		return 0;
	}
	if (strcmp(cmd, "check") && strcmp(cmd, "repair")) {
		snprintf(msg, len, "'%s' is not available yet on a running array", cmd);
		return -EOPNOTSUPP;
	}
	p.kind = !strcmp(cmd, "check") ? RT_WALK_CHECK : RT_WALK_REPAIR;
	if (arg[0]) {
		r = walk_prefer(run, p.kind, arg, &p, msg, len);
		if (r < 0)
			return r;
	}
	r = walk_start(run, &p);
	if (r == -EBUSY) {
		struct rt_walk_progress wp;

		engine_walk_progress(run->e, &wp);
		snprintf(msg, len, "busy: %s is running (see 'raidtool status %s')",
			 walk_name(wp.kind), run->id);
		return r;
	}
	if (r == -EOPNOTSUPP) {
		snprintf(msg, len, "%s has no redundancy to check",
			 sb_level_name(run->as->sb.array.level));
		return r;
	}
	if (r < 0) {
		snprintf(msg, len, "cannot start the %s: %s", cmd, strerror(-r));
		return r;
	}
	rt_log(RT_LOG_INFO, "'%s': %s started", run->name, walk_name(p.kind));
	snprintf(msg, len, "%s started in the background; see 'raidtool status %s' or "
		 "'raidtool wait %s'", cmd, run->id, run->id);
	return 0;
}

/*
 * A unit named by role number, hashcode (8 hex digits) or device path
 * (the block device, or a file it is attached to). Returns its index in
 * run->as, or -ENODEV with a reason in @msg.
 */
static int find_member(struct run *run, const char *arg, char *msg, size_t len)
{
	const struct rt_assembly *as = run->as;
	struct stat st;
	uint32_t hash;
	char *end;

	if (!*arg) {
		snprintf(msg, len, "which unit? give a role number, hashcode or device");
		return -EINVAL;
	}
	if (strlen(arg) <= 2 && arg[0] >= '0' && arg[0] <= '9') {
		unsigned long role = strtoul(arg, &end, 10);

		if (!*end && role < as->n_roles)
			return (int)role;
		snprintf(msg, len, "'%s': no such role (the array has roles 0 to %u)", arg,
			 as->n_roles - 1);
		return -ENODEV;
	}
	if (sb_hashcode_parse(arg, &hash) == 0) {
		for (unsigned i = 0; i < as->n_units; i++)
			if (as->units[i] && as->own[i].hashcode == hash)
				return (int)i;
		for (unsigned i = 0; i < as->n_roles; i++)
			if (as->sb.slots[i].hashcode == hash)
				return (int)i;
	}
	for (unsigned i = 0; i < as->n_units; i++)
		if (as->units[i] && (!strcmp(as->dev[i], arg) ||
				     !strcmp(unit_path(as->units[i]), arg)))
			return (int)i;
	if (stat(arg, &st) == 0) {
		for (unsigned i = 0; i < as->n_units; i++) {
			if (!as->units[i])
				continue;
			if (S_ISBLK(st.st_mode) && st.st_rdev == unit_devno(as->units[i]))
				return (int)i;
		}
	}
	snprintf(msg, len, "'%s': not a unit of this array (give a role number, hashcode or "
		 "device; see 'raidtool status %s')", arg, run->id);
	return -ENODEV;
}

/* A request's leading "--force " (add, fail): true, and @arg moved past it. */
static bool take_force(const char **arg)
{
	if (strncmp(*arg, "--force ", 8))
		return false;
	*arg += 8;
	return true;
}

/*
 * Without "--force " a role whose loss the level does not survive is
 * refused: an admin's fail would stop the array's writes, and the way back
 * (activate --force) can lose what was written after the other roles left.
 * A device that is gone (incremental --remove) is failed with it.
 */
static int cmd_fail(struct run *run, const char *arg, char *msg, size_t len)
{
	bool force = take_force(&arg);
	int i, r;

	i = find_member(run, arg, msg, len);
	if (i < 0)
		return i;
	if ((unsigned)i >= run->as->n_roles) {
		snprintf(msg, len, "'%s' is a spare: it holds no data, nothing to fail", arg);
		return -EINVAL;
	}
	/* Failed on purpose, not by its media: it may come back from the log. */
	atomic_store(&run->admin_fail, i);
	r = force ? engine_fail_role(run->e, (uint32_t)i) :
		    engine_fail_role_spared(run->e, (uint32_t)i);
	atomic_store(&run->admin_fail, -1);
	if (r == -EALREADY) {
		snprintf(msg, len, "role %d is already faulty", i);
		return r;
	}
	if (r == -EEXIST) {
		snprintf(msg, len, "role %d (%s) is not failed: the %s array is %s and could not "
			 "take writes without it; nothing was changed",
			 i, run->as->dev[i][0] ? run->as->dev[i] : "-",
			 sb_level_name(run->as->sb.array.level),
			 engine_state_name(engine_state(run->e)));
		return r;
	}
	if (r < 0) {
		snprintf(msg, len, "cannot fail role %d: %s", i, strerror(-r));
		return r;
	}
	snprintf(msg, len, "role %d (%s) marked faulty; the array is %s", i,
		 run->as->dev[i][0] ? run->as->dev[i] : "-",
		 engine_state_name(engine_state(run->e)));
	return 0;
}

/*
 * The engine decides first and the superblocks follow: a unit still being
 * rebuilt is refused (fail it first, which stops the rebuild, as md wants a
 * rebuilding device failed before it is removed), a refusal writes
 * nothing, and the role table is only changed once the engine has let the
 * unit go, so the two never disagree.
 */
static int cmd_remove(struct run *run, const char *arg, char *msg, size_t len)
{
	struct slot_change c = { .state = RT_SLOT_MISSING, .forget = true };
	struct rt_assembly *as = run->as;
	struct rt_unit *u = NULL;
	bool role;
	char dev[256];
	int i, r;

	i = find_member(run, arg, msg, len);
	if (i < 0)
		return i;
	role = (unsigned)i < as->n_roles;
	if (role && engine_role_rebuilding(run->e, (uint32_t)i)) {
		snprintf(msg, len, "role %d ('%s') is being rebuilt and already holds every write "
			 "since it was added; let the rebuild finish ('raidtool wait %s'), or to "
			 "take it out fail it first ('raidtool fail %s %d' stops the rebuild) and "
			 "then remove it", i, as->dev[i], run->id, run->id, i);
		return -EBUSY;
	}
	if (role && engine_role_state(run->e, (uint32_t)i) != RT_ROLE_FAULTY) {
		snprintf(msg, len, "role %d (%s) is working; fail it first ('raidtool fail %s %d')",
			 i, as->dev[i], run->id, i);
		return -EBUSY;
	}
	if (!as->units[i]) {
		snprintf(msg, len, "role %d has no unit to remove", i);
		return -ENODEV;
	}
	snprintf(dev, sizeof(dev), "%s", as->dev[i]);
	if (role) {
		r = detach_failed_unit(run, (uint32_t)i, &u);
		if (r < 0) {
			snprintf(msg, len, "cannot take '%s' out of role %d: %s; nothing was "
				 "changed", dev, i, r == -EBUSY ? "the engine still uses it" :
				 strerror(-r));
			return r;
		}
	} else {
		u = as->units[i];
	}
	pthread_mutex_lock(&run->sb_lock);
	c.slot = as->own[i].slot;
	if (!role)
		c.state = RT_SLOT_EMPTY;	/* a spare leaves the table */
	r = run_sb_update(run, change_slot, &c);
	unit_close(u);
	as->units[i] = NULL;
	as->dev[i][0] = '\0';
	pthread_mutex_unlock(&run->sb_lock);
	if (r < 0) {
		/* Out of the engine either way; the role table still calls it faulty. */
		snprintf(msg, len, "'%s' is out of the array, but recording that in the "
			 "superblocks failed: %s (they still list it in slot %u, faulty)", dev,
			 strerror(-r), c.slot);
		return r;
	}
	rt_log(RT_LOG_INFO, "'%s': unit '%s' removed from slot %u (events %llu)", run->name,
	       dev, c.slot, (unsigned long long)as->sb.events);
	snprintf(msg, len, "'%s' removed from slot %u; its own superblock is left as it was "
		 "(stale)", dev, c.slot);
	return 0;
}

/*
 * The role a new unit goes to: a faulty one without a unit (@want, or the
 * first when @want is UINT32_MAX), else n_roles (a spare).
 */
static int add_target(struct run *run, uint32_t want, char *msg, size_t len)
{
	const struct rt_assembly *as = run->as;
	struct rt_walk_progress wp;

	for (unsigned i = 0; i < as->n_roles; i++) {
		if ((want != UINT32_MAX && i != want) ||
		    engine_role_state(run->e, i) != RT_ROLE_FAULTY)
			continue;
		if (engine_role_rebuilding(run->e, i)) {
			if (want == UINT32_MAX)
				continue;	/* taken: the new unit becomes a spare */
			snprintf(msg, len, "role %u is being rebuilt onto '%s'; wait for it "
				 "('raidtool wait %s')", i, as->dev[i], run->id);
			return -EBUSY;
		}
		if (as->units[i]) {
			snprintf(msg, len, "role %u is faulty and still holds '%s'; remove it "
				 "first ('raidtool remove %s %u')", i, as->dev[i], run->id, i);
			return -EBUSY;
		}
		engine_walk_progress(run->e, &wp);
		if (wp.running) {
			snprintf(msg, len, "busy: %s is running; wait for it ('raidtool wait "
				 "%s') or cancel it ('raidtool check --cancel %s')",
				 walk_name(wp.kind), run->name, run->name);
			return -EBUSY;
		}
		return (int)i;
	}
	return (int)as->n_roles;
}

static int add_slot(struct rt_sb *sb, void *arg)
{
	*sb = *(const struct rt_sb *)arg;
	return 0;
}

/*
 * A former unit of this array offered back. Returns 1 with the unit open in
 * @out and its superblock in @usb when it may be rebuilt from the dirty-region
 * log alone; 0 when it gets the full path (a new member, closed again; the
 * reason in @why, NULL when it is not ours at all); -errno with @msg when it
 * must not be added at all (it ran apart from the array).
 */
static int readd_probe(struct run *run, const char *path, struct rt_unit **out,
		       struct rt_sb *usb, const char **why, char *msg, size_t len)
{
	const struct rt_assembly *as = run->as;
	uint64_t cleared = 0;
	struct rt_unit *u;
	int r;

	*out = NULL;
	*why = NULL;
	if (unit_open(path, RT_UNIT_WRITE | RT_UNIT_EXCL | RT_UNIT_ATTACH | RT_UNIT_DIRECT, &u) < 0)
		return 0;	/* array_member_prepare says why */
	if (unit_read_sb_quiet(u, usb, NULL) < 0 ||
	    memcmp(usb->array.uuid, as->sb.array.uuid, RT_UUID_SIZE)) {
		unit_close(u);
		return 0;
	}
	if (engine_dirtylog_cleared(run->e, &cleared) < 0)
		cleared = 0;
	r = dirtylog_readd_check(&as->sb, usb, cleared, NULL);
	if (r == RT_READD_NEWER) {
		uint32_t slot = usb->unit.slot < RT_MAX_UNITS ? usb->unit.slot : 0;

		snprintf(msg, len, "'%s' (unit %08x, events %llu, its role table gives slot %u "
			 "to %08x as %s) contradicts the running array (events %llu, whose table "
			 "has slot %u %s%s%08x): it is not older than the array, so it may hold "
			 "writes the array lacks (the two ran apart); refused, nothing changed. "
			 "Only once what it holds is not needed, wipe it ('raidtool zero') "
			 "to add it as a new unit", path,
			 usb->unit.hashcode, (unsigned long long)usb->events, slot,
			 usb->slots[slot].hashcode, sb_slot_state_name(usb->slots[slot].state),
			 (unsigned long long)as->sb.events, slot,
			 sb_slot_state_name(as->sb.slots[slot].state),
			 as->sb.slots[slot].hashcode ? ", unit " : "",
			 as->sb.slots[slot].hashcode);
		unit_close(u);
		return -EEXIST;
	}
	if (r != RT_READD_OK) {
		*why = dirtylog_readd_reason(r);
		unit_close(u);
		return 0;
	}
	*out = u;
	return 1;
}

/*
 * Back into its role with its identity, rebuilt only where the log says
 * the array was written since it left. Called with sb_lock held; drops it.
 */
static int readd_partial(struct run *run, struct rt_unit *u, const struct rt_sb *usb,
			 const char *arg, char *msg, size_t len)
{
	struct rt_assembly *as = run->as;
	uint32_t role = usb->unit.slot;
	uint64_t region_size = 0, n_regions = 0, n_dirty = 0;
	uint8_t *bitmap = NULL;
	struct rt_slot *slot;
	struct rt_sb sb;
	int t, r;

	t = add_target(run, role, msg, len);
	if (t < 0 || (uint32_t)t != role) {
		if (t >= 0)
			snprintf(msg, len, "role %u is not faulty", role);
		unit_close(u);
		pthread_mutex_unlock(&run->sb_lock);
		return t < 0 ? t : -EBUSY;
	}
	sb = as->sb;
	slot = &sb.slots[role];
	memcpy(slot->uuid, usb->unit.uuid, RT_UUID_SIZE);
	slot->hashcode = usb->unit.hashcode;
	slot->state = RT_SLOT_REBUILDING;
	slot->data_size = usb->unit.data_size;
	slot->recovery_offset = 0;
	as->units[role] = u;
	as->own[role] = usb->unit;
	as->disk_events[role] = 0;	/* rewritten as a new member: first, no catching up */
	snprintf(as->dev[role], sizeof(as->dev[role]), "%s", unit_devname(u));
	r = run_sb_update(run, add_slot, &sb);
	if (r < 0) {
		as->units[role] = NULL;
		as->dev[role][0] = '\0';
		unit_close(u);
		pthread_mutex_unlock(&run->sb_lock);
		snprintf(msg, len, "cannot write the superblocks: %s", strerror(-r));
		return r;
	}
	unit_keep_loop(u);
	pthread_mutex_unlock(&run->sb_lock);
	r = engine_attach_unit(run->e, role, u);
	if (r < 0) {
		snprintf(msg, len, "cannot attach '%s' to role %u: %s", arg, role, strerror(-r));
		return r;	/* REBUILDING at 0 in the superblocks: a restart rebuilds it all */
	}
	/*
	 * Only now: every write before the attach is in the log (nothing is
	 * cleared while degraded), every write after it reaches the unit.
	 */
	r = engine_dirtylog_info(run->e, &region_size, &n_regions);
	if (r == 0) {
		bitmap = calloc((n_regions + 7) / 8, 1);
		r = bitmap ? engine_dirtylog_dirty(run->e, bitmap, (n_regions + 7) / 8, &n_dirty) :
			-ENOMEM;
	}
	if (r == 0)
		r = start_rebuild_regions(run, role, 0, bitmap, region_size);
	free(bitmap);
	if (r < 0) {
		snprintf(msg, len, "'%s' attached to role %u, but the rebuild did not start: %s",
			 arg, role, strerror(-r));
		return r;
	}
	rt_log(RT_LOG_INFO, "'%s': unit '%s' re-added to role %u: %llu of %llu regions to "
	       "rebuild (events %llu)", run->name, as->dev[role], role,
	       (unsigned long long)n_dirty, (unsigned long long)n_regions,
	       (unsigned long long)as->sb.events);
	snprintf(msg, len, "'%s' re-added to role %u: %llu of %llu regions to rebuild (the "
		 "dirty-region log holds every write since it left); see 'raidtool status %s' "
		 "or 'raidtool wait %s'", arg, role, (unsigned long long)n_dirty,
		 (unsigned long long)n_regions, run->id, run->id);
	return 0;
}

/*
 * A new unit: into a faulty, removed role and rebuilt onto, or a spare.
 * A former unit of this array that left recently is rebuilt only where the
 * array was written since (readd_partial); any other is rewritten as a new
 * member and rebuilt in full. "--force PATH" overwrites what it holds.
 */
static int cmd_add(struct run *run, const char *arg, char *msg, size_t len)
{
	struct rt_assembly *as = run->as;
	struct rt_unit *u = NULL;
	struct rt_sb sb;
	const char *why = NULL;
	bool force = false, locked = true;
	unsigned idx;
	uint32_t slot;
	int t, r;

	force = take_force(&arg);
	if (!*arg) {
		snprintf(msg, len, "which unit? give a device or image file");
		return -EINVAL;
	}
	if (as->sb.array.level != RT_LEVEL_1 && as->sb.array.level != RT_LEVEL_5) {
		snprintf(msg, len, "a %s array has no redundancy: a unit added to it could "
			 "neither be rebuilt nor serve as a spare",
			 sb_level_name(as->sb.array.level));
		return -EOPNOTSUPP;
	}
	pthread_mutex_lock(&run->sb_lock);
	r = readd_probe(run, arg, &u, &sb, &why, msg, len);
	if (r < 0)
		goto out;
	if (r > 0)
		return readd_partial(run, u, &sb, arg, msg, len);
	t = add_target(run, UINT32_MAX, msg, len);
	if (t < 0) {
		r = t;
		goto out;
	}
	if ((unsigned)t < as->n_roles) {
		idx = (unsigned)t;
		slot = (uint32_t)t;
	} else {
		/* Where removed spares left room: a table of replaced units does not grow. */
		for (idx = as->n_roles; idx < as->n_units && as->units[idx]; idx++)
			;
		slot = sb_spare_slot(&as->sb);
	}
	if (idx >= RT_MAX_UNITS || slot >= RT_MAX_UNITS) {
		snprintf(msg, len, "no room for another unit (at most %u)", RT_MAX_UNITS);
		r = -E2BIG;
		goto out;
	}
	sb = as->sb;
	rt_log_clear_error();
	r = array_member_prepare(arg, &sb, slot, RT_UNIT_DIRECT, force, as->sb.array.uuid,
				 &u, &as->own[idx]);
	if (r < 0) {
		snprintf(msg, len, "%s", rt_log_last_error()[0] ? rt_log_last_error() :
			 strerror(-r));
		goto out;
	}
	as->units[idx] = u;
	as->disk_events[idx] = 0;	/* a new member: written first */
	snprintf(as->dev[idx], sizeof(as->dev[idx]), "%s", unit_devname(u));
	if (idx == as->n_units)
		as->n_units++;
	r = run_sb_update(run, add_slot, &sb);
	if (r < 0) {
		snprintf(msg, len, "cannot write the superblocks: %s", strerror(-r));
		goto undo;
	}
	/* A file-backed unit keeps its loop device after the engine closes it: scanning finds it. */
	unit_keep_loop(u);
	if (idx >= as->n_roles) {
		rt_log(RT_LOG_INFO, "'%s': unit '%s' added as a spare (slot %u, events %llu)",
		       run->name, as->dev[idx], slot, (unsigned long long)as->sb.events);
		snprintf(msg, len, "'%s' added as a spare (slot %u): nothing is degraded; it "
			 "takes the place of a unit that fails", arg, slot);
		goto out;
	}
	/* The engine may wait for requests whose failure handler wants sb_lock. */
	pthread_mutex_unlock(&run->sb_lock);
	locked = false;
	r = engine_attach_unit(run->e, slot, u);
	if (r < 0) {
		snprintf(msg, len, "cannot attach '%s' to role %u: %s", arg, slot, strerror(-r));
		goto out;	/* REBUILDING at 0 in the superblocks: a restart retries */
	}
	r = start_rebuild(run, slot, 0);
	if (r < 0) {
		snprintf(msg, len, "'%s' attached to role %u, but the rebuild did not start: %s",
			 arg, slot, strerror(-r));
		goto out;
	}
	rt_log(RT_LOG_INFO, "'%s': unit '%s' added to role %u (events %llu)%s%s", run->name,
	       as->dev[idx], slot, (unsigned long long)as->sb.events,
	       why ? "; rebuilt in full: " : "", why ? why : "");
	snprintf(msg, len, "'%s' added to role %u; rebuilding in the background%s%s%s; see "
		 "'raidtool status %s' or 'raidtool wait %s'", arg, slot,
		 why ? " (in full: " : "", why ? why : "", why ? ")" : "", run->id, run->id);
	goto out;
undo:
	as->units[idx] = NULL;
	as->dev[idx][0] = '\0';
	if (idx == as->n_units - 1 && idx >= as->n_roles)
		as->n_units--;
	unit_close(u);
out:
	if (locked)
		pthread_mutex_unlock(&run->sb_lock);
	return r;
}

struct spare_swap {
	uint32_t role, spare_slot;
	bool had_unit;			/* the failed unit stays listed, faulty, in the spare's slot */
};

static int swap_spare(struct rt_sb *sb, void *arg)
{
	const struct spare_swap *w = arg;
	struct rt_slot failed = sb->slots[w->role];

	sb->slots[w->role] = sb->slots[w->spare_slot];
	sb->slots[w->role].state = RT_SLOT_REBUILDING;
	sb->slots[w->role].recovery_offset = 0;
	if (w->had_unit) {
		sb->slots[w->spare_slot] = failed;
		sb->slots[w->spare_slot].state = RT_SLOT_FAULTY;
		sb->slots[w->spare_slot].recovery_offset = 0;
	} else {
		memset(&sb->slots[w->spare_slot], 0, sizeof(sb->slots[0]));
	}
	return 0;
}

/*
 * md's hot spare (main thread, woken by on_failure): a spare present when a
 * role fails takes the role at once and is rebuilt onto. The failed unit
 * moves to the spare's slot, faulty, until it is removed.
 */
static void take_spare(struct run *run)
{
	struct rt_assembly *as = run->as;
	struct spare_swap w = { 0 };
	struct rt_walk_progress wp;
	struct rt_unit *old = NULL, *u;
	struct rt_unit_desc own;
	uint64_t events;
	char dev[256], olddev[256];
	int i = -1, r = -ENODEV;

	pthread_mutex_lock(&run->admin_lock);
	pthread_mutex_lock(&run->sb_lock);
	for (uint32_t role = 0; role < as->n_roles && r == -ENODEV; role++) {
		if (as->sb.slots[role].state != RT_SLOT_FAULTY &&
		    as->sb.slots[role].state != RT_SLOT_MISSING)
			continue;
		w.role = role;
		r = 0;
	}
	i = find_spare(as);
	pthread_mutex_unlock(&run->sb_lock);
	if (r < 0 || i < 0)
		goto out;
	/* The handler that woke us runs before the engine publishes the failure. */
	for (int k = 0; k < 500 && engine_role_state(run->e, w.role) != RT_ROLE_FAULTY; k++)
		sleep_ms(10);
	engine_walk_progress(run->e, &wp);
	if (wp.running && wp.kind == RT_WALK_RECOVER) {
		rt_log(RT_LOG_WARN, "'%s': role %u failed; the spare waits for the rebuild of "
		       "role %u ('raidtool add' it then)", run->name, w.role, wp.role);
		goto out;
	}
	if (wp.running) {
		rt_log(RT_LOG_WARN, "'%s': %s cancelled to rebuild role %u onto the spare",
		       run->name, walk_name(wp.kind), w.role);
		engine_walk_cancel(run->e);
	}
	if (as->units[w.role]) {
		r = detach_failed_unit(run, w.role, &old);
		if (r < 0) {
			rt_log(RT_LOG_ERROR, "'%s': cannot take the failed unit of role %u out for "
			       "the spare: %s", run->name, w.role, strerror(-r));
			goto out;
		}
	}
	pthread_mutex_lock(&run->sb_lock);
	w.spare_slot = as->own[i].slot;
	w.had_unit = old != NULL;
	snprintf(olddev, sizeof(olddev), "%s", as->dev[w.role]);
	snprintf(dev, sizeof(dev), "%s", as->dev[i]);
	u = as->units[i];
	own = as->own[i];
	own.slot = w.role;
	/* The failed unit's own superblock is never written again: it keeps its slot here. */
	as->own[i].slot = w.spare_slot;
	as->units[i] = old;
	snprintf(as->dev[i], sizeof(as->dev[i]), "%s", old ? olddev : "");
	as->units[w.role] = u;
	as->own[w.role] = own;
	events = as->disk_events[i];
	as->disk_events[i] = as->disk_events[w.role];
	as->disk_events[w.role] = events;
	snprintf(as->dev[w.role], sizeof(as->dev[w.role]), "%s", dev);
	r = run_sb_update(run, swap_spare, &w);
	pthread_mutex_unlock(&run->sb_lock);
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "'%s': cannot give role %u to the spare '%s': %s",
		       run->name, w.role, dev, strerror(-r));
		goto out;
	}
	r = engine_attach_unit(run->e, w.role, u);
	if (r == 0)
		r = start_rebuild(run, w.role, 0);
	if (r < 0)
		rt_log(RT_LOG_ERROR, "'%s': the spare '%s' took role %u, but its rebuild did not "
		       "start: %s", run->name, dev, w.role, strerror(-r));
	else
		rt_log(RT_LOG_WARN, "'%s': spare '%s' takes the place of failed role %u; "
		       "rebuilding onto it (events %llu)", run->name, dev, w.role,
		       (unsigned long long)as->sb.events);
out:
	pthread_mutex_unlock(&run->admin_lock);
}

/*
 * "BYTES_PER_SEC": the speed limit of background walks (0: none), for the
 * running walk from now on and for every later walk of this run.
 */
static int cmd_speed(struct run *run, const char *arg, char *msg, size_t len)
{
	unsigned long long v;
	char extra, what[32];
	int r;

	if (sscanf(arg, "%llu %c", &v, &extra) != 1) {
		snprintf(msg, len, "'%s': give the speed limit in bytes per second", arg);
		return -EINVAL;
	}
	__atomic_store_n(&run->walk_speed_max, (uint64_t)v, __ATOMIC_RELAXED);
	r = engine_walk_set_speed(run->e, v);
	if (r < 0) {
		snprintf(msg, len, "cannot change the speed limit: %s", strerror(-r));
		return r;
	}
	if (v)
		snprintf(what, sizeof(what), "%llu MiB/s", v >> 20);
	else
		snprintf(what, sizeof(what), "none");
	rt_log(RT_LOG_INFO, "'%s': background walks' speed limit: %s", run->name, what);
	snprintf(msg, len, "speed limit of background walks: %s", what);
	return 0;
}

/* "COUNT WINDOW_MS": how often a unit I/O error is tried again before the unit fails. */
static int cmd_tune(struct run *run, const char *arg, char *msg, size_t len)
{
	unsigned count, window;
	char extra;
	int r;

	if (sscanf(arg, "%u %u %c", &count, &window, &extra) != 2) {
		snprintf(msg, len, "'%s': give the number of tries and the window in ms", arg);
		return -EINVAL;
	}
	r = engine_set_retries(run->e, count, window);
	if (r < 0) {
		snprintf(msg, len, "%u tries within %u ms: out of range (at most 100 tries and "
			 "600000 ms)", count, window);
		return r;
	}
	rt_log(RT_LOG_INFO, "'%s': a unit I/O error is now tried again up to %u times within "
	       "%u ms before the unit is failed", run->name, count, window);
	snprintf(msg, len, "a unit I/O error is tried again up to %u times within %u ms before "
		 "the unit is failed", count, window);
	return 0;
}

static int on_command(void *ctx, const char *cmd, const char *arg, char *msg, size_t len)
{
	struct run *run = ctx;
	int r;

	if (!strcmp(cmd, "tune"))
		return cmd_tune(run, arg, msg, len);
	if (!strcmp(cmd, "speed"))
		return cmd_speed(run, arg, msg, len);
	if (run->readonly && strcmp(cmd, "cancel")) {
		snprintf(msg, len, "'%s' runs read-only (activate --readonly): %s would write to "
			 "its units; stop it and activate it without --readonly", run->name, cmd);
		return -EROFS;
	}
	if (strcmp(cmd, "add") && strcmp(cmd, "fail") && strcmp(cmd, "remove"))
		return run_walk_command(run, cmd, arg, msg, len);
	pthread_mutex_lock(&run->admin_lock);
	if (!strcmp(cmd, "add"))
		r = cmd_add(run, arg, msg, len);
	else if (!strcmp(cmd, "fail"))
		r = cmd_fail(run, arg, msg, len);
	else
		r = cmd_remove(run, arg, msg, len);
	pthread_mutex_unlock(&run->admin_lock);
	return r;
}

/*
 * Decide whether we may stop: the device must be neither mounted nor open.
 * When free, it stays opened O_EXCL so nobody mounts it during the teardown.
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
	r = export_busy(run->x, &fd, reason, sizeof(reason));
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

/* ---- setup and teardown ------------------------------------------------- */

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
static int recover_leftovers(const char *name, const uint8_t uuid[RT_UUID_SIZE], char *did,
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
static void remove_run_files(struct run *run, bool keep_log)
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
 * Everything after the engine started, in reverse. Returns the first error
 * with its message in @msg (for a pending `stop`).
 */
static int teardown(struct run *run, char *msg, size_t msglen)
{
	int r = 0, q;

	msg[0] = '\0';
	control_server_stop(run->cs);
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
			rt_log(RT_LOG_WARN, "'%s': the resync %s; the array stays marked dirty and "
			       "resyncs when activated again", run->name, run->resync_pending ?
			       "did not finish" : "owed to some regions did not run");
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
			{ .fd = run->spare_fd, .events = POLLIN },
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
			if (!run->readonly)
				resync_owed(run);
			continue;
		}
		if (pfd[1].revents & POLLIN)
			return;
		if ((pfd[2].revents & POLLIN) && read(run->spare_fd, &n, sizeof(n)) == sizeof(n))
			take_spare(run);
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

/* Scan and pick the array; logs why not. */
static int find_array(const char *id, struct rt_scan **scan, const struct rt_scan_array **a)
{
	int r;

	r = scan_devices(scan);
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "cannot scan block devices: %s", strerror(-r));
		return r;
	}
	return scan_find(*scan, id, a);
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
		if (sb->slots[slot].state == RT_SLOT_SPARE && !held)
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
	struct rt_walk_params p = { .kind = RT_WALK_RESYNC, .done = on_walk_done, .ctx = run };
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
	r = walk_start(run, &p);
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

static bool rebuild_walk_running(struct run *run)
{
	struct rt_walk_progress wp;

	engine_walk_progress(run->e, &wp);
	return wp.running && wp.kind == RT_WALK_RECOVER;
}

/*
 * The walk a start begins: a rebuild interrupted by a stop resumes from its
 * checkpoint; else, after an unclean stop, the resync.
 */
static void start_recovery(struct run *run, bool was_dirty)
{
	struct rt_assembly *as = run->as;
	uint64_t at;
	int r;

	/* Stopped cleanly: what the log holds is a degraded run's history, not a resync's debt. */
	if (!was_dirty)
		engine_dirtylog_unpin_loaded(run->e);
	for (uint32_t role = 0; role < as->n_roles; role++) {
		if (!as->units[role] || as->sb.slots[role].state != RT_SLOT_REBUILDING)
			continue;
		r = engine_attach_unit(run->e, role, as->units[role]);
		if (r < 0) {
			rt_log(RT_LOG_ERROR, "'%s': cannot attach '%s' to role %u for its rebuild: "
			       "%s", run->name, as->dev[role], role, strerror(-r));
			continue;
		}
		at = as->sb.slots[role].recovery_offset;
		if (start_rebuild(run, role, at) < 0)
			continue;
		rt_log(RT_LOG_WARN, "'%s': resuming the rebuild of role %u onto '%s' at %llu "
		       "bytes", run->name, role, as->dev[role], (unsigned long long)at);
		goto rebuilding;
	}
	/* Degraded with a spare at hand: it takes the missing role at once, as in md. */
	if (as->n_missing && find_spare(as) >= 0) {
		take_spare(run);
		if (rebuild_walk_running(run))
			goto rebuilding;
	}
	if (was_dirty)
		start_resync(run);
	return;
rebuilding:
	if (was_dirty) {
		/* One walk at a time: the resync waits for the next start. */
		run->resync_pending = true;
		rt_log(RT_LOG_WARN, "'%s': not stopped cleanly: the resync follows the "
		       "rebuild at the next start", run->name);
	}
}

typedef void (*ready_fn)(struct run *run, void *arg);

/*
 * Run the array in this process. @ready is called once the device is up;
 * returns after a clean (0) or failed shutdown.
 */
static int run_array(const char *id, ready_fn ready, void *ready_arg, struct run *run)
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
		r = recover_leftovers(id, dead, did, sizeof(did));
		if (r == 0) {
			if (did[0])
				rt_log(RT_LOG_WARN, "'%s': an earlier engine (pid %d) died; cleaned "
				       "up: %s", id, (int)probe.pid, did);
			snprintf(run->name, sizeof(run->name), "%s", id);
			memcpy(run->uuid, dead, RT_UUID_SIZE);
			run->lock_fd = fd;
			remove_run_files(run, true);
		} else {
			close(fd);
		}
	}
	r = read_walk_speed_max(run);
	if (r == 0)
		r = read_stripe_wait(run);
	if (r == 0)
		r = read_fuse_transport(run);
	if (r < 0)
		goto out_nolock;
	r = find_array(id, &scan, &a);
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
	r = recover_leftovers(run->name, run->uuid, did, sizeof(did));
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
	run->spare_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (run->stop_fd < 0 || run->spare_fd < 0) {
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
	engine_set_failure_handler(run->e, on_failure, run);
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
	xp.readonly = run->readonly;
	r = export_start(run->e, &xp, &run->x);
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
				    .command = on_command };
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
	r = teardown(run, msg, sizeof(msg));
	if (r == 0)
		rt_log(RT_LOG_INFO, "'%s': stopped; %s", run->name, run->readonly ?
		       "read-only: nothing was written to the units" : "superblocks marked clean");
	remove_run_files(run, r < 0);
	control_server_finish(run->cs, r, msg);
	run->cs = NULL;
	goto done;
out:
	/* A start that failed. Without an engine nothing was written: clean again. */
	if (dirty && !run->e && run->as)
		assemble_set_state(run->as, RT_ARRAY_CLEAN);
	teardown(run, msg, sizeof(msg));
	control_server_finish(run->cs, r, NULL);
	run->cs = NULL;
	remove_run_files(run, false);
	goto done;
out_nolock:
	;
done:
	scan_free(scan);
	if (run->stop_fd >= 0)
		close(run->stop_fd);
	if (run->spare_fd >= 0)
		close(run->spare_fd);
	if (run->sig_fd >= 0)
		close(run->sig_fd);
	if (run->mask_set)
		pthread_sigmask(SIG_SETMASK, &run->old_mask, NULL);
	if (run->locked_memory)
		munlockall();
	return r;
}

static void run_init(struct run *run)
{
	memset(run, 0, sizeof(*run));
	run->lock_fd = run->sig_fd = run->stop_fd = run->spare_fd = run->excl_fd = -1;
	atomic_store(&run->admin_fail, -1);
	pthread_mutex_init(&run->lock, NULL);
	pthread_mutex_init(&run->admin_lock, NULL);
	pthread_mutex_init(&run->sb_lock, NULL);
}

/* ---- foreground --------------------------------------------------------- */

static void fg_ready(struct run *run, void *arg)
{
	const struct rt_activate_opts *o = arg;

	if (o->ready)
		o->ready(run->name, export_link(run->x), export_device(run->x), o->arg);
}

/* ---- background --------------------------------------------------------- */

static void bg_ready(struct run *run, void *arg)
{
	char path[PATH_MAX], line[512];
	int n, fd;

	(void)arg;
	/* From now on messages go to the log file; the parent is about to leave. */
	if (control_path(run->uuid, RT_CONTROL_LOG, path, sizeof(path)) == 0) {
		log_file_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
				   0600);
		if (log_file_fd >= 0)
			rt_set_log(log_to_file, NULL);
	}
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
	n = snprintf(line, sizeof(line), "R0 %s %s %s\n", export_link(run->x), export_device(run->x),
		     run->name);
	if (write(relay_fd, line, (size_t)n) < 0) {
		/* The parent died: keep running; `deactivate` still works. */
	}
	close(relay_fd);
	relay_fd = -1;
	if (log_file_fd < 0)
		rt_set_log(NULL, NULL);
}

static void child_main(const struct rt_activate_opts *o, int wfd)
{
	struct run run;
	char line[32];
	int fd, r, n;

	setsid();
	/* A daemon keeps nothing of its caller's but the pipe (a test harness waits for EOF). */
	if (wfd > 3)
		close_range(3, (unsigned)wfd - 1, 0);
	close_range((unsigned)wfd + 1, ~0u, 0);
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		close(fd);
	}
	relay_fd = wfd;
	/* Pin no file system by our working directory; keep a relative run directory valid. */
	if (control_rundir()[0] != '/') {
		char abs[PATH_MAX];

		if (realpath(control_rundir(), abs))
			setenv("RAIDTOOL_RUNDIR", abs, 1);
		else if (getcwd(abs, sizeof(abs) - 1) &&
			 strlen(abs) + strlen(control_rundir()) + 2 < sizeof(abs)) {
			strcat(abs, "/");
			strcat(abs, control_rundir());
			setenv("RAIDTOOL_RUNDIR", abs, 1);
		}
	}
	if (chdir("/") < 0) {
		/* Harmless: only pins the directory we started in. */
	}
	rt_set_log(log_to_pipe, NULL);
	run_init(&run);
	run.force = o->force;
	run.readonly = o->readonly;
	r = run_array(o->id, bg_ready, NULL, &run);
	if (relay_fd >= 0) {
		/* Never got ready: report the error. */
		n = snprintf(line, sizeof(line), "R%d - -\n", r < 0 ? -r : EIO);
		if (write(relay_fd, line, (size_t)n) < 0) {
			/* Nobody to tell. */
		}
		close(relay_fd);
		relay_fd = -1;
	}
	if (log_file_fd >= 0)
		close(log_file_fd);
	_exit(r < 0 ? 1 : 0);
}

/* The parent: relay the child's messages, then its verdict. */
static int parent_wait(int rfd, const struct rt_activate_opts *o)
{
	char buf[8192], link[PATH_MAX], dev[64], name[RT_NAME_MAX + 1];
	size_t have = 0;
	int result = -EIO;
	bool done = false;

	while (!done) {
		ssize_t n = read(rfd, buf + have, sizeof(buf) - 1 - have);
		char *line, *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		line = buf;
		while (!done && (nl = strchr(line, '\n'))) {
			*nl = '\0';
			if (line[0] == 'L') {
				char *msg = strchr(line, ' ');

				rt_log((int)strtol(line + 1, NULL, 10), "%s", msg ? msg + 1 : "");
			} else if (line[0] == 'R') {
				int e = (int)strtol(line + 1, NULL, 10);

				if (e == 0 && sscanf(line + 1, "%*d %4095s %63s %63s", link, dev,
						     name) == 3) {
					if (o->ready)
						o->ready(name, link, dev, o->arg);
					result = 0;
				} else {
					result = e > 0 ? -e : -EIO;
				}
				done = true;
			}
			line = nl + 1;
		}
		have = strlen(line);
		memmove(buf, line, have + 1);
		if (have >= sizeof(buf) - 1)
			have = 0;	/* an absurd line: drop it */
	}
	if (!done)
		rt_log(RT_LOG_ERROR, "the engine exited before the array was ready");
	return result;
}

int activate_array(const struct rt_activate_opts *o)
{
	struct run run;
	int p[2], r;
	pid_t pid;

	if (!o || !o->id)
		return -EINVAL;
	if (o->foreground) {
		run_init(&run);
		run.force = o->force;
		run.readonly = o->readonly;
		return run_array(o->id, fg_ready, (void *)o, &run);
	}
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(p[0]);
		close(p[1]);
		return r;
	}
	if (pid == 0) {
		close(p[0]);
		child_main(o, p[1]);
		_exit(1);	/* not reached */
	}
	close(p[1]);
	r = parent_wait(p[0], o);
	close(p[0]);
	return r;
}

/* ---- deactivate --------------------------------------------------------- */

/* Alive and not a zombie (a background engine's reaper may take its time). */
static bool pid_alive(pid_t pid)
{
	char path[64], buf[256], *close_paren;
	ssize_t n;
	int fd;

	if (pid <= 0 || (kill(pid, 0) < 0 && errno != EPERM))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno != ENOENT;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	close_paren = strrchr(buf, ')');
	return !(close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z');
}

/* The engine has replied; give its process a moment to leave. */
static void wait_exit(pid_t pid)
{
	for (long waited = 0; pid_alive(pid) && waited < EXIT_WAIT_MS; waited += 20)
		sleep_ms(20);
}

/* After a dead engine's cleanup: can the array be activated again, and how? */
static void verdict_of(const uint8_t uuid[RT_UUID_SIZE], struct rt_deactivate_result *res)
{
	const struct rt_scan_array *a = NULL;
	struct rt_scan *scan = NULL;

	res->verdict = scan_devices(&scan);
	if (res->verdict == 0) {
		a = scan_find_uuid(scan, uuid);
		res->verdict = a ? assemble_verdict(a, res->why, sizeof(res->why)) : -ENOENT;
	}
	if (!a)
		snprintf(res->why, sizeof(res->why), "its units were not found: %s",
			 strerror(-res->verdict));
	scan_free(scan);
}

static int deactivate_stale(const char *name, const uint8_t uuid[RT_UUID_SIZE],
			    struct rt_deactivate_result *res)
{
	struct run run;
	int r;

	run_init(&run);
	snprintf(run.name, sizeof(run.name), "%s", name);
	memcpy(run.uuid, uuid, RT_UUID_SIZE);
	r = control_lock(uuid, &run.lock_fd);
	if (r < 0)
		return r;	/* -EALREADY: an engine just started */
	r = recover_leftovers(name, uuid, res->did, sizeof(res->did));
	if (r < 0) {
		close(run.lock_fd);
		return r;
	}
	res->how = RT_DEACTIVATE_RECOVERED;
	remove_run_files(&run, true);
	verdict_of(uuid, res);
	return 0;
}

/*
 * The name and UUID of array @id (NAME or HASHCODE), from the scan; a name
 * several arrays share is refused (-ENOTUNIQ, logged). When no unit of it
 * is found, the by-name link of an engine (or of what a dead one left).
 */
static int resolve_array(const char *id, char *name, size_t len, uint8_t uuid[RT_UUID_SIZE])
{
	const struct rt_scan_array *a;
	struct rt_scan *scan = NULL;
	int r;

	r = scan_devices(&scan);
	if (r == 0) {
		r = scan_lookup(scan, id, &a);
		if (r == -ENOTUNIQ)
			scan_find(scan, id, &a);	/* it lists the arrays */
	}
	if (r == 0) {
		snprintf(name, len, "%s", a->sb.array.name);
		memcpy(uuid, a->sb.array.uuid, RT_UUID_SIZE);
	}
	scan_free(scan);
	if (r == 0 || r == -ENOTUNIQ)
		return r;
	if (sb_name_check(id) == 0 && control_name_lookup(id, uuid) == 0) {
		snprintf(name, len, "%s", id);
		return 0;
	}
	return -ENOENT;
}

int deactivate_array(const char *id, struct rt_deactivate_result *res)
{
	struct rt_control_probe p;
	char name[RT_NAME_MAX + 1], sock[PATH_MAX];
	uint8_t uuid[RT_UUID_SIZE];
	int r;

	if (!id || !res)
		return -EINVAL;
	memset(res, 0, sizeof(*res));
	if (sb_name_check(id) < 0) {
		rt_log(RT_LOG_ERROR, "'%s': not a valid array name", id);
		return -EINVAL;
	}
	r = resolve_array(id, name, sizeof(name), uuid);
	if (r == -ENOTUNIQ)
		return r;
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "'%s': not active", id);
		return -ENXIO;
	}
	r = control_probe(uuid, &p);
	if (r < 0)
		return r;
	snprintf(res->name, sizeof(res->name), "%s", name);
	res->pid = p.pid;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (p.state == RT_CONTROL_INACTIVE) {
			rt_log(RT_LOG_ERROR, "'%s': not active", id);
			return -ENXIO;
		}
		if (p.state == RT_CONTROL_STALE) {
			r = deactivate_stale(name, uuid, res);
			if (r != -EALREADY)
				return r;
			control_probe(uuid, &p);	/* it came alive meanwhile */
			continue;
		}
		r = control_stop(uuid, name);
		if (r == 0) {
			res->how = RT_DEACTIVATE_STOPPED;
			wait_exit(p.pid);
			return 0;
		}
		if (r == -ENOENT || r == -ECONNREFUSED) {
			/* No socket (yet): starting, or died between probe and connect. */
			control_probe(uuid, &p);
			if (p.state == RT_CONTROL_ACTIVE) {
				rt_log(RT_LOG_ERROR, "'%s': the engine (pid %d) does not answer on its "
				       "control socket; is it still starting?", name, (int)p.pid);
				return -EAGAIN;
			}
			continue;
		}
		if (r == -ETIMEDOUT || r == -EPROTO)
			rt_log(RT_LOG_ERROR, "'%s': the engine (pid %d) did not finish stopping: %s",
			       name, (int)p.pid, strerror(-r));
		/*
		 * A refusal leaves the engine running with its socket; an error
		 * of its teardown comes after it removed the socket: it is
		 * leaving, and is let go before returning, as after a clean stop.
		 */
		if (control_path(uuid, RT_CONTROL_SOCK, sock, sizeof(sock)) == 0 &&
		    access(sock, F_OK) < 0 && errno == ENOENT)
			wait_exit(p.pid);
		return r;
	}
	return r;
}
