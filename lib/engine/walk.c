/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The background walks' batches (lib/rebuild.c drives them): recover a
 * role, scrub (check, repair, resync) stripes, each under the stripe locks
 * of its batch, like any writer.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <raidtool/engine.h>
#include <raidtool/layout.h>
#include <raidtool/log.h>
#include <raidtool/parity.h>
#include <raidtool/rebuild.h>

#include "internal.h"

void engine_geom(const struct rt_engine *e, struct engine_geom *g)
{
	g->level = e->layout.level;
	g->n = e->n;
	g->chunk = e->layout.chunk;
	g->role_bytes = e->ops->redundant ? e->layout.unit_size / e->layout.chunk * e->layout.chunk : 0;
}

struct rt_walk **engine_walk_slot(struct rt_engine *e)
{
	return &e->walk;
}

bool engine_role_rebuilding(struct rt_engine *e, uint32_t role)
{
	return role < e->n && (engine_rebuilding(e) & role_bit(role));
}

/*
 * One batch is as many stripes as one pass of buffers holds (the level
 * says how much that is). A chunk bigger than that is done in column
 * pieces.
 */
static uint64_t engine_walk_room(const struct rt_engine *e, const struct engine_ctx *c, int kind)
{
	uint64_t room = e->ops->walk_room ? e->ops->walk_room(e, c, kind) : c->mem_size / e->n;

	return room & ~((uint64_t)ENGINE_ALIGN_MAX - 1);
}

uint64_t engine_walk_batch(struct rt_engine *e, int kind)
{
	uint64_t k;

	if (kind == RT_WALK_RECOVER)
		k = ENGINE_WALK_SPAN / e->layout.chunk;
	else
		k = engine_walk_room(e, &e->ctx[0], kind) / e->layout.chunk;
	if (k > e->ctx[0].locks_cap - 1)
		k = e->ctx[0].locks_cap - 1;
	return k ? k : 1;
}

/*
 * The recover walk's buffers, allocated when it first needs them (one
 * walk at a time): two halves, each room for what one step reads (raid5
 * n - 1 roles, raid1 one) and writes, ENGINE_WALK_STEP bytes per role, less
 * for many units (at most ENGINE_WALK_MEM in all).
 */
static int engine_walk_mem(struct rt_engine *e)
{
	size_t step = min_u64(ENGINE_WALK_STEP, ENGINE_WALK_MEM / (2u * e->n));
	int ret;

	if (e->walk_mem)
		return 0;
	step &= ~((size_t)ENGINE_ALIGN_MAX - 1);
	ret = posix_memalign((void **)&e->walk_mem, 4096, 2u * e->n * step);
	if (ret) {
		e->walk_mem = NULL;
		return -ret;
	}
	e->walk_step = step;
	return 0;
}

void engine_walk_release_mem(struct rt_engine *e)
{
	free(e->walk_mem);
	e->walk_mem = NULL;
}

/*
 * Rebuild role bytes [off, off + len) in steps of e->walk_step, two steps
 * overlapping: one run writes step i - 1's result and reads step i's
 * sources (different roles, so in any order), then step i is computed. The
 * units see large transfers and always have work queued.
 */
static int recover_range(struct rt_engine *e, struct engine_ctx *c, uint32_t role,
			 uint64_t off, uint64_t len, uint64_t m)
{
	const struct engine_level_ops *ops = e->ops;
	uint64_t done, l, prev = 0, step;
	uint8_t *out = NULL;
	unsigned i;
	int ret;

	if (!(engine_rebuilding(e) & role_bit(role)))
		return -EIO;	/* the unit failed meanwhile */
	if (!ops->can_recover(e, role, m))
		return -EIO;	/* nothing left to rebuild from */
	ret = engine_walk_mem(e);
	if (ret)
		return ret;
	step = e->walk_step;
	for (done = 0, i = 0; !ret; done += l, i++) {
		uint8_t *half = e->walk_mem + (i & 1) * e->n * step;

		l = min_u64(len - done, step);
		if (!l && !prev)
			break;
		if (prev)
			ret = ctx_add_io(e, c, ENGINE_OP_WRITE, role, out, off + done - prev, prev);
		if (!ret && l)
			ret = ops->recover_read(e, c, role, half, step, off + done, l, m);
		if (!ret)
			ret = ctx_run_ios(e, c);
		c->n_ios = 0;
		if (!ret && l && ops->recover_compute)
			ret = ops->recover_compute(e, role, half, step, l);
		out = half;
		prev = l;
	}
	return ret;
}

/*
 * Under the stripe locks no writer is inside these stripes, so what is
 * read from the other roles is a consistent stripe and what lands on the
 * rebuilt role matches it; writers after us write the role too.
 */
int engine_recover_stripes(struct rt_engine *e, struct engine_ctx *c, uint32_t role,
			   uint64_t s0, uint64_t cnt)
{
	uint64_t C = e->layout.chunk, m;
	int ret;

	if (cnt == 0 || cnt > c->locks_cap - 1)
		return -EINVAL;
	stripe_lock_acquire(e, c, s0, s0 + cnt - 1);
	for (;;) {
		m = engine_faulty(e);
		ret = recover_range(e, c, role, s0 * C, cnt * C, m);
		/* A source failed: another may serve (raid1's other mirrors). */
		if (ret != -EIO || engine_faulty(e) == m ||
		    !e->ops->can_recover(e, role, engine_faulty(e)) ||
		    !(engine_rebuilding(e) & role_bit(role)))
			break;
	}
	c->n_ios = 0;
	stripe_lock_release(e, c, s0, s0 + cnt - 1);
	return ret;
}

/* Compare (and repair) role offsets [off, off + len) of whole-locked stripes. */
static int scrub_range(struct rt_engine *e, struct engine_ctx *c, uint64_t off, uint64_t len,
		       uint64_t *last_bad, struct engine_scrub *sc)
{
	uint64_t C = e->layout.chunk, room = engine_walk_room(e, c, RT_WALK_CHECK);
	uint64_t m = engine_faulty(e) | engine_rebuilding(e), done, l, o;
	uint8_t *buf[RT_MAX_UNITS + 1];
	uint32_t r, w, n = e->n, roles[RT_MAX_UNITS], nw = 0;
	int ret = 0;

	if (e->ops->scrub_needs_all && m)
		return -EBUSY;	/* degraded: no redundancy left to compare */
	for (r = 0; r < n; r++)
		if (!(m & role_bit(r)))
			roles[nw++] = r;
	if (nw < 2)
		return 0;
	for (done = 0; done < len && !ret; done += l) {
		l = min_u64(len - done, room);
		for (w = 0; w < nw && !ret; w++) {
			buf[w] = c->mem + w * l;
			ret = ctx_add_io(e, c, ENGINE_OP_READ, roles[w], buf[w], off + done, l);
		}
		buf[nw] = c->mem + nw * l;
		if (!ret)
			ret = ctx_run_ios(e, c);
		/* Column pieces never cross a chunk: parity rotates per stripe. */
		for (o = 0; o < l && !ret;) {
			struct engine_scrub_piece p = {
				.buf = buf, .roles = roles, .nw = nw, .o = o, .pos = off + done + o,
			};

			p.stripe = p.pos / C;
			p.len = min_u64(l - o, C - p.pos % C);
			ret = e->ops->scrub(e, c, &p, sc);
			if (sc->repair)
				sc->kept_roles |= p.kept;
			if (p.bad && *last_bad != p.stripe) {
				*last_bad = p.stripe;
				sc->mismatches++;
				sc->repaired += p.fixed;
				sc->ties += p.tie;
			}
			o += p.len;
		}
		if (!ret)
			ret = ctx_run_ios(e, c);
		c->n_ios = 0;
	}
	return ret;
}

int engine_scrub_stripes(struct rt_engine *e, struct engine_ctx *c, uint64_t s0, uint64_t cnt,
			 struct engine_scrub *sc)
{
	uint64_t C = e->layout.chunk, last_bad = UINT64_MAX;
	int ret;

	if (cnt == 0 || cnt > c->locks_cap - 1)
		return -EINVAL;
	if (!e->ops->scrub)
		return -EOPNOTSUPP;
	stripe_lock_acquire(e, c, s0, s0 + cnt - 1);
	ret = scrub_range(e, c, s0 * C, cnt * C, &last_bad, sc);
	c->n_ios = 0;
	stripe_lock_release(e, c, s0, s0 + cnt - 1);
	return ret;
}

/*
 * Every stripe has been rebuilt and every write since went to the unit:
 * it is a normal role now. The faulty bit goes first (see the write path).
 */
int engine_recover_complete(struct rt_engine *e, uint32_t role)
{
	int ret = -EIO;

	pthread_mutex_lock(&e->fail_mu);
	if (atomic_load(&e->rebuild) & role_bit(role)) {
		atomic_fetch_and(&e->faulty, ~role_bit(role));
		atomic_fetch_and(&e->rebuild, ~role_bit(role));
		ret = 0;
	}
	pthread_mutex_unlock(&e->fail_mu);
	return ret;
}
