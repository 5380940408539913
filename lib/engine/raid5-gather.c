/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Gathering (raid5, healthy). The block layer hands us large writes in
 * parts of about 512 KiB, so a stream rarely covers a stripe with one
 * request. A writer whose aligned piece covers its first or last stripe in
 * part and has to wait for that stripe's lock offers its part (its data is
 * in place before it waits) on the lock bucket's list; so does a small
 * write mapped on a FUSE queue's ring, queued on the bucket instead of
 * waiting (stripe_offer_park). The holder of a stripe it covers in part
 * takes offers that make the stripe whole
 * (waiting a bounded window for them, see raid5_gather), writes the
 * stripe with parity from the new data alone straight from every
 * writer's buffer, and marks those offers done before it lets go of the
 * lock; their writers then skip that stripe (they never take its lock)
 * and are acknowledged like any writer whose data and parity are on the
 * units. An offer taken but not written (an I/O error) is given back and
 * its writer writes it itself. A writer only ever waits for a stripe lock
 * holding the locks of lower stripes, as before, and a holder's wait is
 * bounded, so nothing deadlocks.
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
#include <raidtool/layout.h>
#include <raidtool/log.h>
#include <raidtool/parity.h>

#include "internal.h"

/* Note where a write arriving now begins and ends. */
void engine_note_write(struct rt_engine *e, uint64_t off, uint64_t end)
{
	unsigned i = atomic_fetch_add_explicit(&e->recent_next, 1, memory_order_relaxed);

	i %= ENGINE_RECENT_WRITES;
	atomic_store_explicit(&e->recent[i].off, off, memory_order_relaxed);
	atomic_store_explicit(&e->recent[i].end, end, memory_order_relaxed);
}

/*
 * Is [off, end) next to one of the last writes to arrive (in either order:
 * the block layer splits a large write and its parts may overtake each
 * other)? Then it is part of a stream, and more of its stripes may follow.
 */
static bool engine_write_streams(const struct rt_engine *e, uint64_t off, uint64_t end)
{
	unsigned i;

	for (i = 0; i < ENGINE_RECENT_WRITES; i++)
		if (atomic_load_explicit(&e->recent[i].end, memory_order_relaxed) == off ||
		    atomic_load_explicit(&e->recent[i].off, memory_order_relaxed) == end)
			return true;
	return false;
}

/*
 * Would the holder of a stripe of [off, end) wait for its other parts
 * (raid5_gather)? Not with no window, nor once waiting was in vain
 * ENGINE_GATHER_MISSES times in a row (random writes), unless [off, end)
 * continues a recent write (a stream: the block layer cuts large writes
 * into parts, a few KiB small at times, that may overtake each other).
 * A small write that may be gathered and finds its stripe free is not
 * mapped on the ring (raid5_map_write): writing its part alone
 * (reconstruct-write) it would keep the stripe from being written whole;
 * the synchronous path waits for the other parts instead.
 */
bool raid5_gather_wanted(const struct rt_engine *e, uint64_t off, uint64_t end)
{
	if (!atomic_load_explicit(&e->gather_us, memory_order_relaxed))
		return false;
	return atomic_load_explicit(&e->gather_misses, memory_order_relaxed) <
		       ENGINE_GATHER_MISSES ||
	       engine_write_streams(e, off, end);
}

/*
 * Can the offers on stripe @s's bucket, with our own part @own, make the
 * whole stripe without overlapping? Pieces are chained from the stripe's
 * start, ours first wherever it fits. Fills @out in logical order; returns
 * how many pieces (0: not whole, or too many pieces).
 */
static unsigned gather_cover(const struct rt_engine *e, const struct stripe_lock_bucket *b,
			     uint64_t s, struct stripe_contrib *own, struct stripe_contrib **out)
{
	uint64_t W = e->lock_unit, pos = s * W, end = pos + W;
	bool have_own = false;
	unsigned n = 0;

	while (pos < end) {
		struct stripe_contrib *k = NULL, *x;

		if (own->lo == pos)
			k = own;
		for (x = b->offers; !k && x; x = x->next)
			if (x->stripe == s && x->state == CONTRIB_OFFERED && x->lo == pos &&
			    x->hi <= end)
				k = x;
		if (!k || n == ENGINE_GATHER_MAX)
			return 0;
		have_own |= k == own;
		out[n++] = k;
		pos = k->hi;
	}
	return have_own ? n : 0;
}

/* The clock of the stripe lock conditions (CLOCK_REALTIME), in ns. */
static uint64_t engine_clock_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/*
 * Would every thread that may call the engine (engine_add_callers) wait,
 * were we to wait too? Then no other part can arrive before the deadline:
 * the threads that would bring them are all here, waiting for stripe locks
 * that gathering holders keep, or for their contexts.
 */
static bool gather_starved(const struct rt_engine *e)
{
	int n = atomic_load_explicit(&e->callers, memory_order_relaxed);

	return n > 0 && atomic_load_explicit(&e->blocked, memory_order_relaxed) + 1 >= (unsigned)n;
}

/*
 * A write's watch on arriving writes while it gathers (gather_wait): no
 * write for @idle, the writers wait for us. Never shorter than
 * ENGINE_GATHER_IDLE_NS: on disks the next parts come only as earlier
 * writes complete, milliseconds apart, and giving up on them turned whole
 * stripes into reconstruct-writes.
 */
struct gather_idle {
	uint64_t idle, mark;	/* ns; look at the arrivals again at @mark */
	unsigned seen;		/* recent_next when last looked at */
};

/*
 * With @b's mutex held, wait for offers that make @own's stripe whole until
 * @deadline (ns); past the first ENGINE_GATHER_GRACE of the window only
 * while the piece [a0, a1) is part of a stream; while new writes keep
 * arriving, one at least in every grace or ENGINE_GATHER_IDLE_NS, the
 * longer (when none came, the writers are waiting for us: a client sends
 * its next part only once we replied); and only while other parts can
 * still arrive (gather_starved: then *starved is set). @gi carries the
 * arrivals seen from the write's first stripe's wait to its second's.
 * Returns the pieces (gather_cover), 0 when it gave up.
 */
static unsigned gather_wait(struct rt_engine *e, struct stripe_lock_bucket *b,
			    struct stripe_contrib *own, struct stripe_contrib **out, uint64_t a0,
			    uint64_t a1, uint64_t t0, uint64_t deadline, struct gather_idle *gi,
			    bool *starved)
{
	uint64_t grace = (deadline - t0) / ENGINE_GATHER_GRACE, now, until;
	unsigned arrived;
	struct timespec ts;
	unsigned n;

	for (;;) {
		n = gather_cover(e, b, own->stripe, own, out);
		now = engine_clock_ns();
		if (n || now >= deadline)
			return n;
		if (now >= t0 + grace && !engine_write_streams(e, a0, a1))
			return 0;
		if (now >= gi->mark) {
			arrived = atomic_load_explicit(&e->recent_next, memory_order_relaxed);
			if (arrived == gi->seen)
				return 0;
			gi->seen = arrived;
			gi->mark = now + gi->idle;
		}
		/*
		 * Not a small write's while an export has rings: the parts of a
		 * stripe of small writes may still come mapped on them, no
		 * worker needed.
		 */
		if ((a1 - a0 > ENGINE_AREQ_WRITE_MAX ||
		     !atomic_load_explicit(&e->ring_exports, memory_order_relaxed)) &&
		    gather_starved(e)) {
			*starved = true;
			return 0;
		}
		/* A write entering the engine does not wake us: look again soon. */
		until = min_u64(deadline, now + min_u64(grace, ENGINE_GATHER_POLL_NS));
		ts.tv_sec = (time_t)(until / 1000000000ull);
		ts.tv_nsec = (long)(until % 1000000000ull);
		atomic_fetch_add_explicit(&e->blocked, 1, memory_order_relaxed);
		pthread_cond_timedwait(&b->cond, &b->mu, &ts);
		atomic_fetch_sub_explicit(&e->blocked, 1, memory_order_relaxed);
	}
}

/*
 * Write whole stripes @stripes[0..ns) from their pieces (c->taken[i], in
 * logical order), parity from the new data alone, no reads, all at once.
 * Column ranges are cut at every piece boundary so that each chunk's part
 * of a column range lies in one piece. Each stripe's parity takes one
 * chunk of scratch (the caller checked that it fits).
 */
static int raid5_write_whole(struct rt_engine *e, struct engine_ctx *c, const uint64_t *stripes,
			     unsigned ns)
{
	uint64_t C = e->layout.chunk, W = e->lock_unit;
	uint32_t d = e->data_roles, k;
	void *src[RT_MAX_UNITS];
	unsigned i, j, t;
	int ret = 0;

	for (i = 0; i < ns && !ret; i++) {
		uint64_t base = stripes[i] * W, cuts[ENGINE_GATHER_MAX + 1], p, q, x;
		uint8_t *parity = c->scratch + i * C;
		struct layout_extent ext;
		unsigned nc = 0;

		/* The column boundaries: 0 and where each piece starts, sorted. */
		for (j = 0; j < c->n_taken[i]; j++) {
			x = (c->taken[i][j]->lo - base) % C;
			for (t = nc; t > 0 && cuts[t - 1] > x; t--)
				cuts[t] = cuts[t - 1];
			cuts[t] = x;
			nc++;
		}
		cuts[nc] = C;
		for (j = 0; j < nc && !ret; j++) {
			p = cuts[j];
			q = cuts[j + 1];
			if (p == q)
				continue;
			for (k = 0; k < d && !ret; k++) {
				uint64_t L = base + k * C + p;
				const struct stripe_contrib *piece = NULL;

				for (t = 0; t < c->n_taken[i] && !piece; t++)
					if (c->taken[i][t]->lo <= L && L < c->taken[i][t]->hi)
						piece = c->taken[i][t];
				if (!piece)
					return -EINVAL;	/* cannot happen: the pieces cover the stripe */
				src[k] = (void *)(uintptr_t)(piece->data + (L - piece->lo));
				ret = raid5_locate(e, base, k, (uint32_t)p, (uint32_t)(q - p), &ext);
				if (!ret)
					ret = ctx_add_io(e, c, ENGINE_OP_WRITE, ext.role, src[k],
							 ext.offset, q - p);
			}
			if (!ret)
				ret = parity_xor(parity + p, src, d, q - p);
			if (!ret)
				ret = ctx_add_io(e, c, ENGINE_OP_WRITE, ext.parity_role, parity + p,
						 ext.offset, q - p);
		}
	}
	if (!ret)
		ret = ctx_run_ios(e, c);
	c->n_ios = 0;
	return ret;
}

/*
 * raid5, no role faulty or being rebuilt, the piece [a0, a1) aligned and
 * in @data, its stripe locks held: make the first and last stripe, where
 * the piece covers them only in part, whole from the parts offered by
 * writers waiting for those locks (stripe_lock_acquire_offer) and write
 * them with parity from the new data alone. When the parts are not all
 * there yet, wait for them (gather_wait): at most e->gather_us, and past
 * its first eighth only while writes keep arriving next to this one (a
 * stream; the block layer cuts a large write into parts that may overtake
 * each other, so even a small part may belong to one). Once waiting was in
 * vain ENGINE_GATHER_MISSES times in a row (random writes, a lone
 * synchronous writer) only parts of a stream and one write in
 * ENGINE_GATHER_PROBE wait, and only while another write is in the engine
 * (a lone writer's next part comes after our reply: waiting for it only
 * cost 1 in 64 QD1 random writes the grace, ~1.3 ms, their p99), and a
 * stripe given up on is not waited for again by the next holders within
 * the window. *lo, *hi: what is left of the piece for the usual path.
 * Every part taken is settled before returning: done when written (its
 * writer skips the stripe), else given back (its writer writes it itself).
 */
int raid5_gather(struct rt_engine *e, struct engine_ctx *c, uint8_t *data, uint64_t a0,
			uint64_t a1, uint64_t *lo, uint64_t *hi)
{
	uint64_t W = e->lock_unit, C = e->layout.chunk, first = a0 / W, last = (a1 - 1) / W;
	uint64_t stripes[2], cand[2], t0 = engine_clock_ns();
	uint64_t deadline = t0 + atomic_load_explicit(&e->gather_us, memory_order_relaxed) * 1000ull;
	/* One window for both stripes: the second's wait goes on from the first's. */
	uint64_t idle = max_u64((deadline - t0) / ENGINE_GATHER_GRACE, ENGINE_GATHER_IDLE_NS);
	struct gather_idle gi = {
		.idle = idle, .mark = t0 + idle,
		.seen = atomic_load_explicit(&e->recent_next, memory_order_relaxed),
	};
	struct stripe_contrib own[2];
	/*
	 * Wait at all? Not when waiting was in vain many times in a row (one
	 * writer at a time, random writes), unless another write is under way
	 * and this one continues a recent write (a stream, whose parts a
	 * random writer beside it must not keep from being gathered), or as a
	 * probe now and then. A lone writer's next part comes after our reply.
	 */
	bool others = atomic_load_explicit(&e->writers, memory_order_relaxed) > 1;
	bool wait = deadline > t0 &&
		(atomic_load_explicit(&e->gather_misses, memory_order_relaxed) <
			 ENGINE_GATHER_MISSES ||
		 (others && (engine_write_streams(e, a0, a1) ||
			     atomic_load_explicit(&e->recent_next, memory_order_relaxed) %
			     ENGINE_GATHER_PROBE == 0)));
	unsigned nc = 0, ns = 0, i, j;
	int ret = 0;

	*lo = a0;
	*hi = a1;
	if (a0 % W)
		cand[nc++] = first;
	if (a1 % W && (last != first || !nc))
		cand[nc++] = last;
	if (nc * C > c->scratch_cap)
		nc = (unsigned)(c->scratch_cap / C);	/* parity of each in scratch */
	for (i = 0; i < nc; i++) {
		uint64_t s = cand[i], base = s * W;
		struct stripe_lock_bucket *b = stripe_lock_bucket(e, s);
		unsigned n;

		own[ns].stripe = s;
		own[ns].lo = max_u64(a0, base);
		own[ns].hi = min_u64(a1, base + W);
		own[ns].data = data + (own[ns].lo - a0);
		pthread_mutex_lock(&b->mu);
		n = gather_cover(e, b, s, &own[ns], c->taken[ns]);
		if (!n && wait && !(b->given_up == s + 1 && engine_clock_ns() < b->given_up_until)) {
			bool starved = false;

			n = gather_wait(e, b, &own[ns], c->taken[ns], a0, a1, t0, deadline, &gi,
					&starved);
			if (n) {
				atomic_store_explicit(&e->gather_misses, 0, memory_order_relaxed);
			} else if (!starved) {
				/* In vain: not a full house of writers waiting on each other. */
				atomic_fetch_add_explicit(&e->gather_misses, 1, memory_order_relaxed);
				/* The next holders of this stripe need not wait again. */
				b->given_up = s + 1;
				b->given_up_until = deadline;
			}
		}
		for (j = 0; j < n; j++) {
			if (c->taken[ns][j] == &own[ns])
				continue;
			stripe_offer_withdraw(b, c->taken[ns][j]);
			c->taken[ns][j]->state = CONTRIB_TAKEN;
		}
		pthread_mutex_unlock(&b->mu);
		if (n) {
			c->n_taken[ns] = n;
			stripes[ns++] = s;
		}
	}
	if (!ns)
		return 0;
	ret = raid5_write_whole(e, c, stripes, ns);
	for (i = 0; i < ns; i++) {
		struct stripe_lock_bucket *b = stripe_lock_bucket(e, stripes[i]);

		pthread_mutex_lock(&b->mu);
		for (j = 0; j < c->n_taken[i]; j++)
			if (c->taken[i][j] != &own[i])
				c->taken[i][j]->state = ret ? CONTRIB_IDLE : CONTRIB_DONE;
		pthread_cond_broadcast(&b->cond);
		pthread_mutex_unlock(&b->mu);
		c->n_taken[i] = 0;
		if (ret)
			continue;
		if (stripes[i] == first)
			*lo = min_u64((first + 1) * W, a1);
		if (stripes[i] == last)
			*hi = max_u64(last * W, *lo);
	}
	if (!ret) {
		stat_add(&c->stats.stripe_full, ns);
		stat_add(&c->stats.stripe_merged, ns);
	}
	return ret;
}
