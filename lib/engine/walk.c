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
	uint64_t k = engine_walk_room(e, &e->ctx[0], kind) / e->layout.chunk;

	if (k > e->ctx[0].locks_cap - 1)
		k = e->ctx[0].locks_cap - 1;
	return k ? k : 1;
}

/*
 * The recover walk's buffers, allocated when it first needs them (one
 * walk at a time): ENGINE_WALK_DEPTH slots, each room for what one piece
 * reads (raid5 n - 1 roles, raid1 one) and writes, ENGINE_WALK_STEP bytes
 * per role, less for many units (at most ENGINE_WALK_MEM in all).
 */
static int engine_walk_mem(struct rt_engine *e)
{
	size_t step = min_u64(ENGINE_WALK_STEP, ENGINE_WALK_MEM / (ENGINE_WALK_DEPTH * e->n));
	int ret;

	if (e->walk_mem)
		return 0;
	step &= ~((size_t)ENGINE_ALIGN_MAX - 1);
	ret = posix_memalign((void **)&e->walk_mem, 4096, ENGINE_WALK_DEPTH * e->n * step);
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
 * A recover runs as a pipeline of pieces (up to e->walk_step role bytes
 * each, whole stripes when a stripe fits), one slot each: its context (a
 * ring and the stripe locks of the piece), its buffers. A piece takes its
 * stripes' locks, reads its sources, is computed, written, and lets its
 * locks go; meanwhile the next pieces' reads are on the units, so the units
 * always have work queued and the parity is computed while they work. The
 * locks are taken in ascending stripe order, only ever above those held,
 * as every writer does, so no deadlock; a user write to a stripe waits for
 * the one piece that holds it, not for a batch.
 */
struct walk_slot {
	struct engine_ctx *c;
	uint8_t *buf;			/* n pieces of e->walk_step bytes */
	uint64_t off, len;		/* role bytes */
	uint64_t first, last;		/* stripes locked */
	bool writing;			/* reads done and computed, the write queued */
};

struct recover_pipe {
	struct rt_engine *e;
	uint32_t role;
	uint64_t m;			/* the faulty roles the reads are planned with */
	struct walk_slot slot[ENGINE_WALK_DEPTH];
	unsigned depth;			/* slots with a context */
	unsigned head, count;		/* the oldest piece in flight; pieces in flight */
	unsigned n_writing;		/* the oldest n_writing are writing */
	uint64_t done;			/* role bytes below are rebuilt */
	engine_walk_stop_fn stop;	/* asked after each piece retired */
	void *stop_arg;
	bool halt;			/* start no more pieces */
};

static struct walk_slot *pipe_slot(struct recover_pipe *p, unsigned k)
{
	return &p->slot[(p->head + k) % p->depth];
}

/* The piece at @off: whole stripes, or the rest of the stripe when one is bigger than a step. */
static uint64_t pipe_piece_len(const struct recover_pipe *p, uint64_t off, uint64_t end)
{
	const struct rt_engine *e = p->e;
	uint64_t C = e->layout.chunk, step = e->walk_step;
	uint64_t most = min_u64(step / C, p->slot[0].c->locks_cap - 1) * C;

	if (!most)
		most = min_u64(step, C - off % C);
	return min_u64(most, end - off);
}

/* Lock the piece's stripes and put its reads on the units. */
static int pipe_start(struct recover_pipe *p, uint64_t off, uint64_t len)
{
	struct rt_engine *e = p->e;
	struct walk_slot *s = pipe_slot(p, p->count);
	uint64_t C = e->layout.chunk;
	int ret;

	s->off = off;
	s->len = len;
	s->first = off / C;
	s->last = (off + len - 1) / C;
	s->writing = false;
	stripe_lock_acquire(e, s->c, s->first, s->last);
	p->count++;
	ret = e->ops->recover_read(e, s->c, p->role, s->buf, e->walk_step, off, len, p->m);
	if (!ret)
		ret = ctx_start_ios(e, s->c);
	return ret;
}

/* The oldest piece still reading: wait for its reads, compute it, start its write. */
static int pipe_compute(struct recover_pipe *p)
{
	struct rt_engine *e = p->e;
	struct walk_slot *s = pipe_slot(p, p->n_writing);
	int ret = ctx_run_ios(e, s->c);

	if (!ret && e->ops->recover_compute)
		ret = e->ops->recover_compute(e, p->role, s->buf, e->walk_step, s->len);
	if (ret)
		return ret;
	s->writing = true;
	p->n_writing++;
	ret = ctx_add_io(e, s->c, ENGINE_OP_WRITE, p->role, s->buf, s->off, s->len);
	if (!ret)
		ret = ctx_start_ios(e, s->c);
	return ret;
}

/*
 * The oldest piece: written (after @err, or when it failed, only reaped),
 * its locks let go. Returns the first error.
 */
static int pipe_retire(struct recover_pipe *p, int err)
{
	struct rt_engine *e = p->e;
	struct walk_slot *s = pipe_slot(p, 0);
	int ret = err;

	if (!s->writing && !ret)
		ret = pipe_compute(p);
	/* Whatever was queued or submitted is reaped here. */
	if (s->writing || s->c->run_started) {
		int r = ctx_run_ios(e, s->c);

		if (!ret)
			ret = r;
	}
	s->c->n_ios = 0;
	stripe_lock_release(e, s->c, s->first, s->last);
	if (s->writing)
		p->n_writing--;
	p->head = (p->head + 1) % p->depth;
	p->count--;
	if (ret)
		return ret;
	p->done = s->off + s->len;
	/* Only between stripes: the run reports whole stripes done. */
	if (!p->halt && ((p->stop && p->stop(p->stop_arg, p->done)) ||
			 atomic_load(&e->pool_waiters)) &&
	    p->done % e->layout.chunk == 0)
		p->halt = true;
	return 0;
}

/*
 * Rebuild role bytes [p->done, end): pieces start while a slot is free,
 * the oldest reading piece is computed while fewer than two write, else
 * the oldest piece is retired. Stops starting pieces at the first error,
 * when the role is no longer being rebuilt, and (pipe_retire) when @stop
 * says so or a request or a drain waits for a context (the walk gives its
 * contexts back). Everything in flight is retired before returning.
 */
static int pipe_run(struct recover_pipe *p, uint64_t end)
{
	struct rt_engine *e = p->e;
	uint64_t pos = p->done, len;
	int ret = 0;

	for (;;) {
		if (!ret && !p->halt && pos < end && p->count < p->depth) {
			if (!(engine_rebuilding(e) & role_bit(p->role))) {
				ret = -EIO;	/* the unit failed meanwhile */
				continue;
			}
			len = pipe_piece_len(p, pos, end);
			/* A stripe bigger than a step: its pieces one after the other. */
			while (p->count && pipe_slot(p, p->count - 1)->last >= pos / e->layout.chunk)
				ret = pipe_retire(p, ret);
			if (ret || p->halt)
				continue;
			ret = pipe_start(p, pos, len);
			pos += len;
			continue;
		}
		if (!p->count)
			break;
		if (!ret && p->n_writing < p->count && p->n_writing < 2) {
			ret = pipe_compute(p);
			continue;
		}
		ret = pipe_retire(p, ret);
	}
	return ret;
}

/*
 * Under the stripe locks no writer is inside these stripes, so what is
 * read from the other roles is a consistent stripe and what lands on the
 * rebuilt role matches it; writers after us write the role too.
 */
int engine_recover_run(struct rt_engine *e, uint32_t role, uint64_t s0, uint64_t cnt,
		       engine_walk_stop_fn stop, void *arg, uint64_t *s_done)
{
	uint64_t C = e->layout.chunk, m;
	struct recover_pipe p = {
		.e = e, .role = role, .done = s0 * C, .stop = stop, .stop_arg = arg,
	};
	unsigned i;
	int ret;

	*s_done = 0;
	if (cnt == 0)
		return -EINVAL;
	ret = engine_walk_mem(e);
	if (ret)
		return ret;
	/*
	 * The contexts before any lock, as requests take them; only the first
	 * is waited for, so that a drain taking them all cannot deadlock with us.
	 */
	p.slot[0].c = ctx_acquire(e);
	for (p.depth = 1; p.depth < ENGINE_WALK_DEPTH; p.depth++)
		if (!(p.slot[p.depth].c = ctx_try_acquire(e)))
			break;
	for (i = 0; i < p.depth; i++) {
		p.slot[i].buf = e->walk_mem + (size_t)i * e->n * e->walk_step;
		ctx_set_walk_buf(p.slot[i].c, p.slot[i].buf, e->n * e->walk_step);
	}
	for (;;) {
		m = engine_faulty(e);
		if (!(engine_rebuilding(e) & role_bit(role)) || !e->ops->can_recover(e, role, m)) {
			ret = -EIO;	/* the unit failed, or nothing is left to rebuild from */
			break;
		}
		p.m = m;
		ret = pipe_run(&p, (s0 + cnt) * C);
		/* A source failed: another may serve (raid1's other mirrors). */
		if (ret != -EIO || engine_faulty(e) == m)
			break;
	}
	for (i = 0; i < p.depth; i++) {
		ctx_set_walk_buf(p.slot[i].c, NULL, 0);
		engine_ctx_put(e, p.slot[i].c);
	}
	*s_done = p.done / C - s0;
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
