/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_ENGINE_H
#define RAIDTOOL_ENGINE_H

/*
 * The request path of a running array: byte-addressed reads and writes of
 * the array, mapped by layout, fanned out to the units with io_uring
 * (O_DIRECT, preallocated aligned buffers), raid5 parity by full-stripe,
 * read-modify-write or reconstruct-write, a stripe lock table keeping
 * writers to one stripe apart, and flushes that reach every unit.
 *
 * Every call is safe from many threads at once (FUSE workers).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <raidtool/format.h>

struct rt_unit;
struct rt_engine;
struct engine_areq;

struct rt_engine_stats {
	uint64_t reads, writes, flushes;
	uint64_t read_bytes, write_bytes;
	uint64_t errors;
	struct {
		uint64_t reads, writes, read_bytes, write_bytes, errors;
		uint64_t retries;	/* I/Os tried again after an error */
	} unit[RT_MAX_UNITS];
	/* Degraded mode (appended; see engine_role_state/engine_state). */
	uint64_t faulty_mask;		/* bit r: role r is faulty or missing */
	int state;			/* enum rt_engine_state */
	uint64_t nospace_mask;		/* bit r: role r is out of space (engine_nospace) */
	unsigned retry_count, retry_window_ms;	/* engine_set_retries */
	/*
	 * raid5 stripes written (appended): whole, with parity from the new
	 * data alone (of them, made whole from several requests' data), and
	 * partly, by read-modify-write or by reconstruct-write.
	 */
	uint64_t stripe_full, stripe_merged, stripe_rmw, stripe_rcw;
	unsigned gather_us;		/* engine_set_gather_window */
	uint64_t discards, discard_bytes;	/* engine_discard calls, bytes */
	/* Walk pieces run on a loop host's loops, and on the walk's own rings (appended). */
	uint64_t walk_loop_pieces, walk_own_pieces;
};

enum rt_engine_state {
	RT_ENGINE_OK = 0,		/* every role works */
	RT_ENGINE_DEGRADED = 1,		/* raid1/raid5 without a role it can spare */
	RT_ENGINE_FAILED = 2,		/* beyond what the level tolerates: writes fail */
};

enum rt_role_state {
	RT_ROLE_ACTIVE = 0,
	RT_ROLE_FAULTY = 1,		/* failed an I/O, was failed, or was missing at start */
};

/*
 * @sb: the array's freshest superblock. @units[role] for role < n_devices,
 * opened with RT_UNIT_WRITE | RT_UNIT_EXCL | RT_UNIT_DIRECT; the engine
 * borrows them (the caller closes them after engine_destroy).
 *
 * Degraded start: a role whose unit is NULL or whose slot is not
 * RT_SLOT_ACTIVE is faulty from the start (its unit, if any, is not used).
 * raid1 needs one working role, raid5 all but one, linear and raid0 all;
 * otherwise -ENODEV. Whether a dirty array may start degraded is the
 * caller's decision (raid5's write hole).
 */
int engine_create(const struct rt_sb *sb, struct rt_unit *const *units,
		  unsigned n_units, struct rt_engine **out);

/*
 * The same for activate --readonly: nothing is ever written to a unit (the
 * dirty-region log is read, never written); every write, write map and
 * discard fails with -EROFS.
 */
int engine_create_readonly(const struct rt_sb *sb, struct rt_unit *const *units,
			   unsigned n_units, struct rt_engine **out);

/* Whole-length transfers: 0 or a negative errno. @off and @len need no alignment. */
int engine_read(struct rt_engine *e, void *buf, size_t len, uint64_t off);
int engine_write(struct rt_engine *e, const void *buf, size_t len, uint64_t off);

/*
 * raid5: how long (microseconds, at most 1 s; 0: never wait) a write that
 * covers a stripe only in part waits, holding the stripe's lock, for other
 * writes to bring the rest so that the stripe is written whole.
 */
int engine_set_gather_window(struct rt_engine *e, unsigned us);

/*
 * Threads that may call engine_write at once (a FUSE export's workers):
 * each export adds its count when it starts and takes it back (a negative
 * @n) when it ends; @rings when its small writes may also come mapped on
 * its queues' rings (engine_write_map), with no worker. While every such
 * thread waits no other part can arrive, so a raid5 write gathering its
 * stripe stops waiting for the stripe's other parts (a small write only
 * when no export has rings). None added (the default): not known, the
 * gather window alone bounds the wait.
 */
void engine_add_callers(struct rt_engine *e, int n, bool rings);

/*
 * Discard / write zeroes: once it returns 0, [off, off + len) reads back as
 * zeros (no alignment needed). Whole stripes are zeroed on the units
 * without writing data (unit_zero_range: BLKZEROOUT, punched holes),
 * raid5 with parity too, so they stay consistent; partial stripes and
 * blocks, a degraded array, and units that cannot punch get zeros written
 * through the write path. Marks the dirty log as a write does.
 */
int engine_discard(struct rt_engine *e, uint64_t off, uint64_t len);

/*
 * Event-driven I/O: the caller runs the unit I/O on its own ring (the FUSE
 * queue that carried the request) instead of a thread waiting in
 * engine_read/engine_write. engine_read_map maps a read of [@off, @off +
 * @len) into @buf to at most ENGINE_AIO_MAX unit reads in @ar when nothing
 * needs the engine's judgement: @off, @len and @buf aligned to the units'
 * block size, @len at most 1 MiB. With a role faulty (missing, or being
 * rebuilt), raid1 reads a working mirror, and raid5 holds the range's
 * stripe locks (queued on one held as a write is, below) and rebuilds the
 * role's chunks: @ar has the other roles' reads of them, and
 * engine_aio_next computes the chunks into @buf once those completed
 * (returns 0); -EAGAIN when they do not fit its buffers, or beyond what the
 * level spares. engine_write_map does the same for a write from @buf,
 * on linear and raid0 (whose writes are their unit writes and nothing else)
 * and raid1 (a write to every working mirror, and to one being rebuilt):
 * the mapping then holds the stripe locks of the range until it is unmapped,
 * so it is -EAGAIN when another request holds or waits for one of them, when
 * a dirty-log region of the range is not marked on the units yet (the
 * synchronous path marks it), while a role is out of space, and beyond what
 * the level spares. -EAGAIN otherwise too: serve it with
 * engine_read/engine_write.
 * A raid5 write (healthy, inside one chunk, at most 16 KiB) is mapped in two
 * rounds: the reads of old data or parity first; once they all completed in
 * full, engine_aio_next computes the parity and puts the data and parity
 * writes in @ar (returns 1: run them, then call it again); it returns 0 when
 * the request has no more rounds, a negative errno when the next round
 * cannot be made (unmap it as failed).
 * While a role is faulty or being rebuilt, a raid5 write is planned as
 * engine_write plans it (the faulty role neither read nor written, the one
 * being rebuilt written), gathering nothing, and mapped in rounds of a batch
 * of column ranges each: the batch's reads, then (engine_aio_next) its
 * parity and data; -EAGAIN over 16 KiB or across a chunk when no holder's
 * buffers are free (below).
 * A raid5 write that finds its stripes free and would be gathered (with
 * stripe gathering on, engine_set_gather_window: not random writes), or is
 * larger (up to 1 MiB), holds them on the caller's ring: it is mapped to
 * the writes of its stripes whole, parity from the new data alone, with the
 * parts other writers queued on its first and last stripe offer. When
 * those parts are not there yet and @ar->resume is set, it waits for them
 * holding its locks: -EINPROGRESS with @ar->wake_ns (CLOCK_MONOTONIC ns)
 * set. It is then woken once: by an offer (@ar->resume, as below), or by
 * the caller at @ar->wake_ns when engine_aio_expire(@ar) returns true
 * (false: an offer woke it first, its resume is on its way). Either way the
 * caller calls engine_write_map again as below, which may wait again,
 * write, or give up (-EAGAIN, or a small write mapped alone).
 * With @ar->resume set, a write that would wait for a stripe lock another
 * request holds (or that writers wait for) is queued on it instead (raid5:
 * offering its part to the holder, which may write it as part of a whole
 * stripe):
 * -EINPROGRESS, and once a lock of that bucket is let go, or a writer
 * waiting there leaves, the engine calls @ar->resume(@ar) from whichever
 * thread that is (it must only hand @ar back to the caller's event loop,
 * without blocking); the caller then calls engine_write_map again, with
 * the same @ar, @buf and range, which may queue it again, or map it with no
 * unit I/O at all (@ar->n 0: the holder wrote it; unmap it as done). Until
 * then @ar->areq is the engine's. Without @ar->resume such a write is
 * -EAGAIN.
 * A raid5 write over 16 KiB or across a chunk is queued as above too,
 * offering its part of that stripe when it covers the stripe only in part.
 * When a holder wrote that part with its stripe, the part is added to
 * @ar->done_head or @ar->done_tail; the bytes between the two are then
 * held and written as above, or, -EAGAIN, left to engine_write (all of
 * them written so: mapped with no unit I/O, as above).
 * Any write queued ENGINE_AIO_QUEUED_MAX times is -EAGAIN after that (its
 * offer withdrawn, unless the holder is writing it), so that writers
 * waiting on threads in the buckets of its stripes cannot starve it.
 * Every mapping that returned 0 ends with one engine_aio_unmap, @ok when
 * every unit I/O transferred its whole length (the request is then counted
 * done); not @ok with @ar->n set to 0 when the round mapped last never
 * went out or completed whole (nothing partial can have reached the
 * units; each round leaves its stripes consistent), say when the caller
 * cannot run the next. Otherwise the caller serves the request again with engine_read or
 * engine_write, which is where an error is judged (retried, or its role
 * failed); writing the same bytes again is harmless.
 * While a mapping is open, the units' descriptors stay valid.
 */
#define ENGINE_AIO_MAX 64u
#define ENGINE_AIO_QUEUED_MAX 16u
struct engine_unit_io {
	int fd;
	bool write;		/* else a read */
	/* An fdatasync of the unit (no @buf, @len 0; @off is the engine's): engine_flush_map */
	bool fsync;
	/*
	 * To @role's replacement (a hot replace; @fd is its): when it fails,
	 * the replace ends, not the role (judged as any failed I/O is).
	 */
	bool replica;
	uint32_t role;
	uint64_t off;		/* bytes on the unit */
	uint32_t len;
	void *buf;
};
struct engine_aio {
	unsigned n;
	bool write;
	size_t len;
	struct engine_unit_io io[ENGINE_AIO_MAX];
	struct engine_areq *areq;	/* the engine's, while mapped */
	void (*resume)(struct engine_aio *ar);	/* the caller's: see above */
	/*
	 * raid5: bytes at the start and the end of the write that holders of
	 * its stripes wrote with them while it was queued (see above). The
	 * caller zeroes them and @queued for each new request;
	 * engine_aio_unmap does too.
	 */
	size_t done_head, done_tail;
	unsigned queued;		/* the engine's: times such a write was queued */
	struct engine_aio *wait_next;	/* the engine's, while queued on a lock */
	uint64_t wake_ns;		/* a holder waiting: map again by then (see above) */
};
int engine_read_map(struct rt_engine *e, void *buf, size_t len, uint64_t off,
		    struct engine_aio *ar);
int engine_write_map(struct rt_engine *e, const void *buf, size_t len, uint64_t off,
		     struct engine_aio *ar);
int engine_aio_next(struct rt_engine *e, struct engine_aio *ar);
/*
 * A mapped write's round failed in part (@res: each unit I/O's result, as
 * engine_flush_done takes them): on a thread that may wait, with the
 * mapping still open, its failed unit writes are run again and judged as
 * engine_write judges them (tried again, else their role failed), and
 * what the mapping had not come to yet is written on that thread too. 0:
 * the write is done now (unmap it @ok, the request succeeded); otherwise unmap
 * it as failed and serve the request with engine_write. -EAGAIN, nothing
 * done: not a round of writes. It may wait for another redo to let go of
 * the context kept for redos while every shared one is taken; never for a
 * shared one (a drain may hold them all). Its caller must not be a thread
 * that other writers' requests may keep waiting (the stripes it holds
 * are what they wait for).
 */
int engine_aio_redo(struct rt_engine *e, struct engine_aio *ar, const int *res);
/* A holder waiting on the ring reached @ar->wake_ns: map it again now? (see above) */
bool engine_aio_expire(struct rt_engine *e, struct engine_aio *ar);
void engine_aio_unmap(struct rt_engine *e, struct engine_aio *ar, bool ok);

/*
 * A flush (FUSE FLUSH or FSYNC) run on the caller's ring: engine_flush_map
 * puts an fdatasync of every unit that holds acknowledged writes in @ar
 * (io[i].fsync; of a unit being replaced, of its replacement too, marked
 * io[i].replica), or is -EAGAIN when engine_flush must do it (the array
 * would not hold its data without its faulty units). Every mapping that
 * returned 0 ends with engine_flush_unmap once its fsyncs are over (or
 * could not all be submitted), on the caller's loop, with each fsync's
 * result in @res[i] (0, -errno, or -ECANCELED for one never submitted;
 * @res NULL: all succeeded): it never blocks, a replacement's failed fsync
 * ends its replace there, and a unit's descriptor may change once it
 * returned (the roles stay in @ar). Then engine_flush_done, with the same
 * @res; NULL never blocks. Otherwise it judges the units' errors, on a
 * thread that may wait: a unit whose fsync failed is failed at once (a
 * writeback error is reported once; asking again would succeed and lose
 * it), and the units not flushed yet are flushed as engine_flush does.
 * Returns what engine_flush would.
 */
int engine_flush_map(struct rt_engine *e, struct engine_aio *ar);
void engine_flush_unmap(struct rt_engine *e, struct engine_aio *ar, const int *res);
int engine_flush_done(struct rt_engine *e, struct engine_aio *ar, const int *res);

/*
 * A loop host: event loops (lib/fuse.c's FUSE queues over io_uring) that
 * run the background walks' pieces (rebuild, replace, check, repair,
 * resync) as requests of their own, their unit I/O on the same rings as
 * the requests' and their parity computed there, instead of on rings the
 * walk drives itself. The walk's thread then only plans the pieces, takes
 * their stripe locks, paces them (the speed limit) and checkpoints.
 *
 * @submit takes a piece onto a loop, from the walk's thread; false when it
 * cannot (the walk runs that piece itself). It must not run the piece
 * before it returns. The loop then calls engine_walk_piece_step(wp, ok,
 * ar) first with @ok true, and again each time the unit I/O it put in @ar
 * (a round, like a mapped request's) has completed, @ok when all of it
 * transferred its whole length: 1, the next round is in @ar; 0, the piece
 * is the walk's again and the loop forgets it. A round that failed or
 * could not be submitted is not judged by the loop (nor logged or counted,
 * as with a mapped request): the walk runs that part again on its own
 * ring, which is where an error is retried or its role failed. @ok false
 * on the first call gives the piece back unrun.
 *
 * engine_set_loop_host(e, NULL) returns once no @submit call is under way;
 * pieces already on a loop are finished by it. A host must finish every
 * piece it took before its loops end.
 */
struct engine_walk_piece;
struct engine_loop_host {
	bool (*submit)(void *arg, struct engine_walk_piece *wp);
	void *arg;
};
void engine_set_loop_host(struct rt_engine *e, const struct engine_loop_host *h);
int engine_walk_piece_step(struct engine_walk_piece *wp, bool ok, struct engine_aio *ar);

/* Returns once every unit has all completed writes on stable storage. */
int engine_flush(struct rt_engine *e);

uint64_t engine_size(const struct rt_engine *e);	/* array bytes */
void engine_get_stats(struct rt_engine *e, struct rt_engine_stats *st);

/*
 * Called once per role when it becomes faulty while running (a unit I/O
 * error other than -EAGAIN, or engine_fail_role), from the thread that
 * noticed it, before any request relies on the role being gone: the place
 * to write FAULTY into the remaining superblocks. Until it returns, other
 * requests that hit the same role wait. It may run with stripe locks held
 * and must not call engine_read/write/flush/destroy. Roles missing at
 * engine_create are not reported. Set it before the first request.
 */
typedef void (*engine_failure_fn)(uint32_t role, void *ctx);
void engine_set_failure_handler(struct rt_engine *e, engine_failure_fn fn, void *ctx);

/*
 * Called once when the replacement of @role (raidtool replace) fails an
 * I/O, in the same way: before any write is acknowledged that the
 * replacement did not get, and before the engine stops sending it writes.
 * The place to take it out of the superblocks' role table, since a replace
 * resumed from its checkpoint would trust it.
 */
void engine_set_replica_failure_handler(struct rt_engine *e, engine_failure_fn fn, void *ctx);

/*
 * Mark @role faulty as if it had failed an I/O (`raidtool fail`): the
 * handler runs, raid1/raid5 go on degraded. 0, -EALREADY when it already
 * was, -EINVAL for a bad role.
 */
int engine_fail_role(struct rt_engine *e, uint32_t role);

/*
 * As engine_fail_role, but only when the array still takes writes without
 * @role (raid1: another mirror works; raid5: no other role is down; never
 * on linear and raid0): else -EEXIST and nothing changes.
 */
int engine_fail_role_spared(struct rt_engine *e, uint32_t role);

int engine_role_state(struct rt_engine *e, uint32_t role);	/* enum rt_role_state, or -EINVAL */
int engine_state(struct rt_engine *e);				/* enum rt_engine_state */

/* Is @role attached and being rebuilt (still RT_ROLE_FAULTY for reads)? */
bool engine_role_rebuilding(struct rt_engine *e, uint32_t role);

/*
 * The dirty-region (write-intent) log, kept by raid1/raid5 when the units
 * have a log area (sb unit.log_size >= 4 KiB). Region i is bytes
 * [i * region_size, (i + 1) * region_size) of every role's data area (the
 * superblock's array.region_size, doubled until the bitmap fits the log
 * area); the same unit as rt_walk_params.region_size for a resync. Bitmaps
 * are bit i = byte i / 8, bit i % 8. -EOPNOTSUPP when the engine keeps none.
 */
int engine_dirtylog_info(struct rt_engine *e, uint64_t *region_size, uint64_t *n_regions);

/*
 * The regions the units' logs held dirty at engine_create (the union over
 * the active units): what a RESYNC walk should cover after an unclean
 * stop. They stay dirty on disk until resynced. -ENODATA when no unit had
 * a valid log of this geometry (new array, or changed region size): then
 * resync everything if the superblock said dirty.
 */
int engine_dirtylog_load(struct rt_engine *e, uint8_t *bitmap, size_t len, uint64_t *n_dirty);

/*
 * Regions still owed a resync (initial sync, or after an unclean stop) in
 * @left, of @total. -EOPNOTSUPP without a log.
 */
int engine_dirtylog_unsynced(struct rt_engine *e, uint64_t *left, uint64_t *total);

/* The regions dirty in the log right now. */
int engine_dirtylog_dirty(struct rt_engine *e, uint8_t *bitmap, size_t len, uint64_t *n_dirty);

/*
 * Clean stop: waits for writes in flight, syncs the units, clears every
 * region (but those still to be resynced) in the log on every unit. Call
 * before marking the superblocks clean; engine_destroy does not.
 */
int engine_dirtylog_clean(struct rt_engine *e);

/*
 * While a role is faulty, missing or being rebuilt no region is cleared
 * (not by a clean stop either): the log then holds every region written
 * since that role's unit left. The superblock events value at the last
 * clearing (md's events_cleared) is kept in the log; a unit whose own
 * events are not older left after it, and only the dirty regions need
 * rebuilding onto it (see dirtylog_readd_check).
 *
 * engine_dirtylog_set_events: the superblocks' events after an update (the
 * value a clearing records); safe from the failure handler.
 * engine_dirtylog_cleared: the events value the log is complete since.
 * engine_dirtylog_unpin_loaded: the regions loaded at engine_create are not
 * owed a resync (the array was stopped cleanly; they are the history of a
 * degraded run) and may be cleared once the array is whole.
 */
void engine_dirtylog_set_events(struct rt_engine *e, uint64_t events);
int engine_dirtylog_cleared(struct rt_engine *e, uint64_t *events_cleared);
void engine_dirtylog_unpin_loaded(struct rt_engine *e);

/* How long a region must see no write before it is cleared (default 5000 ms). */
void engine_dirtylog_set_idle(struct rt_engine *e, unsigned ms);

/*
 * Errors that are not the disk's fault. A unit that answers ENOSPC or
 * EDQUOT stays in the array; the request fails with -ENOSPC. Bit r of
 * engine_nospace: role r's last write failed that way (cleared by its next
 * write that succeeds).
 */
uint64_t engine_nospace(struct rt_engine *e);

/*
 * What a raid1/raid5 write that failed for want of space on some units (but
 * not all) left inconsistent and a resync walk must cover: @n_owed log
 * regions (their bits in @bitmap when not NULL, sized as for
 * engine_dirtylog_dirty); they stay dirty in the log, also across a clean
 * stop, until resynced. @all is nonzero when the array keeps no log and
 * the whole array is owed a resync: pass it to engine_resync_owed_done once
 * a full resync started after this call has finished.
 */
int engine_resync_owed(struct rt_engine *e, uint8_t *bitmap, size_t len, uint64_t *n_owed,
		       uint64_t *all);
void engine_resync_owed_done(struct rt_engine *e, uint64_t all);

/*
 * Any other unit I/O error is tried again up to @count times, spread evenly
 * over @window_ms, before the role is failed (count 0: fail at once).
 * Defaults: ENGINE_RETRY_COUNT_DEFAULT, ENGINE_RETRY_WINDOW_DEFAULT_MS.
 * -EINVAL beyond 100 tries or 600000 ms.
 */
#define ENGINE_RETRY_COUNT_DEFAULT 3u
#define ENGINE_RETRY_WINDOW_DEFAULT_MS 1000u
int engine_set_retries(struct rt_engine *e, unsigned count, unsigned window_ms);

/* Waits for requests in flight, frees everything; does not close the units. */
void engine_destroy(struct rt_engine *e);

#endif
