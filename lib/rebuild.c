/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Background walks over a running array (include/raidtool/rebuild.h): one
 * thread per walk, one walk at a time per engine. The thread goes through
 * the role data area in runs of the engine's walk pipeline
 * (lib/engine/walk.c): a few pieces in flight, each holding its own
 * stripes' locks, so user I/O goes on beside the walk and never sees a
 * half-done stripe. Between pieces the run reports here (walk_run_stop):
 * progress, checkpoints, cancel, the rate limit.
 *
 * recover: stripes from p->start (rounded down to a stripe) to the end are
 *   rebuilt onto the attached unit. Writes reach that unit at every offset
 *   from engine_attach_unit on (raid5 plans them as if the role were
 *   faulty, so it is never read, but its data and parity are written), so
 *   whatever was valid on it stays valid: resuming from a checkpoint taken
 *   by an earlier run is correct even when writes came between attach and
 *   the walk. Reads never use the unit until the walk has completed.
 *   At the end or on cancel, and on the way (see checkpoint_due), the
 *   units are flushed and then @checkpoint gets the offset reached.
 *   With a bitmap of regions (a unit re-added while the dirty-region log
 *   covers everything written since it left) only those regions are
 *   rebuilt: the others hold the same data on the unit as on the array.
 *   The checkpoint still means "valid below": past a region boundary the
 *   skipped regions count as done, so a resumed full rebuild is correct.
 * check/repair: every stripe; resync: the stripes of the regions set in
 *   the bitmap (region i = bytes [i * region_size, (i + 1) * region_size)
 *   of every role's data area, the dirty log's unit), repairing as repair.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <raidtool/engine.h>
#include <raidtool/rebuild.h>

#include "engine/internal.h"

/*
 * A rebuild records how far it got at least every RT_WALK_CHECKPOINT_SEC
 * seconds and every 1/16 of the role, never more often than every
 * RT_WALK_CHECKPOINT bytes (md's rule is much the same). A checkpoint
 * writes every superblock: one per 16 MiB took a third of a 1 GiB unit's
 * rebuild on disk files.
 */
#define RT_WALK_CHECKPOINT (16ull << 20)
#define RT_WALK_CHECKPOINT_SEC 1.0

struct rt_walk {
	pthread_mutex_t mu;		/* guards prog, thread state */
	pthread_t thread;
	bool joinable;
	/* A start joins the ended walk's thread without @mu: cancel waits for it. */
	bool joining;
	pthread_t joining_thread;
	pthread_cond_t join_cond;
	atomic_bool cancel;
	struct rt_walk_params p;
	uint8_t *regions;		/* resync: our copy of the bitmap */
	uint64_t n_regions;
	struct rt_walk_progress prog;
	struct engine_scrub sc;		/* a scrub's settings and findings (walk thread) */
	struct timespec t0;
	uint64_t done0;			/* where this run started */
	/* The throttle's baseline: restarted when the limit changes. */
	struct timespec tl0;
	uint64_t limit_done0;
	uint64_t done_now;
	_Atomic uint64_t max_bytes_per_sec;
	struct timespec ck_time;	/* the last checkpoint (walk thread only) */
	/*
	 * A recover's checkpointer: flushes and records @ck_pos while the walk
	 * goes on (under mu; one checkpoint at a time, a later one waits).
	 */
	struct rt_engine *ck_e;
	pthread_t ck_thread;
	bool ck_running;		/* the thread is there (walk thread only) */
	pthread_cond_t ck_cond;
	bool ck_pending, ck_quit;
	uint64_t ck_pos;
	int ck_err;			/* the first checkpoint that failed */
};

static pthread_mutex_t walk_alloc_mu = PTHREAD_MUTEX_INITIALIZER;
/* On a walk's thread: its done callback started another walk, which let it go. */
static __thread bool walk_let_go;

static double now_sec(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/*
 * Keep the walk at or below p.max_bytes_per_sec: wait until the time the
 * bytes done so far may take has passed, in short naps so that a cancel
 * is not held up.
 */
static void walk_throttle(struct rt_walk *w, uint64_t done_abs)
{
	struct timespec nap, t0;
	uint64_t limit, done0;
	double owed, el;

	for (;;) {
		pthread_mutex_lock(&w->mu);
		limit = atomic_load(&w->max_bytes_per_sec);
		t0 = w->tl0;
		done0 = w->limit_done0;
		pthread_mutex_unlock(&w->mu);
		if (!limit || atomic_load(&w->cancel))
			return;
		owed = (double)(done_abs - done0) / (double)limit;
		el = now_sec(&t0);
		if (el >= owed)
			return;
		/* Naps of at most 50 ms: a cancel or a new limit is not held up. */
		nap.tv_sec = 0;
		nap.tv_nsec = (long)((owed - el < 0.05 ? owed - el : 0.05) * 1e9);
		nanosleep(&nap, NULL);
	}
}

/*
 * How many stripes of @chunk bytes the next batch takes: @batch, but about
 * a tenth of a second's worth under a limit, so that the walk's pace is
 * even (and user I/O is not held up by a large batch at a low rate).
 */
static uint64_t walk_batch_limited(struct rt_walk *w, uint64_t batch, uint64_t chunk)
{
	uint64_t limit = atomic_load(&w->max_bytes_per_sec), k;

	if (!limit)
		return batch;
	k = limit / 10 / chunk;
	return k < 1 ? 1 : k < batch ? k : batch;
}

int engine_walk_set_speed(struct rt_engine *e, uint64_t max_bytes_per_sec)
{
	struct rt_walk *w;

	if (!e)
		return -EINVAL;
	w = *engine_walk_slot(e);
	if (!w)
		return 0;	/* no walk yet: the next one is started with its own */
	pthread_mutex_lock(&w->mu);
	atomic_store(&w->max_bytes_per_sec, max_bytes_per_sec);
	clock_gettime(CLOCK_MONOTONIC, &w->tl0);
	w->limit_done0 = w->done_now;
	w->p.max_bytes_per_sec = max_bytes_per_sec;
	pthread_mutex_unlock(&w->mu);
	return 0;
}

/* Progress: @done_abs bytes, @regions regions done. */
static void walk_note(struct rt_walk *w, uint64_t done_abs, uint64_t regions)
{
	double el;

	pthread_mutex_lock(&w->mu);
	w->prog.done = done_abs;
	w->done_now = done_abs;
	w->prog.regions = regions;
	w->prog.mismatches = w->sc.mismatches;
	w->prog.repaired = w->sc.repaired;
	w->prog.ties = w->sc.ties;
	w->prog.kept_roles = w->sc.kept_roles;
	el = now_sec(&w->t0);
	if (el > 0.001)
		w->prog.bytes_per_sec = (uint64_t)((double)(done_abs - w->done0) / el);
	pthread_mutex_unlock(&w->mu);
}

static void walk_advance(struct rt_walk *w, uint64_t done_abs, uint64_t regions)
{
	walk_note(w, done_abs, regions);
	walk_throttle(w, done_abs);
}

/* The data below @pos must be on stable storage before the offset is recorded. */
static int walk_checkpoint(struct rt_engine *e, struct rt_walk *w, uint64_t pos)
{
	int ret = engine_flush(e);

	if (ret)
		return ret;
	/*
	 * A replacement that missed a write (or its flush) is not valid below
	 * @pos: the engine flushes on without it, so ask.
	 */
	if (w->p.kind == RT_WALK_REPLACE && engine_replace_failed(e))
		return -EIO;
	if (w->p.checkpoint)
		w->p.checkpoint(w->p.role, pos, w->p.ctx);
	return 0;
}

static void *ckpt_main(void *arg)
{
	struct rt_walk *w = arg;
	uint64_t pos;
	int r;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->ck_pending && !w->ck_quit)
			pthread_cond_wait(&w->ck_cond, &w->mu);
		if (!w->ck_pending)
			break;
		pos = w->ck_pos;
		pthread_mutex_unlock(&w->mu);
		r = walk_checkpoint(w->ck_e, w, pos);
		pthread_mutex_lock(&w->mu);
		w->ck_pending = false;
		if (r && !w->ck_err)
			w->ck_err = r;
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/*
 * A recover's checkpoints are taken by a thread of their own, so that the
 * walk does not stop for the flush and the superblock writes (on disk files
 * they cost as much as tens of MiB rebuilt). Without the thread the walk
 * takes them itself.
 */
static void ckpt_start(struct rt_engine *e, struct rt_walk *w)
{
	w->ck_e = e;
	w->ck_pending = w->ck_quit = false;
	w->ck_err = 0;
	w->ck_running = pthread_create(&w->ck_thread, NULL, ckpt_main, w) == 0;
}

/* The checkpoint asked for last is taken; then the thread ends. Its first error. */
static int ckpt_stop(struct rt_walk *w)
{
	int ret;

	if (!w->ck_running)
		return 0;
	pthread_mutex_lock(&w->mu);
	w->ck_quit = true;
	pthread_cond_signal(&w->ck_cond);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->ck_thread, NULL);
	w->ck_running = false;
	pthread_mutex_lock(&w->mu);
	ret = w->ck_err;
	pthread_mutex_unlock(&w->mu);
	return ret;
}

/* Hand the checkpoint at @pos to the thread, unless it is still busy with one. */
static bool ckpt_request(struct rt_walk *w, uint64_t pos)
{
	bool taken;

	pthread_mutex_lock(&w->mu);
	taken = !w->ck_pending;
	if (taken) {
		w->ck_pos = pos;
		w->ck_pending = true;
		pthread_cond_signal(&w->ck_cond);
	}
	pthread_mutex_unlock(&w->mu);
	if (taken)
		clock_gettime(CLOCK_MONOTONIC, &w->ck_time);
	return taken;
}

static int ckpt_error(struct rt_walk *w)
{
	int ret;

	pthread_mutex_lock(&w->mu);
	ret = w->ck_err;
	pthread_mutex_unlock(&w->mu);
	return ret;
}

/* Is a checkpoint owed at @pos, the last one having been at @last_ck? */
static bool checkpoint_due(struct rt_walk *w, const struct engine_geom *g, uint64_t pos,
			   uint64_t last_ck)
{
	uint64_t since = pos - last_ck;

	if (pos >= g->role_bytes || since < RT_WALK_CHECKPOINT)
		return false;
	return since >= g->role_bytes / 16 || now_sec(&w->ck_time) >= RT_WALK_CHECKPOINT_SEC;
}

static bool region_set(const uint8_t *bits, uint64_t i)
{
	return bits[i / 8] & (1u << (i % 8));
}

/* What the engine's walk run reports to, between its pieces. */
struct walk_run {
	struct rt_walk *w;
	const struct engine_geom *g;
	uint64_t pos0, done0, regions;
	uint64_t *last_ck;
	bool limited;			/* the run is a rate-limited batch */
};

static bool walk_checkpoints(const struct rt_walk *w)
{
	return w->p.kind == RT_WALK_RECOVER || w->p.kind == RT_WALK_REPLACE;
}

/*
 * Show the progress; a recover's or a copy's checkpoint owed goes to the
 * checkpointer (without one, stop the run to take it); stop the run for a
 * cancel, a failed checkpoint, or a rate limit set meanwhile (the walk
 * then goes on in limited batches).
 */
static bool walk_run_stop(void *arg, uint64_t pos)
{
	struct walk_run *rr = arg;
	struct rt_walk *w = rr->w;

	walk_note(w, rr->done0 + (pos - rr->pos0), rr->regions);
	if (walk_checkpoints(w) && checkpoint_due(w, rr->g, pos, *rr->last_ck)) {
		if (!w->ck_running)
			return true;
		if (ckpt_request(w, pos))
			*rr->last_ck = pos;
	}
	return atomic_load(&w->cancel) || ckpt_error(w) ||
	       (!rr->limited && atomic_load(&w->max_bytes_per_sec));
}

/*
 * Walk role bytes [*pos, hi) (chunk aligned); *pos advances with the
 * stripes done, *done counts the bytes walked (the progress shown).
 * Without a rate limit one engine run goes until a checkpoint is owed; under
 * one, runs of a tenth of a second's worth, throttled in between.
 */
static int walk_span(struct rt_engine *e, struct rt_walk *w, const struct engine_geom *g,
		     uint64_t *pos, uint64_t hi, uint64_t *last_ck, uint64_t *done,
		     uint64_t regions)
{
	struct engine_walk_job job = { .kind = w->p.kind, .role = w->p.role, .sc = &w->sc };
	uint64_t cnt, k;
	int ret;

	while (*pos < hi) {
		struct walk_run rr = {
			.w = w, .g = g, .pos0 = *pos, .done0 = *done, .last_ck = last_ck,
			.regions = regions,
		};

		if (atomic_load(&w->cancel))
			return -ECANCELED;
		cnt = (hi - *pos) / g->chunk;
		rr.limited = atomic_load(&w->max_bytes_per_sec) != 0;
		if (rr.limited)
			cnt = walk_batch_limited(w, cnt, g->chunk);
		ret = engine_walk_run(e, &job, *pos / g->chunk, cnt, walk_run_stop, &rr, &k);
		*pos += k * g->chunk;
		*done += k * g->chunk;
		walk_advance(w, *done, regions);
		if (!ret)
			ret = ckpt_error(w);
		if (ret)
			return ret;
		/* Without a checkpointer, the run stopped for the checkpoint: take it here. */
		if (!walk_checkpoints(w) || w->ck_running ||
		    !checkpoint_due(w, g, *pos, *last_ck))
			continue;
		ret = walk_checkpoint(e, w, *pos);
		if (ret)
			return ret;
		clock_gettime(CLOCK_MONOTONIC, &w->ck_time);
		*last_ck = *pos;
	}
	return 0;
}

static int walk_recover(struct rt_engine *e, struct rt_walk *w, const struct engine_geom *g)
{
	uint64_t pos = w->p.start / g->chunk * g->chunk, last_ck = pos, done = 0, R, i, n = 0;
	int ret = 0, r;

	ckpt_start(e, w);
	if (!w->regions) {
		/* A full rebuild shows the offset reached: a resumed one starts there. */
		pthread_mutex_lock(&w->mu);
		w->done0 = w->limit_done0 = w->done_now = done = pos;
		pthread_mutex_unlock(&w->mu);
		walk_advance(w, pos, 0);
		ret = walk_span(e, w, g, &pos, g->role_bytes, &last_ck, &done, 0);
	} else {
		R = w->p.region_size;
		for (i = pos / R; i < w->n_regions && !ret; i++) {
			uint64_t hi = (i + 1) * R < g->role_bytes ? (i + 1) * R : g->role_bytes;

			if (region_set(w->regions, i)) {
				if (i * R > pos)
					pos = i * R;
				ret = walk_span(e, w, g, &pos, hi, &last_ck, &done, n);
				if (!ret)
					walk_advance(w, done, ++n);
			}
			/* The regions the log holds clean are valid on the unit already. */
			if (!ret)
				pos = hi;
		}
		if (!ret)
			pos = g->role_bytes;
	}
	r = ckpt_stop(w);
	if (r && !ret)
		ret = r;
	/* Record what was reached, also when stopping early (resume from there). */
	if (ret == 0 || ret == -ECANCELED) {
		r = walk_checkpoint(e, w, pos);
		if (r && !ret)
			ret = r;
	}
	/* A replace ends in the @done callback (engine_replace_finish), with the superblocks. */
	if (!ret && w->p.kind == RT_WALK_RECOVER)
		ret = engine_recover_complete(e, w->p.role);
	return ret;
}

/* Check or repair every stripe. */
static int walk_scrub(struct rt_engine *e, struct rt_walk *w, const struct engine_geom *g)
{
	uint64_t pos = 0, last_ck = 0, done = 0;

	return walk_span(e, w, g, &pos, g->role_bytes, &last_ck, &done, 0);
}

/* The stripes of the regions set (all without a bitmap), repairing. */
static int walk_resync(struct rt_engine *e, struct rt_walk *w, const struct engine_geom *g)
{
	uint64_t R = w->p.region_size, i, done = 0, n_done = 0, last_ck = 0;
	int ret = 0;

	for (i = 0; i < w->n_regions && !ret; i++) {
		uint64_t pos, hi;

		if (w->regions && !region_set(w->regions, i))
			continue;
		pos = i * R;
		hi = pos + R < g->role_bytes ? pos + R : g->role_bytes;
		ret = walk_span(e, w, g, &pos, hi, &last_ck, &done, n_done);
		if (!ret) {
			engine_dirtylog_resynced(e, i);
			walk_advance(w, done, ++n_done);
		}
	}
	return ret;
}

static void *walk_main(void *arg)
{
	struct rt_engine *e = arg;
	struct rt_walk *w = *engine_walk_slot(e);
	struct rt_walk_params p;
	struct engine_geom g;
	uint32_t role;
	int ret;

	engine_geom(e, &g);
	switch (w->p.kind) {
	case RT_WALK_RECOVER:
	case RT_WALK_REPLACE:
		ret = walk_recover(e, w, &g);
		break;
	case RT_WALK_RESYNC:
		ret = walk_resync(e, w, &g);
		break;
	default:
		ret = walk_scrub(e, w, &g);
		break;
	}
	engine_walk_release_mem(e);
	/* Taken with the end: the next walk may start (and set w->p) before @done runs. */
	pthread_mutex_lock(&w->mu);
	w->prog.running = false;
	w->prog.ending = w->p.done != NULL;
	w->prog.result = ret;
	p = w->p;
	role = w->prog.role;
	pthread_mutex_unlock(&w->mu);
	if (!p.done)
		return NULL;
	walk_let_go = false;
	p.done(p.kind, role, ret, p.ctx);
	/*
	 * A walk started from @done itself let this thread go (walk_reap): @w
	 * is the new walk's then, and may be freed once that ends.
	 */
	if (!walk_let_go)
		engine_walk_outcome_recorded(e);
	return NULL;
}

void engine_walk_outcome_recorded(struct rt_engine *e)
{
	struct rt_walk *w = *engine_walk_slot(e);

	pthread_mutex_lock(&w->mu);
	/* A walk started meanwhile by another thread (past a cancel's join) is not ending. */
	if (pthread_equal(w->thread, pthread_self()))
		w->prog.ending = false;
	pthread_mutex_unlock(&w->mu);
}

/* Join a finished walk's thread; from its own done callback, let it go. */
static void walk_reap(struct rt_walk *w)
{
	if (!w->joinable)
		return;
	if (pthread_equal(w->thread, pthread_self())) {
		pthread_detach(w->thread);
		walk_let_go = true;
	} else
		pthread_join(w->thread, NULL);
	w->joinable = false;
}

static struct rt_walk *walk_get(struct rt_engine *e)
{
	struct rt_walk **slot = engine_walk_slot(e);

	pthread_mutex_lock(&walk_alloc_mu);
	if (!*slot) {
		struct rt_walk *w = calloc(1, sizeof(*w));

		if (w) {
			pthread_mutex_init(&w->mu, NULL);
			pthread_cond_init(&w->ck_cond, NULL);
			pthread_cond_init(&w->join_cond, NULL);
			*slot = w;
		}
	}
	pthread_mutex_unlock(&walk_alloc_mu);
	return *slot;
}

static uint64_t popcount_bits(const uint8_t *bits, uint64_t n)
{
	uint64_t i, k = 0;

	for (i = 0; i < n; i++)
		k += region_set(bits, i);
	return k;
}

/* Bytes of the regions set in @bits (all when NULL) at or past @from. */
static uint64_t region_bytes(const uint8_t *bits, uint64_t n, uint64_t R, uint64_t role_bytes,
			     uint64_t from)
{
	uint64_t i, lo, hi, k = 0;

	for (i = 0; i < n; i++) {
		if (bits && !region_set(bits, i))
			continue;
		lo = i * R > from ? i * R : from;
		hi = (i + 1) * R < role_bytes ? (i + 1) * R : role_bytes;
		if (hi > lo)
			k += hi - lo;
	}
	return k;
}

int engine_walk_start(struct rt_engine *e, const struct rt_walk_params *p)
{
	struct engine_geom g;
	struct rt_walk *w;
	uint64_t n_regions = 1, R;
	uint8_t *copy = NULL;
	int ret = 0;

	if (!e || !p)
		return -EINVAL;
	engine_geom(e, &g);
	if (g.level != 1 && g.level != 5)
		return -EOPNOTSUPP;	/* linear/raid0: no redundancy to walk */
	switch (p->kind) {
	case RT_WALK_RECOVER:
		if (p->role >= g.n || !engine_role_rebuilding(e, p->role))
			return -EINVAL;
		break;
	case RT_WALK_REPLACE:
		if (p->role >= g.n || engine_replace_role(e) != (int)p->role)
			return -EINVAL;
		break;
	case RT_WALK_RESYNC:
	case RT_WALK_CHECK:
	case RT_WALK_REPAIR:
		break;
	default:
		return -EINVAL;
	}
	/* A preferred copy: a raid1 repair's, of a working mirror. */
	if (p->prefer_set && (p->kind != RT_WALK_REPAIR || g.level != 1 || p->prefer >= g.n ||
			      engine_role_state(e, p->prefer) != RT_ROLE_ACTIVE ||
			      engine_role_rebuilding(e, p->prefer)))
		return -EINVAL;
	if (p->kind == RT_WALK_RESYNC ||
	    ((p->kind == RT_WALK_RECOVER || p->kind == RT_WALK_REPLACE) && p->regions)) {
		R = p->regions ? p->region_size : g.role_bytes;
		/* Regions of whole chunks: a stripe is never split between two. */
		if (R == 0 || (p->regions && R % g.chunk))
			return -EINVAL;
		n_regions = (g.role_bytes + R - 1) / R;
		if (p->regions) {
			copy = malloc((n_regions + 7) / 8);
			if (!copy)
				return -ENOMEM;
			memcpy(copy, p->regions, (n_regions + 7) / 8);
		}
	}
	w = walk_get(e);
	if (!w) {
		free(copy);
		return -ENOMEM;
	}
	pthread_mutex_lock(&w->mu);
	for (;;) {
		pthread_t t = w->thread;

		if (w->prog.running) {
			pthread_mutex_unlock(&w->mu);
			free(copy);
			return -EBUSY;
		}
		/*
		 * Another thread (a cancel) joins the ended walk's thread: wait
		 * for it, as for our own join; not from that thread's done callback.
		 */
		if (w->joining && !pthread_equal(w->joining_thread, pthread_self())) {
			pthread_cond_wait(&w->join_cond, &w->mu);
			continue;
		}
		if (!w->joinable || pthread_equal(t, pthread_self()))
			break;
		/*
		 * The ended walk's thread may still be in its done callback,
		 * which takes the run's locks; a status holding those waits for
		 * w->mu: joined without it, then looked at again.
		 */
		w->joinable = false;
		w->joining = true;
		w->joining_thread = t;
		pthread_mutex_unlock(&w->mu);
		pthread_join(t, NULL);
		pthread_mutex_lock(&w->mu);
		w->joining = false;
		pthread_cond_broadcast(&w->join_cond);
	}
	walk_reap(w);	/* from the ended walk's own done callback: let it go */
	free(w->regions);
	w->regions = copy;
	w->n_regions = n_regions;
	w->p = *p;
	/*
	 * A checkpoint past the role's share was saved by an engine that laid
	 * the array out on a bigger unit's size (before sb_role_sizes): the
	 * whole share is done.
	 */
	w->p.start = min_u64(p->start, g.role_bytes);
	w->p.regions = NULL;
	if (p->kind == RT_WALK_RESYNC || copy)
		w->p.region_size = p->regions ? p->region_size : g.role_bytes;
	atomic_store(&w->cancel, false);
	memset(&w->prog, 0, sizeof(w->prog));
	/* A resync only has to make the copies agree: any of them holds what was written or was there. */
	w->sc = (struct engine_scrub){
		.repair = p->kind != RT_WALK_CHECK,
		.settle_ties = p->kind == RT_WALK_RESYNC,
		.prefer_set = p->prefer_set,
		.prefer = p->prefer,
	};
	w->prog.kind = p->kind;
	w->prog.running = true;
	w->prog.role = p->kind == RT_WALK_RECOVER || p->kind == RT_WALK_REPLACE ? p->role : 0;
	w->prog.total = g.role_bytes;
	if (p->kind == RT_WALK_RESYNC || copy) {
		w->prog.regions_total = copy ? popcount_bits(copy, n_regions) : 1;
		w->prog.total = region_bytes(copy, n_regions, w->p.region_size, g.role_bytes,
					     p->kind != RT_WALK_RESYNC ?
						     w->p.start / g.chunk * g.chunk : 0);
	}
	w->done0 = 0;
	clock_gettime(CLOCK_MONOTONIC, &w->t0);
	w->tl0 = w->ck_time = w->t0;
	w->limit_done0 = 0;
	w->done_now = 0;
	atomic_store(&w->max_bytes_per_sec, p->max_bytes_per_sec);
	ret = -pthread_create(&w->thread, NULL, walk_main, e);
	if (ret) {
		w->prog.running = false;
		w->prog.result = ret;
	} else {
		w->joinable = true;
	}
	pthread_mutex_unlock(&w->mu);
	return ret;
}

void engine_walk_progress(struct rt_engine *e, struct rt_walk_progress *p)
{
	struct rt_walk *w;

	if (!p)
		return;
	memset(p, 0, sizeof(*p));
	if (!e)
		return;
	w = *engine_walk_slot(e);
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	*p = w->prog;
	p->max_bytes_per_sec = atomic_load(&w->max_bytes_per_sec);
	pthread_mutex_unlock(&w->mu);
}

bool rebuild_walk_busy(struct rt_engine *e)
{
	struct rt_walk *w = *engine_walk_slot(e);
	bool busy;

	if (!w)
		return false;
	pthread_mutex_lock(&w->mu);
	busy = w->prog.running;
	pthread_mutex_unlock(&w->mu);
	return busy;
}

int engine_walk_cancel(struct rt_engine *e)
{
	struct rt_walk *w;
	bool running, ending;

	if (!e)
		return -EINVAL;
	w = *engine_walk_slot(e);
	if (!w)
		return -ESRCH;
	/*
	 * Under @mu and only while it runs: a walk started once this one ended
	 * (its start clears the flag under @mu) is not cancelled by this call.
	 */
	pthread_mutex_lock(&w->mu);
	running = w->prog.running;
	ending = w->prog.ending;
	if (running)
		atomic_store(&w->cancel, true);
	pthread_mutex_unlock(&w->mu);
	/*
	 * The thread runs @done before it ends: joining waits for it, and so
	 * does waiting for a start that is joining it.
	 */
	pthread_mutex_lock(&w->mu);
	if (w->joinable && !pthread_equal(w->thread, pthread_self())) {
		pthread_t t = w->thread;

		/* Marked as a start marks its join: a start meanwhile waits for this one. */
		w->joinable = false;
		w->joining = true;
		w->joining_thread = t;
		pthread_mutex_unlock(&w->mu);
		pthread_join(t, NULL);
		pthread_mutex_lock(&w->mu);
		w->joining = false;
		pthread_cond_broadcast(&w->join_cond);
	}
	/* Not from that thread's own done callback: the join waits for it. */
	while (w->joining && !pthread_equal(w->joining_thread, pthread_self()))
		pthread_cond_wait(&w->join_cond, &w->mu);
	pthread_mutex_unlock(&w->mu);
	return running ? 0 : ending ? -EALREADY : -ESRCH;
}

void rebuild_release(struct rt_engine *e)
{
	struct rt_walk *w = *engine_walk_slot(e);

	if (!w)
		return;
	(void)engine_walk_cancel(e);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->ck_cond);
	pthread_cond_destroy(&w->join_cond);
	free(w->regions);
	free(w);
	*engine_walk_slot(e) = NULL;
}
