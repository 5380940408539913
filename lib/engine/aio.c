/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Event-driven requests: mapped to unit I/O that the caller runs on its
 * own ring (the FUSE queue that carried the request), so that no thread
 * waits for them (see engine_read_map in include/raidtool/engine.h).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <raidtool/engine.h>
#include <raidtool/layout.h>
#include <raidtool/log.h>

#include "internal.h"

/* Wait for the event-driven I/O in flight; no new one starts until undrain. */
void engine_aread_drain(struct rt_engine *e)
{
	const struct timespec tick = { .tv_sec = 0, .tv_nsec = 200000 };

	atomic_store(&e->aread_gate, true);
	while (atomic_load(&e->aread_inflight))
		nanosleep(&tick, NULL);
}

/* The stripes one mapped request may lock: a piece's, as a context's. */
static unsigned engine_areq_locks(const struct rt_engine *e)
{
	return (unsigned)(ENGINE_DATA_CAP / e->lock_unit + 2);
}

int engine_aio_init(struct rt_engine *e)
{
	unsigned i, k = engine_areq_locks(e);

	e->areqs = calloc(ENGINE_AREQS, sizeof(*e->areqs));
	e->areq_locks = calloc((size_t)ENGINE_AREQS * k, sizeof(*e->areq_locks));
	if (!e->areqs || !e->areq_locks)
		return -ENOMEM;
	/* raid5: a mapped write's old data and parity (O_DIRECT: aligned). */
	if (e->ops->map_next &&
	    posix_memalign((void **)&e->areq_scratch, 4096,
			   (size_t)ENGINE_AREQS * ENGINE_AREQ_SCRATCH)) {
		e->areq_scratch = NULL;
		return -ENOMEM;
	}
	if (e->ops->map_resume) {
		e->holds = calloc(ENGINE_RING_HOLDS, sizeof(*e->holds));
		e->hold_segs = calloc((size_t)ENGINE_RING_HOLDS * ENGINE_HOLD_SEGS,
				      sizeof(*e->hold_segs));
		if (!e->holds || !e->hold_segs ||
		    posix_memalign((void **)&e->hold_parity, 4096,
				   (size_t)ENGINE_RING_HOLDS * ENGINE_DATA_CAP)) {
			e->hold_parity = NULL;
			return -ENOMEM;
		}
		for (i = 0; i < ENGINE_RING_HOLDS; i++) {
			struct raid5_hold *h = &e->holds[i];

			h->parity = e->hold_parity + (size_t)i * ENGINE_DATA_CAP;
			h->plan = (struct raid5_batch){
				.segs = e->hold_segs + (size_t)i * ENGINE_HOLD_SEGS,
				.cap = ENGINE_HOLD_SEGS,
				.scratch = h->parity,
				.scratch_cap = ENGINE_DATA_CAP,
			};
			h->next = e->hold_free;
			e->hold_free = h;
		}
	}
	for (i = 0; i < ENGINE_AREQS; i++) {
		e->areqs[i].locks = e->areq_locks + (size_t)i * k;
		if (e->areq_scratch)
			e->areqs[i].scratch = e->areq_scratch + (size_t)i * ENGINE_AREQ_SCRATCH;
		e->areqs[i].next = e->areq_free;
		e->areq_free = &e->areqs[i];
	}
	return 0;
}

void engine_aio_free(struct rt_engine *e)
{
	free(e->areqs);
	free(e->areq_locks);
	free(e->areq_scratch);
	free(e->holds);
	free(e->hold_segs);
	free(e->hold_parity);
}

/* What a holder on a ring borrows (raid5_map_hold), or NULL when all are out. */
struct raid5_hold *engine_hold_get(struct rt_engine *e)
{
	struct raid5_hold *h;

	pthread_mutex_lock(&e->areq_mu);
	h = e->hold_free;
	if (h)
		e->hold_free = h->next;
	pthread_mutex_unlock(&e->areq_mu);
	if (h)
		h->n_taken[0] = h->n_taken[1] = h->plan.n_segs = 0;
	return h;
}

void engine_hold_put(struct rt_engine *e, struct raid5_hold *h)
{
	pthread_mutex_lock(&e->areq_mu);
	h->next = e->hold_free;
	e->hold_free = h;
	pthread_mutex_unlock(&e->areq_mu);
}

static struct engine_areq *engine_areq_get(struct rt_engine *e)
{
	struct engine_areq *q;

	pthread_mutex_lock(&e->areq_mu);
	q = e->areq_free;
	if (q)
		e->areq_free = q->next;
	pthread_mutex_unlock(&e->areq_mu);
	if (q) {
		q->round = 0;
		q->parked = NULL;
		q->hold = NULL;
		q->gathering = q->taken = q->rounds = false;
		q->n_part = q->n_lost = 0;
		q->lost_used = 0;
	}
	return q;
}

static void engine_areq_put(struct rt_engine *e, struct engine_areq *q)
{
	pthread_mutex_lock(&e->areq_mu);
	q->next = e->areq_free;
	e->areq_free = q;
	pthread_mutex_unlock(&e->areq_mu);
}

/*
 * Take the stripe locks of [off, off + len) for @ar without waiting: 0;
 * -EBUSY with the stripe in *@busy when a lock is held or waited for;
 * -EAGAIN when no set of locks is free.
 */
static int engine_areq_lock(struct rt_engine *e, struct engine_aio *ar, uint64_t off,
			    uint64_t len, uint64_t *busy)
{
	struct engine_areq *q = engine_areq_get(e);
	int ret = -EAGAIN;

	if (!q)
		return -EAGAIN;
	q->first = off / e->lock_unit;
	q->last = (off + len - 1) / e->lock_unit;
	if (q->last - q->first < engine_areq_locks(e)) {
		if (stripe_lock_try(e, q->locks, q->first, q->last, busy)) {
			ar->areq = q;
			return 0;
		}
		ret = -EBUSY;
	}
	engine_areq_put(e, q);
	return ret;
}

static void engine_areq_unlock(struct rt_engine *e, struct engine_aio *ar)
{
	struct engine_areq *q = ar->areq;

	if (!q)
		return;
	ar->areq = NULL;
	q->parked = NULL;
	stripe_unlock(e, q->locks, q->first, q->last);
	engine_areq_put(e, q);
}

/*
 * The set @ar left offered and queued on a stripe (engine_aio_offer), or
 * holding stripes while it waits for their parts (raid5_map_hold), or
 * NULL: @ar->areq is only trusted when it is one of ours and names @ar.
 */
struct engine_areq *engine_areq_parked(const struct rt_engine *e, const struct engine_aio *ar)
{
	uintptr_t p = (uintptr_t)ar->areq, lo = (uintptr_t)e->areqs;

	if (!lo || p < lo || p >= (uintptr_t)(e->areqs + ENGINE_AREQS) ||
	    (p - lo) % sizeof(*e->areqs))
		return NULL;
	return ar->areq->parked == ar ? ar->areq : NULL;
}

/*
 * Offer a raid5 write's part of one stripe, held or waited for, to the
 * stripe's holder and queue @ar on it (stripe_offer_park); @q (from
 * engine_areq_get, or the one it left parked) keeps the offer meanwhile,
 * holding no lock. -EINPROGRESS: queued (@ar->resume maps it again, which
 * settles the offer here). 1: the holder wrote that part with its stripe.
 * 0: the stripe is free, @q is given back: lock it.
 */
static int engine_aio_offer(struct rt_engine *e, struct engine_aio *ar, struct engine_areq *q)
{
	int ret;

	q->parked = ar;
	ar->areq = q;
	/* Once queued, @ar may be resumed at once by another thread: hands off. */
	ar->queued++;
	ret = stripe_offer_park(e, &q->offer, ar, ar->queued <= ENGINE_AIO_QUEUED_MAX);
	if (ret == -EINPROGRESS)
		return ret;
	ar->queued--;
	q->parked = NULL;
	ar->areq = NULL;
	engine_areq_put(e, q);
	return ret;
}

/* Queue @ar on stripe @s, held or waited for, offering nothing (stripe_lock_park). */
static int engine_aio_park(struct rt_engine *e, struct engine_aio *ar, uint64_t s)
{
	ar->queued++;	/* before: once queued, hands off */
	if (stripe_lock_park(e, s, ar))
		return -EINPROGRESS;
	ar->queued--;
	return 0;
}

/*
 * Queue the write of [off, off + len) from @buf on stripe @busy, held or
 * waited for, offering its part of that stripe when it covers the stripe
 * only in part (engine_aio_offer); a stripe it covers whole it just waits
 * for (stripe_lock_park). -EAGAIN: no set free for the offer.
 */
static int engine_aio_offer_new(struct rt_engine *e, struct engine_aio *ar, uint8_t *buf,
				uint64_t off, uint64_t len, uint64_t busy)
{
	uint64_t W = e->lock_unit, lo = max_u64(off, busy * W), hi = min_u64(off + len, (busy + 1) * W);
	struct engine_areq *q;

	if (lo == busy * W && hi == (busy + 1) * W)
		return engine_aio_park(e, ar, busy);
	q = engine_areq_get(e);
	if (!q)
		return -EAGAIN;
	q->offer = (struct stripe_contrib){
		.stripe = busy,
		.lo = lo,
		.hi = hi,
		.data = buf + (lo - off),
		.state = CONTRIB_IDLE,
	};
	/* A holder's gather waits longer for parts next to writes arriving now. */
	engine_note_write(e, lo, hi);
	return engine_aio_offer(e, ar, q);
}

/*
 * One unit I/O at device offset @off, merged with the last one of the same
 * kind when contiguous (or the one before it, when writes go to a role and
 * its replacement in turns). -EAGAIN when @ar is full.
 */
static int engine_aio_queue(const struct rt_engine *e, struct engine_aio *ar, bool write,
			    uint32_t role, bool replica, uint64_t off, uint8_t *buf, uint64_t len)
{
	for (unsigned k = 1; k <= 2 && k <= ar->n; k++) {
		struct engine_unit_io *io = &ar->io[ar->n - k];

		if (io->replica != replica)
			continue;
		if (io->write == write && !io->fsync && io->role == role &&
		    (uint8_t *)io->buf + io->len == buf && io->off + io->len == off &&
		    io->len + len <= UINT32_MAX / 2) {
			io->len += (uint32_t)len;
			return 0;
		}
		break;
	}
	if (ar->n == ENGINE_AIO_MAX)
		return -EAGAIN;
	/* Whole: the caller's @ar may have carried a flush's fsyncs before. */
	ar->io[ar->n++] = (struct engine_unit_io){
		.fd = replica ? e->replace_fd : e->fd[role], .write = write, .replica = replica,
		.role = role, .off = off, .len = (uint32_t)len, .buf = buf,
	};
	return 0;
}

/*
 * Add the transfer of @len bytes at @unit_off of @role's data area from or
 * into @buf to @ar (see engine_aio_queue). A role being replaced: its
 * writes go to the replacement too (replica_mode).
 */
int engine_aio_add(const struct rt_engine *e, struct engine_aio *ar, bool write, uint32_t role,
		   uint64_t unit_off, uint8_t *buf, uint64_t len)
{
	enum replica_mode to = replica_mode(e, write ? ENGINE_OP_WRITE : ENGINE_OP_READ, role);
	uint64_t off = e->data_offset + unit_off;
	int ret = 0;

	if (to & TO_UNIT)
		ret = engine_aio_queue(e, ar, write, role, false, off, buf, len);
	if (!ret && (to & TO_REPLICA))
		ret = engine_aio_queue(e, ar, write, role, true, off, buf, len);
	return ret;
}

/*
 * A read, the roles in @m faulty: each extent from the role engine_read
 * would choose; one on a faulty role rebuilt from the others (raid5, its
 * stripe locks held: map_read_lost), or -EAGAIN.
 */
static int engine_aio_map_read(struct rt_engine *e, struct engine_aio *ar, uint8_t *buf,
			       uint64_t off, uint64_t len, uint64_t m)
{
	unsigned rr = atomic_fetch_add_explicit(&e->aread_rr, 1, memory_order_relaxed);
	struct layout_extent ext;
	uint64_t pos;
	uint32_t role;
	int ret;

	if (ar->areq) {
		/* What map_read_lost may rebuild from: the bytes the request reads itself. */
		ar->areq->data = buf;
		ar->areq->a0 = off;
		ar->areq->a1 = off + len;
	}

	for (pos = off; pos < off + len; pos += ext.len) {
		ret = layout_map(&e->layout, pos, off + len - pos, &ext);
		if (ret)
			return ret;
		/* raid1: the mirror engine_read would choose (owed regions: the source) */
		role = e->ops->read_role(e, &ext, rr, m);
		if (role != LAYOUT_NO_ROLE && !(m & role_bit(role)))
			ret = engine_aio_add(e, ar, false, role, ext.offset, buf + (pos - off),
					     ext.len);
		else if (e->ops->map_read_lost && ar->areq)
			ret = e->ops->map_read_lost(e, ar, buf + (pos - off), &ext, m);
		else
			ret = -EAGAIN;
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Map [off, off + len) for engine_read_map (@write false) or
 * engine_write_map: -EAGAIN for whatever the synchronous path must do.
 */
static int engine_aio_map(struct rt_engine *e, bool write, void *buf, size_t len, uint64_t off,
			  struct engine_aio *ar)
{
	struct engine_areq *parked;
	uint64_t m, rb, busy;
	unsigned tries;
	bool lock;
	int ret;

	if (!e || !buf || !ar || !len || engine_check_range(e, len, off))
		return -EINVAL;
	parked = write ? engine_areq_parked(e, ar) : NULL;
	if (parked && parked->gathering) {
		/*
		 * A holder woken, its locks held and counted in flight: it
		 * gives up at once when the array changed meanwhile (the masks,
		 * loaded under its locks; a replace starts and ends only under
		 * a drain, which waits for it), or when its caller will not
		 * queue it again (its ring failed).
		 */
		ret = e->ops->map_resume(e, ar, atomic_load(&e->nospace) ||
					 engine_rebuilding(e) || engine_faulty(e) ||
					 ar->queued >= ENGINE_AIO_QUEUED_MAX);
		if (ret == 0 || ret == -EINPROGRESS)
			return ret;
		goto sync;
	}
	if (!write || ar->done_head + ar->done_tail > len)
		ar->done_head = ar->done_tail = 0;
	ar->n = 0;
	ar->len = len;
	ar->write = write;
	ar->areq = NULL;
	if (parked) {
		/* Fixed once offered: read before the set may go to another write. */
		uint64_t plo = parked->offer.lo, phi = parked->offer.hi;

		/*
		 * Resumed with an offer out: settle it first, whatever else
		 * changed meanwhile (the holder may be writing it still).
		 */
		ret = engine_aio_offer(e, ar, parked);
		if (ret == -EINPROGRESS)
			return ret;
		/* Written with its stripe: the part offered is done (it began or ended what was left). */
		if (ret > 0 && plo == off + ar->done_head)
			ar->done_head += phi - plo;
		else if (ret > 0)
			ar->done_tail += phi - plo;
	}
	/* What is left: all of it written so, a mapping with no unit I/O. */
	buf = (uint8_t *)buf + ar->done_head;
	off += ar->done_head;
	len -= ar->done_head + ar->done_tail;
	if (!len) {
		atomic_fetch_add(&e->aread_inflight, 1);
		return 0;
	}
	/* O_DIRECT from/into the caller's buffer: only what needs no bounce buffer. */
	if (off % e->align || len % e->align || (uintptr_t)buf % e->align || len > ENGINE_PIECE)
		return -EAGAIN;
	/*
	 * Not while a role's last write ran out of space, which only
	 * engine_write's success clears (and which a failed raid1 write must
	 * owe a resync for). A role being replaced: engine_aio_add sends its
	 * writes to the replacement too.
	 */
	if (write && (!e->ops->map_write || atomic_load(&e->nospace)))
		return -EAGAIN;
	atomic_fetch_add(&e->aread_inflight, 1);
	if (atomic_load(&e->aread_gate))
		goto sync;
	/*
	 * Writes lock as engine_write would: mirrors must not end up different
	 * when two writes of a block race, nor an aligned write land inside
	 * another's read-modify-write of a unit block (lock_all). The region's
	 * bit must be on the units before any of its data: when it is not yet,
	 * the synchronous path marks it. Reads with a role faulty lock as
	 * engine_read does (raid5: a reconstruction must not mix old and new
	 * chunks of a stripe a writer is halfway through); the mask is loaded
	 * again under the locks.
	 */
	lock = write ? e->ops->redundant || e->lock_all :
		       e->ops->lock_degraded_reads && engine_faulty(e);
	if (lock) {
		/*
		 * A lock held or waited for: queue the request on it (the
		 * caller's resume maps it again), unless it came free meanwhile.
		 * Where writers gather stripes (raid5, whose mapped writes lie
		 * inside one stripe), it offers its part to the lock's holder
		 * meanwhile, which may be gathering the stripe and waiting for
		 * just that part.
		 */
		for (tries = 0;; tries++) {
			ret = engine_areq_lock(e, ar, off, len, &busy);
			/*
			 * Every way out follows a look or a lock, never an offer
			 * withdrawn. Queued often enough: waiting on a thread,
			 * writers that do so in these buckets cannot overtake it.
			 */
			if (ret != -EBUSY || !ar->resume || tries == 3 ||
			    ar->queued >= ENGINE_AIO_QUEUED_MAX)
				break;
			if (write && e->ops->gather) {
				ret = engine_aio_offer_new(e, ar, buf, off, len, busy);
				if (ret == -EAGAIN)
					break;
			} else {
				ret = engine_aio_park(e, ar, busy);
			}
			if (ret) {
				atomic_fetch_sub(&e->aread_inflight, 1);
				return ret;
			}
		}
		if (ret)
			goto sync;
		if (write &&
		    !engine_dl_covered(e, off / e->lock_unit, (off + len - 1) / e->lock_unit))
			goto sync;
	}
	/* Loaded under the stripe locks, as one pair (see engine_write_piece). */
	engine_role_masks(e, &rb, &m);
	if (write)
		ret = e->ops->map_write(e, ar, buf, off, len, m, rb);
	else if (m && e->ops->lock_degraded_reads && !ar->areq)
		ret = -EAGAIN;	/* a role failed since: engine_read locks */
	else
		ret = engine_aio_map_read(e, ar, buf, off, len, m);
	/* A holder waiting for its stripes' parts on the ring keeps its locks. */
	if (ret == 0 || ret == -EINPROGRESS)
		return ret;
	goto sync;
sync:
	ar->n = 0;
	/* What a degraded read's rebuilds borrowed (a write's map_write gave back its own). */
	if (!write && ar->areq && e->ops->map_end)
		e->ops->map_end(e, ar, false);
	engine_areq_unlock(e, ar);
	atomic_fetch_sub(&e->aread_inflight, 1);
	return -EAGAIN;
}

int engine_read_map(struct rt_engine *e, void *buf, size_t len, uint64_t off,
		    struct engine_aio *ar)
{
	return engine_aio_map(e, false, buf, len, off, ar);
}

int engine_write_map(struct rt_engine *e, const void *buf, size_t len, uint64_t off,
		     struct engine_aio *ar)
{
	int ret;

	if (e->readonly)
		return -EROFS;
	ret = engine_aio_map(e, true, (void *)(uintptr_t)buf, len, off, ar);
	/* engine_write counts the rest of the request's bytes: these are written. */
	if (ret == -EAGAIN && ar->done_head + ar->done_tail)
		atomic_fetch_add_explicit(&e->aread_stats.write_bytes,
					  ar->done_head + ar->done_tail, memory_order_relaxed);
	return ret;
}

/* Count the unit I/O of @ar's round, which completed in full. */
void engine_aio_count(struct rt_engine *e, const struct engine_aio *ar)
{
	struct engine_ctx_stats *s = &e->aread_stats;
	unsigned i;

	for (i = 0; i < ar->n; i++) {
		const struct engine_unit_io *io = &ar->io[i];
		uint32_t r = io->role;

		atomic_fetch_add_explicit(io->write ? &s->unit[r].writes : &s->unit[r].reads, 1,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(io->write ? &s->unit[r].write_bytes :
					  &s->unit[r].read_bytes, io->len, memory_order_relaxed);
	}
}

int engine_aio_next(struct rt_engine *e, struct engine_aio *ar)
{
	if (!e || !ar || !ar->areq || !e->ops->map_next)
		return 0;
	return e->ops->map_next(e, ar);
}

/*
 * The round of a mapped write failed in part: its failed unit writes again,
 * on a shared context free now or the one kept for redos (the stripe locks
 * are held: see ctx_acquire_redo), judged as the synchronous path judges
 * them: tried again, else their role failed. The round's other
 * unit I/O all completed: once these did too, or their roles are failed
 * and the level spares them, every stripe it touched is consistent (apart
 * from a failed role, which its parity then rebuilds with the new data),
 * as after a synchronous round that met the same errors. A write in
 * rounds then writes the rest on that context (map_rest).
 */
int engine_aio_redo(struct rt_engine *e, struct engine_aio *ar, const int *res)
{
	struct engine_areq *q = ar->areq;
	struct engine_ctx *c;
	uint64_t failed = 0;
	bool redo = false;
	unsigned i;
	int ret = 0;

	if (!ar->write || !ar->n || !q)
		return -EAGAIN;
	for (i = 0; i < ar->n; i++)
		if (res[i] < 0 || (uint32_t)res[i] != ar->io[i].len) {
			if (!ar->io[i].write || ar->io[i].fsync)
				return -EAGAIN;	/* a read round: nothing written yet */
			redo = true;
			/* A replacement's failure ends the replace (ctx_run_ios), not the write. */
			if (!ar->io[i].replica)
				failed |= role_bit(ar->io[i].role);
		}
	/*
	 * Always redone, never given up for a resync: while a role is
	 * faulty its chunks live only in the parity, and a resync from the
	 * data cannot mend a half-written read-modify-write. Not waiting
	 * for a shared context (a drain may hold them until this mapping
	 * ends): when workers hold them all, the one kept for redos.
	 */
	c = ctx_acquire_redo(e);
	for (i = 0; i < ar->n && !ret; i++)
		if ((res[i] < 0 || (uint32_t)res[i] != ar->io[i].len) &&
		    !(ar->io[i].replica && atomic_load(&e->replace_failed)))
			ret = ctx_add_io_to(e, c, ENGINE_OP_WRITE, ar->io[i].role, ar->io[i].replica,
					    ar->io[i].buf, ar->io[i].off - e->data_offset,
					    ar->io[i].len);
	if (!ret && redo)
		ret = ctx_run_ios(e, c);
	c->n_ios = 0;
	/*
	 * Only replacements' writes redone, and an error: the context could
	 * not run them (a replacement's own failure is no error), so the
	 * request is written again whole.
	 */
	if (ret && (!failed || (failed & ~engine_faulty(e)) || !e->ops->redundant ||
		    !engine_tolerates(e, engine_faulty(e)))) {
		/* A unit that kept its role refused still: what the round's other writes replaced goes back. */
		if (c->run_kept_role && e->ops->map_undo)
			e->ops->map_undo(e, ar, c);
		ctx_release(e, c);
		return ret;
	}
	ret = e->ops->map_rest ? e->ops->map_rest(e, ar, c) : 0;
	ctx_release(e, c);
	return ret;
}

void engine_aio_unmap(struct rt_engine *e, struct engine_aio *ar, bool ok)
{
	struct engine_ctx_stats *s = &e->aread_stats;

	if (ok) {
		atomic_fetch_add_explicit(ar->write ? &s->writes : &s->reads, 1,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(ar->write ? &s->write_bytes : &s->read_bytes, ar->len,
					  memory_order_relaxed);
		engine_aio_count(e, ar);
	}
	if (ar->areq && e->ops->map_end)
		e->ops->map_end(e, ar, ok);	/* under the stripe locks still */
	ar->n = 0;
	ar->wake_ns = 0;
	ar->done_head = ar->done_tail = 0;
	ar->queued = 0;
	engine_areq_unlock(e, ar);
	atomic_fetch_sub(&e->aread_inflight, 1);
}
