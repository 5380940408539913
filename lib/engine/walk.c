/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The background walks' runs (lib/rebuild.c drives them): recover a role,
 * copy it to its replacement, scrub (check, repair, resync) stripes. All of
 * them are one pipeline of pieces, each under the stripe locks of its own
 * stripes, like any writer. With a loop host (the FUSE queues over
 * io_uring, engine_set_loop_host) the pieces run on its event loops beside
 * the requests, and the walk's thread only locks, paces and retires them;
 * without one it runs them on rings of its own.
 */
#include <errno.h>
#include <pthread.h>
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

static bool walk_scrubs(int kind)
{
	return kind != RT_WALK_RECOVER && kind != RT_WALK_REPLACE;
}

/*
 * The buffers a piece of @kind needs, ENGINE_WALK_STEP role bytes each: a
 * scrub reads every role and computes one more, a recover or a copy reads
 * at most n - 1 roles and computes one.
 */
static unsigned walk_bufs(const struct rt_engine *e, int kind)
{
	return walk_scrubs(kind) ? e->n + 1 : e->n;
}

/*
 * A scrub's pieces are smaller than a rebuild's: its CPU goes into the XOR
 * and the comparison, which read every byte the units gave, and with 2 MiB
 * steps (about 30 MiB in flight) those bytes had left the cache by then.
 * With 512 KiB its engine CPU per GiB on tmpfs units was the batched
 * scrub's (0.28-0.30 s against 0.22-0.30), with 2 MiB 0.40-0.48.
 */
#define ENGINE_SCRUB_STEP (512u << 10)

/*
 * The walk's buffers, allocated when it first needs them (one walk at a
 * time): ENGINE_WALK_DEPTH slots of walk_bufs() steps of ENGINE_WALK_STEP
 * bytes (a scrub ENGINE_SCRUB_STEP), less for many units (at most
 * ENGINE_WALK_MEM in all).
 */
static int engine_walk_mem(struct rt_engine *e, int kind)
{
	unsigned nbuf = walk_bufs(e, kind);
	size_t step = min_u64(walk_scrubs(kind) ? ENGINE_SCRUB_STEP : ENGINE_WALK_STEP,
			      ENGINE_WALK_MEM / (ENGINE_WALK_DEPTH * nbuf));
	int ret;

	step &= ~((size_t)ENGINE_ALIGN_MAX - 1);
	if (e->walk_mem && e->walk_nbuf == nbuf && e->walk_step == step)
		return 0;
	engine_walk_release_mem(e);
	ret = posix_memalign((void **)&e->walk_mem, 4096, ENGINE_WALK_DEPTH * nbuf * step);
	if (ret) {
		e->walk_mem = NULL;
		return -ret;
	}
	e->walk_step = step;
	e->walk_nbuf = nbuf;
	return 0;
}

void engine_walk_release_mem(struct rt_engine *e)
{
	free(e->walk_mem);
	e->walk_mem = NULL;
	e->walk_nbuf = 0;
}

/*
 * A walk runs as a pipeline of pieces (up to e->walk_step role bytes
 * each, whole stripes when a stripe fits), one slot each: its context (a
 * ring and the stripe locks of the piece), its buffers. A piece takes its
 * stripes' locks, reads, is computed (rebuilt, or compared), writes what
 * it must (the rebuilt role, the copy, the repairs), and lets its locks
 * go; meanwhile the next pieces' reads are on the units, so the units
 * always have work queued and the computing happens while they work. The
 * locks are taken in ascending stripe order, only ever above those held,
 * as every writer does, so no deadlock; a user write to a stripe waits for
 * the one piece that holds it, not for a batch.
 */
struct walk_pipe;
struct walk_slot;

/*
 * Where a piece run on a loop host stands. RUNNING: the loop has it. The
 * others: the loop gave it back, DONE (read, computed and written), or with
 * what the walk's thread must still do on the slot's ring: READ (its reads,
 * queued in the context, never ran in full there), COMPUTE (read; a scrub
 * found copies that differ, which the thread settles and counts in order)
 * or WRITE (its writes are queued in the context).
 */
enum piece_state {
	PIECE_OWN,			/* not hosted: the thread runs it all */
	PIECE_RUNNING,
	PIECE_DONE,
	PIECE_READ,
	PIECE_COMPUTE,
	PIECE_WRITE,
};

struct engine_walk_piece {
	struct walk_pipe *p;
	struct walk_slot *s;
	unsigned round;			/* the loop's rounds so far: 1 reading, 2 writing */
	_Atomic int state;		/* enum piece_state; set to an end under e->walk_mu */
};

struct walk_slot {
	struct engine_ctx *c;
	uint8_t *buf;			/* walk_bufs() steps of e->walk_step bytes */
	uint64_t off, len;		/* role bytes */
	uint64_t first, last;		/* stripes locked */
	bool computed;			/* reads done and computed, the writes queued */
	struct engine_walk_piece wp;
};

struct walk_pipe {
	struct rt_engine *e;
	const struct engine_walk_job *job;
	uint64_t m;			/* the roles the run is planned without */
	bool lost;			/* a replace: the role is faulty, rebuild its copy */
	uint32_t roles[RT_MAX_UNITS];	/* a scrub: the roles compared */
	uint32_t nw;
	uint64_t last_bad;		/* a scrub: the last stripe found bad */
	struct walk_slot slot[ENGINE_WALK_DEPTH];
	unsigned depth;			/* slots with a context */
	unsigned head, count;		/* the oldest piece in flight; pieces in flight */
	unsigned n_computed;		/* the oldest n_computed are computed */
	uint64_t done;			/* role bytes below are walked */
	engine_walk_stop_fn stop;	/* asked after each piece retired */
	void *stop_arg;
	bool halt;			/* start no more pieces: the run ends */
	bool replan;			/* a scrub: the roles changed, plan again */
	bool hosted;			/* pieces go to the loop host (engine_set_loop_host) */
};

static struct walk_slot *pipe_slot(struct walk_pipe *p, unsigned k)
{
	return &p->slot[(p->head + k) % p->depth];
}

/* The piece at @off: whole stripes, or the rest of the stripe when one is bigger than a step. */
static uint64_t pipe_piece_len(const struct walk_pipe *p, uint64_t off, uint64_t end)
{
	const struct rt_engine *e = p->e;
	uint64_t C = e->layout.chunk, step = e->walk_step;
	uint64_t most = min_u64(step / C, p->slot[0].c->locks_cap - 1) * C;

	if (!most)
		most = min_u64(step, C - off % C);
	return min_u64(most, end - off);
}

/*
 * Plan the run with the roles working now: 0, 1 when there is nothing to
 * do (a scrub with fewer than two copies), or why it cannot go on.
 */
static int pipe_plan(struct walk_pipe *p)
{
	struct rt_engine *e = p->e;
	const struct engine_walk_job *j = p->job;
	uint32_t r;

	p->replan = false;
	switch (j->kind) {
	case RT_WALK_RECOVER:
		p->m = engine_faulty(e);
		if (!(engine_rebuilding(e) & role_bit(j->role)) || !e->ops->can_recover(e, j->role, p->m))
			return -EIO;	/* the unit failed, or nothing is left to rebuild from */
		return 0;
	case RT_WALK_REPLACE:
		p->m = engine_faulty(e);
		p->lost = p->m & role_bit(j->role);
		if (!engine_replace_intact(e, j->role) ||
		    (p->lost && !e->ops->can_recover(e, j->role, p->m)))
			return -EIO;	/* nothing left to copy from, or to copy to */
		return 0;
	default:
		p->m = engine_faulty(e) | engine_rebuilding(e);
		if (e->ops->scrub_needs_all && p->m)
			return -EBUSY;	/* degraded: no redundancy left to compare */
		for (p->nw = 0, r = 0; r < e->n; r++)
			if (!(p->m & role_bit(r)))
				p->roles[p->nw++] = r;
		return p->nw < 2;
	}
}

/*
 * May a piece start at @pos with the run's plan? A recover or a copy whose
 * target is gone fails; a scrub whose roles changed plans again, between
 * stripes.
 */
static int pipe_may_start(struct walk_pipe *p, uint64_t pos)
{
	struct rt_engine *e = p->e;
	const struct engine_walk_job *j = p->job;

	switch (j->kind) {
	case RT_WALK_RECOVER:
		return engine_rebuilding(e) & role_bit(j->role) ? 0 : -EIO;
	case RT_WALK_REPLACE:
		return engine_replace_intact(e, j->role) ? 0 : -EIO;
	default:
		if (pos % e->layout.chunk == 0 && (engine_faulty(e) | engine_rebuilding(e)) != p->m)
			p->replan = true;
		return 0;
	}
}

static int pipe_host(struct walk_pipe *p, struct walk_slot *s);

/* Lock the piece's stripes and put its reads on the units (or hand them to the loop host). */
static int pipe_start(struct walk_pipe *p, uint64_t off, uint64_t len)
{
	struct rt_engine *e = p->e;
	const struct engine_walk_job *j = p->job;
	struct walk_slot *s = pipe_slot(p, p->count);
	uint64_t C = e->layout.chunk, step = e->walk_step;
	uint32_t w;
	int ret = 0;

	s->off = off;
	s->len = len;
	s->first = off / C;
	s->last = (off + len - 1) / C;
	s->computed = false;
	stripe_lock_acquire(e, s->c, s->first, s->last);
	p->count++;
	if (j->kind == RT_WALK_RECOVER || (j->kind == RT_WALK_REPLACE && p->lost))
		ret = e->ops->recover_read(e, s->c, j->role, s->buf, step, off, len, p->m);
	else if (j->kind == RT_WALK_REPLACE)
		ret = ctx_add_io(e, s->c, ENGINE_OP_READ, j->role, s->buf, off, len);
	else
		for (w = 0; w < p->nw && !ret; w++)
			ret = ctx_add_io(e, s->c, ENGINE_OP_READ, p->roles[w], s->buf + w * step,
					 off, len);
	if (ret)
		return ret;
	if (p->hosted)
		return pipe_host(p, s);
	return ctx_start_ios(e, s->c);
}

/*
 * Compare (and repair) the piece in column pieces, which never cross a
 * chunk: parity rotates per stripe. A stripe in several pieces counts once.
 * @look (on a loop: no I/O, nothing counted): only whether every copy
 * agrees; 1 at the first stripe whose copies differ.
 */
static int pipe_scrub(struct walk_pipe *p, struct walk_slot *s, bool look)
{
	struct rt_engine *e = p->e;
	struct engine_scrub *sc = p->job->sc, cmp;
	uint64_t C = e->layout.chunk, o;
	uint8_t *buf[RT_MAX_UNITS + 1];
	uint32_t w;
	int ret = 0;

	if (look) {
		/* Only the settings: the loops run while the thread counts in *sc. */
		cmp = (struct engine_scrub){
			.settle_ties = sc->settle_ties, .prefer_set = sc->prefer_set,
			.prefer = sc->prefer,
		};
		sc = &cmp;
	}
	for (w = 0; w <= p->nw; w++)
		buf[w] = s->buf + w * e->walk_step;
	for (o = 0; o < s->len && !ret;) {
		struct engine_scrub_piece q = {
			.buf = buf, .roles = p->roles, .nw = p->nw, .o = o, .pos = s->off + o,
		};

		q.stripe = q.pos / C;
		q.len = min_u64(s->len - o, C - q.pos % C);
		ret = e->ops->scrub(e, s->c, &q, sc);
		if (look && (ret || q.bad))
			return 1;
		if (sc->repair)
			sc->kept_roles |= q.kept;
		if (q.bad && p->last_bad != q.stripe) {
			p->last_bad = q.stripe;
			sc->mismatches++;
			sc->repaired += q.fixed;
			sc->ties += q.tie;
		}
		o += q.len;
	}
	return ret;
}

/* A recover, or a copy of a faulty role: rebuild the role's bytes from those read. */
static int pipe_rebuild(struct walk_pipe *p, struct walk_slot *s)
{
	struct rt_engine *e = p->e;
	const struct engine_walk_job *j = p->job;
	bool rebuilt = j->kind == RT_WALK_RECOVER || (j->kind == RT_WALK_REPLACE && p->lost);

	if (!rebuilt || !e->ops->recover_compute)
		return 0;
	return e->ops->recover_compute(e, j->role, s->buf, e->walk_step, s->len);
}

/* Queue the piece's writes: the rebuilt role, the copy (a scrub queues its repairs). */
static int pipe_queue_write(struct walk_pipe *p, struct walk_slot *s)
{
	struct rt_engine *e = p->e;
	const struct engine_walk_job *j = p->job;

	if (j->kind == RT_WALK_RECOVER)
		return ctx_add_io(e, s->c, ENGINE_OP_WRITE, j->role, s->buf, s->off, s->len);
	return ctx_add_io_to(e, s->c, ENGINE_OP_WRITE, j->role, true, s->buf, s->off, s->len);
}

/* Wait for the piece's reads, compute it, start its writes. */
static int pipe_compute_slot(struct walk_pipe *p, struct walk_slot *s)
{
	struct rt_engine *e = p->e;
	int ret = ctx_run_ios(e, s->c);

	if (!ret)
		ret = pipe_rebuild(p, s);
	if (ret)
		return ret;
	s->computed = true;
	if (!p->hosted)
		p->n_computed++;
	ret = walk_scrubs(p->job->kind) ? pipe_scrub(p, s, false) : pipe_queue_write(p, s);
	if (!ret && s->c->n_ios)
		ret = ctx_start_ios(e, s->c);
	return ret;
}

/* The oldest piece still reading. */
static int pipe_compute(struct walk_pipe *p)
{
	return pipe_compute_slot(p, pipe_slot(p, p->n_computed));
}

/*
 * Hand the piece (its stripes locked, its reads queued in the context) to
 * the loop host; when it is refused, the reads start on the slot's ring.
 */
static int pipe_host(struct walk_pipe *p, struct walk_slot *s)
{
	struct rt_engine *e = p->e;
	bool taken = false;

	s->wp.round = 0;
	atomic_store(&s->wp.state, PIECE_RUNNING);
	pthread_mutex_lock(&e->host_mu);
	if (e->host.submit)
		taken = e->host.submit(e->host.arg, &s->wp);
	pthread_mutex_unlock(&e->host_mu);
	if (taken)
		return 0;
	atomic_store(&s->wp.state, PIECE_READ);
	return ctx_start_ios(e, s->c);
}

/* On the loop: what a piece does after its reads; the piece_state it ends in. */
static int piece_compute(struct walk_pipe *p, struct walk_slot *s)
{
	if (pipe_rebuild(p, s))
		return PIECE_COMPUTE;
	if (walk_scrubs(p->job->kind))
		return pipe_scrub(p, s, true) ? PIECE_COMPUTE : PIECE_DONE;
	if (pipe_queue_write(p, s)) {
		s->c->n_ios = 0;
		return PIECE_COMPUTE;
	}
	return s->c->n_ios ? PIECE_WRITE : PIECE_DONE;
}

int engine_walk_piece_step(struct engine_walk_piece *wp, bool ok, struct engine_aio *ar)
{
	struct walk_pipe *p = wp->p;
	struct walk_slot *s = wp->s;
	struct rt_engine *e = p->e;
	int end;

	switch (wp->round++) {
	case 0:
		if (ok && ctx_ios_to_aio(e, s->c, ar) == 0)
			return 1;
		end = PIECE_READ;	/* the loop cannot take it after all */
		break;
	case 1:
		if (!ok) {
			end = PIECE_READ;	/* the thread reads it again, judging the error */
			break;
		}
		ctx_ios_done(e, s->c);
		end = piece_compute(p, s);
		if (end == PIECE_WRITE && ctx_ios_to_aio(e, s->c, ar) == 0)
			return 1;
		break;
	default:
		end = ok ? PIECE_DONE : PIECE_WRITE;
		if (ok)
			ctx_ios_done(e, s->c);
		break;
	}
	pthread_mutex_lock(&e->walk_mu);
	atomic_store(&wp->state, end);
	pthread_cond_broadcast(&e->walk_cond);
	pthread_mutex_unlock(&e->walk_mu);
	return 0;
}

/*
 * Wait until the loop gives the oldest piece back, and do on the slot's
 * ring what it left (nothing after an error: the run ends).
 */
static int pipe_take_back(struct walk_pipe *p, struct walk_slot *s, int err)
{
	struct rt_engine *e = p->e;
	int state;

	pthread_mutex_lock(&e->walk_mu);
	while ((state = atomic_load(&s->wp.state)) == PIECE_RUNNING)
		pthread_cond_wait(&e->walk_cond, &e->walk_mu);
	pthread_mutex_unlock(&e->walk_mu);
	atomic_store(&s->wp.state, PIECE_OWN);
	atomic_fetch_add(state == PIECE_DONE ? &e->walk_loop_pieces : &e->walk_own_pieces, 1);
	if (err) {
		if (!s->c->run_started)
			s->c->n_ios = 0;
		return err;
	}
	switch (state) {
	case PIECE_READ:
	case PIECE_COMPUTE:
		return pipe_compute_slot(p, s);
	default:
		s->computed = true;	/* PIECE_WRITE: pipe_retire runs the writes */
		return 0;
	}
}

/*
 * The oldest piece: written (after @err, or when it failed, only reaped),
 * its locks let go. Returns the first error.
 */
static int pipe_retire(struct walk_pipe *p, int err)
{
	struct rt_engine *e = p->e;
	struct walk_slot *s = pipe_slot(p, 0);
	int ret = err;

	if (p->hosted) {
		ret = pipe_take_back(p, s, ret);
	} else {
		atomic_fetch_add(&e->walk_own_pieces, 1);
		if (!s->computed && !ret)
			ret = pipe_compute(p);
	}
	/* Whatever was queued or submitted is reaped here. */
	if (s->c->run_started || (s->computed && s->c->n_ios)) {
		int r = ctx_run_ios(e, s->c);

		if (!ret)
			ret = r;
	}
	/* A copy's own write failed: the replacement is no good. */
	if (!ret && p->job->kind == RT_WALK_REPLACE && !engine_replace_intact(e, p->job->role))
		ret = -EIO;
	s->c->n_ios = 0;
	stripe_lock_release(e, s->c, s->first, s->last);
	if (s->computed && !p->hosted)
		p->n_computed--;
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
 * Walk role bytes [p->done, end): pieces start while a slot is free, the
 * oldest reading piece is computed while fewer than two are computed and
 * not retired, else the oldest piece is retired (at once when it has
 * nothing in flight, a check's usual case). Stops starting pieces at the
 * first error, when the plan no longer holds (pipe_may_start), and
 * (pipe_retire) when @stop says so or a request or a drain waits for a
 * context (the walk gives its contexts back). Everything in flight is
 * retired before returning.
 */
/* Has the oldest piece nothing in flight (it is retired at once)? */
static bool pipe_oldest_idle(struct walk_pipe *p)
{
	struct walk_slot *s = pipe_slot(p, 0);

	int state = atomic_load(&s->wp.state);

	if (p->hosted)	/* a piece the host refused reads on the slot's ring meanwhile */
		return state != PIECE_RUNNING && !(state == PIECE_READ && s->c->run_started);
	return s->computed && !s->c->run_started;
}

static int pipe_run(struct walk_pipe *p, uint64_t end)
{
	struct rt_engine *e = p->e;
	uint64_t pos = p->done, len;
	int ret = 0;

	for (;;) {
		if (p->count && pipe_oldest_idle(p)) {
			ret = pipe_retire(p, ret);
			continue;
		}
		if (!ret && !p->halt && !p->replan && pos < end && p->count < p->depth) {
			ret = pipe_may_start(p, pos);
			if (ret || p->replan)
				continue;
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
		if (!ret && !p->hosted && p->n_computed < p->count && p->n_computed < 2) {
			ret = pipe_compute(p);
			continue;
		}
		ret = pipe_retire(p, ret);
	}
	return ret;
}

/*
 * Under the stripe locks no writer is inside these stripes, so what is
 * read is a consistent stripe: what lands on the rebuilt role (or the
 * replacement) matches it, and copies that differ differ on the units;
 * writers after us write the role too.
 */
int engine_walk_run(struct rt_engine *e, const struct engine_walk_job *job, uint64_t s0,
		    uint64_t cnt, engine_walk_stop_fn stop, void *arg, uint64_t *s_done)
{
	uint64_t C = e->layout.chunk, end = (s0 + cnt) * C;
	struct walk_pipe p = {
		.e = e, .job = job, .done = s0 * C, .stop = stop, .stop_arg = arg,
		.last_bad = UINT64_MAX,
	};
	unsigned i, nbuf = walk_bufs(e, job->kind);
	int ret;

	*s_done = 0;
	if (cnt == 0)
		return -EINVAL;
	if (walk_scrubs(job->kind) && !e->ops->scrub)
		return -EOPNOTSUPP;
	ret = engine_walk_mem(e, job->kind);
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
		p.slot[i].buf = e->walk_mem + (size_t)i * nbuf * e->walk_step;
		ctx_set_walk_buf(p.slot[i].c, p.slot[i].buf, nbuf * e->walk_step);
		p.slot[i].wp.p = &p;
		p.slot[i].wp.s = &p.slot[i];
		atomic_init(&p.slot[i].wp.state, PIECE_OWN);
	}
	pthread_mutex_lock(&e->host_mu);
	p.hosted = e->host.submit != NULL;
	pthread_mutex_unlock(&e->host_mu);
	for (;;) {
		uint64_t m;

		ret = pipe_plan(&p);
		if (ret == 1) {
			p.done = end;	/* fewer than two copies: nothing to compare */
			ret = 0;
		}
		if (ret || p.done >= end)
			break;
		m = p.m;
		ret = pipe_run(&p, end);
		if (p.replan && !ret && !p.halt)
			continue;
		/*
		 * A source failed: another may serve (raid1's other mirrors, a
		 * replaced role's rebuild). A scrub ends with the error.
		 */
		if (ret != -EIO || walk_scrubs(job->kind) || engine_faulty(e) == m)
			break;
	}
	for (i = 0; i < p.depth; i++) {
		ctx_set_walk_buf(p.slot[i].c, NULL, 0);
		engine_ctx_put(e, p.slot[i].c);
	}
	*s_done = p.done / C - s0;
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

void engine_set_loop_host(struct rt_engine *e, const struct engine_loop_host *h)
{
	pthread_mutex_lock(&e->host_mu);
	e->host = h ? *h : (struct engine_loop_host){ .submit = NULL };
	pthread_mutex_unlock(&e->host_mu);
}
