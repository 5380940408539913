/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The request path of a running array.
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
 *   bytes ~= ENGINE_CONTEXTS * (D + S + R + B) + ENGINE_LOCK_BUCKETS * 128 B
 *     D = ENGINE_PIECE + 2 * 4 KiB       aligned data buffer (1 MiB + 8 KiB)
 *     S = D for raid5, else 0            parity and old-data scratch
 *     R ~= 25 KiB                        io_uring ring: 256 SQEs, 512 CQEs
 *     B ~= 3 KiB + 200 B * (D / chunk + 8) + 40 B * n_units   bookkeeping
 *   Gathering whole stripes from several writers adds no buffers;
 *   engine_discard's zeros add ENGINE_PIECE (1 MiB) once per engine; a
 *   recover walk borrows 2 * n * ENGINE_WALK_STEP (at most ENGINE_WALK_MEM,
 *   32 MiB) while it runs.
 *   With ENGINE_CONTEXTS = 16 and ENGINE_PIECE = 1 MiB: about 17 MiB for
 *   linear/raid0/raid1 and 33 MiB for raid5 with 64 KiB chunks (B adds at
 *   most about 0.8 MiB more with 4 KiB chunks). The data and scratch
 *   buffers are registered with io_uring (pinned) when the kernel allows.
 *
 * An aligned request into an aligned caller buffer does I/O straight from
 * or to the caller's memory; anything else is copied exactly once through
 * the context's data buffer.
 *
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
 * raid5 writes work per stripe on column ranges: the in-chunk offsets
 * touched by the same set of data chunks (at most three per stripe). For a
 * column range of L bytes touched on t of d data chunks,
 * read-modify-write reads t + 1 ranges (old data and old parity) and
 * reconstruct-write reads d - t ranges (the untouched data); all of them
 * are L bytes, so counting I/Os counts bytes too. Reconstruct-write is
 * chosen when d - t <= t + 1: on a tie it wins because it recomputes
 * parity from data instead of trusting the old parity. A full stripe is
 * t = d: parity from the new data alone, no reads. When a piece needs more
 * than one round of scratch, each round writes its parity and its data
 * together, so every stripe is consistent again after each round.
 *
 * Gathering (raid5, healthy). The block layer hands us large writes in
 * parts of about 512 KiB, so a stream rarely covers a stripe with one
 * request. A writer whose aligned piece covers its first or last stripe in
 * part and has to wait for that stripe's lock offers its part (its data is
 * in place before it waits) on the lock bucket's list. The holder of a
 * stripe it covers in part takes offers that make the stripe whole
 * (waiting a bounded window for them, see raid5_gather), writes the
 * stripe with parity from the new data alone straight from every
 * writer's buffer, and marks those offers done before it lets go of the
 * lock; their writers then skip that stripe (they never take its lock)
 * and are acknowledged like any writer whose data and parity are on the
 * units. An offer taken but not written (an I/O error) is given back and
 * its writer writes it itself. A writer only ever waits for a stripe lock
 * holding the locks of lower stripes, as before, and a holder's wait is
 * bounded, so nothing deadlocks.
 *
 * Degraded mode. e->faulty is a bit mask of faulty roles: missing at
 * engine_create, failed an I/O, or failed by engine_fail_role. The healthy
 * path pays one acquire load of it per piece and nothing else. A unit I/O
 * error (other than -EAGAIN/-EINTR that never stopped) is noted in the
 * context; once its run has reaped everything, the role is marked faulty
 * under fail_mu: the failure handler runs first, then the bit is
 * published, so no request can rely on the role being gone (write around
 * it, acknowledge) before the handler has recorded it in the superblocks;
 * requests hitting the same role wait on fail_mu meanwhile. The piece is
 * then redone with the new mask (writes still under their stripe locks);
 * the mask only grows, so this ends.
 *   raid1: reads go to the next working mirror, writes to working mirrors.
 *   raid5, one faulty role x: a read of x's chunk is the XOR of the other
 *     roles' same columns (in scratch-sized column pieces). Writes keep
 *     the parity covering x: x the parity role: data only; x written:
 *     reconstruct-write over the others (parity takes x's new value);
 *     x not written: read-modify-write (never reads x). A redo after a
 *     failure mid-piece may trust the parity: all I/O of the failed round
 *     but x's completed, so its stripes hold the new data apart from x.
 *   Beyond what the level spares (raid1: all mirrors, raid5: two roles),
 *     every write and flush fails with -EIO (stop rather than corrupt);
 *     reads that can still be served are. linear/raid0: requests that
 *     need a faulty role fail with -EIO before any I/O, others work,
 *     flushes fail.
 *   A role being rebuilt (engine_attach_unit) is also in e->rebuild: it
 *     stays in the faulty mask for reads (never read until the recover walk
 *     completes) but every write goes to it at every offset: raid1 writes
 *     all mirrors but the faulty ones; raid5 plans with it as the faulty
 *     role x, except that x's data and parity (from the data alone) are
 *     written too. So a unit stays valid wherever it was, and a recover
 *     walk may resume from a checkpoint. Completion clears the faulty bit,
 *     then the rebuild bit; writers load rebuild before faulty.
 *   Background walks (lib/rebuild.c) work in batches of whole stripes under
 *     the same stripe locks, a context taken first, like any writer. A
 *     recover batch locks ENGINE_WALK_SPAN bytes of each role and goes
 *     through it in ENGINE_WALK_STEP transfers, two steps overlapping (the
 *     write of one with the reads of the next), from buffers of its own.
 *
 * Errors that are not the disk's fault. A unit that answers ENOSPC or
 * EDQUOT (a thin or file-backed unit whose backing store is full) is not
 * failed: the request fails with -ENOSPC (the FUSE reply, so the writer
 * sees ENOSPC or the kernel's mapping of it), the role is noted in
 * e->nospace until one of its writes succeeds again, and the array stays
 * up. A raid1/raid5 write that failed that way may have reached some units
 * and not others, leaving its stripes' mirrors or parity inconsistent: its
 * regions are pinned dirty in the log (never aged out, kept by a clean
 * stop) and owed a resync, which the run path starts once no unit is short
 * of space (engine_resync_owed); without a log the whole array is owed one.
 * Until that resync, such a stripe is as exposed as after a crash (a role
 * lost meanwhile could be reconstructed wrong there).
 * Any other read or write error is tried again up to retry_count times,
 * spread over retry_window_ms (engine_set_retries), before the role is
 * failed: a transient error (a bus reset, a path failover) costs a delay,
 * not a rebuild. A failed flush is never tried again (see ctx_complete_io).
 *
 * Dirty-region log: see struct engine_dl below. The healthy write path
 * pays one atomic bit test per region of its piece when the region is
 * already dirty.
 */
#include <errno.h>
#include <linux/fs.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include <liburing.h>

#include <raidtool/dirtylog.h>
#include <raidtool/engine.h>
#include <raidtool/layout.h>
#include <raidtool/log.h>
#include <raidtool/parity.h>
#include <raidtool/rebuild.h>
#include <raidtool/unit.h>

#include "engine-internal.h"

#define ENGINE_CONTEXTS 16u
#define ENGINE_PIECE (1u << 20)		/* FUSE's max_write */
#define ENGINE_ALIGN_MAX 4096u		/* largest logical block size we accept */
#define ENGINE_DATA_CAP (ENGINE_PIECE + 2u * ENGINE_ALIGN_MAX)
#define ENGINE_RING_ENTRIES 256u
#define ENGINE_LOCK_BUCKETS 1024u	/* power of two */
#define ENGINE_RETRY_MAX 10000u		/* -EAGAIN resubmissions of one I/O */
#define ENGINE_ERR_TRIES_MAX 100u	/* fits engine_io.err_tries */
#define ENGINE_RETRY_WINDOW_MAX_MS 600000u
#define ENGINE_WALK_SPAN (16u << 20)	/* role bytes a recover batch locks */
#define ENGINE_WALK_STEP (4u << 20)	/* role bytes per unit transfer of a recover */
#define ENGINE_WALK_MEM (32u << 20)	/* the recover walk's buffers, at most */
#define ENGINE_WALK_STRIPES 256u	/* stripes a walk batch may lock */

enum engine_op {
	ENGINE_OP_READ,
	ENGINE_OP_WRITE,
	ENGINE_OP_FSYNC,
};

/* One transfer to one unit; resubmitted from @done after a short transfer. */
struct engine_io {
	uint8_t *buf;
	uint64_t off;			/* device offset */
	uint32_t len;
	uint32_t done;
	uint32_t role;
	uint16_t retries;
	uint8_t err_tries;		/* times tried again after an error */
	uint8_t op;
	bool fixed;			/* @buf lies in the registered buffer */
};

/* Single writer (the context's owner), read by engine_get_stats. */
struct engine_ctx_stats {
	_Atomic uint64_t reads, writes, flushes, read_bytes, write_bytes, errors;
	/* raid5 stripes written: whole (of them, merged from several requests), RMW, RCW. */
	_Atomic uint64_t stripe_full, stripe_merged, stripe_rmw, stripe_rcw;
	_Atomic uint64_t discards, discard_bytes;
	struct {
		_Atomic uint64_t reads, writes, read_bytes, write_bytes, errors, retries;
	} unit[RT_MAX_UNITS];
};

struct stripe_lock_entry {
	struct stripe_lock_entry *next;
	uint64_t stripe;
};

/*
 * A raid5 writer waiting for the lock of a stripe its piece covers only in
 * part offers its data for that stripe here; the lock's holder may write it
 * as part of a whole stripe (see raid5_gather). @data holds [lo, hi).
 */
enum contrib_state {
	CONTRIB_IDLE,			/* not offered */
	CONTRIB_OFFERED,		/* on the bucket's list */
	CONTRIB_TAKEN,			/* the holder is writing it */
	CONTRIB_DONE,			/* written (data and parity on the units) */
};

struct stripe_contrib {
	struct stripe_contrib *next;
	uint64_t stripe;
	uint64_t lo, hi;		/* logical bytes, inside the stripe */
	const uint8_t *data;
	int state;			/* enum contrib_state, under the bucket's mutex */
};

struct stripe_lock_bucket {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct stripe_lock_entry *held;
	struct stripe_contrib *offers;
	/* raid5_gather: until when holders of stripe given_up - 1 do not wait. */
	uint64_t given_up, given_up_until;
	unsigned waiters;
} __attribute__((aligned(64)));

/* What a writer offers while it waits: its piece [a0, a1) in @data. */
struct stripe_offer {
	uint64_t a0, a1;
	const uint8_t *data;
};

#define ENGINE_GATHER_MAX 16u		/* pieces one gathered stripe is made of */
#define ENGINE_GATHER_US_DEFAULT 10000u	/* longest wait for a stripe's other parts */
#define ENGINE_GATHER_US_MAX 1000000u
#define ENGINE_RECENT_WRITES 32u		/* ends of recent writes: streams are seen */
#define ENGINE_GATHER_MISSES 8u		/* waits in vain in a row: stop waiting ... */
#define ENGINE_GATHER_PROBE 64u		/* ... but for one write in this many */
#define ENGINE_GATHER_GRACE 8u		/* the first 1/8 of the window: wait anyway */

/* A column range of one raid5 stripe, planned for one parity update. */
struct raid5_seg {
	uint64_t base;			/* logical offset of the stripe's data */
	uint64_t unit_off;		/* unit offset of column @col */
	uint32_t col, len;		/* [col, col + len) in every chunk */
	uint32_t k_first, k_last;	/* data chunks written in that range */
	uint32_t parity_role;
	uint32_t skip_role;		/* faulty role: neither read nor written */
	bool reconstruct;
	bool data_only;			/* the parity role is faulty: no parity */
	/*
	 * Scratch. Read-modify-write: old parity, then the old data of
	 * k_first..k_last. Reconstruct-write: the old data of the other
	 * chunks in chunk order. Then the new parity.
	 */
	uint8_t *old;
	uint8_t *parity;
};

struct engine_ctx {
	_Atomic int busy;
	bool ring_ok, fixed_ok, broken;
	bool backoff;			/* an I/O waits to be tried again after an error */
	struct io_uring ring;
	uint8_t *mem;			/* data then scratch, registered */
	size_t mem_size;
	uint8_t *data;
	uint8_t *scratch;
	size_t scratch_cap;
	struct engine_io *ios;
	struct engine_io **retry;
	unsigned n_ios, ios_cap, n_retry;
	struct raid5_seg *segs;
	unsigned n_segs, segs_cap;
	struct stripe_lock_entry *locks;
	unsigned locks_cap;
	struct stripe_contrib offer[2];	/* this writer's offers: first, last stripe */
	/* raid5_gather: the pieces of up to two whole stripes being written. */
	struct stripe_contrib *taken[2][ENGINE_GATHER_MAX];
	unsigned n_taken[2];
	unsigned rr;			/* raid1 read spreading */
	uint64_t failed;		/* roles that failed an I/O in the current run */
	struct engine_ctx_stats stats;
};

struct rt_engine {
	struct layout layout;
	uint64_t size;
	uint64_t data_offset;
	uint64_t lock_unit;		/* logical bytes of one stripe */
	uint32_t n;
	uint32_t data_roles;
	uint32_t align;			/* logical block size of the units */
	/*
	 * The array's block size is smaller than @align: requests may need a
	 * read-modify-write of a unit block, so every write locks its stripes.
	 */
	bool lock_all;
	int fd[RT_MAX_UNITS];
	/*
	 * Bit r: role r is faulty (missing at start, failed an I/O, or failed
	 * by engine_fail_role). Only ever gains bits, each published after the
	 * failure handler returned, under fail_mu.
	 */
	_Atomic uint64_t faulty;
	/*
	 * Bit r: role r (also set in @faulty) has a unit attached that is
	 * being rebuilt: writes go to it, reads never do. Cleared when the
	 * recover walk completes (after @faulty loses the bit) or the unit
	 * fails. Loaded before @faulty, stored after it: see the write path.
	 */
	_Atomic uint64_t rebuild;
	struct rt_unit *unit[RT_MAX_UNITS];
	pthread_mutex_t admin_mu;	/* attach/detach: one drain at a time */
	pthread_mutex_t fail_mu;
	engine_failure_fn on_fail;
	void *on_fail_ctx;

	struct engine_ctx *ctx;
	unsigned n_ctx;
	pthread_mutex_t pool_mu;
	pthread_cond_t pool_cond;
	atomic_uint pool_waiters;

	struct stripe_lock_bucket *buckets;

	/* Bit r: role r's last write failed for want of space (ENOSPC, EDQUOT). */
	_Atomic uint64_t nospace;
	/* No log: a write that failed for want of space left stripes unsynced. */
	_Atomic uint64_t owed_all;
	_Atomic unsigned retry_count, retry_window_ms;

	/*
	 * raid5_gather: how long to wait for a stripe's parts, the waits in
	 * vain since the last that was not, and where the last writes to
	 * arrive lie (engine_write_streams).
	 */
	atomic_uint gather_us;
	atomic_uint gather_misses;
	struct {
		_Atomic uint64_t off, end;
	} recent[ENGINE_RECENT_WRITES];
	atomic_uint recent_next;

	uint8_t *zeros;			/* ENGINE_PIECE bytes of zeros: engine_discard */
	uint8_t *walk_mem;		/* recover_range, when a recover walk first ran */
	size_t walk_step;

	struct rt_walk *walk;		/* lib/rebuild.c */
	struct engine_dl *dl;		/* the dirty-region log, NULL when none */
	struct engine_fault_hooks hooks;	/* tests only */

	/*
	 * Event-driven I/O (engine_read_map, engine_write_map): unit I/O the
	 * caller runs on its own ring. A drain closes @aread_gate and waits for
	 * @aread_inflight to reach 0 before a unit's descriptor may change.
	 */
	atomic_uint aread_inflight;
	atomic_bool aread_gate;
	atomic_uint aread_rr;
	struct engine_ctx_stats aread_stats;	/* updated with atomic adds */
};

static __thread unsigned engine_ctx_hint;

static int engine_unit_align(int fd, uint32_t *align);
static void engine_drain(struct rt_engine *e);
static void engine_undrain(struct rt_engine *e);
static bool engine_dl_resync_owed(const struct rt_engine *e, uint64_t off, uint64_t len);
static int engine_dl_mark(struct rt_engine *e, struct engine_ctx *c, uint64_t first,
			  uint64_t last);
static void engine_owe_resync(struct rt_engine *e, uint64_t first, uint64_t last);

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static inline uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static inline uint64_t role_bit(uint32_t role)
{
	return 1ull << role;
}

/* The faulty roles: one load per piece is all the healthy path pays. */
static inline uint64_t engine_faulty(const struct rt_engine *e)
{
	return atomic_load_explicit(&e->faulty, memory_order_acquire);
}

static inline uint64_t engine_rebuilding(const struct rt_engine *e)
{
	return atomic_load_explicit(&e->rebuild, memory_order_acquire);
}

/* Can the array still take writes with the roles in @m faulty? */
static bool engine_tolerates(const struct rt_engine *e, uint64_t m)
{
	unsigned k = (unsigned)__builtin_popcountll(m);

	switch (e->layout.level) {
	case RT_LEVEL_1:
		return k < e->n;
	case RT_LEVEL_5:
		return k <= 1;
	default:
		return k == 0;
	}
}

static inline void stat_add(_Atomic uint64_t *c, uint64_t v)
{
	/* Only the context's owner writes: no read-modify-write atomics needed. */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

/* ---- context pool ---------------------------------------------------- */

static struct engine_ctx *ctx_try_acquire(struct rt_engine *e)
{
	unsigned i, idx, start = engine_ctx_hint;

	for (i = 0; i < e->n_ctx; i++) {
		struct engine_ctx *c;

		idx = (start + i) % e->n_ctx;
		c = &e->ctx[idx];
		if (atomic_load_explicit(&c->busy, memory_order_relaxed))
			continue;
		if (!atomic_exchange(&c->busy, 1)) {
			engine_ctx_hint = idx;
			return c;
		}
	}
	return NULL;
}

/*
 * Lock-free when a context is free. Otherwise sleep: a waiter counts itself
 * before rescanning and the releaser clears busy before looking at the
 * count (both sequentially consistent), so a release cannot slip between
 * the waiter's failed scan and its sleep unnoticed.
 */
static struct engine_ctx *ctx_acquire(struct rt_engine *e)
{
	struct engine_ctx *c = ctx_try_acquire(e);

	if (c)
		return c;
	pthread_mutex_lock(&e->pool_mu);
	atomic_fetch_add(&e->pool_waiters, 1);
	while (!(c = ctx_try_acquire(e)))
		pthread_cond_wait(&e->pool_cond, &e->pool_mu);
	atomic_fetch_sub(&e->pool_waiters, 1);
	pthread_mutex_unlock(&e->pool_mu);
	return c;
}

static int ctx_init_ring(struct engine_ctx *c);

static void ctx_release(struct rt_engine *e, struct engine_ctx *c)
{
	if (c->broken) {
		/* Everything it submitted has been reaped: start a fresh ring. */
		if (c->ring_ok) {
			if (c->fixed_ok)
				io_uring_unregister_buffers(&c->ring);
			io_uring_queue_exit(&c->ring);
		}
		c->ring_ok = c->fixed_ok = false;
		c->broken = ctx_init_ring(c) != 0;
	}
	atomic_store(&c->busy, 0);
	if (atomic_load(&e->pool_waiters)) {
		pthread_mutex_lock(&e->pool_mu);
		pthread_cond_signal(&e->pool_cond);
		pthread_mutex_unlock(&e->pool_mu);
	}
}

/* ---- stripe locks ---------------------------------------------------- */

static struct stripe_lock_bucket *stripe_lock_bucket(struct rt_engine *e, uint64_t stripe)
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

static void stripe_offer_withdraw(struct stripe_lock_bucket *b, struct stripe_contrib *k)
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
 * Ascending order across all writers: no deadlock between overlapping ranges.
 * With @o (a raid5 writer whose data is ready), a writer that has to wait
 * for its first or last stripe, which it covers only in part, offers its
 * part of that stripe to the holder; when the holder wrote it, the writer
 * does not take that lock at all. Returns which: bit 0 the first stripe,
 * bit 1 the last.
 */
static unsigned stripe_lock_acquire_offer(struct rt_engine *e, struct engine_ctx *c,
					  uint64_t first, uint64_t last,
					  const struct stripe_offer *o)
{
	unsigned written = 0;
	uint64_t s;

	for (s = first; s <= last; s++) {
		struct stripe_lock_bucket *b = stripe_lock_bucket(e, s);
		struct stripe_lock_entry *l = &c->locks[s - first];
		struct stripe_contrib *k = NULL;

		l->stripe = s;
		if (o && (s == first || s == last))
			k = stripe_offer_prepare(e, c, o, s, first);
		pthread_mutex_lock(&b->mu);
		while (stripe_lock_held(b, s)) {
			if (k && k->state == CONTRIB_DONE)
				break;
			if (k && k->state == CONTRIB_IDLE) {
				k->state = CONTRIB_OFFERED;
				k->next = b->offers;
				b->offers = k;
				/* A holder gathering this stripe waits on the same condition. */
				pthread_cond_broadcast(&b->cond);
			}
			b->waiters++;
			pthread_cond_wait(&b->cond, &b->mu);
			b->waiters--;
		}
		if (k && k->state == CONTRIB_DONE) {
			k->state = CONTRIB_IDLE;
			written |= s == first ? 1u : 2u;
			pthread_mutex_unlock(&b->mu);
			continue;
		}
		/* A holder resolves what it took before letting go of the lock. */
		if (k && k->state == CONTRIB_OFFERED)
			stripe_offer_withdraw(b, k);
		l->next = b->held;
		b->held = l;
		pthread_mutex_unlock(&b->mu);
	}
	return written;
}

static void stripe_lock_acquire(struct rt_engine *e, struct engine_ctx *c,
				uint64_t first, uint64_t last)
{
	(void)stripe_lock_acquire_offer(e, c, first, last, NULL);
}

static void stripe_lock_release(struct rt_engine *e, struct engine_ctx *c,
				uint64_t first, uint64_t last)
{
	uint64_t s;

	for (s = first; s <= last; s++) {
		struct stripe_lock_bucket *b = stripe_lock_bucket(e, s);
		struct stripe_lock_entry *l = &c->locks[s - first], **pp;

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
		pthread_mutex_unlock(&b->mu);
	}
}

/* ---- unit I/O -------------------------------------------------------- */

/*
 * Make @role faulty: the handler first (it records the failure in the
 * superblocks), then the bit is published, all under fail_mu. A request
 * that hit the same role waits here until then, so no request relies on
 * the role being gone before the handler has run. With @spared_only, a
 * role whose loss the level does not survive is left alone (-EEXIST):
 * decided under fail_mu, so that a unit failing an I/O meanwhile counts.
 */
static int engine_mark_faulty(struct rt_engine *e, uint32_t role, bool spared_only)
{
	uint64_t bit = role_bit(role);
	int ret = -EALREADY;

	pthread_mutex_lock(&e->fail_mu);
	if (spared_only && !(atomic_load(&e->faulty) & bit) &&
	    !engine_tolerates(e, atomic_load(&e->faulty) | bit)) {
		ret = -EEXIST;
	} else if (atomic_load(&e->rebuild) & bit) {
		/* The unit being rebuilt failed: back to plain faulty, the walk stops. */
		rt_log(RT_LOG_WARN, "unit %u failed while being rebuilt", role);
		if (e->on_fail)
			e->on_fail(role, e->on_fail_ctx);
		atomic_fetch_and(&e->rebuild, ~bit);
		ret = 0;
	} else if (!(atomic_load(&e->faulty) & bit)) {
		uint64_t m = atomic_load(&e->faulty) | bit;

		rt_log(RT_LOG_WARN, "unit %u is faulty: %s", role,
		       !engine_tolerates(e, m) ? (e->layout.level == RT_LEVEL_1 ||
						  e->layout.level == RT_LEVEL_5 ?
						  "the array stops taking writes" :
						  "requests that need it fail") :
		       "the array goes on degraded");
		if (e->on_fail)
			e->on_fail(role, e->on_fail_ctx);
		atomic_fetch_or(&e->faulty, bit);
		ret = 0;
	}
	pthread_mutex_unlock(&e->fail_mu);
	return ret;
}

static const char *const engine_op_name[] = { "read", "write", "flush" };

/* The backing store is full: the request fails, the unit is not to blame. */
static inline bool engine_err_nospace(int res)
{
	return res == -ENOSPC || res == -EDQUOT;
}

/*
 * Every failed unit I/O ends here. The role is made faulty once the run
 * has reaped everything (ctx_run_ios); the piece is then retried without it.
 * An I/O that kept returning -EAGAIN/-EINTR is an error but not a fault,
 * and so is one refused for want of space (-ENOSPC, the role stays).
 */
static int engine_unit_error(struct rt_engine *e, struct engine_ctx *c,
			     const struct engine_io *io, int res)
{
	uint64_t bit = role_bit(io->role);

	stat_add(&c->stats.errors, 1);
	stat_add(&c->stats.unit[io->role].errors, 1);
	if (engine_err_nospace(res)) {
		if (!(atomic_fetch_or(&e->nospace, bit) & bit))
			rt_log(RT_LOG_WARN, "unit %u is out of space (%s): it stays in the "
			       "array; writes that need it fail with ENOSPC until it has room",
			       io->role, strerror(-res));
		return -ENOSPC;
	}
	if (res != -EAGAIN && res != -EINTR)
		c->failed |= bit;
	rt_log(RT_LOG_WARN, "unit %u: %s of %u bytes at %llu failed: %s",
	       io->role, engine_op_name[io->op], io->len, (unsigned long long)io->off,
	       strerror(-res));
	return -EIO;
}

/* Wait before trying failed I/O again: retry_count tries span the window. */
static void engine_backoff(struct rt_engine *e)
{
	unsigned n = atomic_load_explicit(&e->retry_count, memory_order_relaxed);
	unsigned w = atomic_load_explicit(&e->retry_window_ms, memory_order_relaxed);
	unsigned ms = n ? w / n : 0;
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (ms && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool ctx_prep_io(struct rt_engine *e, struct engine_ctx *c, struct engine_io *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);
	uint32_t len = io->len - io->done;
	uint64_t off = io->off + io->done;
	int fd = e->fd[io->role];

	if (!sqe)
		return false;
	switch (io->op) {
	case ENGINE_OP_READ:
		if (io->fixed)
			io_uring_prep_read_fixed(sqe, fd, io->buf + io->done, len, off, 0);
		else
			io_uring_prep_read(sqe, fd, io->buf + io->done, len, off);
		break;
	case ENGINE_OP_WRITE:
		if (io->fixed)
			io_uring_prep_write_fixed(sqe, fd, io->buf + io->done, len, off, 0);
		else
			io_uring_prep_write(sqe, fd, io->buf + io->done, len, off);
		break;
	default:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	}
	io_uring_sqe_set_data(sqe, io);
	return true;
}

/* Returns the request's error after this completion (0 while all is well). */
static int ctx_complete_io(struct rt_engine *e, struct engine_ctx *c,
			   struct engine_io *io, int res, int err)
{
	int r;

	if ((res == -EAGAIN || res == -EINTR) && ++io->retries <= ENGINE_RETRY_MAX) {
		c->retry[c->n_retry++] = io;
		return err;
	}
	/*
	 * Reads and writes are tried again; a flush is not: the kernel reports
	 * a writeback error once, and a second fsync would claim success.
	 */
	if (res < 0 && res != -EAGAIN && res != -EINTR && !engine_err_nospace(res) &&
	    io->op != ENGINE_OP_FSYNC &&
	    io->err_tries < atomic_load_explicit(&e->retry_count, memory_order_relaxed)) {
		io->err_tries++;
		stat_add(&c->stats.unit[io->role].retries, 1);
		rt_log(RT_LOG_WARN, "unit %u: %s of %u bytes at %llu failed: %s; trying again "
		       "(%u of %u)", io->role, engine_op_name[io->op], io->len,
		       (unsigned long long)io->off, strerror(-res), io->err_tries,
		       atomic_load_explicit(&e->retry_count, memory_order_relaxed));
		c->backoff = true;
		c->retry[c->n_retry++] = io;
		return err;
	}
	/* A transfer of 0 bytes: the device ends inside the data area. */
	if (res < 0 || (res == 0 && io->op != ENGINE_OP_FSYNC)) {
		r = engine_unit_error(e, c, io, res < 0 ? res : -ENXIO);
		return err ? err : r;
	}
	if (io->op == ENGINE_OP_FSYNC)
		return err;
	io->done += (uint32_t)res;
	if (io->done < io->len) {
		c->retry[c->n_retry++] = io;
		return err;
	}
	if (io->op == ENGINE_OP_READ) {
		stat_add(&c->stats.unit[io->role].reads, 1);
		stat_add(&c->stats.unit[io->role].read_bytes, io->len);
	} else {
		uint64_t bit = role_bit(io->role);

		stat_add(&c->stats.unit[io->role].writes, 1);
		stat_add(&c->stats.unit[io->role].write_bytes, io->len);
		if ((atomic_load_explicit(&e->nospace, memory_order_relaxed) & bit) &&
		    (atomic_fetch_and(&e->nospace, ~bit) & bit))
			rt_log(RT_LOG_INFO, "unit %u takes writes again", io->role);
	}
	return err;
}

/*
 * Submit every queued I/O (as many at once as the ring holds), wait for all
 * of them, resubmit short and -EAGAIN transfers. Always reaps everything it
 * submitted before returning, so the buffers are free again.
 */
static int ctx_run_ios(struct rt_engine *e, struct engine_ctx *c)
{
	unsigned next = 0, inflight = 0;
	int err = 0, ret;

	if (c->broken) {
		c->n_ios = 0;
		return -EIO;
	}
	c->n_retry = 0;
	while (next < c->n_ios || c->n_retry || inflight) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;

		if (c->backoff) {
			c->backoff = false;
			engine_backoff(e);
		}

		while (inflight < ENGINE_RING_ENTRIES) {
			struct engine_io *io;

			if (c->n_retry)
				io = c->retry[c->n_retry - 1];
			else if (next < c->n_ios)
				io = &c->ios[next];
			else
				break;
			if (!ctx_prep_io(e, c, io))
				break;
			if (c->n_retry)
				c->n_retry--;
			else
				next++;
			inflight++;
		}
		/* One wake-up for the whole fan-out rather than one per unit. */
		ret = e->hooks.submit ? e->hooks.submit(e->hooks.arg) : 0;
		if (!ret)
			ret = io_uring_submit_and_wait(&c->ring, inflight);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			/*
			 * The ring itself refused: wait for what it did take,
			 * then let the context rebuild its ring.
			 */
			unsigned pending = io_uring_sq_ready(&c->ring);

			rt_log(RT_LOG_ERROR, "io_uring submission failed: %s", strerror(-ret));
			inflight -= pending;
			while (inflight) {
				if (io_uring_wait_cqe(&c->ring, &cqe) < 0)
					break;
				io_uring_cqe_seen(&c->ring, cqe);
				inflight--;
			}
			c->broken = true;
			err = ret;
			break;
		}
		io_uring_for_each_cqe(&c->ring, head, cqe) {
			struct engine_io *io = io_uring_cqe_get_data(cqe);
			int res = cqe->res;

			seen++;
			inflight--;
			if (e->hooks.io_result)
				res = e->hooks.io_result(e->hooks.arg, io->op, io->role,
							 io->len - io->done, res);
			err = ctx_complete_io(e, c, io, res, err);
		}
		io_uring_cq_advance(&c->ring, seen);
	}
	c->n_ios = 0;
	while (c->failed) {
		uint32_t r = (uint32_t)__builtin_ctzll(c->failed);

		c->failed &= c->failed - 1;
		(void)engine_mark_faulty(e, r, false);
	}
	return err;
}

/*
 * Queue one transfer of @len bytes at @unit_off in @role's data area,
 * merged with the previous one when both are contiguous. A full queue is
 * run at once: callers only queue I/Os that may run in any order.
 */
static int ctx_add_io(struct rt_engine *e, struct engine_ctx *c, enum engine_op op,
		      uint32_t role, uint8_t *buf, uint64_t unit_off, uint64_t len)
{
	uint64_t off = e->data_offset + unit_off;
	bool fixed = c->fixed_ok && buf && buf >= c->mem && buf < c->mem + c->mem_size;
	struct engine_io *io;
	int ret;

	if (c->n_ios) {
		io = &c->ios[c->n_ios - 1];
		if (io->op == op && op != ENGINE_OP_FSYNC && io->role == role && io->fixed == fixed &&
		    io->buf + io->len == buf && io->off + io->len == off &&
		    io->len + len <= UINT32_MAX / 2) {
			io->len += (uint32_t)len;
			return 0;
		}
	}
	if (c->n_ios == c->ios_cap) {
		ret = ctx_run_ios(e, c);
		if (ret)
			return ret;
	}
	io = &c->ios[c->n_ios++];
	io->buf = buf;
	io->off = off;
	io->len = (uint32_t)len;
	io->done = 0;
	io->role = role;
	io->retries = 0;
	io->err_tries = 0;
	io->op = (uint8_t)op;
	io->fixed = fixed;
	return 0;
}

/* ---- reads ----------------------------------------------------------- */

static uint32_t engine_source_mirror(const struct rt_engine *e, uint64_t m);

/*
 * Which role serves a read of @ext with the roles in @m faulty: raid1 the
 * next working mirror, LAYOUT_NO_ROLE when none is left; other levels the
 * extent's role, faulty or not (the caller reconstructs or fails).
 */
static uint32_t engine_read_role(const struct rt_engine *e, const struct layout_extent *ext,
				 unsigned rr, uint64_t m)
{
	uint32_t r, i;

	if (e->layout.level != RT_LEVEL_1)
		return ext->role;
	/*
	 * Copies not yet made equal (initial sync, or after an unclean stop):
	 * always the mirror the resync copies from, so a block reads the same
	 * twice, and the same as after the resync.
	 */
	if (engine_dl_resync_owed(e, ext->offset, ext->len))
		return engine_source_mirror(e, m);
	r = (uint32_t)((ext->stripe + rr) % e->n);	/* spread over mirrors */
	for (i = 0; i < e->n; i++, r = (r + 1) % e->n)
		if (!(m & role_bit(r)))
			return r;
	return LAYOUT_NO_ROLE;
}

/* Queue reads of the aligned logical range [from, to) into @data (which holds @a0). */
static int ctx_add_reads(struct rt_engine *e, struct engine_ctx *c, uint8_t *data,
			 uint64_t a0, uint64_t from, uint64_t to, unsigned rr)
{
	struct layout_extent ext;
	uint64_t pos;
	int ret;

	for (pos = from; pos < to; pos += ext.len) {
		ret = layout_map(&e->layout, pos, to - pos, &ext);
		if (ret)
			return ret;
		ret = ctx_add_io(e, c, ENGINE_OP_READ, engine_read_role(e, &ext, rr, 0),
				 data + (pos - a0), ext.offset, ext.len);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * raid5: rebuild @ext (on a faulty role) into @dst as the XOR of the same
 * columns of every other role of its stripe, in column pieces that fit the
 * scratch buffer. Runs the queued I/O. The caller holds the stripe's lock.
 */
static int raid5_reconstruct(struct rt_engine *e, struct engine_ctx *c, uint8_t *dst,
			     const struct layout_extent *ext, uint64_t m)
{
	void *src[RT_MAX_UNITS];
	size_t room = (c->scratch_cap / (e->n - 1)) & ~((size_t)e->align - 1);
	uint64_t done, len;
	uint32_t r, j;
	int ret;

	if (m & ~role_bit(ext->role))
		return -EIO;	/* a second role is gone: beyond raid5 */
	for (done = 0; done < ext->len; done += len) {
		len = min_u64(ext->len - done, room);
		for (r = 0, j = 0; r < e->n; r++) {
			if (r == ext->role)
				continue;
			src[j] = c->scratch + j * len;
			ret = ctx_add_io(e, c, ENGINE_OP_READ, r, src[j], ext->offset + done, len);
			if (ret)
				return ret;
			j++;
		}
		ret = ctx_run_ios(e, c);
		if (ret)
			return ret;
		ret = parity_xor(dst + done, src, j, len);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Read the aligned range [from, to) into @data (which holds @a0) with the
 * roles in @m faulty, running all the I/O: raid1 reads a working mirror,
 * raid5 reconstructs, linear/raid0 fail with -EIO. raid5 callers hold the
 * range's stripe locks.
 */
static int ctx_read_range(struct rt_engine *e, struct engine_ctx *c, uint8_t *data,
			  uint64_t a0, uint64_t from, uint64_t to, unsigned rr, uint64_t m)
{
	struct layout_extent ext;
	uint64_t pos;
	uint32_t role;
	int ret;

	for (pos = from; pos < to; pos += ext.len) {
		ret = layout_map(&e->layout, pos, to - pos, &ext);
		if (ret)
			return ret;
		role = engine_read_role(e, &ext, rr, m);
		if (role != LAYOUT_NO_ROLE && !(m & role_bit(role)))
			ret = ctx_add_io(e, c, ENGINE_OP_READ, role, data + (pos - a0),
					 ext.offset, ext.len);
		else if (e->layout.level == RT_LEVEL_5)
			ret = raid5_reconstruct(e, c, data + (pos - a0), &ext, m);
		else
			ret = -EIO;
		if (ret)
			return ret;
	}
	return ctx_run_ios(e, c);
}

/*
 * A read that hits a unit error is retried once the role is marked faulty
 * (the mask only grows, so this ends); reads have no side effects. With a
 * faulty role, raid5 reads lock their stripes: a reconstruction must not
 * mix old and new chunks of a stripe a writer is halfway through.
 */
static int engine_read_piece(struct rt_engine *e, struct engine_ctx *c, uint8_t *ubuf,
			     uint64_t off, size_t len)
{
	uint64_t a0 = off & ~((uint64_t)e->align - 1);
	uint64_t a1 = (off + len + e->align - 1) & ~((uint64_t)e->align - 1);
	bool direct = a0 == off && a1 == off + len && (uintptr_t)ubuf % e->align == 0;
	uint8_t *data = direct ? ubuf : c->data;
	uint64_t m = engine_faulty(e), first = a0 / e->lock_unit, last = (a1 - 1) / e->lock_unit;
	unsigned rr = c->rr++;
	int ret;

	for (;;) {
		c->n_ios = 0;
		if (!m) {
			ret = ctx_add_reads(e, c, data, a0, a0, a1, rr);
			if (!ret)
				ret = ctx_run_ios(e, c);
		} else if (e->layout.level == RT_LEVEL_5) {
			stripe_lock_acquire(e, c, first, last);
			ret = ctx_read_range(e, c, data, a0, a0, a1, rr, m);
			c->n_ios = 0;
			stripe_lock_release(e, c, first, last);
		} else {
			ret = ctx_read_range(e, c, data, a0, a0, a1, rr, m);
		}
		if (ret != -EIO || engine_faulty(e) == m)
			break;
		m = engine_faulty(e);
	}
	c->n_ios = 0;
	if (!ret && !direct)
		memcpy(ubuf, data + (off - a0), len);
	return ret;
}

/* ---- writes ---------------------------------------------------------- */

/*
 * linear and raid0: each chunk piece to its unit. With a faulty role a
 * write that needs it fails before writing anything.
 */
static int engine_write_striped(struct rt_engine *e, struct engine_ctx *c, uint8_t *data,
				uint64_t a0, uint64_t a1, uint64_t m)
{
	struct layout_extent ext;
	uint64_t pos;
	int ret;

	for (pos = a0; m && pos < a1; pos += ext.len) {
		ret = layout_map(&e->layout, pos, a1 - pos, &ext);
		if (ret)
			return ret;
		if (m & role_bit(ext.role))
			return -EIO;
	}
	for (pos = a0; pos < a1; pos += ext.len) {
		ret = layout_map(&e->layout, pos, a1 - pos, &ext);
		if (ret)
			return ret;
		ret = ctx_add_io(e, c, ENGINE_OP_WRITE, ext.role, data + (pos - a0),
				 ext.offset, ext.len);
		if (ret)
			return ret;
	}
	return ctx_run_ios(e, c);
}

/* raid1: the whole range to every working mirror at once (one merged I/O each). */
static int engine_write_raid1(struct rt_engine *e, struct engine_ctx *c, uint8_t *data,
			      uint64_t a0, uint64_t a1, uint64_t m)
{
	struct layout_extent ext;
	uint64_t pos;
	uint32_t r;
	int ret;

	for (r = 0; r < e->n; r++) {
		if (m & role_bit(r))
			continue;
		for (pos = a0; pos < a1; pos += ext.len) {
			ret = layout_map(&e->layout, pos, a1 - pos, &ext);
			if (ret)
				return ret;
			ret = ctx_add_io(e, c, ENGINE_OP_WRITE, r, data + (pos - a0),
					 ext.offset, ext.len);
			if (ret)
				return ret;
		}
	}
	return ctx_run_ios(e, c);
}

struct raid5_range {
	uint32_t p, q;			/* column range */
	uint32_t k_first, k_last;	/* data chunks touching all of it */
};

/*
 * Split the part of [a0, a1) in the stripe starting at logical @base into
 * column ranges touched by the same data chunks. The part is contiguous:
 * chunk k0 from s0, full chunks, chunk k1 up to e1, so the boundaries are
 * 0, s0, e1 and the chunk size.
 */
static unsigned raid5_stripe_ranges(const struct rt_engine *e, uint64_t base,
				    uint64_t a0, uint64_t a1, struct raid5_range out[3])
{
	uint64_t C = e->layout.chunk, width = C * e->data_roles;
	uint64_t x0 = max_u64(a0, base) - base, x1 = min_u64(a1, base + width) - base;
	uint64_t k0 = x0 / C, k1 = (x1 - 1) / C, s0 = x0 - k0 * C, e1 = x1 - k1 * C;
	uint64_t pts[4] = { 0, min_u64(s0, e1), max_u64(s0, e1), C };
	unsigned i, n = 0;

	for (i = 0; i < 3; i++) {
		uint64_t p = pts[i], q = pts[i + 1];
		int64_t ka, kb;

		if (p >= q)
			continue;
		ka = s0 <= p ? (int64_t)k0 : (int64_t)k0 + 1;
		kb = e1 >= q ? (int64_t)k1 : (int64_t)k1 - 1;
		if (ka > kb)
			continue;
		out[n].p = (uint32_t)p;
		out[n].q = (uint32_t)q;
		out[n].k_first = (uint32_t)ka;
		out[n].k_last = (uint32_t)kb;
		n++;
	}
	return n;
}

/* Where data chunk @k's column @col of the stripe at @base lies. */
static int raid5_locate(const struct rt_engine *e, uint64_t base, uint32_t k, uint32_t col,
			uint32_t len, struct layout_extent *ext)
{
	return layout_map(&e->layout, base + (uint64_t)k * e->layout.chunk + col, len, ext);
}

static int raid5_queue_reads(struct rt_engine *e, struct engine_ctx *c, const struct raid5_seg *g)
{
	struct layout_extent ext;
	uint32_t k, j = 0;
	int ret;

	if (g->data_only)
		return 0;
	if (!g->reconstruct) {
		ret = ctx_add_io(e, c, ENGINE_OP_READ, g->parity_role, g->old, g->unit_off, g->len);
		if (ret)
			return ret;
		j = 1;
	}
	for (k = 0; k < e->data_roles; k++) {
		bool touched = k >= g->k_first && k <= g->k_last;

		if (touched == g->reconstruct)
			continue;
		ret = raid5_locate(e, g->base, k, g->col, g->len, &ext);
		if (ret)
			return ret;
		ret = ctx_add_io(e, c, ENGINE_OP_READ, ext.role, g->old + (size_t)j * g->len,
				 ext.offset, g->len);
		if (ret)
			return ret;
		j++;
	}
	return 0;
}

static int raid5_compute_parity(const struct rt_engine *e, const struct raid5_seg *g,
				uint8_t *data, uint64_t a0)
{
	void *src[2 * RT_MAX_UNITS + 1];
	uint64_t C = e->layout.chunk;
	unsigned n = 0, j = 0;
	uint32_t k;

	if (!g->reconstruct)
		src[n++] = g->old;	/* P' = P ^ Dold ^ Dnew */
	for (k = 0; k < e->data_roles; k++) {
		bool touched = k >= g->k_first && k <= g->k_last;
		uint8_t *dnew = data + (g->base + k * C + g->col - a0);

		if (g->reconstruct) {
			src[n++] = touched ? dnew : g->old + (size_t)(j++) * g->len;
		} else if (touched) {
			src[n++] = g->old + (size_t)(1 + k - g->k_first) * g->len;
			src[n++] = dnew;
		}
	}
	return parity_xor(g->parity, src, n, g->len);
}

/* The new data of one planned column range, but not to @g->skip_role. */
static int raid5_queue_data(struct rt_engine *e, struct engine_ctx *c, const struct raid5_seg *g,
			    uint8_t *data, uint64_t a0)
{
	struct layout_extent ext;
	uint32_t k;
	int ret;

	for (k = g->k_first; k <= g->k_last; k++) {
		ret = raid5_locate(e, g->base, k, g->col, g->len, &ext);
		if (ret)
			return ret;
		if (ext.role == g->skip_role)
			continue;
		ret = ctx_add_io(e, c, ENGINE_OP_WRITE, ext.role,
				 data + (g->base + (uint64_t)k * e->layout.chunk + g->col - a0),
				 ext.offset, g->len);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Read what the planned column ranges need, compute their parity, write it
 * together with the ranges' new data, so that every stripe is consistent
 * again after each round (a retry after a unit failure relies on that).
 * @whole: this is the piece's only round: the data goes out as [a0, a1)
 * in layout order instead, merged per chunk. @skip: a faulty role.
 */
static int raid5_run_round(struct rt_engine *e, struct engine_ctx *c, uint8_t *data,
			   uint64_t a0, uint64_t a1, bool whole, uint32_t skip)
{
	unsigned i;
	int ret = 0;

	for (i = 0; i < c->n_segs && !ret; i++)
		ret = raid5_queue_reads(e, c, &c->segs[i]);
	if (!ret)
		ret = ctx_run_ios(e, c);
	for (i = 0; i < c->n_segs && !ret; i++)
		if (!c->segs[i].data_only)
			ret = raid5_compute_parity(e, &c->segs[i], data, a0);
	for (i = 0; i < c->n_segs && !ret; i++)
		if (!c->segs[i].data_only)
			ret = ctx_add_io(e, c, ENGINE_OP_WRITE, c->segs[i].parity_role,
					 c->segs[i].parity, c->segs[i].unit_off, c->segs[i].len);
	if (whole) {
		struct layout_extent ext;
		uint64_t pos;

		for (pos = a0; pos < a1 && !ret; pos += ext.len) {
			ret = layout_map(&e->layout, pos, a1 - pos, &ext);
			if (!ret && ext.role != skip)
				ret = ctx_add_io(e, c, ENGINE_OP_WRITE, ext.role, data + (pos - a0),
						 ext.offset, ext.len);
		}
	} else {
		for (i = 0; i < c->n_segs && !ret; i++)
			ret = raid5_queue_data(e, c, &c->segs[i], data, a0);
	}
	c->n_segs = 0;
	if (!ret)
		ret = ctx_run_ios(e, c);
	c->n_ios = 0;
	return ret;
}

/*
 * How a column range touching data chunks [kf, kl] of stripe @s is updated
 * with @x faulty (LAYOUT_NO_ROLE: none). x the parity role: data only. x a
 * touched data chunk: reconstruct-write over the others, so the parity
 * takes x's new value. x untouched: read-modify-write, which never reads x.
 */
static void raid5_plan_degraded(const struct rt_engine *e, uint64_t s, uint32_t kf, uint32_t kl,
				uint32_t x, bool rebuilding, bool *reconstruct, bool *data_only)
{
	uint32_t k;

	*data_only = false;
	if (x == LAYOUT_NO_ROLE)
		return;
	if (layout_raid5_parity_role(&e->layout, s) == x) {
		/*
		 * A role being rebuilt still gets its parity, computed from
		 * the data alone (reconstruct-write never reads the parity).
		 */
		if (rebuilding)
			*reconstruct = true;
		else
			*data_only = true;
		return;
	}
	for (k = 0; k < e->data_roles; k++)
		if (layout_raid5_data_role(&e->layout, s, k) == x)
			break;
	*reconstruct = k >= kf && k <= kl;
}

/*
 * raid5: plan every stripe's column ranges, each with read-modify-write or
 * reconstruct-write (see the top of this file), into the scratch buffer;
 * when scratch runs out, run the planned part as a round and go on. A
 * range too big for the remaining scratch is cut into narrower columns:
 * parity is computed column by column, so any cut is valid.
 */
static int engine_write_raid5(struct rt_engine *e, struct engine_ctx *c, uint8_t *data,
			      uint64_t a0, uint64_t a1, uint64_t m, uint64_t rb)
{
	uint64_t C = e->layout.chunk, width = C * e->data_roles;
	uint32_t d = e->data_roles;
	uint32_t x = m ? (uint32_t)__builtin_ctzll(m) : LAYOUT_NO_ROLE;
	/*
	 * A role being rebuilt is never read but always written: planned as
	 * faulty (so nothing reads it), its data and parity still go out.
	 */
	bool rebuilding = x != LAYOUT_NO_ROLE && (rb & role_bit(x));
	uint32_t skip = rebuilding ? LAYOUT_NO_ROLE : x;
	bool rounds = false;
	size_t used = 0;
	uint64_t s;
	int ret;

	c->n_segs = 0;
	for (s = a0 / width; s * width < a1; s++) {
		struct raid5_range rg[3];
		unsigned i, nr = raid5_stripe_ranges(e, s * width, a0, a1, rg);

		/*
		 * Where the parity was never made (or may not match after an
		 * unclean stop), read-modify-write would carry its error over:
		 * compute it from the data, which makes the stripe consistent.
		 */
		bool unsynced = engine_dl_resync_owed(e, s * C, C), rmw = false;

		for (i = 0; i < nr; i++) {
			uint32_t t = rg[i].k_last - rg[i].k_first + 1;
			bool reconstruct = unsynced || d - t <= t + 1, data_only;
			size_t nbufs;
			uint32_t col = rg[i].p;

			raid5_plan_degraded(e, s, rg[i].k_first, rg[i].k_last, x, rebuilding,
					    &reconstruct, &data_only);
			nbufs = data_only ? 0 : reconstruct ? d - t + 1 : t + 2;
			rmw |= !data_only && !reconstruct;

			while (col < rg[i].q) {
				struct layout_extent ext;
				struct raid5_seg *g;
				size_t room = nbufs ? (c->scratch_cap - used) / nbufs : C;
				uint32_t len;

				room &= ~((size_t)e->align - 1);
				if (room == 0 || c->n_segs == c->segs_cap) {
					ret = raid5_run_round(e, c, data, a0, a1, false, skip);
					if (ret)
						return ret;
					rounds = true;
					used = 0;
					continue;
				}
				len = (uint32_t)min_u64(rg[i].q - col, room);
				ret = raid5_locate(e, s * width, rg[i].k_first, col, len, &ext);
				if (ret)
					return ret;
				g = &c->segs[c->n_segs++];
				g->base = s * width;
				g->unit_off = ext.offset;
				g->col = col;
				g->len = len;
				g->k_first = rg[i].k_first;
				g->k_last = rg[i].k_last;
				g->parity_role = ext.parity_role;
				g->skip_role = skip;
				g->reconstruct = reconstruct;
				g->data_only = data_only;
				g->old = c->scratch + used;
				g->parity = nbufs ? g->old + (nbufs - 1) * len : NULL;
				used += nbufs * len;
				col += len;
			}
		}
		if (a0 <= s * width && a1 >= (s + 1) * width)
			stat_add(&c->stats.stripe_full, 1);
		else
			stat_add(rmw ? &c->stats.stripe_rmw : &c->stats.stripe_rcw, 1);
	}
	return raid5_run_round(e, c, data, a0, a1, !rounds, skip);
}

/* ---- raid5: whole stripes from several writers ------------------------ */

/* Note where a write arriving now begins and ends. */
static void engine_note_write(struct rt_engine *e, uint64_t off, uint64_t end)
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
static bool engine_write_streams(struct rt_engine *e, uint64_t off, uint64_t end)
{
	unsigned i;

	for (i = 0; i < ENGINE_RECENT_WRITES; i++)
		if (atomic_load_explicit(&e->recent[i].end, memory_order_relaxed) == off ||
		    atomic_load_explicit(&e->recent[i].off, memory_order_relaxed) == end)
			return true;
	return false;
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
 * With @b's mutex held, wait for offers that make @own's stripe whole until
 * @deadline (ns); past the first ENGINE_GATHER_GRACE of the window only
 * while the piece [a0, a1) is part of a stream (new writes keep arriving
 * next to it). Returns the pieces (gather_cover), 0 when it gave up.
 */
static unsigned gather_wait(struct rt_engine *e, struct stripe_lock_bucket *b,
			    struct stripe_contrib *own, struct stripe_contrib **out, uint64_t a0,
			    uint64_t a1, uint64_t t0, uint64_t deadline)
{
	uint64_t grace = (deadline - t0) / ENGINE_GATHER_GRACE, now, until;
	struct timespec ts;
	unsigned n;

	for (;;) {
		n = gather_cover(e, b, own->stripe, own, out);
		now = engine_clock_ns();
		if (n || now >= deadline)
			return n;
		if (now >= t0 + grace && !engine_write_streams(e, a0, a1))
			return 0;
		until = min_u64(deadline, now + grace);
		ts.tv_sec = (time_t)(until / 1000000000ull);
		ts.tv_nsec = (long)(until % 1000000000ull);
		pthread_cond_timedwait(&b->cond, &b->mu, &ts);
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
 * synchronous writer) only one write in ENGINE_GATHER_PROBE waits, and a
 * stripe given up on is not waited for again by the next holders within
 * the window. *lo, *hi: what is left of the piece for the usual path.
 * Every part taken is settled before returning: done when written (its
 * writer skips the stripe), else given back (its writer writes it itself).
 */
static int raid5_gather(struct rt_engine *e, struct engine_ctx *c, uint8_t *data, uint64_t a0,
			uint64_t a1, uint64_t *lo, uint64_t *hi)
{
	uint64_t W = e->lock_unit, C = e->layout.chunk, first = a0 / W, last = (a1 - 1) / W;
	uint64_t stripes[2], cand[2], t0 = engine_clock_ns();
	uint64_t deadline = t0 + atomic_load_explicit(&e->gather_us, memory_order_relaxed) * 1000ull;
	struct stripe_contrib own[2];
	unsigned misses = atomic_load_explicit(&e->gather_misses, memory_order_relaxed);
	/*
	 * Wait at all? Not when waiting was in vain many times in a row (one
	 * writer at a time, random writes), bar a probe now and then.
	 */
	bool wait = deadline > t0 &&
		(misses < ENGINE_GATHER_MISSES ||
		 atomic_load_explicit(&e->recent_next, memory_order_relaxed) % ENGINE_GATHER_PROBE == 0);
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
			n = gather_wait(e, b, &own[ns], c->taken[ns], a0, a1, t0, deadline);
			if (n) {
				atomic_store_explicit(&e->gather_misses, 0, memory_order_relaxed);
			} else {
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

static int engine_write_piece(struct rt_engine *e, struct engine_ctx *c, const uint8_t *ubuf,
			      uint64_t off, size_t len)
{
	uint64_t A = e->align;
	uint64_t a0 = off & ~(A - 1), a1 = (off + len + A - 1) & ~(A - 1);
	bool aligned = a0 == off && a1 == off + len;
	bool direct = aligned && (uintptr_t)ubuf % A == 0;
	/* Only ever read from when direct (O_DIRECT writes, parity sources). */
	uint8_t *data = direct ? (uint8_t *)(uintptr_t)ubuf : c->data;
	bool redundant = e->layout.level == RT_LEVEL_5 || e->layout.level == RT_LEVEL_1;
	bool lock = !aligned || redundant || e->lock_all, merged = false;
	/* raid5: parts of stripes may be written whole with other writers' parts. */
	bool gather = e->layout.level == RT_LEVEL_5 && aligned, gathered = false;
	uint64_t first = a0 / e->lock_unit, last = (a1 - 1) / e->lock_unit;
	uint64_t lo = a0, hi = a1;	/* what is left to write after the stripes others wrote */
	struct stripe_offer offer = { a0, a1, data };
	unsigned written = 0;
	uint64_t rb, m;
	int ret = 0;

	c->n_ios = 0;
	if (gather) {
		/* Offered to other writers: the data must be in place before waiting. */
		if (!direct)
			memcpy(data, ubuf, len);
		merged = true;
	}
	if (lock)
		written = stripe_lock_acquire_offer(e, c, first, last, gather ? &offer : NULL);
	/* Stripes another writer wrote whole with our part in it: done. */
	if (written & 1u)
		lo = min_u64((first + 1) * e->lock_unit, a1);
	if (written & 2u)
		hi = max_u64(last * e->lock_unit, lo);
	if (lo == hi)
		goto out;
	/*
	 * The masks are loaded under the stripe locks, never before: a
	 * writer that saw the role faulty and wrote around it in one of
	 * these stripes has released it, so we see the role faulty too. A
	 * mask loaded before waiting for the lock may be stale: planned as
	 * healthy, the write would read the faulty role's stale chunk (a
	 * reconstruct-write's untouched data, a partial block's old bytes)
	 * and write parity or blocks that undo that writer's acknowledged
	 * data. The rebuild mask first: completion clears a role's faulty
	 * bit before its rebuild bit, so a role seen rebuilding is written
	 * and a role seen not rebuilding is also seen not faulty once it
	 * works.
	 */
	rb = engine_rebuilding(e);
	m = engine_faulty(e);
	if (m && redundant && !engine_tolerates(e, m)) {
		ret = -EIO;	/* stop writes rather than corrupt data */
		goto out;
	}
	if (e->dl) {
		/* The region's bit is on stable storage before any of its data is written. */
		ret = engine_dl_mark(e, c, first, last);
		if (ret)
			goto out;
	}
	/*
	 * A unit error marks its role faulty; raid1/raid5 then redo the piece
	 * without it, still under the lock. Every raid5 round leaves its
	 * stripes consistent apart from the failed role, so the redo's
	 * read-modify-write may trust the parity it reads.
	 */
	for (;;) {
		if (!aligned && !merged) {
			/* The blocks the piece only partly covers, read under the lock. */
			bool head = off != a0, tail = off + len != a1;
			bool both = tail && !(head && a1 - A == a0);

			if (!m) {
				if (head)
					ret = ctx_add_reads(e, c, data, a0, a0, a0 + A, c->rr);
				if (!ret && both)
					ret = ctx_add_reads(e, c, data, a0, a1 - A, a1, c->rr);
				if (!ret)
					ret = ctx_run_ios(e, c);
			} else {
				if (head)
					ret = ctx_read_range(e, c, data, a0, a0, a0 + A, c->rr, m);
				if (!ret && both)
					ret = ctx_read_range(e, c, data, a0, a1 - A, a1, c->rr, m);
			}
		}
		if (!ret && !merged) {
			if (!direct)
				memcpy(data + (off - a0), ubuf, len);
			merged = true;
		}
		if (!ret) {
			uint64_t wlo = lo, whi = hi;

			switch (e->layout.level) {
			case RT_LEVEL_1:
				ret = engine_write_raid1(e, c, data, a0, a1, m & ~rb);
				break;
			case RT_LEVEL_5:
				/* Only healthy, and once: a redo writes its own part alone. */
				if (gather && !gathered && !m && !rb) {
					gathered = true;
					ret = raid5_gather(e, c, data + (lo - a0), lo, hi, &wlo, &whi);
				}
				if (!ret && wlo < whi)
					ret = engine_write_raid5(e, c, data + (wlo - a0), wlo, whi, m, rb);
				break;
			default:
				ret = engine_write_striped(e, c, data, a0, a1, m);
				break;
			}
		}
		c->n_ios = 0;
		c->n_segs = 0;
		if (ret != -EIO || !redundant ||
		    (engine_faulty(e) == m && engine_rebuilding(e) == rb))
			break;
		rb = engine_rebuilding(e);
		m = engine_faulty(e);
		if (!engine_tolerates(e, m))
			break;
		ret = 0;
	}
out:
	c->n_ios = 0;
	/* Some units may have taken the piece and others not: resync it (still locked). */
	if (ret == -ENOSPC && redundant)
		engine_owe_resync(e, first, last);
	if (lock)
		stripe_lock_release(e, c, first, last);
	return ret;
}

/* ---- dirty-region log -------------------------------------------------- */

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
	uint64_t events_cleared;
	uint8_t *loaded;		/* union of the units' logs at start */
	/*
	 * Owed a resync while a walk ran: that walk may have done the region
	 * before the write failed, so its end does not unpin the region.
	 */
	uint8_t *reowed;
	uint64_t n_loaded;
	bool loaded_valid;
	bool unsynced;			/* a log write failed: the image is ahead */
	pthread_t thread;
	bool thread_ok, stop;
	unsigned idle_ms;
};

#define ENGINE_DL_SWEEPS 5u

/* Queue one transfer at absolute device offset @off (metadata, not data). */
static int ctx_add_raw(struct rt_engine *e, struct engine_ctx *c, enum engine_op op,
		       uint32_t role, uint8_t *buf, uint64_t off, uint32_t len)
{
	struct engine_io *io;
	int ret;

	if (c->n_ios == c->ios_cap) {
		ret = ctx_run_ios(e, c);
		if (ret)
			return ret;
	}
	io = &c->ios[c->n_ios++];
	io->buf = buf;
	io->off = off;
	io->len = len;
	io->done = 0;
	io->role = role;
	io->retries = 0;
	io->err_tries = 0;
	io->op = (uint8_t)op;
	io->fixed = false;
	return 0;
}

/* Sync (and before that write the log to) every unit that takes writes. */
static int dl_io(struct rt_engine *e, struct engine_ctx *c, bool write_log)
{
	struct engine_dl *dl = e->dl;
	int ret = 0;

	if (write_log) {
		ret = dirtylog_encode(dl->log, atomic_load(&dl->events), ++dl->seq,
				      dl->events_cleared, dl->buf, dl->len);
		if (ret)
			return ret;
	}
	for (;;) {
		uint64_t rb = engine_rebuilding(e), f0 = engine_faulty(e), m = f0 & ~rb;
		uint32_t r;

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
static bool engine_dl_resync_owed(const struct rt_engine *e, uint64_t off, uint64_t len)
{
	uint64_t R;

	if (!e->dl || !len)
		return false;
	R = dirtylog_region_size(e->dl->log);
	return dirtylog_pinned_any(e->dl->log, off / R, (off + len - 1) / R);
}

static int engine_dl_mark(struct rt_engine *e, struct engine_ctx *c, uint64_t first,
			  uint64_t last)
{
	struct engine_dl *dl = e->dl;
	uint64_t r0, r1;
	int ret = 0;

	dl_regions(e, first, last, &r0, &r1);
	if (dirtylog_covered(dl->log, r0, r1))
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
static void engine_owe_resync(struct rt_engine *e, uint64_t first, uint64_t last)
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
		dl->events_cleared = atomic_load(&dl->events);
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
static int engine_dl_init(struct rt_engine *e, const struct rt_sb *sb)
{
	uint64_t rbytes = e->layout.unit_size, R, n;
	struct engine_dl *dl;
	pthread_condattr_t ca;
	uint8_t *bits = NULL;
	uint64_t cleared = 0;
	bool all_known = true;
	uint32_t r;
	int ret;

	if ((e->layout.level != RT_LEVEL_1 && e->layout.level != RT_LEVEL_5) ||
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
	dl->events_cleared = all_known && cleared ? cleared : sb->events;
	dirtylog_load(dl->log, dl->loaded);
	dl->n_loaded = dirtylog_count(dl->log);
	ret = dl_io(e, &e->ctx[0], true);
	if (ret)
		return ret;
	ret = -pthread_create(&dl->thread, NULL, dl_main, e);
	dl->thread_ok = ret == 0;
	return ret;
}

static void engine_dl_stop(struct rt_engine *e)
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

static void engine_dl_free(struct rt_engine *e)
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
			e->dl->events_cleared = atomic_load(&e->dl->events);
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
	pthread_mutex_lock(&e->dl->mu);
	*events_cleared = e->dl->events_cleared;
	pthread_mutex_unlock(&e->dl->mu);
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

int engine_set_retries(struct rt_engine *e, unsigned count, unsigned window_ms)
{
	if (!e || count > ENGINE_ERR_TRIES_MAX || window_ms > ENGINE_RETRY_WINDOW_MAX_MS)
		return -EINVAL;
	atomic_store(&e->retry_count, count);
	atomic_store(&e->retry_window_ms, window_ms);
	return 0;
}

/* ---- background walks (lib/rebuild.c) -------------------------------- */

void engine_geom(const struct rt_engine *e, struct engine_geom *g)
{
	g->level = e->layout.level;
	g->n = e->n;
	g->chunk = e->layout.chunk;
	g->role_bytes = e->layout.level == RT_LEVEL_1 || e->layout.level == RT_LEVEL_5 ?
		e->layout.unit_size / e->layout.chunk * e->layout.chunk : 0;
}

struct engine_ctx *engine_ctx_get(struct rt_engine *e)
{
	return ctx_acquire(e);
}

void engine_ctx_put(struct rt_engine *e, struct engine_ctx *c)
{
	c->n_ios = 0;
	ctx_release(e, c);
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
 * One batch is as many stripes as one pass of buffers holds: recover
 * reads n - 1 roles (raid5, into scratch) or one (raid1, into data); scrub
 * reads every role plus room for the computed parity (data and scratch
 * lie back to back). A chunk bigger than that is done in column pieces.
 */
static uint64_t engine_walk_room(const struct rt_engine *e, const struct engine_ctx *c, int kind)
{
	uint64_t room;

	if (kind == RT_WALK_RECOVER)
		room = e->layout.level == RT_LEVEL_5 ? c->scratch_cap / (e->n - 1) :
			ENGINE_DATA_CAP;
	else
		room = c->mem_size / (e->layout.level == RT_LEVEL_5 ? e->n + 1 : e->n);
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

/* raid1: the working mirror to copy from (never a unit being rebuilt). */
static uint32_t engine_source_mirror(const struct rt_engine *e, uint64_t m)
{
	uint32_t r;

	for (r = 0; r < e->n; r++)
		if (!(m & role_bit(r)))
			return r;
	return LAYOUT_NO_ROLE;
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
	uint64_t done, l, prev = 0, step;
	void *src[RT_MAX_UNITS];
	uint8_t *out = NULL;
	unsigned i;
	uint32_t r, j;
	int ret;

	if (!(engine_rebuilding(e) & role_bit(role)))
		return -EIO;	/* the unit failed meanwhile */
	if (e->layout.level == RT_LEVEL_5 && m != role_bit(role))
		return -EIO;	/* a second role is gone: nothing to rebuild from */
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
		j = 0;
		if (l && e->layout.level == RT_LEVEL_1) {
			r = engine_source_mirror(e, m);
			if (r == LAYOUT_NO_ROLE)
				ret = -EIO;
			if (!ret)
				ret = ctx_add_io(e, c, ENGINE_OP_READ, r, half, off + done, l);
		} else if (l) {
			for (r = 0; r < e->n && !ret; r++) {
				if (r == role)
					continue;
				src[j] = half + (j + 1) * step;
				ret = ctx_add_io(e, c, ENGINE_OP_READ, r, src[j], off + done, l);
				j++;
			}
		}
		if (!ret)
			ret = ctx_run_ios(e, c);
		c->n_ios = 0;
		if (!ret && j)
			ret = parity_xor(half, src, j, l);
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
		/* raid1: a source mirror failed, another may serve. */
		if (ret != -EIO || e->layout.level != RT_LEVEL_1 || engine_faulty(e) == m ||
		    !(engine_rebuilding(e) & role_bit(role)))
			break;
	}
	c->n_ios = 0;
	stripe_lock_release(e, c, s0, s0 + cnt - 1);
	return ret;
}

/* raid1 blocks compared (and settled) one at a time: the smallest write. */
#define SCRUB_BLOCK 512u

/*
 * raid1: settle one block of @nw mirror copies. Returns the index of the copy
 * every other one must take, -1 when all agree, -2 for a tie left as found.
 */
static int scrub_mirror_block(uint8_t *const *buf, uint64_t o, uint64_t bl, uint32_t nw,
			      const uint32_t *roles, struct engine_scrub *sc, uint64_t *kept)
{
	uint32_t cls[RT_MAX_UNITS], cnt[RT_MAX_UNITS] = { 0 }, w, v, most = 0, n_most = 0, best = 0;

	/* cls[w]: the first copy equal to copy w; cnt[v]: how many copies equal copy v. */
	for (w = 0; w < nw; w++) {
		for (v = 0; v < w && memcmp(buf[v] + o, buf[w] + o, bl); v++)
			;
		cls[w] = v;
		cnt[v]++;
	}
	if (cnt[0] == nw)
		return -1;
	for (v = 0; v < nw; v++)
		if (cnt[v] > most) {
			most = cnt[v];
			best = v;
		}
	for (v = 0; v < nw; v++)
		n_most += cnt[v] == most;
	if (n_most == 1)
		return (int)best;	/* a majority */
	for (w = 0; sc->prefer_set && w < nw; w++)
		if (roles[w] == sc->prefer && cnt[cls[w]] == most) {
			*kept |= 1ull << roles[w];
			return (int)cls[w];
		}
	if (nw == 2 || sc->settle_ties) {
		*kept |= 1ull << roles[0];
		return 0;
	}
	return -2;
}

/* Compare (and repair) role offsets [off, off + len) of whole-locked stripes. */
static int scrub_range(struct rt_engine *e, struct engine_ctx *c, uint64_t off, uint64_t len,
		       uint64_t *last_bad, struct engine_scrub *sc)
{
	uint64_t C = e->layout.chunk, room = engine_walk_room(e, c, RT_WALK_CHECK);
	uint64_t m = engine_faulty(e) | engine_rebuilding(e), done, l, o, pl, b, bl;
	uint8_t *buf[RT_MAX_UNITS + 1];
	void *src[RT_MAX_UNITS];
	uint32_t r, w, n = e->n, roles[RT_MAX_UNITS], nw = 0;
	int ret = 0;

	if (e->layout.level == RT_LEVEL_5 && m)
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
		for (o = 0; o < l && !ret; o += pl) {
			uint64_t pos = off + done + o, s = pos / C, kept = 0;
			bool bad = false, tie = false, fixed = false;

			pl = min_u64(l - o, C - pos % C);
			if (e->layout.level == RT_LEVEL_1) {
				for (b = 0; b < pl && !ret; b += bl) {
					int k;

					bl = min_u64(pl - b, SCRUB_BLOCK);
					k = scrub_mirror_block(buf, o + b, bl, nw, roles, sc, &kept);
					if (k == -1)
						continue;
					bad = true;
					if (!sc->repair)
						continue;
					if (k == -2) {
						tie = true;
						continue;
					}
					for (w = 0; w < nw && !ret; w++) {
						if (w == (uint32_t)k ||
						    !memcmp(buf[k] + o + b, buf[w] + o + b, bl))
							continue;
						fixed = true;
						ret = ctx_add_io(e, c, ENGINE_OP_WRITE, roles[w],
								 buf[k] + o + b, pos + b, bl);
					}
				}
			} else {
				uint32_t p = layout_raid5_parity_role(&e->layout, s), j = 0;

				for (r = 0; r < n; r++)
					if (r != p)
						src[j++] = buf[r] + o;
				ret = parity_xor(buf[n] + o, src, j, pl);
				if (!ret && memcmp(buf[n] + o, buf[p] + o, pl)) {
					bad = true;
					fixed = sc->repair;
					if (sc->repair)
						ret = ctx_add_io(e, c, ENGINE_OP_WRITE, p,
								 buf[n] + o, pos, pl);
				}
			}
			if (sc->repair)
				sc->kept_roles |= kept;
			if (bad && *last_bad != s) {
				*last_bad = s;
				sc->mismatches++;
				sc->repaired += fixed;
				sc->ties += tie;
			}
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
	if (e->layout.level != RT_LEVEL_1 && e->layout.level != RT_LEVEL_5)
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

/* Take every context: no request is in flight until they are given back. */
static void engine_aread_drain(struct rt_engine *e);

static void engine_drain(struct rt_engine *e)
{
	unsigned i;

	for (i = 0; i < e->n_ctx; i++)
		(void)ctx_acquire(e);
	engine_aread_drain(e);
}

static void engine_undrain(struct rt_engine *e)
{
	unsigned i;

	atomic_store(&e->aread_gate, false);
	for (i = 0; i < e->n_ctx; i++)
		ctx_release(e, &e->ctx[i]);
}

int engine_attach_unit(struct rt_engine *e, uint32_t role, struct rt_unit *u)
{
	uint32_t align = e ? e->align : 0;
	int ret;

	if (!e || !u || role >= e->n)
		return -EINVAL;
	if (e->layout.level != RT_LEVEL_1 && e->layout.level != RT_LEVEL_5)
		return -EOPNOTSUPP;	/* nothing to rebuild from */
	if (unit_size(u) < e->data_offset + e->layout.role_size[role])
		return -ENOSPC;
	ret = engine_unit_align(unit_fd(u), &align);
	if (ret)
		return ret;
	if (align != e->align)
		return -EINVAL;	/* the array's requests are aligned for the others */
	pthread_mutex_lock(&e->admin_mu);
	if (!(engine_faulty(e) & role_bit(role)) || (engine_rebuilding(e) & role_bit(role))) {
		ret = -EEXIST;	/* working or already being rebuilt */
		goto out;
	}
	if (e->unit[role]) {
		ret = -EBUSY;	/* the failed unit is still in: detach it first */
		goto out;
	}
	if (e->layout.level == RT_LEVEL_5 && engine_faulty(e) != role_bit(role)) {
		ret = -ENODEV;	/* a second role is gone too */
		goto out;
	}
	/* Nothing in flight may still use the old descriptor of the role. */
	engine_drain(e);
	e->fd[role] = unit_fd(u);
	e->unit[role] = u;
	atomic_fetch_or(&e->rebuild, role_bit(role));
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
	engine_undrain(e);
out:
	pthread_mutex_unlock(&e->admin_mu);
	return ret;
}

/* ---- public API ------------------------------------------------------ */

static int engine_check_range(const struct rt_engine *e, size_t len, uint64_t off)
{
	if (off > e->size || len > e->size - off)
		return -EINVAL;
	return 0;
}

int engine_read(struct rt_engine *e, void *buf, size_t len, uint64_t off)
{
	struct engine_ctx *c;
	size_t done;
	int ret;

	if (!e || (!buf && len))
		return -EINVAL;
	ret = engine_check_range(e, len, off);
	if (ret || len == 0)
		return ret;
	c = ctx_acquire(e);
	for (done = 0; done < len && !ret; done += ENGINE_PIECE)
		ret = engine_read_piece(e, c, (uint8_t *)buf + done, off + done,
					min_u64(len - done, ENGINE_PIECE));
	if (!ret) {
		stat_add(&c->stats.reads, 1);
		stat_add(&c->stats.read_bytes, len);
	}
	ctx_release(e, c);
	return ret;
}

int engine_write(struct rt_engine *e, const void *buf, size_t len, uint64_t off)
{
	struct engine_ctx *c;
	size_t done;
	int ret;

	if (!e || (!buf && len))
		return -EINVAL;
	ret = engine_check_range(e, len, off);
	if (ret || len == 0)
		return ret;
	engine_note_write(e, off, off + len);
	c = ctx_acquire(e);
	for (done = 0; done < len && !ret; done += ENGINE_PIECE)
		ret = engine_write_piece(e, c, (const uint8_t *)buf + done, off + done,
					 min_u64(len - done, ENGINE_PIECE));
	if (!ret) {
		stat_add(&c->stats.writes, 1);
		stat_add(&c->stats.write_bytes, len);
	}
	ctx_release(e, c);
	return ret;
}

/* ---- discard and write-zeroes ---------------------------------------- */

/*
 * Write zeros over [off, off + len) through the write path (partial blocks,
 * partial raid5 stripes, a degraded array, units that cannot punch).
 */
static int engine_write_zeros(struct rt_engine *e, struct engine_ctx *c, uint64_t off,
			      uint64_t len)
{
	uint64_t done, l;
	int ret = 0;

	for (done = 0; done < len && !ret; done += l) {
		l = min_u64(len - done, ENGINE_PIECE);
		ret = engine_write_piece(e, c, e->zeros, off + done, l);
	}
	return ret;
}

/*
 * Stripes [first, last], whole, zeroed on the units themselves under their
 * locks: every role's part of them (raid5: data and parity alike, since
 * the parity of zeros is zeros; raid1: every mirror), the dirty log marked
 * first as for a write. Healthy arrays only: -EAGAIN when a role is faulty
 * or being rebuilt, and -EOPNOTSUPP when a unit cannot make a range read
 * back zeros; the caller then writes zeros instead (over whatever part was
 * zeroed already, which is no harm).
 */
static int engine_zero_stripes(struct rt_engine *e, struct engine_ctx *c, uint64_t first,
			       uint64_t last)
{
	uint64_t W = e->lock_unit, pos, end = (last + 1) * W;
	struct layout_extent ext;
	uint32_t r;
	int ret = 0;

	stripe_lock_acquire(e, c, first, last);
	if (engine_rebuilding(e) || engine_faulty(e)) {
		ret = -EAGAIN;
		goto out;
	}
	if (e->dl) {
		ret = engine_dl_mark(e, c, first, last);
		if (ret)
			goto out;
	}
	if (e->layout.level == RT_LEVEL_5) {
		/* Stripe s is chunk row s of every role: one range per role. */
		for (r = 0; r < e->n && !ret; r++)
			ret = unit_zero_range(e->unit[r], e->data_offset + first * e->layout.chunk,
					      (last - first + 1) * e->layout.chunk);
		goto out;
	}
	for (pos = first * W; pos < end && !ret; pos += ext.len) {
		ret = layout_map(&e->layout, pos, end - pos, &ext);
		if (ret)
			break;
		if (e->layout.level != RT_LEVEL_1) {
			ret = unit_zero_range(e->unit[ext.role], e->data_offset + ext.offset, ext.len);
			continue;
		}
		for (r = 0; r < e->n && !ret; r++)
			ret = unit_zero_range(e->unit[r], e->data_offset + ext.offset, ext.len);
	}
out:
	stripe_lock_release(e, c, first, last);
	return ret;
}

int engine_discard(struct rt_engine *e, uint64_t off, uint64_t len)
{
	uint64_t W, s0, s1, batch, s, cnt;
	struct engine_ctx *c;
	int ret;

	if (!e || off > e->size || len > e->size - off)
		return -EINVAL;
	if (len == 0)
		return 0;
	W = e->lock_unit;
	/*
	 * Whole stripes are zeroed on the units; raid5 needs them whole (a
	 * partial stripe's parity must be computed). Elsewhere a stripe is a
	 * chunk or a row of chunks: whole blocks would do, but whole stripes
	 * keep one locking unit, and the edges are written as zeros.
	 */
	s0 = (off + W - 1) / W;
	s1 = (off + len) / W;
	c = ctx_acquire(e);
	batch = c->locks_cap - 1;
	ret = 0;
	if (s0 < s1) {
		ret = engine_write_zeros(e, c, off, s0 * W - off);
		for (s = s0; s < s1 && !ret; s += cnt) {
			cnt = min_u64(s1 - s, batch);
			ret = engine_zero_stripes(e, c, s, s + cnt - 1);
			if (ret == -EAGAIN || ret == -EOPNOTSUPP || ret == -EINVAL || ret == -ENOTTY)
				ret = engine_write_zeros(e, c, s * W, cnt * W);
		}
		if (!ret)
			ret = engine_write_zeros(e, c, s1 * W, off + len - s1 * W);
	} else {
		ret = engine_write_zeros(e, c, off, len);
	}
	if (!ret) {
		stat_add(&c->stats.discards, 1);
		stat_add(&c->stats.discard_bytes, len);
	}
	ctx_release(e, c);
	return ret;
}

/*
 * A write acknowledged before this call has completed on its unit, so a
 * data sync issued now to every unit covers it; writes still in flight are
 * not promised to the caller and need no draining.
 */
int engine_flush(struct rt_engine *e)
{
	struct engine_ctx *c;
	uint32_t r;
	int ret = 0;

	if (!e)
		return -EINVAL;
	c = ctx_acquire(e);
	for (;;) {
		uint64_t rb = engine_rebuilding(e);
		uint64_t m = engine_faulty(e);

		c->n_ios = 0;
		for (r = 0; r < e->n && !ret; r++) {
			/* A unit being rebuilt holds acknowledged writes too. */
			if ((m & ~rb) & role_bit(r))
				continue;
			ret = ctx_add_io(e, c, ENGINE_OP_FSYNC, r, NULL, 0, 0);
		}
		if (!ret)
			ret = ctx_run_ios(e, c);
		c->n_ios = 0;
		/* A unit that failed its flush is faulty now: the others hold the data. */
		if (ret != -EIO || (engine_faulty(e) == m && engine_rebuilding(e) == rb))
			break;
		ret = 0;
	}
	/* linear/raid0 with a unit gone, raid1/raid5 beyond it: not durable. */
	if (!ret && !engine_tolerates(e, engine_faulty(e)))
		ret = -EIO;
	if (!ret)
		stat_add(&c->stats.flushes, 1);
	ctx_release(e, c);
	return ret;
}

void engine_set_fault_hooks(struct rt_engine *e, const struct engine_fault_hooks *h)
{
	if (e)
		e->hooks = h ? *h : (struct engine_fault_hooks){ 0 };
}

void engine_set_failure_handler(struct rt_engine *e, engine_failure_fn fn, void *ctx)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->fail_mu);
	e->on_fail = fn;
	e->on_fail_ctx = ctx;
	pthread_mutex_unlock(&e->fail_mu);
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
	for (i = 0; i <= e->n_ctx; i++) {
		/* every context's, and then the event-driven reads' */
		struct engine_ctx_stats *cs = i < e->n_ctx ? &e->ctx[i].stats : &e->aread_stats;

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
	st->state = engine_state(e);
}

/* ---- event-driven reads and writes ---------------------------------- */

/* Wait for the event-driven I/O in flight; no new one starts until undrain. */
static void engine_aread_drain(struct rt_engine *e)
{
	const struct timespec tick = { .tv_sec = 0, .tv_nsec = 200000 };

	atomic_store(&e->aread_gate, true);
	while (atomic_load(&e->aread_inflight))
		nanosleep(&tick, NULL);
}

/*
 * Map [off, off + len) for engine_read_map (@write false) or
 * engine_write_map: -EAGAIN for whatever the synchronous path must do.
 */
static int engine_aio_map(struct rt_engine *e, bool write, void *buf, size_t len, uint64_t off,
			  struct engine_aio *ar)
{
	struct layout_extent ext;
	unsigned rr = 0;
	uint64_t pos;

	if (!e || !buf || !ar || !len || engine_check_range(e, len, off))
		return -EINVAL;
	ar->n = 0;
	ar->len = len;
	ar->write = write;
	/* O_DIRECT from/into the caller's buffer: only what needs no bounce buffer. */
	if (off % e->align || len % e->align || (uintptr_t)buf % e->align || len > ENGINE_PIECE)
		return -EAGAIN;
	/*
	 * Writes: only where a write is its unit writes and nothing else,
	 * linear and raid0 (no mirror or parity to keep in step, no log to
	 * mark, no stripe lock unless the units' blocks are larger than the
	 * array's); and not while a role's last write ran out of space, which
	 * only engine_write's success clears.
	 */
	if (write && ((e->layout.level != RT_LEVEL_LINEAR && e->layout.level != RT_LEVEL_0) ||
		      e->lock_all || e->dl || atomic_load(&e->nospace)))
		return -EAGAIN;
	atomic_fetch_add(&e->aread_inflight, 1);
	/* Any faulty or rebuilding role: the synchronous path judges where to go. */
	if (atomic_load(&e->aread_gate) || engine_faulty(e))
		goto sync;
	if (!write)
		rr = atomic_fetch_add_explicit(&e->aread_rr, 1, memory_order_relaxed);
	for (pos = off; pos < off + len; pos += ext.len) {
		struct engine_unit_io *io = ar->n ? &ar->io[ar->n - 1] : NULL;
		uint8_t *p = (uint8_t *)buf + (pos - off);
		uint64_t uoff;
		uint32_t role;

		if (layout_map(&e->layout, pos, off + len - pos, &ext))
			goto sync;
		/* raid1 reads: the mirror engine_read would choose (owed regions: the source) */
		role = write ? ext.role : engine_read_role(e, &ext, rr, 0);
		if (role == LAYOUT_NO_ROLE)
			goto sync;
		uoff = e->data_offset + ext.offset;
		if (io && io->role == role && (uint8_t *)io->buf + io->len == p &&
		    io->off + io->len == uoff) {
			io->len += (uint32_t)ext.len;
			continue;
		}
		if (ar->n == ENGINE_AIO_MAX)
			goto sync;
		io = &ar->io[ar->n++];
		io->fd = e->fd[role];
		io->role = role;
		io->off = uoff;
		io->len = (uint32_t)ext.len;
		io->buf = p;
	}
	return 0;
sync:
	ar->n = 0;
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
	return engine_aio_map(e, true, (void *)(uintptr_t)buf, len, off, ar);
}

void engine_aio_unmap(struct rt_engine *e, struct engine_aio *ar, bool ok)
{
	struct engine_ctx_stats *s = &e->aread_stats;

	if (ok) {
		atomic_fetch_add_explicit(ar->write ? &s->writes : &s->reads, 1,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(ar->write ? &s->write_bytes : &s->read_bytes, ar->len,
					  memory_order_relaxed);
		for (unsigned i = 0; i < ar->n; i++) {
			uint32_t r = ar->io[i].role;

			atomic_fetch_add_explicit(ar->write ? &s->unit[r].writes : &s->unit[r].reads,
						  1, memory_order_relaxed);
			atomic_fetch_add_explicit(ar->write ? &s->unit[r].write_bytes :
						  &s->unit[r].read_bytes, ar->io[i].len,
						  memory_order_relaxed);
		}
	}
	ar->n = 0;
	atomic_fetch_sub(&e->aread_inflight, 1);
}

static void ctx_free(struct engine_ctx *c)
{
	if (c->ring_ok) {
		if (c->fixed_ok)
			io_uring_unregister_buffers(&c->ring);
		io_uring_queue_exit(&c->ring);
	}
	free(c->mem);
	free(c->ios);
	free(c->retry);
	free(c->segs);
	free(c->locks);
}

static int ctx_init_ring(struct engine_ctx *c)
{
	struct iovec iov = { .iov_base = c->mem, .iov_len = c->mem_size };
	int ret;

	/* Completions are only reaped by the submitting thread, inside io_uring_enter. */
	ret = io_uring_queue_init(ENGINE_RING_ENTRIES, &c->ring, IORING_SETUP_COOP_TASKRUN);
	if (ret == -EINVAL)
		ret = io_uring_queue_init(ENGINE_RING_ENTRIES, &c->ring, 0);
	if (ret)
		return ret;
	c->ring_ok = true;
	/* Registered buffers spare the kernel pinning pages on every I/O. */
	c->fixed_ok = io_uring_register_buffers(&c->ring, &iov, 1) == 0;
	return 0;
}

static int ctx_init(struct rt_engine *e, struct engine_ctx *c, unsigned idx)
{
	uint64_t C = e->layout.chunk;
	int ret;

	c->scratch_cap = e->layout.level == RT_LEVEL_5 ? ENGINE_DATA_CAP : 0;
	c->mem_size = ENGINE_DATA_CAP + c->scratch_cap;
	ret = posix_memalign((void **)&c->mem, 4096, c->mem_size);
	if (ret) {
		c->mem = NULL;
		return -ret;
	}
	c->data = c->mem;
	c->scratch = c->mem + ENGINE_DATA_CAP;

	/*
	 * Enough for one piece without an early run: an I/O per chunk piece,
	 * twice over for raid5 (reads and writes), one per mirror for raid1.
	 */
	c->ios_cap = (unsigned)(2 * (ENGINE_DATA_CAP / C + 3) + e->n + 8);
	c->segs_cap = (unsigned)(ENGINE_DATA_CAP / (C * e->data_roles) + 8);
	c->locks_cap = (unsigned)max_u64(ENGINE_DATA_CAP / e->lock_unit + 2,
					 ENGINE_WALK_STRIPES + 1);
	c->ios = calloc(c->ios_cap, sizeof(*c->ios));
	c->retry = calloc(c->ios_cap, sizeof(*c->retry));
	c->segs = calloc(c->segs_cap, sizeof(*c->segs));
	c->locks = calloc(c->locks_cap, sizeof(*c->locks));
	if (!c->ios || !c->retry || !c->segs || !c->locks)
		return -ENOMEM;
	c->rr = idx;
	return ctx_init_ring(c);
}

/* The units' logical block size: the unit of O_DIRECT alignment. */
static int engine_unit_align(int fd, uint32_t *align)
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

int engine_create(const struct rt_sb *sb, struct rt_unit *const *units,
		  unsigned n_units, struct rt_engine **out)
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
	pthread_mutex_init(&e->pool_mu, NULL);
	pthread_cond_init(&e->pool_cond, NULL);
	pthread_mutex_init(&e->fail_mu, NULL);
	pthread_mutex_init(&e->admin_mu, NULL);

	for (r = 0; r < n; r++)
		role_size[r] = sb->slots[r].data_size;
	ret = layout_init(&e->layout, sb->array.level, n, sb->array.chunk_size, role_size);
	if (ret)
		goto fail;
	e->n = n;
	e->data_roles = layout_data_roles(&e->layout);
	e->lock_unit = (uint64_t)e->layout.chunk * e->data_roles;
	e->data_offset = sb->unit.data_offset;
	e->align = 512;
	atomic_store(&e->retry_count, ENGINE_RETRY_COUNT_DEFAULT);
	atomic_store(&e->retry_window_ms, ENGINE_RETRY_WINDOW_DEFAULT_MS);
	atomic_store(&e->gather_us, ENGINE_GATHER_US_DEFAULT);

	for (r = 0; r < n; r++) {
		e->fd[r] = -1;
		if (!units[r] || sb->slots[r].state != RT_SLOT_ACTIVE) {
			rt_log(RT_LOG_DEBUG, "engine: role %u is not active", r);
			atomic_fetch_or(&e->faulty, role_bit(r));
			continue;
		}
		if (unit_size(units[r]) < e->data_offset + e->layout.role_size[r]) {
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

	e->buckets = calloc(ENGINE_LOCK_BUCKETS, sizeof(*e->buckets));
	if (!e->buckets) {
		ret = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < ENGINE_LOCK_BUCKETS; i++) {
		pthread_mutex_init(&e->buckets[i].mu, NULL);
		pthread_cond_init(&e->buckets[i].cond, NULL);
	}

	ret = posix_memalign((void **)&e->zeros, 4096, ENGINE_PIECE);
	if (ret) {
		e->zeros = NULL;
		ret = -ret;
		goto fail;
	}
	memset(e->zeros, 0, ENGINE_PIECE);

	e->ctx = calloc(ENGINE_CONTEXTS, sizeof(*e->ctx));
	if (!e->ctx) {
		ret = -ENOMEM;
		goto fail;
	}
	e->n_ctx = ENGINE_CONTEXTS;
	for (i = 0; i < e->n_ctx; i++) {
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
		for (i = 0; i < e->n_ctx; i++)
			ctx_free(&e->ctx[i]);
		free(e->ctx);
	}
	if (e->buckets) {
		for (i = 0; i < ENGINE_LOCK_BUCKETS; i++) {
			pthread_mutex_destroy(&e->buckets[i].mu);
			pthread_cond_destroy(&e->buckets[i].cond);
		}
		free(e->buckets);
	}
	pthread_mutex_destroy(&e->pool_mu);
	pthread_cond_destroy(&e->pool_cond);
	pthread_mutex_destroy(&e->fail_mu);
	pthread_mutex_destroy(&e->admin_mu);
	engine_dl_free(e);
	free(e->zeros);
	free(e->walk_mem);
	free(e);
}
