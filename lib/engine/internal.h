/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_ENGINE_INTERNAL_H
#define RAIDTOOL_ENGINE_INTERNAL_H

/*
 * The engine's one private header (not installed): what the files of
 * lib/engine/ share, and what lib/rebuild.c (the background walks) and
 * tests/unit/test_engine.c need from them.
 *
 *   engine.c         create/destroy, settings, state, statistics, attach/detach
 *   ring.c           request contexts: their io_uring ring, unit I/O
 *                    submission and completion, unit errors
 *   request.c        a request's life: pieces, reads, writes, discard, flush
 *   aio.c            event-driven requests on the caller's ring
 *   stripe-lock.c    the stripe-lock table
 *   level-striped.c  linear and raid0   (one struct engine_level_ops each:
 *   level-raid1.c    raid1               the request path, the walks and
 *   level-raid5.c    raid5               setup dispatch through it)
 *   raid5-gather.c   raid5: whole stripes gathered from several writers
 *   intent-log.c     the dirty-region log's glue (lib/dirtylog.c is the bitmap)
 *   walk.c           the walks' pipelined runs for lib/rebuild.c (on a loop host's
 *                    event loops, or on the walk's own rings)
 *   replace.c        hot replace: the role's writes to its replacement too
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <liburing.h>

#include <raidtool/engine.h>
#include <raidtool/layout.h>

struct rt_engine;
struct engine_ctx;
struct rt_walk;
struct engine_dl;

/* ---- for lib/rebuild.c and tests/unit/test_engine.c --------------------- */

struct engine_geom {
	int32_t level;
	uint32_t n;
	uint64_t chunk;			/* bytes of a role per stripe */
	uint64_t role_bytes;		/* bytes of every role's data area in use */
};

void engine_geom(const struct rt_engine *e, struct engine_geom *g);

/* A request context; taken before any stripe lock, as requests do. */
struct engine_ctx *engine_ctx_get(struct rt_engine *e);
void engine_ctx_put(struct rt_engine *e, struct engine_ctx *c);

int engine_unit_fits_role(const struct rt_engine *e, uint32_t role, const struct rt_unit *u);

/*
 * A scrub of stripes: what it does with copies that differ, and what it
 * found (added to by every call).
 *
 * raid5 compares parity with the XOR of the data and, repairing, rewrites
 * the parity: single parity cannot tell which chunk is wrong, so a damaged
 * data chunk stays damaged (and the parity then agrees with it).
 *
 * raid1 compares the working mirrors block by block. Repairing, a block
 * takes the value most copies hold. When no value is held by more copies
 * than any other (a tie: always so with two working mirrors), the copy of
 * @prefer wins when that role is working and one of the tied; otherwise two
 * working mirrors (or @settle_ties, as a resync wants) keep the first
 * working role's copy, and three or more leave the block as found and count
 * it in @ties.
 */
struct engine_scrub {
	bool repair;
	bool settle_ties;
	bool prefer_set;
	uint32_t prefer;
	uint64_t mismatches;		/* stripes found different */
	uint64_t repaired;		/* stripes rewritten */
	uint64_t ties;			/* raid1: stripes with a tie left as found */
	uint64_t kept_roles;		/* raid1: bit r, role r's copy settled a tie */
};

/*
 * Called by engine_walk_run each time a piece is done: the walk is done
 * below role byte @pos. True stops the run once the pieces in flight are
 * done (a cancel, a checkpoint or a rate limit to honour); it runs while
 * later pieces hold their stripe locks, so it must not wait.
 */
typedef bool (*engine_walk_stop_fn)(void *arg, uint64_t pos);

/* What a walk run does: @kind (RT_WALK_*), of @role or with @sc. */
struct engine_walk_job {
	int kind;
	uint32_t role;			/* recover, replace: the role rebuilt or copied */
	struct engine_scrub *sc;	/* check, repair, resync: how, and what was found */
};

/*
 * Walk stripes [s0, s0 + cnt): rebuild @job->role from the others, copy it
 * to its replacement (from its unit or, faulty, from the others), or scrub,
 * several pieces in flight, each under its stripe locks. *@s_done: the
 * stripes from s0 done, also on error and when @stop or a wait for a
 * context (a drain) ended the run early. -EIO when the sources or the
 * target are gone; a scrub of a degraded raid5, -EBUSY.
 */
int engine_walk_run(struct rt_engine *e, const struct engine_walk_job *job, uint64_t s0,
		    uint64_t cnt, engine_walk_stop_fn stop, void *arg, uint64_t *s_done);

/* The walk has ended: free what it borrowed (one walk at a time). */
void engine_walk_release_mem(struct rt_engine *e);

/* Is the replace of @role still good: the replacement working, and with the role faulty, written? */
bool engine_replace_intact(struct rt_engine *e, uint32_t role);

/* The rebuilt role becomes a normal active one. */
int engine_recover_complete(struct rt_engine *e, uint32_t role);

/* Where the engine keeps the walk state of lib/rebuild.c. */
struct rt_walk **engine_walk_slot(struct rt_engine *e);

/* Region @region of the dirty log has been resynced: it may be cleared when idle. */
void engine_dirtylog_resynced(struct rt_engine *e, uint64_t region);

/*
 * Fault injection for tests/unit/test_engine.c (nothing else sets it): what
 * no real unit produces on demand. @io_result sees every unit I/O
 * completion (@op 0 read, 1 write, 2 flush; @len the bytes asked for) and
 * returns the result the engine acts on: a short count, 0, -EAGAIN. @submit
 * runs before each ring submission: 0 submits, a negative errno fails the
 * submission with it (nothing submitted). Set before the first request.
 */
struct engine_fault_hooks {
	int (*io_result)(void *arg, int op, uint32_t role, uint32_t len, int res);
	int (*submit)(void *arg);
	void *arg;
};
void engine_set_fault_hooks(struct rt_engine *e, const struct engine_fault_hooks *h);

/* lib/rebuild.c: is a walk running? */
bool rebuild_walk_busy(struct rt_engine *e);

/* lib/rebuild.c: cancel a running walk and free the state (engine_destroy). */
void rebuild_release(struct rt_engine *e);

/* ---- inside lib/engine/ ------------------------------------------------ */

#define ENGINE_CONTEXTS 16u
#define ENGINE_PIECE (1u << 20)		/* FUSE's max_write */
#define ENGINE_ALIGN_MAX 4096u		/* largest logical block size we accept */
#define ENGINE_DATA_CAP (ENGINE_PIECE + 2u * ENGINE_ALIGN_MAX)
#define ENGINE_RING_ENTRIES 256u
#define ENGINE_LOCK_BUCKETS 1024u	/* power of two */
#define ENGINE_RETRY_MAX 10000u		/* -EAGAIN resubmissions of one I/O */
#define ENGINE_ERR_TRIES_MAX 100u	/* fits engine_io.err_tries */
#define ENGINE_RETRY_WINDOW_MAX_MS 600000u
#define ENGINE_WALK_STEP (2u << 20)	/* role bytes per unit transfer of a walk */
#define ENGINE_WALK_DEPTH 4u		/* walk pieces in flight */
#define ENGINE_WALK_MEM (32u << 20)	/* the walk's buffers, at most */
#define ENGINE_WALK_STRIPES 256u	/* stripes a walk piece may lock */
#define ENGINE_AREQS 64u		/* mapped requests holding stripe locks at once */
#define ENGINE_AREQ_SCRATCH (64u << 10)	/* raid5: old data and parity, or a rebuilt chunk's sources */
#define ENGINE_AREQ_WRITE_MAX (16u << 10)	/* raid5: the largest write mapped */
#define ENGINE_AREQ_LOST 8u		/* raid5: extents a degraded read rebuilds */

#define ENGINE_RING_HOLDS 12u		/* raid5 writes holding stripes on rings at once */
#define ENGINE_HOLD_SEGS (ENGINE_AIO_MAX / 2)	/* column ranges of a holder's round */
#define ENGINE_GATHER_MAX 16u		/* pieces one gathered stripe is made of */
#define ENGINE_GATHER_US_DEFAULT 10000u	/* longest wait for a stripe's other parts */
#define ENGINE_GATHER_US_MAX 1000000u
#define ENGINE_RECENT_WRITES 32u		/* ends of recent writes: streams are seen */
#define ENGINE_GATHER_MISSES 8u		/* waits in vain in a row: stop waiting ... */
#define ENGINE_GATHER_PROBE 64u		/* ... but for one write in this many */
#define ENGINE_GATHER_GRACE 8u		/* the first 1/8 of the window: wait anyway */
#define ENGINE_GATHER_POLL_NS 1000000ull	/* a waiting holder looks at the writers */
#define ENGINE_GATHER_IDLE_NS 10000000ull	/* no write for this long: the writers wait on us */

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
	uint8_t fixed;			/* @buf lies in registered buffer fixed - 1 (0: none) */
	bool replica;			/* to the replacement of @role (raidtool replace) */
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

/*
 * A holder on a ring (raid5_map_hold) waiting for the offers that make one
 * of its stripes whole: on the stripe's bucket's list while @linked, under
 * the bucket's mutex.
 */
struct stripe_gatherer {
	struct stripe_gatherer *next;
	struct engine_areq *q;
	bool linked;
};

/*
 * A gathering holder's watch on arriving writes (gather_until): no write
 * for @idle, the writers wait for us. Never shorter than
 * ENGINE_GATHER_IDLE_NS: on disks the next parts come only as earlier
 * writes complete, milliseconds apart, and giving up on them turned whole
 * stripes into reconstruct-writes.
 */
struct gather_idle {
	uint64_t idle, mark;	/* ns; look at the arrivals again at @mark */
	unsigned seen;		/* recent_next when last looked at */
};

struct stripe_lock_bucket {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct stripe_lock_entry *held;
	/* Mapped writes queued until a lock here is let go or a waiter leaves. */
	struct engine_aio *parked;
	struct stripe_contrib *offers;
	/* Holders on a ring waiting for offers here (raid5_map_hold): woken by each new offer. */
	struct stripe_gatherer *gatherers;
	/* raid5_gather: until when holders of stripe given_up - 1 do not wait. */
	uint64_t given_up, given_up_until;
	unsigned waiters;
} __attribute__((aligned(64)));

/* What a writer offers while it waits: its piece [a0, a1) in @data. */
struct stripe_offer {
	uint64_t a0, a1;
	const uint8_t *data;
};

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

/*
 * Where raid5 plans a write's column ranges (raid5_plan): @n_segs of at
 * most @cap in @segs, their old data and parity in @scratch. A context's
 * (the synchronous path), or a holder's on a ring (its rounds).
 */
struct raid5_batch {
	struct raid5_seg *segs;
	unsigned n_segs, cap;
	uint8_t *scratch;
	size_t scratch_cap;
};

struct engine_ctx {
	_Atomic int busy;
	bool ring_ok, fixed_ok, broken;
	bool walk_buf_ok;		/* the ring has a buffer 1 for a walk's memory */
	uint8_t *walk_buf;		/* registered as buffer 1 (ctx_set_walk_buf) */
	size_t walk_buf_len;
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
	struct raid5_batch plan;		/* raid5: segs of its own, scratch above */
	struct stripe_lock_entry *locks;
	unsigned locks_cap;
	struct stripe_contrib offer[2];	/* this writer's offers: first, last stripe */
	/* raid5_gather: the pieces of up to two whole stripes being written. */
	struct stripe_contrib *taken[2][ENGINE_GATHER_MAX];
	unsigned n_taken[2];
	unsigned rr;			/* raid1 read spreading */
	uint64_t failed;		/* roles that failed an I/O in the current run */
	/* The current run (ctx_start_ios, ctx_run_ios): next I/O to queue, in flight, first error. */
	unsigned run_next, run_inflight;
	int run_err;
	bool run_started;
	/*
	 * A write of the last run failed without failing its role, whatever
	 * error came first: refused for want of space, or -EAGAIN/-EINTR past
	 * its retries. The role stays in service holding its old bytes, so
	 * raid5_undo must put back what the others took.
	 */
	bool run_kept_role;
	struct engine_ctx_stats stats;
};

struct rt_engine {
	struct layout layout;
	const struct engine_level_ops *ops;	/* the level's */
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
	/* Bumped under the drain whenever fd[r] changes: a result of the old unit's is not the new one's. */
	atomic_uint unit_gen[RT_MAX_UNITS];
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
	/*
	 * raidtool replace (lib/engine/replace.c): role @replace_role
	 * (LAYOUT_NO_ROLE: none) has a second unit being filled. Every write
	 * and flush of the role also goes to it (only to it once the role is
	 * faulty: it then also has its @rebuild bit, so that the level plans
	 * the role's writes); reads never do. An error of the replacement
	 * sets @replace_failed and fails nothing else.
	 */
	_Atomic uint32_t replace_role;
	int replace_fd;
	struct rt_unit *replace_unit;
	atomic_bool replace_failed;
	/* engine_create_readonly: every write, discard and write-zeroes is EROFS. */
	bool readonly;
	struct rt_unit *unit[RT_MAX_UNITS];
	pthread_mutex_t admin_mu;	/* attach/detach: one drain at a time */
	pthread_mutex_t fail_mu;
	engine_failure_fn on_fail;
	void *on_fail_ctx;
	engine_failure_fn on_replica_fail;	/* under fail_mu, as on_fail */
	void *on_replica_fail_ctx;

	struct engine_ctx *ctx;		/* n_ctx shared, then ctx[n_ctx] for redos alone */
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
	atomic_uint writers;		/* engine_write calls under way */
	atomic_int callers;		/* engine_add_callers: most threads in the engine */
	atomic_int ring_exports;	/* of those exports, with small writes on rings too */
	atomic_uint blocked;		/* of them, waiting: a stripe lock, a context, a gather */
	struct {
		_Atomic uint64_t off, end;
	} recent[ENGINE_RECENT_WRITES];
	atomic_uint recent_next;

	uint8_t *zeros;			/* ENGINE_PIECE bytes of zeros: engine_discard */
	uint8_t *walk_mem;		/* the running walk's buffers (walk.c) */
	size_t walk_step;
	unsigned walk_nbuf;		/* steps per piece in walk_mem */

	struct rt_walk *walk;		/* lib/rebuild.c */
	/*
	 * The loop host the walk's pieces run on (engine_set_loop_host; no
	 * @submit: none). @host_mu is held across a submit; a piece handed
	 * back by a loop is announced on @walk_cond under @walk_mu.
	 */
	pthread_mutex_t host_mu;
	struct engine_loop_host host;
	pthread_mutex_t walk_mu;
	pthread_cond_t walk_cond;
	_Atomic uint64_t walk_loop_pieces, walk_own_pieces;
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
	/* The stripe locks of mapped writes (ENGINE_AREQS sets; none free: -EAGAIN). */
	struct engine_areq *areqs, *areq_free;
	struct stripe_lock_entry *areq_locks;
	uint8_t *areq_scratch;
	/* raid5: what holders on rings borrow (raid5_map_hold), under areq_mu too. */
	struct raid5_hold *holds, *hold_free;
	struct raid5_seg *hold_segs;
	uint8_t *hold_parity;
	pthread_mutex_t areq_mu;
};


/*
 * What one RAID level does, behind one table: the request path, the walks
 * and the engine's setup ask the level instead of switching on it. A NULL
 * entry is something the level does not have.
 */
struct engine_scrub_piece;

struct engine_level_ops {
	const char *name;
	/* Mirrors or parity: a dirty log, walks, degraded writes, every write locks. */
	bool redundant;
	/* Contexts carry a scratch buffer (parity, old data) as big as the data buffer. */
	bool scratch;
	/* Reads with a faulty role take their stripe locks (a reconstruction reads a stripe). */
	bool lock_degraded_reads;
	/* A scrub needs every role (none faulty or rebuilding): else -EBUSY. */
	bool scrub_needs_all;
	/* Can the array still take writes with the roles in @m faulty? */
	bool (*tolerates)(const struct rt_engine *e, uint64_t m);
	/*
	 * Which role serves a read of @ext with the roles in @m faulty
	 * (@rr spreads reads over copies): LAYOUT_NO_ROLE when none can; a
	 * faulty role means the caller reconstructs (read_lost) or fails.
	 */
	uint32_t (*read_role)(const struct rt_engine *e, const struct layout_extent *ext,
			      unsigned rr, uint64_t m);
	/* Rebuild @ext of a faulty role into @dst from the others (runs its I/O). */
	int (*read_lost)(struct rt_engine *e, struct engine_ctx *c, uint8_t *dst,
			 const struct layout_extent *ext, uint64_t m);
	/*
	 * engine_read_map, @ext on a faulty role (the roles in @m), the
	 * range's stripe locks held: queue into @ar the reads that rebuild it
	 * into @dst; map_next then computes it. -EAGAIN: the synchronous
	 * path's (no room, or beyond what the level spares). NULL: never.
	 */
	int (*map_read_lost)(struct rt_engine *e, struct engine_aio *ar, uint8_t *dst,
			     const struct layout_extent *ext, uint64_t m);
	/*
	 * Write the aligned range [a0, a1) from @data (which holds a0) with the
	 * roles in @m faulty and those in @rb being rebuilt, the piece's stripe
	 * locks held (when the level locks), running all of its I/O.
	 */
	int (*write)(struct rt_engine *e, struct engine_ctx *c, uint8_t *data, uint64_t a0,
		     uint64_t a1, uint64_t m, uint64_t rb);
	/*
	 * Healthy, the aligned piece [a0, a1) in @data, its locks held: write
	 * what can be written together with other writers' parts (they offer
	 * theirs while waiting for the locks); *lo, *hi: what is left.
	 */
	int (*gather)(struct rt_engine *e, struct engine_ctx *c, uint8_t *data, uint64_t a0,
		      uint64_t a1, uint64_t *lo, uint64_t *hi);
	/*
	 * engine_write_map: the unit writes of [off, off + len) from @buf into
	 * @ar (engine_aio_add), the range's stripe locks held, with the roles in
	 * @m faulty and those in @rb being rebuilt; -EAGAIN when the write needs
	 * more than its unit writes (the synchronous path then does it). NULL:
	 * never.
	 */
	int (*map_write)(struct rt_engine *e, struct engine_aio *ar, uint8_t *buf, uint64_t off,
			 uint64_t len, uint64_t m, uint64_t rb);
	/*
	 * A write map_write left waiting on the ring with its locks held
	 * (-EINPROGRESS, @ar->areq->gathering) is mapped again: as map_write;
	 * with @stop (the array changed meanwhile) it gives up (-EAGAIN).
	 */
	int (*map_resume)(struct rt_engine *e, struct engine_aio *ar, bool stop);
	/*
	 * The round after @ar's completed in full (engine_aio_next): 1 with its
	 * unit I/O in @ar, 0 when there is none. NULL: one round.
	 */
	int (*map_next)(struct rt_engine *e, struct engine_aio *ar);
	/*
	 * A mapping that locks ends, its stripe locks still held: written or
	 * read (@ok), or failed (some of a write's unit I/O may have happened).
	 */
	void (*map_end)(struct rt_engine *e, struct engine_aio *ar, bool ok);
	/*
	 * A failed round of a mapped write was redone on @c (engine_aio_redo),
	 * its stripe locks still held: write what the mapping has not come to
	 * yet, on @c, synchronously. NULL: every mapping is one round of writes.
	 */
	int (*map_rest)(struct rt_engine *e, struct engine_aio *ar, struct engine_ctx *c);
	/*
	 * A mapped write's round ran out of space on a unit, even when
	 * redone (engine_aio_redo): put back on @c, synchronously, what
	 * its other unit writes replaced that no stripe may lose (raid5:
	 * see raid5_queue_undo). NULL: nothing to put back.
	 */
	void (*map_undo)(struct rt_engine *e, struct engine_aio *ar, struct engine_ctx *c);
	/* Stripes [first, last], whole, zeroed on the units (healthy, locks held). */
	int (*zero)(struct rt_engine *e, uint64_t first, uint64_t last);
	/* Can @role be rebuilt with the roles in @m faulty (itself among them)? */
	bool (*can_recover)(const struct rt_engine *e, uint32_t role, uint64_t m);
	/*
	 * Recover @role's bytes [off, off + len): queue the reads of what
	 * rebuilds them into @buf (room for n steps of @step bytes), then, once
	 * they ran, recover_compute leaves them in @buf[0, len) (NULL: the
	 * read is the copy).
	 */
	int (*recover_read)(struct rt_engine *e, struct engine_ctx *c, uint32_t role, uint8_t *buf,
			    uint64_t step, uint64_t off, uint64_t len, uint64_t m);
	int (*recover_compute)(const struct rt_engine *e, uint32_t role, uint8_t *buf,
			       uint64_t step, uint64_t len);
	/* Compare (and repair) one column piece of the copies read (see walk.c). */
	int (*scrub)(struct rt_engine *e, struct engine_ctx *c, struct engine_scrub_piece *p,
		     struct engine_scrub *sc);
};

extern const struct engine_level_ops engine_striped_ops;	/* linear, raid0 */
extern const struct engine_level_ops engine_raid1_ops;
extern const struct engine_level_ops engine_raid5_ops;

/* Where raid5_plan goes on planning a write. */
struct raid5_cursor {
	uint64_t s;			/* stripe */
	unsigned i;			/* its column range */
	uint32_t col;			/* where in it; UINT32_MAX: its start */
};

/*
 * What a raid5 write holding its stripes on a ring (raid5_map_hold)
 * borrows: the parity of its stripes (ENGINE_DATA_CAP bytes) and the
 * pieces it takes, @n_taken[i] in @taken[i] for its stripe part[i]; or,
 * once it gave up on a large write, its rounds (raid5_map_fallback). A pool
 * of its own, apart from the contexts: holders borrowing contexts competed
 * with the writes that gave up for them, and once the workers had them all
 * no write could hold, every one gave up and went to the workers (CI's
 * stripe.bats 4: 444 of 446 writes there, nothing gathered).
 */
struct raid5_hold {
	struct raid5_hold *next;	/* on e->hold_free */
	uint8_t *parity;
	struct stripe_contrib *taken[2][ENGINE_GATHER_MAX];
	unsigned n_taken[2];
	/* Having given up: the batch of its rounds, scratch in @parity. */
	struct raid5_batch plan;
};

/*
 * What a mapped request that locks (a write, or a raid5 read with a role
 * faulty) keeps until it is unmapped: the locks of stripes [first, last]
 * and, raid5, the planned column range, its scratch (ENGINE_AREQ_SCRATCH
 * bytes) and which round it is in.
 */
struct engine_areq {
	struct engine_areq *next;	/* on e->areq_free */
	uint64_t first, last;
	struct stripe_lock_entry *locks;
	uint8_t *scratch;
	struct raid5_seg seg;
	uint8_t *data;			/* the request's data, holding @a0 */
	uint64_t a0;
	unsigned round;			/* 0: reading, 1: writing data and parity */
	/*
	 * raid5: a mapped write queued on its stripe (held or waited for)
	 * offers its part to the holder meanwhile (engine_aio_offer); @parked
	 * is the request while it is queued so, holding no lock.
	 */
	struct stripe_contrib offer;
	struct engine_aio *parked;
	/*
	 * raid5, a write that holds its stripes on the ring and writes them
	 * whole (raid5_map_hold): what it borrowed for its parity and the
	 * pieces it takes (@hold), its parts of the
	 * stripes it covers only in part (@part[0..n_part), own[i] in stripe
	 * part[i]), and while it waits for their other parts (@gathering,
	 * queued as @parked): the window, the watch on arriving writes, its
	 * places on the buckets, and @armed until it is woken (by an offer,
	 * or by its caller at @ar->wake_ns: engine_aio_expire), once.
	 */
	struct raid5_hold *hold;
	uint64_t a1;
	uint64_t part[2];
	unsigned n_part;
	struct stripe_contrib own[2];
	bool gathering, may_wait, taken;
	bool waited;			/* it waited for its parts in vain (raid5_hold_give_up) */
	uint64_t t0, deadline;
	struct gather_idle gi;
	struct stripe_gatherer gw[2];
	atomic_bool armed;
	/*
	 * raid5, a holder that gave up on a large write: its rounds on the
	 * ring (raid5_rounds_plan), planned in @hold->plan from @cur on;
	 * @reading: the batch's reads are out; @last_batch: it is the last one.
	 */
	bool rounds, reading, last_batch;
	struct raid5_cursor cur;
	/*
	 * raid5 rounds on a degraded or rebuilding array: the masks loaded
	 * under the locks, and the batch of a small write (@seg in @scratch)
	 * when it borrowed no hold (raid5_map_degraded).
	 */
	uint64_t m, rb;
	struct raid5_batch small;
	/*
	 * raid5, a degraded read of [@a0, @a1) into @data: the faulty role's
	 * extents (@len bytes at column @col of @stripe), each rebuilt into
	 * @dst from the other roles' bytes, those the request does not read
	 * anyway read at @src (raid5_map_read_lost), in @scratch or, when
	 * that is full, a borrowed hold's buffer.
	 */
	struct raid5_lost {
		uint8_t *dst, *src;
		uint64_t stripe;
		uint32_t col, len, role;
	} lost[ENGINE_AREQ_LOST];
	unsigned n_lost;
	size_t lost_used;		/* of the buffer the last one is in */
};

/*
 * One column piece of a scrub: the copies of role bytes [pos, pos + len)
 * read from the working roles @roles[0..nw) into @buf[w] + @o, and one
 * more buffer @buf[nw] for what the level computes. What it found: @bad,
 * @tie (raid1: left as found), @fixed, @kept (raid1: roles whose copy
 * settled a tie).
 */
struct engine_scrub_piece {
	uint8_t **buf;
	const uint32_t *roles;
	uint32_t nw;
	uint64_t o, len, pos, stripe;
	bool bad, tie, fixed;
	uint64_t kept;
};

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

/*
 * The rebuilding and faulty roles as one consistent pair, for planning a
 * write. A completed recover clears the faulty bit before the rebuild bit;
 * a role failing while it is replaced gets the rebuild bit before the
 * faulty one. Loaded rebuild first, the second is seen half done (faulty,
 * not yet rebuilding: the replacement's writes skipped); loaded the other
 * way, the first is. The faulty mask is taken between two equal loads of
 * the rebuild mask, which sees either transition whole.
 */
static inline void engine_role_masks(const struct rt_engine *e, uint64_t *rb, uint64_t *m)
{
	do {
		*rb = engine_rebuilding(e);
		*m = engine_faulty(e);
	} while (*rb != engine_rebuilding(e));
}

/*
 * Where a write or flush of @role goes while the role is being replaced:
 * to its unit and the replacement, or, the unit failed meanwhile, to the
 * replacement alone (every path that writes: ring.c, engine_aio_add). A
 * replacement that failed an I/O is given up (the replace ends without a
 * swap at the walk's next checkpoint): the unit's writes no longer wait
 * for its errors to be tried again, and when the unit had failed too the
 * role's writes go nowhere, as a faulty role's do (the parity holds them).
 */
enum replica_mode { TO_NOWHERE = 0, TO_UNIT = 1, TO_REPLICA = 2, TO_BOTH = TO_UNIT | TO_REPLICA };

static inline enum replica_mode replica_mode(const struct rt_engine *e, enum engine_op op,
					     uint32_t role)
{
	if (op == ENGINE_OP_READ ||
	    atomic_load_explicit(&e->replace_role, memory_order_acquire) != role)
		return TO_UNIT;
	if (atomic_load_explicit(&e->replace_failed, memory_order_relaxed))
		return engine_faulty(e) & role_bit(role) ? TO_NOWHERE : TO_UNIT;
	return engine_faulty(e) & role_bit(role) ? TO_REPLICA : TO_BOTH;
}

/*
 * raid5: the unit writes a stripe's column range takes at most, its data
 * and parity, and one more to a role's replacement during a hot replace.
 */
static inline unsigned raid5_range_writes(const struct rt_engine *e)
{
	return e->data_roles + 1 +
	       (atomic_load_explicit(&e->replace_role, memory_order_relaxed) != LAYOUT_NO_ROLE);
}

static inline void stat_add(_Atomic uint64_t *c, uint64_t v)
{
	/* Only the context's owner writes: no read-modify-write atomics needed. */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}


/* ---- shared between the files of lib/engine/ ----------------------------- */

/* engine.c */
int engine_check_range(const struct rt_engine *e, size_t len, uint64_t off);
/* Raise *@align to the logical block size of the unit open on @fd. */
int engine_unit_align(int fd, uint32_t *align);

static inline bool engine_tolerates(const struct rt_engine *e, uint64_t m)
{
	return e->ops->tolerates(e, m);
}

/* ring.c */
struct engine_ctx *ctx_acquire(struct rt_engine *e);
/* For engine_aio_redo: a shared context, else the one kept for redos (waited for). */
struct engine_ctx *ctx_acquire_redo(struct rt_engine *e);
void ctx_release(struct rt_engine *e, struct engine_ctx *c);
int ctx_init(struct rt_engine *e, struct engine_ctx *c, unsigned idx);
void ctx_free(struct engine_ctx *c);
int ctx_start_ios(struct rt_engine *e, struct engine_ctx *c);
int ctx_run_ios(struct rt_engine *e, struct engine_ctx *c);
/*
 * A unit I/O of @c's failed with @res: counted, logged; -ENOSPC (the role
 * stays, out of space) or -EIO, the role then in c->failed unless @res is
 * -EAGAIN/-EINTR. ctx_fail_roles makes the roles in c->failed faulty.
 */
int engine_unit_error(struct rt_engine *e, struct engine_ctx *c, const struct engine_io *io,
		      int res);
void ctx_fail_roles(struct rt_engine *e, struct engine_ctx *c);
struct engine_ctx *ctx_try_acquire(struct rt_engine *e);
/* The queued I/O as a round of @ar for a loop host; -EAGAIN when it does not fit. */
int ctx_ios_to_aio(const struct rt_engine *e, const struct engine_ctx *c, struct engine_aio *ar);
/* The queued I/O ran in full elsewhere (a loop host): count it, empty the queue. */
void ctx_ios_done(struct rt_engine *e, struct engine_ctx *c);
void ctx_set_walk_buf(struct engine_ctx *c, uint8_t *buf, size_t len);
int ctx_add_io(struct rt_engine *e, struct engine_ctx *c, enum engine_op op,
	       uint32_t role, uint8_t *buf, uint64_t unit_off, uint64_t len);
int ctx_add_raw(struct rt_engine *e, struct engine_ctx *c, enum engine_op op,
		uint32_t role, uint8_t *buf, uint64_t off, uint32_t len);
/*
 * A transfer to @role's unit alone, or (@replica) to its replacement alone
 * (the replace walk's copy; a mapped write's redo).
 */
int ctx_add_io_to(struct rt_engine *e, struct engine_ctx *c, enum engine_op op, uint32_t role,
		  bool replica, uint8_t *buf, uint64_t unit_off, uint64_t len);
int engine_mark_faulty(struct rt_engine *e, uint32_t role, bool spared_only);
/* The replacement's @io failed with @res: the replace stops (once, said once). */
void engine_replica_error(struct rt_engine *e, const struct engine_io *io, int res);
void engine_drain(struct rt_engine *e);
void engine_undrain(struct rt_engine *e);

/* request.c */
uint32_t engine_extent_role(const struct rt_engine *e, const struct layout_extent *ext,
			    unsigned rr, uint64_t m);
int ctx_add_reads(struct rt_engine *e, struct engine_ctx *c, uint8_t *data,
		  uint64_t a0, uint64_t from, uint64_t to, unsigned rr, uint64_t m);

/* aio.c */
void engine_aread_drain(struct rt_engine *e);
int engine_aio_init(struct rt_engine *e);
void engine_aio_free(struct rt_engine *e);
struct raid5_hold *engine_hold_get(struct rt_engine *e);
void engine_hold_put(struct rt_engine *e, struct raid5_hold *h);
int engine_aio_add(const struct rt_engine *e, struct engine_aio *ar, bool write, uint32_t role,
		   uint64_t unit_off, uint8_t *buf, uint64_t len);
void engine_aio_count(struct rt_engine *e, const struct engine_aio *ar);
struct engine_areq *engine_areq_parked(const struct rt_engine *e, const struct engine_aio *ar);

/* stripe-lock.c */
int stripe_locks_init(struct rt_engine *e);
void stripe_locks_free(struct rt_engine *e);
struct stripe_lock_bucket *stripe_lock_bucket(struct rt_engine *e, uint64_t stripe);
unsigned stripe_lock_acquire_offer(struct rt_engine *e, struct engine_ctx *c,
				   uint64_t first, uint64_t last,
				   const struct stripe_offer *o);
void stripe_lock_acquire(struct rt_engine *e, struct engine_ctx *c,
			 uint64_t first, uint64_t last);
void stripe_lock_release(struct rt_engine *e, struct engine_ctx *c,
			 uint64_t first, uint64_t last);
bool stripe_lock_try(struct rt_engine *e, struct stripe_lock_entry *locks,
		     uint64_t first, uint64_t last, uint64_t *busy);
bool stripe_lock_park(struct rt_engine *e, uint64_t stripe, struct engine_aio *ar);
void stripe_gatherer_set(struct rt_engine *e, struct stripe_gatherer *g, uint64_t stripe,
			 bool on);
void stripe_unlock(struct rt_engine *e, struct stripe_lock_entry *locks,
		   uint64_t first, uint64_t last);
void stripe_offer_withdraw(struct stripe_lock_bucket *b, struct stripe_contrib *k);
int stripe_offer_park(struct rt_engine *e, struct stripe_contrib *k, struct engine_aio *ar,
		      bool may_wait);

/* level-raid5.c, raid5-gather.c */
/* Where planned unit I/O goes: a context's queue, or a mapped request's round. */
struct raid5_sink {
	struct engine_ctx *c;
	struct engine_aio *ar;
};
int raid5_add_io(struct rt_engine *e, const struct raid5_sink *to, enum engine_op op,
		 uint32_t role, uint8_t *buf, uint64_t unit_off, uint64_t len);
int raid5_locate(const struct rt_engine *e, uint64_t base, uint32_t k, uint32_t col,
		 uint32_t len, struct layout_extent *ext);
void engine_note_write(struct rt_engine *e, uint64_t off, uint64_t end);
bool raid5_gather_wanted(const struct rt_engine *e, uint64_t off, uint64_t end);
int raid5_gather(struct rt_engine *e, struct engine_ctx *c, uint8_t *data, uint64_t a0,
		 uint64_t a1, uint64_t *lo, uint64_t *hi);
int raid5_map_hold(struct rt_engine *e, struct engine_aio *ar, uint8_t *buf, uint64_t a0,
		   uint64_t a1);
int raid5_hold_step(struct rt_engine *e, struct engine_aio *ar, bool stop);
void raid5_hold_end(struct rt_engine *e, struct engine_areq *q, bool ok);

/* intent-log.c */
int engine_dl_init(struct rt_engine *e, const struct rt_sb *sb);
void engine_dl_stop(struct rt_engine *e);
void engine_dl_free(struct rt_engine *e);
bool engine_dl_resync_owed(const struct rt_engine *e, uint64_t off, uint64_t len);
bool engine_dl_covered(struct rt_engine *e, uint64_t first, uint64_t last);
int engine_dl_mark(struct rt_engine *e, struct engine_ctx *c, uint64_t first, uint64_t last);
void engine_dl_rewrite(struct rt_engine *e, struct engine_ctx *c);
void engine_owe_resync(struct rt_engine *e, uint64_t first, uint64_t last);

#endif
