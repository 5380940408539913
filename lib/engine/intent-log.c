/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The dirty-region (write-intent) log's glue: the bitmap is lib/dirtylog.c;
 * here it is marked before writes, written to the units, swept when idle.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <raidtool/dirtylog.h>
#include <raidtool/engine.h>
#include <raidtool/layout.h>
#include <raidtool/log.h>
#include <raidtool/rebuild.h>
#include <raidtool/unit.h>

#include "internal.h"

/*
 * Region i is bytes [i * R, (i + 1) * R) of every role's data area. A
 * writer holding its stripe locks tests the live bits of the regions its
 * stripes touch (lock-free, the common case). When one is not live it
 * takes dl->mu, sets the bit in the disk image, writes the log to every
 * unit that takes writes and syncs it, and only then makes the bit live:
 * nobody writes data into a region whose bit is not on stable storage.
 *
 * The sweeper thread, every idle/5 ms: regions written during none of the
 * last 5 sweeps lose their live bit (under dl->mu); then, without dl->mu,
 * it takes and drops each of their stripe locks, which waits out every
 * writer that saw the bit live; it syncs the units' data, and under dl->mu
 * clears the regions no writer made live again and writes the log. Lock
 * order: stripe locks, then dl->mu; the sweeper never holds both.
 *
 * While a role is faulty, missing or being rebuilt nothing is cleared, not
 * even by a clean stop: the log then holds every region written since the
 * role's unit left, which is what a re-added unit needs rebuilt (md's
 * bitmap). events_cleared is the superblock events value when bits were
 * last cleared (the run path tells the engine every new value); a unit
 * whose own events are not older left after that, so the log covers it.
 */
struct engine_dl {
	struct rt_dirtylog *log;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	uint8_t *buf;			/* encoded log, 4 KiB aligned */
	size_t len;
	uint64_t log_offset, seq;
	_Atomic uint64_t events;	/* the superblocks', as the run path last told */
	/*
	 * Written under mu, read without it: a re-add reads it holding the run's
	 * sb_lock, and a log write failing under mu calls the failure handler,
	 * which takes sb_lock (lock order sb_lock -> mu would deadlock).
	 */
	_Atomic uint64_t events_cleared;
	uint8_t *loaded;		/* union of the units' logs at start */
	/*
	 * Owed a resync while a walk ran: that walk may have done the region
	 * before the write failed, so its end does not unpin the region.
	 */
	uint8_t *reowed;
	uint64_t n_loaded;
	bool loaded_valid;
	/*
	 * A log write failed: the image is ahead of some unit's copy. Read
	 * by writers without the lock: a marked region is not "covered"
	 * while it is set, so the next write writes the log again.
	 */
	atomic_bool unsynced;
	pthread_t thread;
	bool thread_ok, stop;
	unsigned idle_ms;
};

#define ENGINE_DL_SWEEPS 5u


/* Sync (and before that write the log to) every unit that takes writes. */
static int dl_io(struct rt_engine *e, struct engine_ctx *c, bool write_log)
{
	struct engine_dl *dl = e->dl;
	int ret = 0;

	/* Read-only: the log stays as the units hold it (nothing is written to mark). */
	if (e->readonly)
		return 0;

	if (write_log) {
		ret = dirtylog_encode(dl->log, atomic_load(&dl->events), ++dl->seq,
				      atomic_load(&dl->events_cleared), dl->buf, dl->len);
		if (ret)
			return ret;
	}
	for (;;) {
		uint64_t rb, f0, m;
		uint32_t r;

		engine_role_masks(e, &rb, &f0);
		m = f0 & ~rb;

		c->n_ios = 0;
		for (r = 0; r < e->n && write_log && !ret; r++)
			if (!(m & role_bit(r)))
				ret = ctx_add_raw(e, c, ENGINE_OP_WRITE, r, dl->buf, dl->log_offset,
						  (uint32_t)dl->len);
		if (!ret)
			ret = ctx_run_ios(e, c);
		for (r = 0; r < e->n && !ret; r++)
			if (!(m & role_bit(r)))
				ret = ctx_add_raw(e, c, ENGINE_OP_FSYNC, r, NULL, 0, 0);
		if (!ret)
			ret = ctx_run_ios(e, c);
		c->n_ios = 0;
		/* A unit that failed is faulty now; the others must still get it. */
		if (ret != -EIO || (engine_faulty(e) == f0 && engine_rebuilding(e) == rb) ||
		    !engine_tolerates(e, engine_faulty(e)))
			break;
		ret = 0;
	}
	return ret;
}

static void dl_regions(const struct rt_engine *e, uint64_t first, uint64_t last,
		       uint64_t *r0, uint64_t *r1)
{
	uint64_t R = dirtylog_region_size(e->dl->log), C = e->layout.chunk;

	*r0 = first * C / R;
	*r1 = ((last + 1) * C - 1) / R;
}

/*
 * Does role range [off, off + len) touch a region still owed a resync (one
 * whose parity or copies may disagree)? A region stops being so only once
 * the resync walk has finished it (under its stripe locks), so a writer
 * holding its stripe's lock that sees it synced sees a consistent stripe.
 */
bool engine_dl_resync_owed(const struct rt_engine *e, uint64_t off, uint64_t len)
{
	uint64_t R;

	if (!e->dl || !len)
		return false;
	R = dirtylog_region_size(e->dl->log);
	return dirtylog_pinned_any(e->dl->log, off / R, (off + len - 1) / R);
}

/*
 * Without waiting: are the regions of stripes [first, last] marked on the
 * units already (or is there no log)? A writer holding the stripes' locks
 * that sees them so may write (the sweeper waits for those locks before it
 * clears a region, and it clears none touched since).
 */
bool engine_dl_covered(struct rt_engine *e, uint64_t first, uint64_t last)
{
	uint64_t r0, r1;

	if (!e->dl)
		return true;
	if (atomic_load_explicit(&e->dl->unsynced, memory_order_relaxed))
		return false;
	dl_regions(e, first, last, &r0, &r1);
	return dirtylog_covered(e->dl->log, r0, r1);
}

int engine_dl_mark(struct rt_engine *e, struct engine_ctx *c, uint64_t first,
			  uint64_t last)
{
	struct engine_dl *dl = e->dl;
	uint64_t r0, r1;
	int ret = 0;

	dl_regions(e, first, last, &r0, &r1);
	if (!atomic_load_explicit(&dl->unsynced, memory_order_relaxed) &&
	    dirtylog_covered(dl->log, r0, r1))
		return 0;
	pthread_mutex_lock(&dl->mu);
	if (dirtylog_mark(dl->log, r0, r1) || dl->unsynced) {
		ret = dl_io(e, c, true);
		dl->unsynced = ret != 0;
	}
	if (!ret)
		dirtylog_publish(dl->log, r0, r1);
	pthread_mutex_unlock(&dl->mu);
	return ret;
}

/*
 * Stripes [first, last] may be inconsistent (a write reached only some
 * units): their regions stay dirty, pinned, until a resync walk has done
 * them (engine_dirtylog_resynced unpins). Without a log, all is owed.
 */
void engine_owe_resync(struct rt_engine *e, uint64_t first, uint64_t last)
{
	struct engine_dl *dl = e->dl;
	bool walking = e->walk && rebuild_walk_busy(e);
	uint64_t r0, r1, i;

	if (!dl) {
		atomic_fetch_add(&e->owed_all, 1);
		return;
	}
	dl_regions(e, first, last, &r0, &r1);
	pthread_mutex_lock(&dl->mu);
	dirtylog_pin(dl->log, r0, r1);
	for (i = r0; walking && i <= r1 && i < dirtylog_regions(dl->log); i++)
		dl->reowed[i / 8] |= (uint8_t)(1u << (i % 8));
	pthread_mutex_unlock(&dl->mu);
}

static void dl_sweep(struct rt_engine *e)
{
	struct engine_dl *dl = e->dl;
	uint64_t R = dirtylog_region_size(dl->log), C = e->layout.chunk;
	uint64_t n = dirtylog_regions(dl->log), i, s, s_end, k;
	uint64_t stripes = e->layout.unit_size / C;
	struct engine_ctx *c;

	if (engine_faulty(e))
		return;		/* degraded: keep every bit for a re-added unit */
	pthread_mutex_lock(&dl->mu);
	k = dirtylog_sweep_begin(dl->log, ENGINE_DL_SWEEPS);
	pthread_mutex_unlock(&dl->mu);
	if (!k)
		return;
	c = ctx_acquire(e);
	/* Wait out every writer that saw these regions live. */
	for (i = 0; i < n; i++) {
		if (!dirtylog_pending(dl->log, i))
			continue;
		s_end = min_u64(((i + 1) * R + C - 1) / C, stripes);
		for (s = i * R / C; s < s_end; s++) {
			stripe_lock_acquire(e, c, s, s);
			stripe_lock_release(e, c, s, s);
		}
	}
	pthread_mutex_lock(&dl->mu);
	/*
	 * A role lost since the sweep began: writes after that are live or
	 * touched and stay anyway, but keep the rest too, as a start degraded
	 * would (one rule: nothing is cleared while degraded).
	 */
	if (engine_faulty(e)) {
		dirtylog_sweep_abort(dl->log);
	} else if (dl_io(e, c, false) == 0 && dirtylog_sweep_commit(dl->log)) {
		atomic_store(&dl->events_cleared, atomic_load(&dl->events));
		dl->unsynced = dl_io(e, c, true) != 0;
	} else {
		dirtylog_sweep_abort(dl->log);
	}
	pthread_mutex_unlock(&dl->mu);
	ctx_release(e, c);
}

static void *dl_main(void *arg)
{
	struct rt_engine *e = arg;
	struct engine_dl *dl = e->dl;
	struct timespec ts;

	pthread_mutex_lock(&dl->mu);
	while (!dl->stop) {
		unsigned tick = dl->idle_ms / ENGINE_DL_SWEEPS;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += tick / 1000;
		ts.tv_nsec += (long)(tick % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&dl->cond, &dl->mu, &ts);
		if (dl->stop)
			break;
		pthread_mutex_unlock(&dl->mu);
		dl_sweep(e);
		pthread_mutex_lock(&dl->mu);
	}
	pthread_mutex_unlock(&dl->mu);
	return NULL;
}

/*
 * raid1/raid5 with a log area: pick the region size (the superblock's,
 * doubled until the bitmap fits the area), read every active unit's log
 * and take their union as still dirty, write it back to all units, start
 * the sweeper. Runs at the end of engine_create, contexts ready.
 */
int engine_dl_init(struct rt_engine *e, const struct rt_sb *sb)
{
	uint64_t rbytes = e->layout.unit_size, R, n;
	struct engine_dl *dl;
	pthread_condattr_t ca;
	uint8_t *bits = NULL;
	uint64_t cleared = 0;
	bool all_known = true;
	uint32_t r;
	int ret;

	if (!e->ops->redundant ||
	    sb->unit.log_size < RT_DLOG_BLOCK || sb->unit.log_offset % ENGINE_ALIGN_MAX ||
	    rbytes == 0)
		return 0;
	dirtylog_geometry(rbytes, sb->array.region_size, sb->unit.log_size, &R, &n);
	dl = calloc(1, sizeof(*dl));
	if (!dl)
		return -ENOMEM;
	e->dl = dl;
	pthread_mutex_init(&dl->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&dl->cond, &ca);
	pthread_condattr_destroy(&ca);
	dl->log_offset = sb->unit.log_offset;
	atomic_store(&dl->events, sb->events);
	dl->idle_ms = 5000;
	dl->len = dirtylog_encoded_size(n);
	ret = dirtylog_create(n, R, &dl->log);
	if (ret)
		return ret;
	ret = posix_memalign((void **)&dl->buf, 4096, dl->len);
	if (ret) {
		dl->buf = NULL;
		return -ret;
	}
	dl->loaded = calloc(1, (n + 7) / 8);
	dl->reowed = calloc(1, (n + 7) / 8);
	bits = calloc(1, (n + 7) / 8);
	if (!dl->loaded || !dl->reowed || !bits) {
		free(bits);
		return -ENOMEM;
	}
	for (r = 0; r < e->n; r++) {
		struct rt_dlog_header h;
		uint64_t i;

		if (!e->unit[r])
			continue;
		if (unit_pread(e->unit[r], dl->buf, dl->len, dl->log_offset) ||
		    dirtylog_decode(dl->buf, dl->len, &h, bits, (n + 7) / 8) ||
		    h.region_size != R || h.n_regions != n) {
			all_known = false;
			continue;	/* none, damaged, or another geometry */
		}
		dl->loaded_valid = true;
		if (!h.events_cleared)
			all_known = false;
		if (h.events_cleared > cleared)
			cleared = h.events_cleared;
		for (i = 0; i < (n + 7) / 8; i++)
			dl->loaded[i] |= bits[i];
		if (h.seq > dl->seq)
			dl->seq = h.seq;
	}
	free(bits);
	/* A unit without a log (or one that predates the field): complete from now on. */
	atomic_store(&dl->events_cleared, all_known && cleared ? cleared : sb->events);
	dirtylog_load(dl->log, dl->loaded);
	dl->n_loaded = dirtylog_count(dl->log);
	ret = dl_io(e, &e->ctx[0], true);
	if (ret)
		return ret;
	ret = -pthread_create(&dl->thread, NULL, dl_main, e);
	dl->thread_ok = ret == 0;
	return ret;
}

void engine_dl_stop(struct rt_engine *e)
{
	struct engine_dl *dl = e->dl;

	if (!dl || !dl->thread_ok)
		return;
	pthread_mutex_lock(&dl->mu);
	dl->stop = true;
	pthread_cond_signal(&dl->cond);
	pthread_mutex_unlock(&dl->mu);
	pthread_join(dl->thread, NULL);
	dl->thread_ok = false;
}

void engine_dl_free(struct rt_engine *e)
{
	struct engine_dl *dl = e->dl;

	if (!dl)
		return;
	dirtylog_destroy(dl->log);
	free(dl->buf);
	free(dl->loaded);
	free(dl->reowed);
	pthread_mutex_destroy(&dl->mu);
	pthread_cond_destroy(&dl->cond);
	free(dl);
	e->dl = NULL;
}

void engine_dirtylog_resynced(struct rt_engine *e, uint64_t region)
{
	struct engine_dl *dl = e->dl;
	uint8_t bit = (uint8_t)(1u << (region % 8));

	if (!dl || region >= dirtylog_regions(dl->log))
		return;
	pthread_mutex_lock(&dl->mu);
	/* A write failed for want of space meanwhile: the next resync unpins it. */
	if (dl->reowed[region / 8] & bit)
		dl->reowed[region / 8] &= (uint8_t)~bit;
	else
		dirtylog_unpin(dl->log, region);
	pthread_mutex_unlock(&dl->mu);
}

int engine_dirtylog_info(struct rt_engine *e, uint64_t *region_size, uint64_t *n_regions)
{
	if (!e)
		return -EINVAL;
	if (!e->dl)
		return -EOPNOTSUPP;
	if (region_size)
		*region_size = dirtylog_region_size(e->dl->log);
	if (n_regions)
		*n_regions = dirtylog_regions(e->dl->log);
	return 0;
}

/* The checks both bitmap getters make: a log exists, @len holds its bitmap. */
static int dirtylog_bitmap_check(struct rt_engine *e, const uint8_t *bitmap, size_t len)
{
	if (!e)
		return -EINVAL;
	if (!e->dl)
		return -EOPNOTSUPP;
	if (bitmap && len < (dirtylog_regions(e->dl->log) + 7) / 8)
		return -ENOSPC;
	return 0;
}

int engine_dirtylog_load(struct rt_engine *e, uint8_t *bitmap, size_t len, uint64_t *n_dirty)
{
	int r = dirtylog_bitmap_check(e, bitmap, len);

	if (r < 0)
		return r;
	if (bitmap)
		memcpy(bitmap, e->dl->loaded, (dirtylog_regions(e->dl->log) + 7) / 8);
	if (n_dirty)
		*n_dirty = e->dl->n_loaded;
	return e->dl->loaded_valid ? 0 : -ENODATA;
}

int engine_dirtylog_unsynced(struct rt_engine *e, uint64_t *left, uint64_t *total)
{
	int r = dirtylog_bitmap_check(e, NULL, 0);

	if (r < 0)
		return r;
	*left = dirtylog_pinned(e->dl->log, NULL);
	*total = dirtylog_regions(e->dl->log);
	return 0;
}

int engine_dirtylog_dirty(struct rt_engine *e, uint8_t *bitmap, size_t len, uint64_t *n_dirty)
{
	int r = dirtylog_bitmap_check(e, bitmap, len);

	if (r < 0)
		return r;
	pthread_mutex_lock(&e->dl->mu);
	if (bitmap)
		dirtylog_bitmap(e->dl->log, bitmap);
	if (n_dirty)
		*n_dirty = dirtylog_count(e->dl->log);
	pthread_mutex_unlock(&e->dl->mu);
	return 0;
}

/*
 * A unit that joins (a rebuild's, under the drain, @c held): the log's
 * image as it stands goes to it too. Its own copy is whatever it held when
 * it left, and a region already marked is not written again: were the
 * other units to go next, the start would read that stale copy and find
 * nothing written while they were away. A hot replace's replacement gets
 * it the same way (the role's writes go to both). A failure: the next
 * write writes the log again (unsynced).
 */
void engine_dl_rewrite(struct rt_engine *e, struct engine_ctx *c)
{
	if (!e->dl)
		return;
	pthread_mutex_lock(&e->dl->mu);
	e->dl->unsynced = dl_io(e, c, true) != 0;
	pthread_mutex_unlock(&e->dl->mu);
}

/*
 * Taking every context waits for the writes in flight and keeps new ones
 * out, so clearing the whole image cannot race a writer.
 */
int engine_dirtylog_clean(struct rt_engine *e)
{
	int ret;

	if (!e)
		return -EINVAL;
	if (!e->dl)
		return 0;
	engine_drain(e);
	pthread_mutex_lock(&e->dl->mu);
	ret = dl_io(e, &e->ctx[0], false);
	if (!ret) {
		/* Degraded: the regions stay for the unit that left (see engine_dl). */
		if (!engine_faulty(e)) {
			dirtylog_clear_all(e->dl->log);
			atomic_store(&e->dl->events_cleared, atomic_load(&e->dl->events));
		}
		ret = dl_io(e, &e->ctx[0], true);
	}
	e->dl->unsynced = ret != 0;
	pthread_mutex_unlock(&e->dl->mu);
	engine_undrain(e);
	return ret;
}

void engine_dirtylog_set_events(struct rt_engine *e, uint64_t events)
{
	if (e && e->dl)
		atomic_store(&e->dl->events, events);
}

int engine_dirtylog_cleared(struct rt_engine *e, uint64_t *events_cleared)
{
	if (!e || !events_cleared)
		return -EINVAL;
	if (!e->dl)
		return -EOPNOTSUPP;
	*events_cleared = atomic_load(&e->dl->events_cleared);
	return 0;
}

void engine_dirtylog_unpin_loaded(struct rt_engine *e)
{
	if (!e || !e->dl)
		return;
	pthread_mutex_lock(&e->dl->mu);
	dirtylog_unpin_all(e->dl->log);
	pthread_mutex_unlock(&e->dl->mu);
}

void engine_dirtylog_set_idle(struct rt_engine *e, unsigned ms)
{
	if (!e || !e->dl)
		return;
	pthread_mutex_lock(&e->dl->mu);
	e->dl->idle_ms = ms < 5 * ENGINE_DL_SWEEPS ? 5 * ENGINE_DL_SWEEPS : ms;
	pthread_cond_signal(&e->dl->cond);
	pthread_mutex_unlock(&e->dl->mu);
}

int engine_resync_owed(struct rt_engine *e, uint8_t *bitmap, size_t len, uint64_t *n_owed,
		       uint64_t *all)
{
	if (!e || !n_owed || !all)
		return -EINVAL;
	*all = atomic_load(&e->owed_all);
	*n_owed = 0;
	if (!e->dl)
		return 0;
	if (bitmap && len < (dirtylog_regions(e->dl->log) + 7) / 8)
		return -ENOSPC;
	pthread_mutex_lock(&e->dl->mu);
	*n_owed = dirtylog_pinned(e->dl->log, bitmap);
	pthread_mutex_unlock(&e->dl->mu);
	return 0;
}

void engine_resync_owed_done(struct rt_engine *e, uint64_t all)
{
	uint64_t want = all;

	if (e && all)
		atomic_compare_exchange_strong(&e->owed_all, &want, 0);
}
