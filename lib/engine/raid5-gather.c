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
 * A small write that may be gathered and finds its stripe free holds it
 * on the ring (raid5_map_write) rather than write its part alone
 * (reconstruct-write), which would keep the stripe from being written
 * whole.
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

/* The clock of holders' windows and the stripe lock conditions (CLOCK_MONOTONIC), in ns. */
static uint64_t engine_clock_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
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
 * Go on waiting for a stripe's other parts, the piece [a0, a1) having
 * waited since @t0, until @deadline at most? 0: give up; else when to look
 * again. Past the first ENGINE_GATHER_GRACE of the window only while the
 * piece is part of a stream; and while new writes keep arriving, one at
 * least in every grace or ENGINE_GATHER_IDLE_NS, the longer (when none
 * came, the writers are waiting for us: a client sends its next part only
 * once we replied). @gi carries the arrivals seen from one look to the
 * next.
 */
static uint64_t gather_until(struct rt_engine *e, uint64_t a0, uint64_t a1, uint64_t t0,
			     uint64_t deadline, struct gather_idle *gi, uint64_t now)
{
	uint64_t grace = (deadline - t0) / ENGINE_GATHER_GRACE;
	unsigned arrived;

	if (now >= deadline)
		return 0;
	if (now >= t0 + grace && !engine_write_streams(e, a0, a1))
		return 0;
	if (now >= gi->mark) {
		arrived = atomic_load_explicit(&e->recent_next, memory_order_relaxed);
		if (arrived == gi->seen)
			return 0;
		gi->seen = arrived;
		gi->mark = now + gi->idle;
	}
	/* A write entering the engine wakes nobody: look again soon. */
	return min_u64(deadline, now + min_u64(grace, ENGINE_GATHER_POLL_NS));
}

/*
 * Open a holder's window for the piece [a0, a1): from now (*@t0) to
 * *@deadline, one window for both of its stripes, and the watch on
 * arriving writes. Does it wait at all? Not when waiting was in vain many
 * times in a row (one writer at a time, random writes), unless another
 * write is under way (@others) and this one continues a recent write (a
 * stream, whose parts a random writer beside it must not keep from being
 * gathered), or as a probe now and then. A lone writer's next part comes
 * after our reply.
 */
static bool gather_window(struct rt_engine *e, uint64_t a0, uint64_t a1, bool others,
			  uint64_t *t0, uint64_t *deadline, struct gather_idle *gi)
{
	uint64_t idle;

	*t0 = engine_clock_ns();
	*deadline = *t0 + atomic_load_explicit(&e->gather_us, memory_order_relaxed) * 1000ull;
	idle = max_u64((*deadline - *t0) / ENGINE_GATHER_GRACE, ENGINE_GATHER_IDLE_NS);
	*gi = (struct gather_idle){
		.idle = idle, .mark = *t0 + idle,
		.seen = atomic_load_explicit(&e->recent_next, memory_order_relaxed),
	};
	return *deadline > *t0 &&
	       (atomic_load_explicit(&e->gather_misses, memory_order_relaxed) <
			ENGINE_GATHER_MISSES ||
		(others && (engine_write_streams(e, a0, a1) ||
			    gi->seen % ENGINE_GATHER_PROBE == 0)));
}

/* May a holder of stripe @s wait for its parts (not given up on within the window)? */
static bool gather_not_given_up(const struct stripe_lock_bucket *b, uint64_t s)
{
	return !(b->given_up == s + 1 && engine_clock_ns() < b->given_up_until);
}

/*
 * With @b's mutex held: waiting for stripe @s's parts was in vain (not for
 * want of writers able to bring them): count it, and the next holders of
 * the stripe need not wait again until @until.
 */
static void gather_missed(struct rt_engine *e, struct stripe_lock_bucket *b, uint64_t s,
			  uint64_t until)
{
	atomic_fetch_add_explicit(&e->gather_misses, 1, memory_order_relaxed);
	b->given_up = s + 1;
	b->given_up_until = until;
}

/*
 * With @b's mutex held, wait for offers that make @own's stripe whole until
 * @deadline (ns), while gather_until says so and only while other parts can
 * still arrive (gather_starved: then *starved is set). Returns the pieces
 * (gather_cover), 0 when it gave up.
 */
static unsigned gather_wait(struct rt_engine *e, struct stripe_lock_bucket *b,
			    struct stripe_contrib *own, struct stripe_contrib **out, uint64_t a0,
			    uint64_t a1, uint64_t t0, uint64_t deadline, struct gather_idle *gi,
			    bool *starved)
{
	uint64_t until;
	struct timespec ts;
	unsigned n;

	for (;;) {
		n = gather_cover(e, b, own->stripe, own, out);
		if (n)
			return n;
		until = gather_until(e, a0, a1, t0, deadline, gi, engine_clock_ns());
		if (!until)
			return 0;
		/*
		 * Not a small write's while an export has rings: the parts of a
		 * stripe of small writes may still come mapped on them, no
		 * worker needed. A large piece's holder does give up: waiting
		 * on, it keeps its context from the workers that would bring
		 * its parts (stripe.bats 4 once sent 444 of 446 writes to
		 * workers and gathered nothing without this).
		 */
		if ((a1 - a0 > ENGINE_AREQ_WRITE_MAX ||
		     !atomic_load_explicit(&e->ring_exports, memory_order_relaxed)) &&
		    gather_starved(e)) {
			*starved = true;
			return 0;
		}
		ts.tv_sec = (time_t)(until / 1000000000ull);
		ts.tv_nsec = (long)(until % 1000000000ull);
		atomic_fetch_add_explicit(&e->blocked, 1, memory_order_relaxed);
		pthread_cond_timedwait(&b->cond, &b->mu, &ts);
		atomic_fetch_sub_explicit(&e->blocked, 1, memory_order_relaxed);
	}
}

/* With @b's mutex held: the pieces @taken[0..n) of a stripe, but @own, are the holder's now. */
static void gather_take(struct stripe_lock_bucket *b, struct stripe_contrib **taken, unsigned n,
			const struct stripe_contrib *own)
{
	unsigned j;

	for (j = 0; j < n; j++) {
		if (taken[j] == own)
			continue;
		stripe_offer_withdraw(b, taken[j]);
		taken[j]->state = CONTRIB_TAKEN;
	}
}

/*
 * The holder of stripe @s let go of the pieces it took (but @own): @state
 * CONTRIB_DONE (written with the stripe: their writers skip it),
 * CONTRIB_IDLE (given back after a failed write: their writers write them
 * themselves) or CONTRIB_OFFERED (never written, the stripe still held:
 * offered again, as they were).
 */
static void gather_settle(struct rt_engine *e, uint64_t s, struct stripe_contrib **taken,
			  unsigned n, const struct stripe_contrib *own, int state)
{
	struct stripe_lock_bucket *b = stripe_lock_bucket(e, s);
	unsigned j;

	pthread_mutex_lock(&b->mu);
	for (j = 0; j < n; j++) {
		if (taken[j] == own)
			continue;
		taken[j]->state = state;
		if (state == CONTRIB_OFFERED) {
			taken[j]->next = b->offers;
			b->offers = taken[j];
		}
	}
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->mu);
}

/*
 * Queue the writes of stripe @s whole from its pieces @pieces[0..np) (in
 * logical order, covering it) to @to, parity from the new data alone into
 * @parity (one chunk). Column ranges are cut at every piece boundary so
 * that each chunk's part of a column range lies in one piece.
 */
static int raid5_whole_ios(struct rt_engine *e, const struct raid5_sink *to, uint64_t s,
			   struct stripe_contrib *const *pieces, unsigned np, uint8_t *parity)
{
	uint64_t C = e->layout.chunk, base = s * e->lock_unit, cuts[ENGINE_GATHER_MAX + 1], p, q, x;
	uint32_t d = e->data_roles, k;
	void *src[RT_MAX_UNITS];
	struct layout_extent ext;
	unsigned j, t, nc = 0;
	int ret = 0;

	/* The column boundaries: 0 and where each piece starts, sorted. */
	for (j = 0; j < np; j++) {
		x = (pieces[j]->lo - base) % C;
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

			for (t = 0; t < np && !piece; t++)
				if (pieces[t]->lo <= L && L < pieces[t]->hi)
					piece = pieces[t];
			if (!piece)
				return -EINVAL;	/* cannot happen: the pieces cover the stripe */
			src[k] = (void *)(uintptr_t)(piece->data + (L - piece->lo));
			ret = raid5_locate(e, base, k, (uint32_t)p, (uint32_t)(q - p), &ext);
			if (!ret)
				ret = raid5_add_io(e, to, ENGINE_OP_WRITE, ext.role, src[k],
						   ext.offset, q - p);
		}
		if (!ret)
			ret = parity_xor(parity + p, src, d, q - p);
		if (!ret)
			ret = raid5_add_io(e, to, ENGINE_OP_WRITE, ext.parity_role, parity + p,
					   ext.offset, q - p);
	}
	return ret;
}

/*
 * Write whole stripes @stripes[0..ns) from their pieces (c->taken[i], in
 * logical order), all at once. Each stripe's parity takes one chunk of
 * scratch (the caller checked that it fits).
 */
static int raid5_write_whole(struct rt_engine *e, struct engine_ctx *c, const uint64_t *stripes,
			     unsigned ns)
{
	const struct raid5_sink to = { .c = c };
	unsigned i;
	int ret = 0;

	for (i = 0; i < ns && !ret; i++)
		ret = raid5_whole_ios(e, &to, stripes[i], c->taken[i], c->n_taken[i],
				      c->scratch + i * e->layout.chunk);
	if (!ret)
		ret = ctx_run_ios(e, c);
	c->n_ios = 0;
	return ret;
}

/*
 * The stripes of [a0, a1) that it covers only in part, which other
 * writers' parts may make whole: its first and its last. Returns how many.
 */
static unsigned gather_parts(const struct rt_engine *e, uint64_t a0, uint64_t a1, uint64_t out[2])
{
	uint64_t W = e->lock_unit, first = a0 / W, last = (a1 - 1) / W;
	unsigned n = 0;

	if (a0 % W)
		out[n++] = first;
	if (a1 % W && (last != first || !n))
		out[n++] = last;
	return n;
}

/* @own: the part of [a0, a1) from @data in stripe @s. */
static void gather_own(const struct rt_engine *e, struct stripe_contrib *own, uint64_t s,
		       uint8_t *data, uint64_t a0, uint64_t a1)
{
	uint64_t W = e->lock_unit;

	own->next = NULL;
	own->stripe = s;
	own->lo = max_u64(a0, s * W);
	own->hi = min_u64(a1, (s + 1) * W);
	own->data = data + (own->lo - a0);
	own->state = CONTRIB_IDLE;
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
	uint64_t stripes[2], cand[2], t0, deadline;
	struct gather_idle gi;
	struct stripe_contrib own[2];
	bool wait = gather_window(e, a0, a1,
				  atomic_load_explicit(&e->writers, memory_order_relaxed) > 1,
				  &t0, &deadline, &gi);
	unsigned nc = gather_parts(e, a0, a1, cand), ns = 0, i;
	int ret = 0;

	*lo = a0;
	*hi = a1;
	if (nc * C > c->scratch_cap)
		nc = (unsigned)(c->scratch_cap / C);	/* parity of each in scratch */
	for (i = 0; i < nc; i++) {
		uint64_t s = cand[i];
		struct stripe_lock_bucket *b = stripe_lock_bucket(e, s);
		unsigned n;

		gather_own(e, &own[ns], s, data, a0, a1);
		pthread_mutex_lock(&b->mu);
		n = gather_cover(e, b, s, &own[ns], c->taken[ns]);
		if (!n && wait && gather_not_given_up(b, s)) {
			bool starved = false;

			n = gather_wait(e, b, &own[ns], c->taken[ns], a0, a1, t0, deadline, &gi,
					&starved);
			if (n)
				atomic_store_explicit(&e->gather_misses, 0, memory_order_relaxed);
			else if (!starved)
				gather_missed(e, b, s, deadline);
		}
		gather_take(b, c->taken[ns], n, &own[ns]);
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
		gather_settle(e, stripes[i], c->taken[i], c->n_taken[i], &own[i],
			      ret ? CONTRIB_IDLE : CONTRIB_DONE);
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

/*
 * A holder on the ring (raid5_map_hold) lets go of what it holds but its
 * stripe locks: the pieces it took, settled as @state (gather_settle), its
 * places on the buckets, and what it borrowed (engine_hold_get).
 */
static void raid5_hold_drop(struct rt_engine *e, struct engine_areq *q, int state)
{
	struct raid5_hold *h = q->hold;
	unsigned i;

	for (i = 0; i < q->n_part; i++) {
		stripe_gatherer_set(e, &q->gw[i], q->part[i], false);
		if (h->n_taken[i])
			gather_settle(e, q->part[i], h->taken[i], h->n_taken[i], &q->own[i],
				      state);
		h->n_taken[i] = 0;
	}
	q->gathering = q->taken = false;
	q->parked = NULL;
	q->hold = NULL;
	engine_hold_put(e, h);
}

/* The mapping ends, written (@ok) or not: settle the pieces written with it. */
void raid5_hold_end(struct rt_engine *e, struct engine_areq *q, bool ok)
{
	if (!q->hold)
		return;
	if (ok && q->taken) {
		atomic_fetch_add_explicit(&e->aread_stats.stripe_full, q->last - q->first + 1,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&e->aread_stats.stripe_merged, q->n_part,
					  memory_order_relaxed);
	}
	raid5_hold_drop(e, q, !q->taken ? CONTRIB_OFFERED : ok ? CONTRIB_DONE : CONTRIB_IDLE);
}

/*
 * Gave up gathering: the pieces taken are offered again, the places on the
 * buckets left, what it borrowed kept (raid5_hold_end lets it go) for the
 * write's rounds alone (raid5_map_fallback). The synchronous path, should
 * it write it, does not wait for the parts again (gather_missed) but takes
 * those offered by then. Only a holder that waited counts as in vain.
 */
static int raid5_hold_give_up(struct rt_engine *e, struct engine_aio *ar, bool waited)
{
	struct engine_areq *q = ar->areq;
	struct raid5_hold *h = q->hold;
	uint64_t now = engine_clock_ns();
	unsigned i;

	for (i = 0; i < q->n_part; i++) {
		struct stripe_lock_bucket *b = stripe_lock_bucket(e, q->part[i]);

		stripe_gatherer_set(e, &q->gw[i], q->part[i], false);
		if (h->n_taken[i]) {
			gather_settle(e, q->part[i], h->taken[i], h->n_taken[i], &q->own[i],
				      CONTRIB_OFFERED);
			h->n_taken[i] = 0;
		} else if (waited) {
			pthread_mutex_lock(&b->mu);
			gather_missed(e, b, q->part[i], now + (q->deadline - q->t0));
			pthread_mutex_unlock(&b->mu);
		}
	}
	q->gathering = false;
	q->parked = NULL;
	q->waited = waited;
	ar->wake_ns = 0;
	return -EAGAIN;
}

/* Every stripe whole: queue the writes of [q->a0, q->a1) with the pieces taken. */
static int raid5_hold_write(struct rt_engine *e, struct engine_aio *ar)
{
	const struct raid5_sink to = { .ar = ar };
	struct engine_areq *q = ar->areq;
	struct raid5_hold *h = q->hold;
	uint64_t W = e->lock_unit, C = e->layout.chunk, s, first = q->a0 / W, last = (q->a1 - 1) / W;
	unsigned i;
	int ret = 0;

	ar->n = 0;
	for (s = first; s <= last && !ret; s++) {
		struct stripe_contrib whole, *one = &whole;
		uint8_t *parity = h->parity + (s - first) * C;

		for (i = 0; i < q->n_part && q->part[i] != s; i++)
			;
		if (i < q->n_part) {
			ret = raid5_whole_ios(e, &to, s, h->taken[i], h->n_taken[i], parity);
			continue;
		}
		gather_own(e, &whole, s, q->data, q->a0, q->a1);
		ret = raid5_whole_ios(e, &to, s, &one, 1, parity);
	}
	if (ret) {
		/* Too many unit writes for one round: in rounds (raid5_map_fallback). */
		ar->n = 0;
		return raid5_hold_give_up(e, ar, false);
	}
	if (q->gathering)
		atomic_store_explicit(&e->gather_misses, 0, memory_order_relaxed);
	q->gathering = false;
	q->parked = NULL;
	q->taken = true;
	q->round = 1;
	ar->wake_ns = 0;
	return 0;
}

/*
 * Take the offers that make @q's stripes covered only in part whole, as
 * far as they are there. Returns whether every one is whole now.
 */
static bool raid5_hold_take(struct rt_engine *e, struct engine_areq *q)
{
	struct raid5_hold *h = q->hold;
	bool whole = true;
	unsigned i;

	for (i = 0; i < q->n_part; i++) {
		struct stripe_lock_bucket *b = stripe_lock_bucket(e, q->part[i]);

		if (h->n_taken[i])
			continue;
		pthread_mutex_lock(&b->mu);
		h->n_taken[i] = gather_cover(e, b, q->part[i], &q->own[i], h->taken[i]);
		gather_take(b, h->taken[i], h->n_taken[i], &q->own[i]);
		pthread_mutex_unlock(&b->mu);
		whole &= h->n_taken[i] != 0;
	}
	return whole;
}

/* Could offers there now make a stripe @q still waits for whole? */
static bool raid5_hold_coverable(struct rt_engine *e, struct engine_areq *q)
{
	struct stripe_contrib *out[ENGINE_GATHER_MAX];
	bool any = false;
	unsigned i;

	for (i = 0; i < q->n_part && !any; i++) {
		struct stripe_lock_bucket *b = stripe_lock_bucket(e, q->part[i]);

		if (q->hold->n_taken[i])
			continue;
		pthread_mutex_lock(&b->mu);
		any = gather_cover(e, b, q->part[i], &q->own[i], out) != 0;
		pthread_mutex_unlock(&b->mu);
	}
	return any;
}

/*
 * The step of a holder on the ring, first or woken: take what makes its
 * stripes whole and write them (0), or wait on (-EINPROGRESS, @ar->wake_ns
 * set), or give up (-EAGAIN; at once with @stop: the array changed).
 * Waiting, it is on the buckets of the stripes it lacks parts of before it
 * is armed, and it looks at them once more after: an offer coming in
 * between finds it unarmed and leaves it there.
 * Once armed, its caller's resume or engine_aio_expire may map it again
 * at once: hands off, but for that last look under the buckets' mutexes.
 */
int raid5_hold_step(struct rt_engine *e, struct engine_aio *ar, bool stop)
{
	struct engine_areq *q = ar->areq;
	uint64_t until;
	unsigned i;

	for (;;) {
		for (i = 0; i < q->n_part; i++)
			stripe_gatherer_set(e, &q->gw[i], q->part[i], false);
		if (stop)
			return raid5_hold_give_up(e, ar, false);
		if (raid5_hold_take(e, q))
			return raid5_hold_write(e, ar);
		if (!q->may_wait || ar->queued >= ENGINE_AIO_QUEUED_MAX ||
		    atomic_load(&e->aread_gate))
			return raid5_hold_give_up(e, ar, q->gathering);
		until = gather_until(e, q->a0, q->a1, q->t0, q->deadline, &q->gi,
				     engine_clock_ns());
		if (!until)
			return raid5_hold_give_up(e, ar, true);
		q->gathering = true;
		q->parked = ar;
		ar->wake_ns = until;
		for (i = 0; i < q->n_part; i++)
			if (!q->hold->n_taken[i])
				stripe_gatherer_set(e, &q->gw[i], q->part[i], true);
		atomic_store(&q->armed, true);
		if (!raid5_hold_coverable(e, q) || !atomic_exchange(&q->armed, false))
			return -EINPROGRESS;
	}
}

/*
 * engine_write_map of a raid5 write whose stripes are all locked, healthy:
 * hold them on the caller's ring and write them whole, parity from the new
 * data alone, with the parts that writers queued on them offer (the first
 * and last stripe, where the write covers them only in part); wait for
 * those parts as raid5_gather would (without a thread: -EINPROGRESS until
 * an offer or engine_aio_expire wakes it), or give up (-EAGAIN, what it
 * borrowed kept for its rounds: raid5_map_fallback), at once when its
 * stripes' writes do not fit in one round. Borrows a struct raid5_hold
 * for its parity and the pieces it takes: none free (ENGINE_RING_HOLDS
 * hold already) is -EAGAIN with nothing borrowed.
 */
int raid5_map_hold(struct rt_engine *e, struct engine_aio *ar, uint8_t *buf, uint64_t a0,
		   uint64_t a1)
{
	struct engine_areq *q = ar->areq;
	uint64_t W = e->lock_unit, C = e->layout.chunk, ns = (a1 - 1) / W - a0 / W + 1;
	struct raid5_hold *h;
	bool others;
	unsigned i;

	/* A drain stops new holders (aread_gate) and waits for these, whose windows end. */
	h = engine_hold_get(e);
	if (!h)
		return -EAGAIN;
	q->hold = h;
	q->waited = false;
	q->data = buf;
	q->a0 = a0;
	q->a1 = a1;
	q->gathering = q->taken = false;
	q->n_part = gather_parts(e, a0, a1, q->part);
	for (i = 0; i < q->n_part; i++) {
		gather_own(e, &q->own[i], q->part[i], buf, a0, a1);
		q->gw[i] = (struct stripe_gatherer){ .q = q };
	}
	/*
	 * Every stripe's writes in one round: a whole one takes d + 1 unit
	 * writes (raid5_range_writes), one made of pieces up to twice that
	 * (the pieces' cuts); and every stripe's parity in @h. Else in rounds
	 * (raid5_map_fallback).
	 */
	if ((ns + 2) * raid5_range_writes(e) > ENGINE_AIO_MAX || ns * C > ENGINE_DATA_CAP)
		return raid5_hold_give_up(e, ar, false);
	/* Another write under way: a synchronous one, or a mapped one besides this. */
	others = atomic_load_explicit(&e->writers, memory_order_relaxed) > 0 ||
		 atomic_load_explicit(&e->aread_inflight, memory_order_relaxed) > 1;
	q->may_wait = ar->resume && gather_window(e, a0, a1, others, &q->t0, &q->deadline, &q->gi);
	for (i = 0; i < q->n_part && q->may_wait; i++) {
		struct stripe_lock_bucket *b = stripe_lock_bucket(e, q->part[i]);

		pthread_mutex_lock(&b->mu);
		q->may_wait = gather_not_given_up(b, q->part[i]);
		pthread_mutex_unlock(&b->mu);
	}
	return raid5_hold_step(e, ar, false);
}

/*
 * A holder waiting on the ring (-EINPROGRESS with @ar->wake_ns) reached
 * its time: true when the caller is now to map it again, false when an
 * offer woke it first (its resume is on its way).
 */
bool engine_aio_expire(struct rt_engine *e, struct engine_aio *ar)
{
	struct engine_areq *q = e && ar ? engine_areq_parked(e, ar) : NULL;

	return q && q->gathering && atomic_exchange(&q->armed, false);
}
