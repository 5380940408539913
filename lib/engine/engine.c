/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The request path of a running array: creation, settings, state and
 * statistics, units attached and detached. The files of this directory
 * are listed in internal.h.
 *
 * Requests run on request contexts taken from a fixed pool. A context owns
 * an io_uring ring, an aligned data buffer for one piece of a request, a
 * scratch buffer for raid5 parity and old data, and its own statistics. A
 * request is cut into pieces of at most ENGINE_PIECE bytes; each piece is
 * widened to the units' logical block size, mapped by layout into per-unit
 * I/Os that are all submitted at once and all reaped before going on.
 *
 * Memory is fixed at engine_create and does not depend on the array's size:
 *
 *   bytes ~= (ENGINE_CONTEXTS + 1) * (D + S + R + B) + ENGINE_LOCK_BUCKETS * 192 B
 *     D = ENGINE_PIECE + 2 * 4 KiB       aligned data buffer (1 MiB + 8 KiB)
 *     S = D for raid5, else 0            parity and old-data scratch
 *     R ~= 25 KiB                        io_uring ring: 256 SQEs, 512 CQEs
 *     B ~= 3 KiB + 200 B * (D / chunk + 8) + 40 B * n_units   bookkeeping
 *   Event-driven writes that lock (engine_write_map) hold their stripe
 *   locks in ENGINE_AREQS sets of D / stripe + 2 entries (16 B each): at
 *   most 264 KiB, with 4 KiB raid1 chunks; raid5 adds ENGINE_AREQ_SCRATCH
 *   (64 KiB) of old data and parity to each set: 4 MiB.
 *   Gathering whole stripes from several writers adds, raid5 only, the
 *   parity of writes holding stripes on rings: ENGINE_RING_HOLDS * D
 *   (12 MiB, struct raid5_hold);
 *   engine_discard's zeros add ENGINE_PIECE (1 MiB) once per engine; a
 *   walk borrows ENGINE_WALK_DEPTH pieces of buffers while it runs (a
 *   recover 4 * n * ENGINE_WALK_STEP, a scrub 4 * (n + 1) * 512 KiB; at
 *   most ENGINE_WALK_MEM, 32 MiB: walk.c).
 *   (the one context more is kept for the redos of failed rounds).
 *   With ENGINE_CONTEXTS = 16 and ENGINE_PIECE = 1 MiB: about 18 MiB for
 *   linear/raid0/raid1 and 52 MiB for raid5 with 64 KiB chunks (B adds at
 *   most about 0.8 MiB more with 4 KiB chunks). The data and scratch
 *   buffers are registered with io_uring (pinned) when the kernel allows.
 *
 * An aligned request into an aligned caller buffer does I/O straight from
 * or to the caller's memory; anything else is copied exactly once through
 * the context's data buffer.
 */
#include <errno.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <raidtool/dirtylog.h>
#include <raidtool/engine.h>
#include <raidtool/layout.h>
#include <raidtool/log.h>
#include <raidtool/rebuild.h>
#include <raidtool/unit.h>

#include "internal.h"

/* The units' logical block size: the unit of O_DIRECT alignment. */
int engine_unit_align(int fd, uint32_t *align)
{
	int ssz = 0;

	if (ioctl(fd, BLKSSZGET, &ssz) < 0 || ssz <= 0)
		ssz = ENGINE_ALIGN_MAX;		/* not a block device: be safe */
	if ((unsigned)ssz > ENGINE_ALIGN_MAX || (ssz & (ssz - 1)))
		return -EINVAL;
	if ((uint32_t)ssz > *align)
		*align = (uint32_t)ssz;
	return 0;
}

/* The level's table; NULL for a level the engine does not run. */
static const struct engine_level_ops *engine_level_ops_of(int32_t level)
{
	switch (level) {
	case RT_LEVEL_LINEAR:
	case RT_LEVEL_0:
		return &engine_striped_ops;
	case RT_LEVEL_1:
		return &engine_raid1_ops;
	case RT_LEVEL_5:
		return &engine_raid5_ops;
	default:
		return NULL;
	}
}

uint64_t engine_nospace(struct rt_engine *e)
{
	return e ? atomic_load(&e->nospace) : 0;
}

int engine_set_gather_window(struct rt_engine *e, unsigned us)
{
	if (!e || us > ENGINE_GATHER_US_MAX)
		return -EINVAL;
	atomic_store(&e->gather_us, us);
	return 0;
}

void engine_add_callers(struct rt_engine *e, int n, bool rings)
{
	if (!e)
		return;
	atomic_fetch_add(&e->callers, n);
	if (rings)
		atomic_fetch_add(&e->ring_exports, n < 0 ? -1 : 1);
}

int engine_set_retries(struct rt_engine *e, unsigned count, unsigned window_ms)
{
	if (!e || count > ENGINE_ERR_TRIES_MAX || window_ms > ENGINE_RETRY_WINDOW_MAX_MS)
		return -EINVAL;
	atomic_store(&e->retry_count, count);
	atomic_store(&e->retry_window_ms, window_ms);
	return 0;
}

/*
 * Whether @u can take @role's bytes (a rebuild's or a replace's target):
 * a redundant level, room for the role, the array's alignment.
 */
int engine_unit_fits_role(const struct rt_engine *e, uint32_t role, const struct rt_unit *u)
{
	uint32_t align = e ? e->align : 0;
	int ret;

	if (!e || !u || role >= e->n)
		return -EINVAL;
	if (!e->ops->can_recover)
		return -EOPNOTSUPP;	/* linear, raid0: nothing to rebuild from */
	if (unit_size(u) < e->data_offset + e->layout.role_size[role])
		return -ENOSPC;
	ret = engine_unit_align(unit_fd(u), &align);
	if (ret)
		return ret;
	return align == e->align ? 0 : -EINVAL;	/* requests are aligned for the others */
}

int engine_attach_unit(struct rt_engine *e, uint32_t role, struct rt_unit *u)
{
	int ret = engine_unit_fits_role(e, role, u);

	if (ret)
		return ret;
	pthread_mutex_lock(&e->admin_mu);
	if (!(engine_faulty(e) & role_bit(role)) || (engine_rebuilding(e) & role_bit(role))) {
		ret = -EEXIST;	/* working or already being rebuilt */
		goto out;
	}
	if (e->unit[role]) {
		ret = -EBUSY;	/* the failed unit is still in: detach it first */
		goto out;
	}
	if (!e->ops->can_recover(e, role, engine_faulty(e))) {
		ret = -ENODEV;	/* a second role is gone too */
		goto out;
	}
	/* Nothing in flight may still use the old descriptor of the role. */
	engine_drain(e);
	e->fd[role] = unit_fd(u);
	atomic_fetch_add(&e->unit_gen[role], 1);
	e->unit[role] = u;
	atomic_fetch_or(&e->rebuild, role_bit(role));
	engine_dl_rewrite(e, &e->ctx[0]);
	engine_undrain(e);
	ret = 0;
out:
	pthread_mutex_unlock(&e->admin_mu);
	return ret;
}

int engine_detach_unit(struct rt_engine *e, uint32_t role, struct rt_unit **u)
{
	int ret = 0;

	if (!e || !u || role >= e->n)
		return -EINVAL;
	*u = NULL;
	pthread_mutex_lock(&e->admin_mu);
	if (!(engine_faulty(e) & role_bit(role))) {
		ret = -EBUSY;	/* an active role: fail it first */
		goto out;
	}
	if (!e->unit[role]) {
		ret = -ENODEV;
		goto out;
	}
	if (atomic_load(&e->replace_role) == role) {
		ret = -EBUSY;	/* being replaced: the replace ends first */
		goto out;
	}
	if ((engine_rebuilding(e) & role_bit(role)) && e->walk && rebuild_walk_busy(e)) {
		ret = -EBUSY;	/* cancel the recover walk first */
		goto out;
	}
	engine_drain(e);
	pthread_mutex_lock(&e->fail_mu);
	atomic_fetch_and(&e->rebuild, ~role_bit(role));
	pthread_mutex_unlock(&e->fail_mu);
	*u = e->unit[role];
	e->unit[role] = NULL;
	e->fd[role] = -1;
	atomic_fetch_add(&e->unit_gen[role], 1);
	engine_undrain(e);
out:
	pthread_mutex_unlock(&e->admin_mu);
	return ret;
}

int engine_check_range(const struct rt_engine *e, size_t len, uint64_t off)
{
	if (off > e->size || len > e->size - off)
		return -EINVAL;
	return 0;
}

void engine_set_fault_hooks(struct rt_engine *e, const struct engine_fault_hooks *h)
{
	if (e)
		e->hooks = h ? *h : (struct engine_fault_hooks){ 0 };
}

/* A handler and its argument, set under fail_mu, where they are called. */
static void set_handler(struct rt_engine *e, engine_failure_fn *slot, void **slot_ctx,
			engine_failure_fn fn, void *ctx)
{
	pthread_mutex_lock(&e->fail_mu);
	*slot = fn;
	*slot_ctx = ctx;
	pthread_mutex_unlock(&e->fail_mu);
}

void engine_set_failure_handler(struct rt_engine *e, engine_failure_fn fn, void *ctx)
{
	if (e)
		set_handler(e, &e->on_fail, &e->on_fail_ctx, fn, ctx);
}

void engine_set_replica_failure_handler(struct rt_engine *e, engine_failure_fn fn, void *ctx)
{
	if (e)
		set_handler(e, &e->on_replica_fail, &e->on_replica_fail_ctx, fn, ctx);
}

int engine_fail_role(struct rt_engine *e, uint32_t role)
{
	if (!e || role >= e->n)
		return -EINVAL;
	return engine_mark_faulty(e, role, false);
}

int engine_fail_role_spared(struct rt_engine *e, uint32_t role)
{
	if (!e || role >= e->n)
		return -EINVAL;
	return engine_mark_faulty(e, role, true);
}

int engine_role_state(struct rt_engine *e, uint32_t role)
{
	if (!e || role >= e->n)
		return -EINVAL;
	return engine_faulty(e) & role_bit(role) ? RT_ROLE_FAULTY : RT_ROLE_ACTIVE;
}

int engine_state(struct rt_engine *e)
{
	uint64_t m;

	if (!e)
		return -EINVAL;
	m = engine_faulty(e);
	if (!m)
		return RT_ENGINE_OK;
	return engine_tolerates(e, m) ? RT_ENGINE_DEGRADED : RT_ENGINE_FAILED;
}

uint64_t engine_size(const struct rt_engine *e)
{
	return e ? e->size : 0;
}

void engine_get_stats(struct rt_engine *e, struct rt_engine_stats *st)
{
	unsigned i, r;

	if (!st)
		return;
	memset(st, 0, sizeof(*st));
	if (!e)
		return;
	for (i = 0; i <= e->n_ctx + 1; i++) {
		/* every context's (the redos' one too), and then the event-driven reads' */
		struct engine_ctx_stats *cs = i <= e->n_ctx ? &e->ctx[i].stats : &e->aread_stats;

#define SUM(dst, src) ((dst) += atomic_load_explicit(&(src), memory_order_relaxed))
		SUM(st->reads, cs->reads);
		SUM(st->writes, cs->writes);
		SUM(st->flushes, cs->flushes);
		SUM(st->read_bytes, cs->read_bytes);
		SUM(st->write_bytes, cs->write_bytes);
		SUM(st->errors, cs->errors);
		SUM(st->stripe_full, cs->stripe_full);
		SUM(st->stripe_merged, cs->stripe_merged);
		SUM(st->stripe_rmw, cs->stripe_rmw);
		SUM(st->stripe_rcw, cs->stripe_rcw);
		SUM(st->discards, cs->discards);
		SUM(st->discard_bytes, cs->discard_bytes);
		for (r = 0; r < e->n; r++) {
			SUM(st->unit[r].reads, cs->unit[r].reads);
			SUM(st->unit[r].writes, cs->unit[r].writes);
			SUM(st->unit[r].read_bytes, cs->unit[r].read_bytes);
			SUM(st->unit[r].write_bytes, cs->unit[r].write_bytes);
			SUM(st->unit[r].errors, cs->unit[r].errors);
			SUM(st->unit[r].retries, cs->unit[r].retries);
		}
#undef SUM
	}
	st->faulty_mask = engine_faulty(e);
	st->nospace_mask = atomic_load(&e->nospace);
	st->retry_count = atomic_load(&e->retry_count);
	st->retry_window_ms = atomic_load(&e->retry_window_ms);
	st->gather_us = atomic_load(&e->gather_us);
	st->walk_loop_pieces = atomic_load(&e->walk_loop_pieces);
	st->walk_own_pieces = atomic_load(&e->walk_own_pieces);
	st->state = engine_state(e);
}

static int create_engine(const struct rt_sb *sb, struct rt_unit *const *units,
			 unsigned n_units, bool readonly, struct rt_engine **out)
{
	uint64_t role_size[RT_MAX_UNITS] = { 0 };
	struct rt_engine *e = NULL;
	uint64_t nbytes;
	uint32_t n, r;
	unsigned i;
	int ret;

	if (!sb || !units || !out)
		return -EINVAL;
	*out = NULL;
	n = sb->array.n_devices;
	if (n == 0 || n > RT_MAX_UNITS || n_units < n)
		return -EINVAL;

	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->readonly = readonly;
	pthread_mutex_init(&e->pool_mu, NULL);
	pthread_cond_init(&e->pool_cond, NULL);
	pthread_mutex_init(&e->fail_mu, NULL);
	pthread_mutex_init(&e->admin_mu, NULL);
	pthread_mutex_init(&e->areq_mu, NULL);
	pthread_mutex_init(&e->host_mu, NULL);
	pthread_mutex_init(&e->walk_mu, NULL);
	pthread_cond_init(&e->walk_cond, NULL);

	sb_role_sizes(sb, role_size);
	ret = layout_init(&e->layout, sb->array.level, n, sb->array.chunk_size, role_size);
	if (ret)
		goto fail;
	e->ops = engine_level_ops_of(e->layout.level);
	if (!e->ops) {
		ret = -EINVAL;
		goto fail;
	}
	e->n = n;
	e->data_roles = layout_data_roles(&e->layout);
	e->lock_unit = (uint64_t)e->layout.chunk * e->data_roles;
	e->data_offset = sb->unit.data_offset;
	e->align = 512;
	atomic_store(&e->retry_count, ENGINE_RETRY_COUNT_DEFAULT);
	atomic_store(&e->retry_window_ms, ENGINE_RETRY_WINDOW_DEFAULT_MS);
	atomic_store(&e->gather_us, ENGINE_GATHER_US_DEFAULT);
	atomic_store(&e->replace_role, LAYOUT_NO_ROLE);
	e->replace_fd = -1;

	for (r = 0; r < n; r++) {
		e->fd[r] = -1;
		if (!units[r] || sb->slots[r].state != RT_SLOT_ACTIVE) {
			rt_log(RT_LOG_DEBUG, "engine: role %u is not active", r);
			atomic_fetch_or(&e->faulty, role_bit(r));
			continue;
		}
		/* The unit's own data area too: beyond it lies its second superblock. */
		if (unit_size(units[r]) < e->data_offset + e->layout.role_size[r] ||
		    sb->slots[r].data_size < e->layout.role_size[r]) {
			rt_log(RT_LOG_DEBUG, "engine: '%s' is smaller than its role's data area",
			       unit_path(units[r]));
			ret = -ENOSPC;
			goto fail;
		}
		e->fd[r] = unit_fd(units[r]);
		e->unit[r] = units[r];
		ret = engine_unit_align(e->fd[r], &e->align);
		if (ret)
			goto fail;
	}
	if (!engine_tolerates(e, atomic_load(&e->faulty))) {
		rt_log(RT_LOG_DEBUG, "engine: too many roles missing for the level");
		ret = -ENODEV;
		goto fail;
	}
	if (e->data_offset % e->align || e->layout.chunk % e->align) {
		ret = -EINVAL;
		goto fail;
	}
	e->lock_all = sb->array.blocksize < e->align;

	if (__builtin_mul_overflow(sb->array.nblocks, (uint64_t)sb->array.blocksize, &nbytes))
		nbytes = UINT64_MAX;
	e->size = min_u64(nbytes, e->layout.size);

	ret = stripe_locks_init(e);
	if (!ret)
		ret = engine_aio_init(e);
	if (ret)
		goto fail;

	ret = posix_memalign((void **)&e->zeros, 4096, ENGINE_PIECE);
	if (ret) {
		e->zeros = NULL;
		ret = -ret;
		goto fail;
	}
	memset(e->zeros, 0, ENGINE_PIECE);

	/* The shared ones, then the one kept for redos (engine_aio_redo). */
	e->ctx = calloc(ENGINE_CONTEXTS + 1, sizeof(*e->ctx));
	if (!e->ctx) {
		ret = -ENOMEM;
		goto fail;
	}
	e->n_ctx = ENGINE_CONTEXTS;
	for (i = 0; i <= e->n_ctx; i++) {
		ret = ctx_init(e, &e->ctx[i], i);
		if (ret)
			goto fail;
	}
	ret = engine_dl_init(e, sb);
	if (ret)
		goto fail;
	*out = e;
	return 0;
fail:
	engine_destroy(e);
	return ret;
}

int engine_create(const struct rt_sb *sb, struct rt_unit *const *units,
		  unsigned n_units, struct rt_engine **out)
{
	return create_engine(sb, units, n_units, false, out);
}

int engine_create_readonly(const struct rt_sb *sb, struct rt_unit *const *units,
			   unsigned n_units, struct rt_engine **out)
{
	return create_engine(sb, units, n_units, true, out);
}

void engine_destroy(struct rt_engine *e)
{
	unsigned i;

	if (!e)
		return;
	rebuild_release(e);
	engine_dl_stop(e);
	if (e->ctx) {
		/* Taking every context waits for the requests in flight. */
		for (i = 0; i < e->n_ctx; i++)
			(void)ctx_acquire(e);
		for (i = 0; i <= e->n_ctx; i++)
			ctx_free(&e->ctx[i]);
		free(e->ctx);
	}
	stripe_locks_free(e);
	engine_aio_free(e);
	pthread_mutex_destroy(&e->pool_mu);
	pthread_cond_destroy(&e->pool_cond);
	pthread_mutex_destroy(&e->fail_mu);
	pthread_mutex_destroy(&e->admin_mu);
	pthread_mutex_destroy(&e->areq_mu);
	pthread_mutex_destroy(&e->host_mu);
	pthread_mutex_destroy(&e->walk_mu);
	pthread_cond_destroy(&e->walk_cond);
	engine_dl_free(e);
	free(e->zeros);
	free(e->walk_mem);
	free(e);
}
