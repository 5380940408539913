/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A request's life: cut into pieces, each mapped by layout and run on a
 * context (ring.c) by its level (struct engine_level_ops); discard and
 * flush.
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
 *   Background walks (lib/rebuild.c) work on whole stripes under the same
 *     stripe locks, contexts taken first, like any writer. A recover keeps
 *     up to ENGINE_WALK_DEPTH pieces of ENGINE_WALK_STEP bytes per role in
 *     flight, each holding only its own stripes' locks (see walk.c).
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
#include <raidtool/unit.h>

#include "internal.h"

/* ---- reads ----------------------------------------------------------- */

/* The extent's own role, faulty or not (the caller reconstructs or fails). */
uint32_t engine_extent_role(const struct rt_engine *e, const struct layout_extent *ext,
			    unsigned rr, uint64_t m)
{
	return ext->role;
}

/*
 * Queue the reads of the aligned logical range [from, to) into @data (which
 * holds @a0) with the roles in @m faulty: raid1 reads a working mirror,
 * raid5 reconstructs (running that I/O at once), linear/raid0 fail with
 * -EIO. raid5 callers with @m hold the range's stripe locks.
 */
int ctx_add_reads(struct rt_engine *e, struct engine_ctx *c, uint8_t *data,
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
		role = e->ops->read_role(e, &ext, rr, m);
		if (role != LAYOUT_NO_ROLE && !(m & role_bit(role)))
			ret = ctx_add_io(e, c, ENGINE_OP_READ, role, data + (pos - a0),
					 ext.offset, ext.len);
		else if (e->ops->read_lost)
			ret = e->ops->read_lost(e, c, data + (pos - a0), &ext, m);
		else
			ret = -EIO;
		if (ret)
			return ret;
	}
	return 0;
}

/* The same reads, all of them run. */
static int ctx_read_range(struct rt_engine *e, struct engine_ctx *c, uint8_t *data,
			  uint64_t a0, uint64_t from, uint64_t to, unsigned rr, uint64_t m)
{
	int ret = ctx_add_reads(e, c, data, a0, from, to, rr, m);

	return ret ? ret : ctx_run_ios(e, c);
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
		if (m && e->ops->lock_degraded_reads) {
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

static int engine_write_piece(struct rt_engine *e, struct engine_ctx *c, const uint8_t *ubuf,
			      uint64_t off, size_t len)
{
	uint64_t A = e->align;
	uint64_t a0 = off & ~(A - 1), a1 = (off + len + A - 1) & ~(A - 1);
	bool aligned = a0 == off && a1 == off + len;
	bool direct = aligned && (uintptr_t)ubuf % A == 0;
	/* Only ever read from when direct (O_DIRECT writes, parity sources). */
	uint8_t *data = direct ? (uint8_t *)(uintptr_t)ubuf : c->data;
	bool redundant = e->ops->redundant;
	bool lock = !aligned || redundant || e->lock_all, merged = false, issued = false;
	/* raid5: parts of stripes may be written whole with other writers' parts. */
	bool gather = e->ops->gather && aligned, gathered = false;
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
	 * data. The two as one pair (engine_role_masks): a role's faulty
	 * and rebuild bits change one after the other.
	 */
	engine_role_masks(e, &rb, &m);
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
					ret = ctx_add_reads(e, c, data, a0, a0, a0 + A, c->rr, 0);
				if (!ret && both)
					ret = ctx_add_reads(e, c, data, a0, a1 - A, a1, c->rr, 0);
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

			issued = true;
			/* Only healthy, and once: a redo writes its own part alone. */
			if (gather && !gathered && !m && !rb) {
				gathered = true;
				ret = e->ops->gather(e, c, data + (lo - a0), lo, hi, &wlo, &whi);
			}
			if (!ret && wlo < whi)
				ret = e->ops->write(e, c, data + (wlo - a0), wlo, whi, m, rb);
		}
		c->n_ios = 0;
		c->plan.n_segs = 0;
		if (ret != -EIO || !redundant ||
		    (engine_faulty(e) == m && engine_rebuilding(e) == rb))
			break;
		engine_role_masks(e, &rb, &m);
		if (!engine_tolerates(e, m))
			break;
		ret = 0;
	}
out:
	c->n_ios = 0;
	/*
	 * Some units may have taken the piece and others not: resync it (still
	 * locked). Any error once writing began, not only ENOSPC: one unit out
	 * of space and another's I/O given up in the same round ends in -EIO.
	 */
	if (ret && issued && redundant)
		engine_owe_resync(e, first, last);
	if (lock)
		stripe_lock_release(e, c, first, last);
	return ret;
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
	if (e->readonly)
		return -EROFS;
	ret = engine_check_range(e, len, off);
	if (ret || len == 0)
		return ret;
	engine_note_write(e, off, off + len);
	atomic_fetch_add_explicit(&e->writers, 1, memory_order_relaxed);
	c = ctx_acquire(e);
	for (done = 0; done < len && !ret; done += ENGINE_PIECE)
		ret = engine_write_piece(e, c, (const uint8_t *)buf + done, off + done,
					 min_u64(len - done, ENGINE_PIECE));
	if (!ret) {
		stat_add(&c->stats.writes, 1);
		stat_add(&c->stats.write_bytes, len);
	}
	ctx_release(e, c);
	atomic_fetch_sub_explicit(&e->writers, 1, memory_order_relaxed);
	return ret;
}

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
 * back zeros. On any error the caller writes zeros instead, over whatever
 * part was zeroed already: a unit that failed to zero its part (-EIO) would
 * otherwise leave the stripes torn (parity or mirrors disagreeing) with no
 * resync owed, and the write path is where a failing unit is made faulty.
 */
static int engine_zero_stripes(struct rt_engine *e, struct engine_ctx *c, uint64_t first,
			       uint64_t last)
{
	int ret = 0;

	stripe_lock_acquire(e, c, first, last);
	/* A role being replaced: zeros are written, so that its replacement gets them too. */
	if (engine_rebuilding(e) || engine_faulty(e) ||
	    atomic_load(&e->replace_role) != LAYOUT_NO_ROLE) {
		ret = -EAGAIN;
		goto out;
	}
	if (e->dl) {
		ret = engine_dl_mark(e, c, first, last);
		if (ret)
			goto out;
	}
	ret = e->ops->zero(e, first, last);
out:
	stripe_lock_release(e, c, first, last);
	return ret;
}

int engine_discard(struct rt_engine *e, uint64_t off, uint64_t len)
{
	uint64_t W, s0, s1, batch, s, cnt;
	struct engine_ctx *c;
	int ret;

	if (e && e->readonly)
		return -EROFS;
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
			if (ret)
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
int engine_flush_map(struct rt_engine *e, struct engine_aio *ar)
{
	uint64_t m, rb;
	uint32_t r;

	if (!e || !ar)
		return -EINVAL;
	ar->n = 0;
	ar->len = 0;
	ar->write = false;
	ar->areq = NULL;
	atomic_fetch_add(&e->aread_inflight, 1);
	engine_role_masks(e, &rb, &m);
	_Static_assert(ENGINE_AIO_MAX >= RT_MAX_UNITS, "a flush maps one fsync per unit");
	/* RT_MAX_UNITS roles, one being replaced: engine_flush, one fsync more. */
	if (atomic_load(&e->aread_gate) || !engine_tolerates(e, m) ||
	    e->n + (atomic_load(&e->replace_role) != LAYOUT_NO_ROLE) > ENGINE_AIO_MAX) {
		atomic_fetch_sub(&e->aread_inflight, 1);
		return -EAGAIN;
	}
	for (r = 0; r < e->n; r++) {
		enum replica_mode to = replica_mode(e, ENGINE_OP_FSYNC, r);

		/* A unit being rebuilt holds acknowledged writes too. */
		if ((m & ~rb) & role_bit(r))
			continue;
		/* @off: which unit of the role this is (engine_flush_done). */
		if (to & TO_UNIT)
			ar->io[ar->n++] = (struct engine_unit_io){
				.fd = e->fd[r], .fsync = true, .role = r,
				.off = atomic_load(&e->unit_gen[r]) };
		/* A role being replaced: its replacement too. */
		if (to & TO_REPLICA)
			ar->io[ar->n++] = (struct engine_unit_io){
				.fd = e->replace_fd, .fsync = true, .replica = true, .role = r };
	}
	return 0;
}

/*
 * Ended before the other errors are judged: failing a role drains the
 * mappings, and the worker that judges may wait behind a drain that waits
 * for us. A replacement's failed fsync is noted here, while the mapping
 * still holds off a drain: the replace's end, which drains first, then
 * sees it. Noted later, the walk's last checkpoint could have fsynced the
 * replacement meanwhile, been told nothing (a writeback error is reported
 * once), and swapped in a unit that lost acknowledged writes.
 */
void engine_flush_unmap(struct rt_engine *e, struct engine_aio *ar, const int *res)
{
	unsigned i;

	for (i = 0; res && i < ar->n; i++) {
		const struct engine_unit_io *u = &ar->io[i];
		struct engine_io io = { .op = ENGINE_OP_FSYNC, .role = u->role };

		/*
		 * Always the replace it was mapped in: a replace's start and end
		 * both drain, and this mapping holds off drains until below.
		 */
		if (u->replica && res[i] && res[i] != -ECANCELED)
			engine_replica_error(e, &io, res[i]);
	}
	atomic_fetch_sub(&e->aread_inflight, 1);
}

int engine_flush_done(struct rt_engine *e, struct engine_aio *ar, const int *res)
{
	struct engine_ctx *c;
	bool redo = false;
	unsigned i;
	int ret = 0;

	for (i = 0; res && i < ar->n; i++)
		redo |= res[i] != 0;
	if (!redo) {
		ar->n = 0;
		if (!engine_tolerates(e, engine_faulty(e)))
			return -EIO;
		atomic_fetch_add_explicit(&e->aread_stats.flushes, 1, memory_order_relaxed);
		return 0;
	}
	c = ctx_acquire(e);
	for (i = 0; i < ar->n; i++) {
		struct engine_io io = { .op = ENGINE_OP_FSYNC, .role = ar->io[i].role };

		/* A replacement's ended its replace, never the role (engine_flush_unmap). */
		if (ar->io[i].replica)
			continue;
		/*
		 * Another unit took the role since (a spare, a replacement): the
		 * old one's error is not the new one's, which engine_flush below
		 * flushes.
		 */
		if (atomic_load(&e->unit_gen[io.role]) != ar->io[i].off)
			continue;
		if (res[i] && res[i] != -ECANCELED && engine_unit_error(e, c, &io, res[i]) == -ENOSPC)
			ret = -ENOSPC;
	}
	ctx_fail_roles(e, c);
	ctx_release(e, c);
	ar->n = 0;
	/* The units not failed, flushed here; those flushed already again, harmlessly. */
	return ret ? ret : engine_flush(e);
}

int engine_flush(struct rt_engine *e)
{
	struct engine_ctx *c;
	uint32_t r;
	int ret = 0;

	if (!e)
		return -EINVAL;
	c = ctx_acquire(e);
	for (;;) {
		uint64_t rb, m;

		engine_role_masks(e, &rb, &m);

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
