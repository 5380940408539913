/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Stripe locks: a stripe is layout's row of chunks (raid0/raid5) or one
 * chunk (linear/raid1); writers lock the stripes of their piece in
 * ascending order in a hashed table, so two writers never overlap on a
 * stripe and never deadlock. raid5 and raid1 writes always lock (parity
 * must match its data; mirrors must not end up different when two writes
 * to the same block race); raid0/linear lock when the piece is not block
 * aligned, because then it reads, merges and rewrites the enclosing
 * blocks. Such a read-modify-write must also be ordered against every
 * aligned write of the blocks it rewrites, or an aligned write landing
 * between its read and its write-back is undone: so when the array's block
 * size is smaller than the units' logical block size (the only case where
 * requests from the block device can be unaligned to the units), raid0 and
 * linear lock every write (e->lock_all); otherwise aligned writes stay
 * lock-free. Reads without a faulty role never lock: they only touch data
 * (never parity), so a read racing a write of the same bytes sees old or
 * new data per block, as on any disk. With a faulty role, raid5 reads take
 * the stripe locks of their piece (the same ascending order as writers),
 * since a reconstruction XORs a whole column of the stripe and must never
 * mix a half-written stripe. The context is taken before any stripe lock,
 * never the other way round.
 *
 * Two kinds of lockers. A thread on the synchronous path waits on the
 * bucket's condition. An event-driven write (engine_write_map), or a
 * raid5 read with a role faulty (engine_read_map), whose
 * thread is an event loop that must never sleep, takes its locks without
 * waiting (stripe_lock_try: all or none, ascending) and holds them until
 * its unit I/O completed; when one is held, or threads wait in its bucket
 * (they go first), the request is queued on the bucket instead
 * (stripe_lock_park) and resumed, through its caller's callback, when a
 * lock of the bucket is let go or its last waiting thread leaves: it then
 * tries again. A queued write holds nothing, so it cannot deadlock anyone.
 * A queued raid5 write offers its part of the stripe to the holder
 * meanwhile, as a waiting thread does (stripe_offer_park): the holder may
 * be gathering that stripe (raid5_gather) and waiting for just that part.
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

#include "internal.h"

int stripe_locks_init(struct rt_engine *e)
{
	pthread_condattr_t ca;
	unsigned i;

	e->buckets = calloc(ENGINE_LOCK_BUCKETS, sizeof(*e->buckets));
	if (!e->buckets)
		return -ENOMEM;
	/* Holders' windows are on the monotonic clock: a clock step neither ends nor stretches them. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	for (i = 0; i < ENGINE_LOCK_BUCKETS; i++) {
		pthread_mutex_init(&e->buckets[i].mu, NULL);
		pthread_cond_init(&e->buckets[i].cond, &ca);
	}
	pthread_condattr_destroy(&ca);
	return 0;
}

void stripe_locks_free(struct rt_engine *e)
{
	unsigned i;

	if (!e->buckets)
		return;
	for (i = 0; i < ENGINE_LOCK_BUCKETS; i++) {
		pthread_mutex_destroy(&e->buckets[i].mu);
		pthread_cond_destroy(&e->buckets[i].cond);
	}
	free(e->buckets);
	e->buckets = NULL;
}

struct stripe_lock_bucket *stripe_lock_bucket(struct rt_engine *e, uint64_t stripe)
{
	/* Fibonacci hashing spreads consecutive stripes over the buckets. */
	uint64_t h = stripe * 0x9e3779b97f4a7c15ull;

	return &e->buckets[h >> (64 - __builtin_ctz(ENGINE_LOCK_BUCKETS))];
}

static bool stripe_lock_held(const struct stripe_lock_bucket *b, uint64_t stripe)
{
	const struct stripe_lock_entry *l;

	for (l = b->held; l; l = l->next)
		if (l->stripe == stripe)
			return true;
	return false;
}

/*
 * Offer the part of @o in stripe @s (covered only in part) to the stripe's
 * holder. Returns the offer, or NULL when the piece covers all of @s.
 */
static struct stripe_contrib *stripe_offer_prepare(struct rt_engine *e, struct engine_ctx *c,
						   const struct stripe_offer *o, uint64_t s,
						   uint64_t first)
{
	uint64_t W = e->lock_unit, base = s * W;
	struct stripe_contrib *k = &c->offer[s == first ? 0 : 1];

	if (o->a0 <= base && o->a1 >= base + W)
		return NULL;
	k->stripe = s;
	k->lo = max_u64(o->a0, base);
	k->hi = min_u64(o->a1, base + W);
	k->data = o->data + (k->lo - o->a0);
	k->state = CONTRIB_IDLE;
	k->next = NULL;
	return k;
}

void stripe_offer_withdraw(struct stripe_lock_bucket *b, struct stripe_contrib *k)
{
	struct stripe_contrib **pp;

	for (pp = &b->offers; *pp; pp = &(*pp)->next) {
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	}
	k->state = CONTRIB_IDLE;
}

/*
 * With @b's mutex held: put @k on the bucket's offers and wake whoever may
 * be gathering its stripe: a holder on a thread waits on the bucket's
 * condition; a holder on a ring (raid5_map_hold) that is still armed is
 * taken off the bucket and returned, chained by wait_next, for the caller
 * to resume once it let go of the mutex (resume_parked).
 */
static struct engine_aio *stripe_offer_post(struct stripe_lock_bucket *b,
					    struct stripe_contrib *k)
{
	struct stripe_gatherer **pp = &b->gatherers, *g;
	struct engine_aio *wake = NULL;

	k->state = CONTRIB_OFFERED;
	k->next = b->offers;
	b->offers = k;
	pthread_cond_broadcast(&b->cond);
	while ((g = *pp)) {
		if (!atomic_exchange(&g->q->armed, false)) {
			pp = &g->next;
			continue;
		}
		*pp = g->next;
		g->linked = false;
		g->q->parked->wait_next = wake;
		wake = g->q->parked;
	}
	return wake;
}

/*
 * A holder on a ring waits on stripe @stripe's bucket for offers (@g):
 * linked (@on) or taken off. Under the bucket's mutex; @g->linked says
 * whether it is there.
 */
void stripe_gatherer_set(struct rt_engine *e, struct stripe_gatherer *g, uint64_t stripe,
			 bool on)
{
	struct stripe_lock_bucket *b = stripe_lock_bucket(e, stripe);
	struct stripe_gatherer **pp;

	pthread_mutex_lock(&b->mu);
	if (on && !g->linked) {
		g->next = b->gatherers;
		b->gatherers = g;
		g->linked = true;
	} else if (!on && g->linked) {
		for (pp = &b->gatherers; *pp; pp = &(*pp)->next) {
			if (*pp == g) {
				*pp = g->next;
				break;
			}
		}
		g->linked = false;
	}
	pthread_mutex_unlock(&b->mu);
}

/* The mapped writes queued on @b (its mutex held), to resume once it is unlocked. */
static struct engine_aio *bucket_take_parked(struct stripe_lock_bucket *b)
{
	struct engine_aio *a = b->parked;

	b->parked = NULL;
	return a;
}

/* Each may be mapped again at once by its own thread: read the link first. */
static void resume_parked(struct engine_aio *a)
{
	while (a) {
		struct engine_aio *next = a->wait_next;

		a->wait_next = NULL;
		a->resume(a);
		a = next;
	}
}

/*
 * Ascending order across all writers: no deadlock between overlapping ranges.
 * With @o (a raid5 writer whose data is ready), a writer that has to wait
 * for its first or last stripe, which it covers only in part, offers its
 * part of that stripe to the holder; when the holder wrote it, the writer
 * does not take that lock at all. Returns which: bit 0 the first stripe,
 * bit 1 the last.
 */
unsigned stripe_lock_acquire_offer(struct rt_engine *e, struct engine_ctx *c,
					  uint64_t first, uint64_t last,
					  const struct stripe_offer *o)
{
	unsigned written = 0;
	uint64_t s;

	for (s = first; s <= last; s++) {
		struct stripe_lock_bucket *b = stripe_lock_bucket(e, s);
		struct stripe_lock_entry *l = &c->locks[s - first];
		struct stripe_contrib *k = NULL;
		struct engine_aio *parked = NULL;
		bool waited = false;

		l->stripe = s;
		if (o && (s == first || s == last))
			k = stripe_offer_prepare(e, c, o, s, first);
		pthread_mutex_lock(&b->mu);
		while (stripe_lock_held(b, s)) {
			if (k && k->state == CONTRIB_DONE)
				break;
			if (k && k->state == CONTRIB_IDLE) {
				struct engine_aio *wake = stripe_offer_post(b, k);

				if (wake) {
					pthread_mutex_unlock(&b->mu);
					resume_parked(wake);
					pthread_mutex_lock(&b->mu);
					continue;	/* look again: the mutex was let go */
				}
			}
			b->waiters++;
			atomic_fetch_add_explicit(&e->blocked, 1, memory_order_relaxed);
			pthread_cond_wait(&b->cond, &b->mu);
			atomic_fetch_sub_explicit(&e->blocked, 1, memory_order_relaxed);
			b->waiters--;
			waited = true;
		}
		/* The last waiter leaving may be what queued mapped writes wait for. */
		if (waited && !b->waiters)
			parked = bucket_take_parked(b);
		if (k && k->state == CONTRIB_DONE) {
			k->state = CONTRIB_IDLE;
			written |= s == first ? 1u : 2u;
			pthread_mutex_unlock(&b->mu);
			resume_parked(parked);
			continue;
		}
		/* A holder resolves what it took before letting go of the lock. */
		if (k && k->state == CONTRIB_OFFERED)
			stripe_offer_withdraw(b, k);
		l->next = b->held;
		b->held = l;
		pthread_mutex_unlock(&b->mu);
		resume_parked(parked);
	}
	return written;
}

void stripe_lock_acquire(struct rt_engine *e, struct engine_ctx *c,
				uint64_t first, uint64_t last)
{
	(void)stripe_lock_acquire_offer(e, c, first, last, NULL);
}

void stripe_lock_release(struct rt_engine *e, struct engine_ctx *c,
			 uint64_t first, uint64_t last)
{
	stripe_unlock(e, c->locks, first, last);
}

/*
 * Take the locks of stripes [first, last] into @locks without waiting, for
 * a request whose thread must never sleep (engine_write_map). False, none
 * held, when one of them is held or a writer waits in its bucket: a waiter
 * is never overtaken for long by requests that do not wait. Ascending
 * order, as everyone: a request that gives up holds nothing.
 */
bool stripe_lock_try(struct rt_engine *e, struct stripe_lock_entry *locks,
		     uint64_t first, uint64_t last, uint64_t *busy)
{
	uint64_t s;

	for (s = first; s <= last; s++) {
		struct stripe_lock_bucket *b = stripe_lock_bucket(e, s);
		struct stripe_lock_entry *l = &locks[s - first];
		bool taken;

		l->stripe = s;
		pthread_mutex_lock(&b->mu);
		taken = b->waiters || stripe_lock_held(b, s);
		if (!taken) {
			l->next = b->held;
			b->held = l;
		}
		pthread_mutex_unlock(&b->mu);
		if (taken) {
			if (s > first)
				stripe_unlock(e, locks, first, s - 1);
			*busy = s;
			return false;
		}
	}
	return true;
}

/*
 * Queue the mapped request @ar on stripe @stripe's bucket while the stripe is
 * held or writers wait there: @ar->resume is called once a lock of the
 * bucket is let go or its last waiter leaves. False when the stripe is
 * free by now: try again.
 */
bool stripe_lock_park(struct rt_engine *e, uint64_t stripe, struct engine_aio *ar)
{
	struct stripe_lock_bucket *b = stripe_lock_bucket(e, stripe);
	bool busy;

	pthread_mutex_lock(&b->mu);
	busy = b->waiters || stripe_lock_held(b, stripe);
	if (busy) {
		ar->wait_next = b->parked;
		b->parked = ar;
	}
	pthread_mutex_unlock(&b->mu);
	return busy;
}

/*
 * A mapped raid5 write inside stripe @k->stripe, whose lock is held or
 * waited for: its part @k ([lo, hi) from @data, state CONTRIB_IDLE the
 * first time) goes on the bucket's offers, where the holder may take it
 * into a whole stripe as it takes a waiting thread's (raid5_gather), and
 * @ar is queued on the bucket as by stripe_lock_park. Called again once
 * @ar is resumed, it settles the offer under the bucket's mutex, so that
 * a holder never sees it half withdrawn:
 *   1            the holder wrote it (data and parity on the units): done;
 *   -EINPROGRESS queued again: the holder is writing it, or the stripe is
 *                still held or waited for (the offer stays);
 *   0            the stripe is free and the offer withdrawn (or given
 *                back after a failed write): take the lock and write it;
 *                so too, held or not, without @may_wait unless the
 *                holder is writing it.
 */
int stripe_offer_park(struct rt_engine *e, struct stripe_contrib *k, struct engine_aio *ar,
		      bool may_wait)
{
	struct stripe_lock_bucket *b = stripe_lock_bucket(e, k->stripe);
	struct engine_aio *wake = NULL;
	int ret = -EINPROGRESS;

	pthread_mutex_lock(&b->mu);
	if (k->state == CONTRIB_DONE) {
		k->state = CONTRIB_IDLE;
		ret = 1;
	} else if (k->state == CONTRIB_TAKEN ||
		   (may_wait && (b->waiters || stripe_lock_held(b, k->stripe)))) {
		if (k->state == CONTRIB_IDLE)
			wake = stripe_offer_post(b, k);
		ar->wait_next = b->parked;
		b->parked = ar;
	} else {
		if (k->state == CONTRIB_OFFERED)
			stripe_offer_withdraw(b, k);
		ret = 0;
	}
	pthread_mutex_unlock(&b->mu);
	resume_parked(wake);
	return ret;
}

/* Let go of the locks of stripes [first, last], taken into @locks. */
void stripe_unlock(struct rt_engine *e, struct stripe_lock_entry *locks,
		   uint64_t first, uint64_t last)
{
	uint64_t s;

	for (s = first; s <= last; s++) {
		struct stripe_lock_bucket *b = stripe_lock_bucket(e, s);
		struct stripe_lock_entry *l = &locks[s - first], **pp;
		struct engine_aio *parked;

		pthread_mutex_lock(&b->mu);
		for (pp = &b->held; *pp; pp = &(*pp)->next) {
			if (*pp == l) {
				*pp = l->next;
				break;
			}
		}
		/* Waiters for other stripes of the bucket just recheck. */
		if (b->waiters)
			pthread_cond_broadcast(&b->cond);
		parked = bucket_take_parked(b);
		pthread_mutex_unlock(&b->mu);
		resume_parked(parked);
	}
}
