/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * raid5: one parity chunk per stripe, rotating (layout.c).
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
 */
#include <errno.h>
#include <limits.h>
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
#include <raidtool/unit.h>

#include "internal.h"

/* The role a faulty mask names (raid5 plans with one at most), or LAYOUT_NO_ROLE. */
static uint32_t raid5_lost_role(uint64_t m)
{
	return m ? (uint32_t)__builtin_ctzll(m) : LAYOUT_NO_ROLE;
}

/* One role may be missing: its chunks are the XOR of the others. */
static bool raid5_tolerates(const struct rt_engine *e, uint64_t m)
{
	return __builtin_popcountll(m) <= 1;
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
int raid5_locate(const struct rt_engine *e, uint64_t base, uint32_t k, uint32_t col,
			uint32_t len, struct layout_extent *ext)
{
	return layout_map(&e->layout, base + (uint64_t)k * e->layout.chunk + col, len, ext);
}

int raid5_add_io(struct rt_engine *e, const struct raid5_sink *to, enum engine_op op,
			uint32_t role, uint8_t *buf, uint64_t unit_off, uint64_t len)
{
	if (to->c)
		return ctx_add_io(e, to->c, op, role, buf, unit_off, len);
	return engine_aio_add(e, to->ar, op == ENGINE_OP_WRITE, role, unit_off, buf, len);
}

static int raid5_queue_reads(struct rt_engine *e, const struct raid5_sink *to,
			     const struct raid5_seg *g)
{
	struct layout_extent ext;
	uint32_t k, j = 0;
	int ret;

	if (g->data_only)
		return 0;
	if (!g->reconstruct) {
		ret = raid5_add_io(e, to, ENGINE_OP_READ, g->parity_role, g->old, g->unit_off,
				   g->len);
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
		ret = raid5_add_io(e, to, ENGINE_OP_READ, ext.role, g->old + (size_t)j * g->len,
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
static int raid5_queue_data(struct rt_engine *e, const struct raid5_sink *to,
			    const struct raid5_seg *g, uint8_t *data, uint64_t a0)
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
		ret = raid5_add_io(e, to, ENGINE_OP_WRITE, ext.role,
				   data + (g->base + (uint64_t)k * e->layout.chunk + g->col - a0),
				   ext.offset, g->len);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * The planned column ranges @segs[0..n) read: compute their parity (but of
 * a range whose parity role is faulty) and queue its writes, then, with
 * @with_data, each range's new data.
 */
static int raid5_queue_writes(struct rt_engine *e, const struct raid5_sink *to,
			      const struct raid5_seg *segs, unsigned n, uint8_t *data, uint64_t a0,
			      bool with_data)
{
	unsigned i;
	int ret = 0;

	for (i = 0; i < n && !ret; i++) {
		const struct raid5_seg *g = &segs[i];

		if (g->data_only)
			continue;
		ret = raid5_compute_parity(e, g, data, a0);
		if (!ret)
			ret = raid5_add_io(e, to, ENGINE_OP_WRITE, g->parity_role, g->parity,
					   g->unit_off, g->len);
	}
	for (i = 0; i < n && !ret && with_data; i++)
		ret = raid5_queue_data(e, to, &segs[i], data, a0);
	return ret;
}

/*
 * The planned column ranges @segs[0..n) were written in part: a unit's
 * write failed without failing its role (out of space, or -EAGAIN past its
 * retries) while the others took their writes. A read-modify-write leaves its stripe's parity and data
 * disagreeing then, and the chunks of a faulty role or one being rebuilt,
 * outside the request and made from the rest, would be wrong: acknowledged
 * data lost, which no resync can mend (it makes the parity from the data,
 * and the role is not there). Queue the writes of the old parity and data
 * the round read back to where they came from: every such stripe is what
 * it was before the request. The unit that refused gets its old bytes
 * too (all of a write it took in part; where it took none, they are there
 * already). A reconstruct-write changes only the request's own chunks
 * (the faulty role's among them) and the parity made from them: on a
 * healthy array a resync from the data mends it (engine_owe_resync); with
 * a role lost, raid5_reparity.
 */
static int raid5_queue_undo(struct rt_engine *e, const struct raid5_sink *to,
			    const struct raid5_seg *segs, unsigned n)
{
	struct layout_extent ext;
	unsigned i;
	uint32_t k;
	int ret = 0;

	for (i = 0; i < n && !ret; i++) {
		const struct raid5_seg *g = &segs[i];

		if (g->data_only || g->reconstruct)
			continue;
		ret = raid5_add_io(e, to, ENGINE_OP_WRITE, g->parity_role, g->old, g->unit_off,
				   g->len);
		for (k = g->k_first; k <= g->k_last && !ret; k++) {
			ret = raid5_locate(e, g->base, k, g->col, g->len, &ext);
			if (!ret && ext.role != g->skip_role)
				ret = raid5_add_io(e, to, ENGINE_OP_WRITE, ext.role,
						   g->old + (size_t)(1 + k - g->k_first) * g->len,
						   ext.offset, g->len);
		}
	}
	return ret;
}

/*
 * A reconstruct-write of column range @g torn by a unit that kept its role,
 * role @x lost (faulty or being rebuilt: its bytes there are the
 * parity's): the data chunks it wrote hold their new bytes or their old.
 * Its changes cannot be put back (it read none of their old bytes), and
 * they need not be (they are the failed write's own), but @x's bytes can
 * be at stake: where @x's chunk is written, the rest of a unit block a
 * write was widened to (an array block below the units'), read and
 * written back unchanged; where it is not (its unit failed in this very
 * round), all of them. So the parity is made again from what the other
 * chunks hold now and @x's bytes as they should be (written: as this
 * write meant them, @data from @a0; not: as the round read them): @x then
 * reads back those. Not when the parity's unit is the one short of space
 * (-ENOSPC).
 */
static int raid5_reparity(struct rt_engine *e, struct engine_ctx *c, const struct raid5_seg *g,
			  uint32_t x, uint8_t *data, uint64_t a0)
{
	uint64_t C = e->layout.chunk, s = g->base / (C * e->data_roles);
	uint32_t d = e->data_roles, k, kx = UINT32_MAX, j = 0, untouched = 0;
	void *src[RT_MAX_UNITS];
	struct layout_extent ext;
	uint8_t *buf = NULL, *parity;
	int ret = 0;

	for (k = 0; k < d && kx == UINT32_MAX; k++) {
		if (layout_raid5_data_role(&e->layout, s, k) == x)
			kx = k;
		else if (k < g->k_first || k > g->k_last)
			untouched++;	/* its old bytes' place in g->old */
	}
	if (kx == UINT32_MAX)
		return 0;	/* @x holds this stripe's parity */
	if (posix_memalign((void **)&buf, 4096, (size_t)d * g->len))
		return -ENOMEM;
	parity = buf + (size_t)(d - 1) * g->len;
	c->n_ios = 0;
	for (k = 0; k < d && !ret; k++) {
		if (k == kx) {
			src[k] = k >= g->k_first && k <= g->k_last ?
					 data + (g->base + (uint64_t)k * C + g->col - a0) :
					 g->old + (size_t)untouched * g->len;
			continue;
		}
		src[k] = buf + (size_t)j * g->len;
		ret = raid5_locate(e, g->base, k, g->col, g->len, &ext);
		if (!ret)
			ret = ctx_add_io(e, c, ENGINE_OP_READ, ext.role, buf + (size_t)(j++) * g->len,
					 ext.offset, g->len);
	}
	if (!ret)
		ret = ctx_run_ios(e, c);
	if (!ret)
		ret = parity_xor(parity, src, d, g->len);
	if (!ret)
		ret = ctx_add_io(e, c, ENGINE_OP_WRITE, g->parity_role, parity, g->unit_off, g->len);
	if (!ret)
		ret = ctx_run_ios(e, c);
	c->n_ios = 0;
	free(buf);
	return ret;
}

/*
 * What a round torn by a unit that kept its role changed, mended on @c:
 * its read-modify-writes put back (raid5_queue_undo), with role @x lost
 * (LAYOUT_NO_ROLE: none) the parity of its reconstruct-writes made again
 * (raid5_reparity). What the request returns is its error still. A unit
 * short of space refuses its part of the undo again, as it should (its old
 * bytes are there); any other failure may leave stripes torn, which is said.
 */
static void raid5_undo(struct rt_engine *e, struct engine_ctx *c, const struct raid5_seg *segs,
		       unsigned n, uint32_t x, uint8_t *data, uint64_t a0)
{
	uint64_t width = e->layout.chunk * e->data_roles, m = engine_faulty(e);
	unsigned i;
	int ret;

	/* A role failed in this round (another error than the want of space). */
	if (x == LAYOUT_NO_ROLE && !(m & (m - 1)))
		x = raid5_lost_role(m);

	c->n_ios = 0;
	ret = raid5_queue_undo(e, &(const struct raid5_sink){ .c = c }, segs, n);
	if (!ret)
		ret = ctx_run_ios(e, c);
	c->n_ios = 0;
	/* Refused again only by units still in service, as the first time: nothing more to say. */
	if (ret && c->run_kept_role && engine_faulty(e) == m && !c->broken)
		ret = 0;
	if (ret && n)
		rt_log(RT_LOG_ERROR, "raid5: a write that failed on a unit in service could not be "
		       "put back (%s): from stripe %llu on, parity may not match the data until a "
		       "resync", strerror(-ret), (unsigned long long)(segs[0].base / width));
	for (i = 0; i < n && x != LAYOUT_NO_ROLE; i++) {
		if (!segs[i].reconstruct || segs[i].data_only)
			continue;
		ret = raid5_reparity(e, c, &segs[i], x, data, a0);
		if (ret)
			rt_log(RT_LOG_ERROR, "raid5: a write that failed on a unit in service left "
			       "stripe %llu torn, and its parity could not be made again (%s): role "
			       "%u's bytes there beside the write may be lost",
			       (unsigned long long)(segs[i].base / width), strerror(-ret), x);
	}
}

/*
 * Read what the planned column ranges need, compute their parity, write it
 * together with the ranges' new data, so that every stripe is consistent
 * again after each round (a retry after a unit failure relies on that).
 * @whole: this is the piece's only round: the data goes out as [a0, a1)
 * in layout order instead, merged per chunk. @skip: a faulty role. @lost:
 * the role faulty or being rebuilt (what raid5_undo mends a torn round for).
 */
static int raid5_run_round(struct rt_engine *e, struct engine_ctx *c, uint8_t *data,
			   uint64_t a0, uint64_t a1, bool whole, uint32_t skip, uint32_t lost)
{
	const struct raid5_sink to = { .c = c };
	struct raid5_batch *b = &c->plan;
	unsigned i;
	int ret = 0;

	for (i = 0; i < b->n_segs && !ret; i++)
		ret = raid5_queue_reads(e, &to, &b->segs[i]);
	if (!ret)
		ret = ctx_run_ios(e, c);
	if (!ret)
		ret = raid5_queue_writes(e, &to, b->segs, b->n_segs, data, a0, !whole);
	if (whole) {
		struct layout_extent ext;
		uint64_t pos;

		for (pos = a0; pos < a1 && !ret; pos += ext.len) {
			ret = layout_map(&e->layout, pos, a1 - pos, &ext);
			if (!ret && ext.role != skip)
				ret = ctx_add_io(e, c, ENGINE_OP_WRITE, ext.role, data + (pos - a0),
						 ext.offset, ext.len);
		}
	}
	if (!ret)
		ret = ctx_run_ios(e, c);
	c->n_ios = 0;
	if (c->run_kept_role)
		raid5_undo(e, c, b->segs, b->n_segs, lost, data, a0);
	b->n_segs = 0;
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
 * How column range @rg of stripe @s is written, the roles in @m faulty
 * (at most one) and those in @rb being rebuilt, the stripe owed a resync
 * or not (@unsynced): reconstruct-write, read-modify-write or the data
 * only (the faulty role is the parity); how many scratch buffers of the
 * range's width it takes.
 */
static size_t raid5_range_plan(const struct rt_engine *e, uint64_t s, const struct raid5_range *rg,
			       bool unsynced, uint64_t m, uint64_t rb, bool *reconstruct,
			       bool *data_only)
{
	uint32_t d = e->data_roles, t = rg->k_last - rg->k_first + 1;
	uint32_t x = raid5_lost_role(m);

	*reconstruct = unsynced || d - t <= t + 1;
	raid5_plan_degraded(e, s, rg->k_first, rg->k_last, x,
			    x != LAYOUT_NO_ROLE && (rb & role_bit(x)), reconstruct, data_only);
	return *data_only ? 0 : *reconstruct ? d - t + 1 : t + 2;
}

/*
 * raid5: plan the column ranges of [a0, a1) from @cur on, each with
 * read-modify-write or reconstruct-write (see the top of this file), into
 * @b, at most @max_segs of them. A range too big for the remaining scratch
 * is cut into narrower columns: parity is computed column by column, so
 * any cut is valid. Counts each stripe in @st once all of it is planned.
 * True when all of [a0, a1) is; false with @cur at what is left (run the
 * planned part as a round, then plan on).
 */
static bool raid5_plan(struct rt_engine *e, struct raid5_batch *b, struct engine_ctx_stats *st,
		       uint64_t a0, uint64_t a1, uint64_t m, uint64_t rb, struct raid5_cursor *cur,
		       unsigned max_segs)
{
	uint64_t width = e->layout.chunk * e->data_roles;
	uint32_t x = raid5_lost_role(m);
	/*
	 * A role being rebuilt is never read but always written: planned as
	 * faulty (so nothing reads it), its data and parity still go out.
	 */
	uint32_t skip = x != LAYOUT_NO_ROLE && (rb & role_bit(x)) ? LAYOUT_NO_ROLE : x;
	size_t used = 0;

	b->n_segs = 0;
	for (; cur->s * width < a1; cur->s++, cur->i = 0, cur->col = UINT32_MAX) {
		uint64_t s = cur->s, C = e->layout.chunk;
		struct raid5_range rg[3];
		unsigned i, nr = raid5_stripe_ranges(e, s * width, a0, a1, rg);
		/*
		 * Where the parity was never made (or may not match after an
		 * unclean stop), read-modify-write would carry its error over:
		 * compute it from the data, which makes the stripe consistent.
		 */
		bool unsynced = engine_dl_resync_owed(e, s * C, C), rmw = false;

		for (; cur->i < nr; cur->i++, cur->col = UINT32_MAX) {
			const struct raid5_range *r = &rg[cur->i];
			bool reconstruct, data_only;
			size_t nbufs = raid5_range_plan(e, s, r, unsynced, m, rb, &reconstruct,
							&data_only);

			if (cur->col == UINT32_MAX)
				cur->col = r->p;
			while (cur->col < r->q) {
				struct layout_extent ext;
				struct raid5_seg *g;
				size_t room = nbufs ? (b->scratch_cap - used) / nbufs : C;
				uint32_t len;
				int ret;

				room &= ~((size_t)e->align - 1);
				if (room == 0 || b->n_segs == b->cap || b->n_segs == max_segs)
					return false;
				len = (uint32_t)min_u64(r->q - cur->col, room);
				ret = raid5_locate(e, s * width, r->k_first, cur->col, len, &ext);
				if (ret)
					return false;	/* cannot happen: in the array */
				g = &b->segs[b->n_segs++];
				g->base = s * width;
				g->unit_off = ext.offset;
				g->col = cur->col;
				g->len = len;
				g->k_first = r->k_first;
				g->k_last = r->k_last;
				g->parity_role = ext.parity_role;
				g->skip_role = skip;
				g->reconstruct = reconstruct;
				g->data_only = data_only;
				g->old = b->scratch + used;
				g->parity = nbufs ? g->old + (nbufs - 1) * len : NULL;
				used += nbufs * len;
				cur->col += len;
			}
		}
		for (i = 0; i < nr; i++) {
			bool reconstruct, data_only;

			(void)raid5_range_plan(e, s, &rg[i], unsynced, m, rb, &reconstruct,
					       &data_only);
			rmw |= !data_only && !reconstruct;
		}
		/* Shared when the holder's: engine_get_stats adds them up meanwhile. */
		atomic_fetch_add_explicit(a0 <= s * width && a1 >= (s + 1) * width ?
						  &st->stripe_full :
					  rmw ? &st->stripe_rmw : &st->stripe_rcw,
					  1, memory_order_relaxed);
	}
	return true;
}

/* raid5: plan and run rounds from @cur on until all of [a0, a1) is written. */
static int raid5_write_from(struct rt_engine *e, struct engine_ctx *c, uint8_t *data,
			    uint64_t a0, uint64_t a1, uint64_t m, uint64_t rb,
			    struct raid5_cursor cur)
{
	uint32_t x = raid5_lost_role(m);
	uint32_t skip = x != LAYOUT_NO_ROLE && (rb & role_bit(x)) ? LAYOUT_NO_ROLE : x;
	bool only = cur.s == a0 / (e->layout.chunk * e->data_roles) && !cur.i &&
		    cur.col == UINT32_MAX, done;
	int ret;

	do {
		done = raid5_plan(e, &c->plan, &c->stats, a0, a1, m, rb, &cur, UINT_MAX);
		if (!done && !c->plan.n_segs)
			return -EINVAL;		/* cannot happen: scratch holds a block */
		ret = raid5_run_round(e, c, data, a0, a1, only && done, skip, x);
		only = false;
	} while (!ret && !done);
	return ret;
}

static struct raid5_cursor raid5_cursor_at(const struct rt_engine *e, uint64_t a0)
{
	return (struct raid5_cursor){ a0 / (e->layout.chunk * e->data_roles), 0, UINT32_MAX };
}

static int raid5_write(struct rt_engine *e, struct engine_ctx *c, uint8_t *data,
		       uint64_t a0, uint64_t a1, uint64_t m, uint64_t rb)
{
	return raid5_write_from(e, c, data, a0, a1, m, rb, raid5_cursor_at(e, a0));
}

/*
 * engine_write_map, healthy arrays: a write that stripes are gathered for
 * (raid5_gather_wanted), or too large for the small path below, holds its
 * stripes on the caller's ring and writes them whole with the parts
 * writers queued on them offer (raid5_map_hold), waiting for those parts
 * on the ring. A write inside one chunk, in a stripe not owed a resync,
 * small enough for the request's scratch, that is not gathered (or whose
 * holding gave up) is planned as raid5_write plans its column range
 * (read-modify-write or reconstruct-write) and run in two rounds on the
 * caller's ring: the reads, then (raid5_map_next) the parity computed and
 * the data and parity written. A larger one whose holding gave up without
 * waiting goes on in rounds on the ring (raid5_map_fallback), as does any
 * write of a degraded or rebuilding array (raid5_map_degraded). Anything
 * else is the synchronous path's: arrays beyond what raid5 spares, writes
 * that waited for their parts in vain, and writes that found every hold
 * borrowed.
 */
static int raid5_map_next(struct rt_engine *e, struct engine_aio *ar);

/* Small and inside one chunk: a single column range. */
static bool raid5_map_fits(const struct rt_engine *e, uint64_t off, uint64_t len)
{
	uint64_t C = e->layout.chunk;

	return len <= ENGINE_AREQ_WRITE_MAX && off / C == (off + len - 1) / C;
}

/* The small path: read-modify-write or reconstruct-write in two rounds. */
static int raid5_map_small(struct rt_engine *e, struct engine_aio *ar, uint8_t *buf,
			   uint64_t off, uint64_t len)
{
	uint64_t C = e->layout.chunk, W = e->lock_unit, s = off / W, base = s * W;
	uint32_t d = e->data_roles, k = (uint32_t)((off - base) / C);
	struct engine_areq *q = ar->areq;
	struct raid5_seg *g;
	struct layout_extent ext;
	size_t nbufs;
	int ret;

	/* Parity that may not match: the synchronous path computes it from the data. */
	if (engine_dl_resync_owed(e, s * C, C))
		return -EAGAIN;
	g = &q->seg;
	g->col = (uint32_t)((off - base) % C);
	g->len = (uint32_t)len;
	ret = raid5_locate(e, base, k, g->col, g->len, &ext);
	if (ret)
		return ret;
	g->base = base;
	g->unit_off = ext.offset;
	g->k_first = g->k_last = k;
	g->parity_role = ext.parity_role;
	g->skip_role = LAYOUT_NO_ROLE;
	/* One chunk touched (t = 1): raid5_write's choice and scratch. */
	g->reconstruct = d - 1 <= 2;
	g->data_only = false;
	nbufs = g->reconstruct ? d : 3;
	if (nbufs * len > ENGINE_AREQ_SCRATCH)
		return -EAGAIN;
	g->old = q->scratch;
	g->parity = g->old + (nbufs - 1) * len;
	q->data = buf;
	q->a0 = off;
	q->round = 0;
	ret = raid5_queue_reads(e, &(const struct raid5_sink){ .ar = ar }, g);
	/* Nothing to read (two units: the parity is a copy): straight to the writes. */
	if (!ret && ar->n == 0)
		ret = raid5_map_next(e, ar) > 0 ? 0 : -EAGAIN;
	return ret;
}

/*
 * The rounds of a large write whose holding gave up, on the caller's ring:
 * planned as raid5_write plans it (raid5_plan) in what the holder borrowed
 * (struct raid5_hold), a batch of column ranges at a time, at most
 * ENGINE_AIO_MAX / (d + 1) of them (each reads at most d ranges and writes
 * at most d + 1, one more to a role's replacement during a hot replace):
 * the batch's reads, then its parity and new data, then the next batch.
 * Each batch leaves its stripes consistent, as raid5_write's rounds do.
 */
static struct raid5_batch *raid5_rounds_batch(struct engine_areq *q)
{
	return q->hold ? &q->hold->plan : &q->small;
}

static int raid5_rounds_write(struct rt_engine *e, struct engine_aio *ar)
{
	const struct raid5_sink to = { .ar = ar };
	struct engine_areq *q = ar->areq;
	const struct raid5_batch *b = raid5_rounds_batch(q);
	int ret;

	ar->n = 0;
	ret = raid5_queue_writes(e, &to, b->segs, b->n_segs, q->data, q->a0, true);
	if (ret) {
		ar->n = 0;
		return ret < 0 ? ret : -EIO;
	}
	q->reading = false;
	q->round = 1;	/* writes out: a failure owes the stripes a resync */
	return 1;
}

static int raid5_rounds_plan(struct rt_engine *e, struct engine_aio *ar)
{
	const struct raid5_sink to = { .ar = ar };
	struct engine_areq *q = ar->areq;
	struct raid5_batch *b = raid5_rounds_batch(q);
	unsigned i;
	int ret = 0;

	/* The batches before are whole: until this one's writes go out, a failure owes nothing. */
	q->round = 0;
	q->last_batch = raid5_plan(e, b, &e->aread_stats, q->a0, q->a1, q->m, q->rb, &q->cur,
				   ENGINE_AIO_MAX / raid5_range_writes(e));
	/* Scratch holds a range; a round may not (64 roles during a replace): synchronous. */
	if (!b->n_segs)
		return -EINVAL;
	ar->n = 0;
	for (i = 0; i < b->n_segs && !ret; i++)
		ret = raid5_queue_reads(e, &to, &b->segs[i]);
	if (ret) {
		ar->n = 0;
		return ret < 0 ? ret : -EIO;
	}
	q->reading = true;
	/* Nothing to read (two units: the parity is a copy): the writes at once. */
	return ar->n ? 1 : raid5_rounds_write(e, ar);
}

/*
 * Holding [off, off + len) from @buf gave up (@ret -EAGAIN), or @ret is
 * what it did. Gave up: a large write goes on in rounds on the ring (with
 * what the holder borrowed) unless it waited for its parts in vain, a
 * small one alone (raid5_map_small), unless the array changed (@stop):
 * then, as when nothing could be borrowed, the synchronous path's.
 */
static int raid5_map_fallback(struct rt_engine *e, struct engine_aio *ar, int ret, uint8_t *buf,
			      uint64_t off, uint64_t len, bool stop)
{
	struct engine_areq *q = ar->areq;
	bool fits = raid5_map_fits(e, off, len);

	if (ret != -EAGAIN)
		return ret;
	/*
	 * Not after waiting in vain: its stripes let go, the writers queued
	 * on them hold them in turn while this one, on a worker, offers its
	 * part to them, and such a stripe is still written whole. In rounds,
	 * its part written alone, each of theirs would be too (a 1 MiB
	 * stream on disk: 2.6 times the reconstruct-writes, 0.75 raw instead
	 * of 1.16 in make bench).
	 */
	if (q->hold && !fits && !stop && !q->waited) {
		q->rounds = true;
		q->round = 0;
		q->cur = raid5_cursor_at(e, off);
		if (raid5_rounds_plan(e, ar) > 0)
			return 0;
		q->rounds = false;
		q->round = 0;
	}
	raid5_hold_end(e, q, false);	/* nothing written: the hold goes back */
	if (fits && !stop)
		return raid5_map_small(e, ar, buf, off, len);
	return -EAGAIN;
}

/*
 * A write while a role is faulty or being rebuilt: planned as raid5_write
 * plans it with those roles (raid5_plan: the faulty one neither read nor
 * written, the one being rebuilt written but not read), in rounds on the
 * caller's ring, as a holder that gave up writes (raid5_rounds_plan); a
 * small write in the request's scratch, a larger one in a hold it borrows
 * (none free: -EAGAIN). Nothing is gathered, as engine_write gathers only
 * on a healthy array.
 */
static int raid5_map_degraded(struct rt_engine *e, struct engine_aio *ar, uint8_t *buf,
			      uint64_t off, uint64_t len)
{
	struct engine_areq *q = ar->areq;

	if (!engine_tolerates(e, q->m))
		return -EAGAIN;	/* engine_write stops it */
	q->data = buf;
	q->a0 = off;
	q->a1 = off + len;
	if (!raid5_map_fits(e, off, len)) {
		q->hold = engine_hold_get(e);
		if (!q->hold)
			return -EAGAIN;
	}
	q->small = (struct raid5_batch){ .segs = &q->seg, .cap = 1, .scratch = q->scratch,
					 .scratch_cap = ENGINE_AREQ_SCRATCH };
	q->rounds = true;
	q->cur = raid5_cursor_at(e, off);
	if (raid5_rounds_plan(e, ar) > 0)
		return 0;
	q->rounds = false;
	q->round = 0;
	raid5_hold_end(e, q, false);
	return -EAGAIN;
}

static int raid5_map_write(struct rt_engine *e, struct engine_aio *ar, uint8_t *buf,
			   uint64_t off, uint64_t len, uint64_t m, uint64_t rb)
{
	if (!ar->areq || !ar->areq->scratch)
		return -EAGAIN;
	ar->areq->m = m;
	ar->areq->rb = rb;
	if (m || rb)
		return raid5_map_degraded(e, ar, buf, off, len);
	/* Before the holder's window looks at the arrivals: this one is not news to it. */
	engine_note_write(e, off, off + len);
	/*
	 * A part of a stream (or any write while gathering is not given up
	 * on) holds its stripe: written alone (reconstruct-write), it would
	 * keep the stripe from being written whole (stripe.bats saw 6-13 of
	 * 16 stripes of a 1 MiB stream written whole, not 16, when every
	 * small write was written alone).
	 */
	if (!raid5_map_fits(e, off, len) || raid5_gather_wanted(e, off, off + len))
		return raid5_map_fallback(e, ar, raid5_map_hold(e, ar, buf, off, off + len), buf,
					  off, len, false);
	return raid5_map_small(e, ar, buf, off, len);
}

/*
 * A failed round of a write in rounds was redone on @c (engine_aio_redo):
 * the batches left, synchronously on @c, the stripe locks still held, the
 * roles faulty now planned as such (as raid5_write plans them).
 */
static int raid5_map_rest(struct rt_engine *e, struct engine_aio *ar, struct engine_ctx *c)
{
	struct engine_areq *q = ar->areq;
	uint64_t rb, m;

	if (!q->rounds || q->last_batch)
		return 0;
	/* As one pair, as engine_aio_map loads them. */
	engine_role_masks(e, &rb, &m);
	return raid5_write_from(e, c, q->data, q->a0, q->a1, m, rb, q->cur);
}

/*
 * The round of writes a unit in service refused (engine_aio_redo): a write in
 * rounds, its last batch; a small write, its one column range. A holder's
 * whole stripes are reconstruct-writes (nothing to put back).
 */
static void raid5_map_undo(struct rt_engine *e, struct engine_aio *ar, struct engine_ctx *c)
{
	struct engine_areq *q = ar->areq;
	const struct raid5_batch *b;

	if (!q || q->round != 1)
		return;
	if (q->rounds) {
		b = raid5_rounds_batch(q);
		raid5_undo(e, c, b->segs, b->n_segs,
			   raid5_lost_role(q->m), q->data, q->a0);
	} else if (!q->hold) {
		raid5_undo(e, c, &q->seg, 1, LAYOUT_NO_ROLE, q->data, q->a0);	/* healthy */
	}
}

/* A holder woken: on, or, having given up, as raid5_map_fallback says. */
static int raid5_map_resume(struct rt_engine *e, struct engine_aio *ar, bool stop)
{
	struct engine_areq *q = ar->areq;

	return raid5_map_fallback(e, ar, raid5_hold_step(e, ar, stop), q->data, q->a0,
				  q->a1 - q->a0, stop);
}

/*
 * Are role @r's bytes for rebuilding @l data the request reads whole
 * itself (a read across the stripe)? Then *@at is where, in its buffer.
 */
static bool raid5_lost_covered(const struct rt_engine *e, const struct engine_areq *q,
			       const struct raid5_lost *l, uint32_t r, uint8_t **at)
{
	uint64_t C = e->layout.chunk, la;
	uint32_t k;

	for (k = 0; k < e->data_roles; k++) {
		if (layout_raid5_data_role(&e->layout, l->stripe, k) != r)
			continue;
		la = l->stripe * C * e->data_roles + (uint64_t)k * C + l->col;
		if (la < q->a0 || la + l->len > q->a1)
			return false;
		*at = q->data + (la - q->a0);
		return true;
	}
	return false;	/* the parity */
}

/*
 * engine_read_map, @ext on the faulty role: read the same columns of every
 * other role that the request does not read anyway into its scratch (full:
 * a borrowed hold's buffer), to be XORed into @dst once they are in
 * (raid5_map_read_next).
 */
static int raid5_map_read_lost(struct rt_engine *e, struct engine_aio *ar, uint8_t *dst,
			       const struct layout_extent *ext, uint64_t m)
{
	struct engine_areq *q = ar->areq;
	uint64_t C = e->layout.chunk;
	struct raid5_lost *l;
	unsigned j = 0;
	uint8_t *at;
	size_t need;
	uint32_t r;
	int ret;

	if ((m & ~role_bit(ext->role)) || q->n_lost == ENGINE_AREQ_LOST)
		return -EAGAIN;	/* beyond raid5 (engine_read fails it), or no room */
	l = &q->lost[q->n_lost];
	*l = (struct raid5_lost){ .dst = dst, .len = (uint32_t)ext->len, .stripe = ext->stripe,
				  .col = (uint32_t)(ext->offset - ext->stripe * C),
				  .role = ext->role };
	for (r = 0; r < e->n; r++)
		j += r != ext->role && !raid5_lost_covered(e, q, l, r, &at);
	need = (size_t)j * l->len;
	if (q->lost_used + need > (q->hold ? ENGINE_DATA_CAP : ENGINE_AREQ_SCRATCH)) {
		if (q->hold || need > ENGINE_DATA_CAP)
			return -EAGAIN;
		q->hold = engine_hold_get(e);
		if (!q->hold)
			return -EAGAIN;
		q->lost_used = 0;
	}
	l->src = (q->hold ? q->hold->parity : q->scratch) + q->lost_used;
	q->lost_used += need;
	q->n_lost++;
	for (r = 0, j = 0; r < e->n; r++) {
		if (r == ext->role || raid5_lost_covered(e, q, l, r, &at))
			continue;	/* read into the request's buffer already */
		ret = engine_aio_add(e, ar, false, r, ext->offset, l->src + (size_t)j++ * l->len,
				     l->len);
		if (ret)
			return ret;
	}
	return 0;
}

/* A degraded read's unit reads are in: rebuild the faulty role's extents. */
static int raid5_map_read_next(struct rt_engine *e, struct engine_aio *ar)
{
	struct engine_areq *q = ar->areq;
	void *src[RT_MAX_UNITS];
	unsigned i, j, k;
	uint8_t *at;
	uint32_t r;
	int ret;

	for (i = 0; i < q->n_lost; i++) {
		const struct raid5_lost *l = &q->lost[i];

		for (r = 0, j = 0, k = 0; r < e->n; r++) {
			if (r == l->role)
				continue;
			src[j++] = raid5_lost_covered(e, q, l, r, &at) ? at :
				   l->src + (size_t)k++ * l->len;
		}
		ret = parity_xor(l->dst, src, j, l->len);
		if (ret)
			return ret;
	}
	q->n_lost = 0;
	return 0;
}

/* The reads completed: compute the parity, write it and the data. */
static int raid5_map_next(struct rt_engine *e, struct engine_aio *ar)
{
	const struct raid5_sink to = { .ar = ar };
	struct engine_areq *q = ar->areq;
	struct raid5_seg *g = &q->seg;
	int ret;

	if (!ar->write)
		return raid5_map_read_next(e, ar);
	if (q->rounds) {
		if (!q->reading && q->last_batch)
			return 0;
		engine_aio_count(e, ar);
		return q->reading ? raid5_rounds_write(e, ar) : raid5_rounds_plan(e, ar);
	}
	if (q->round != 0)
		return 0;
	engine_aio_count(e, ar);
	ar->n = 0;
	ret = raid5_queue_writes(e, &to, g, 1, q->data, q->a0, true);
	if (ret) {
		ar->n = 0;
		return ret < 0 ? ret : -EIO;
	}
	q->round = 1;
	atomic_fetch_add_explicit(g->reconstruct ? &e->aread_stats.stripe_rcw :
				  &e->aread_stats.stripe_rmw, 1, memory_order_relaxed);
	return 1;
}

/*
 * Failed, some of the data and parity writes may have landed and others
 * not (unless the round never went out: @ar->n 0, see engine_aio_unmap):
 * the stripe's parity cannot be trusted until it is made from the
 * data again. Still under the stripe lock, its regions are owed a resync
 * (as after a write that ran out of space): later writers of the stripe
 * reconstruct-write, the run path resyncs it. The caller then writes the
 * request again through the synchronous path. A holder settles the parts
 * it wrote for other writers: done, or given back.
 */
static void raid5_map_end(struct rt_engine *e, struct engine_aio *ar, bool ok)
{
	struct engine_areq *q = ar->areq;

	if (!q)
		return;
	if (!ok && q->round == 1 && ar->n)
		engine_owe_resync(e, q->first, q->last);
	raid5_hold_end(e, q, ok);
}

/* Stripe s is chunk row s of every role: one range per role, parity of zeros is zeros. */
static int raid5_zero(struct rt_engine *e, uint64_t first, uint64_t last)
{
	uint32_t r;
	int ret = 0;

	for (r = 0; r < e->n && !ret; r++)
		ret = unit_zero_range(e->unit[r], e->data_offset + first * e->layout.chunk,
				      (last - first + 1) * e->layout.chunk);
	return ret;
}

/* From every other role: none of them may be gone. */
static bool raid5_can_recover(const struct rt_engine *e, uint32_t role, uint64_t m)
{
	return m == role_bit(role);
}

/* Every other role's bytes, role j-th of them at @buf + (j + 1) * @step. */
static int raid5_recover_read(struct rt_engine *e, struct engine_ctx *c, uint32_t role,
			      uint8_t *buf, uint64_t step, uint64_t off, uint64_t len, uint64_t m)
{
	uint32_t r, j = 0;
	int ret = 0;

	for (r = 0; r < e->n && !ret; r++) {
		if (r == role)
			continue;
		ret = ctx_add_io(e, c, ENGINE_OP_READ, r, buf + (j + 1) * step, off, len);
		j++;
	}
	return ret;
}

static int raid5_recover_compute(const struct rt_engine *e, uint32_t role, uint8_t *buf,
				 uint64_t step, uint64_t len)
{
	void *src[RT_MAX_UNITS];
	uint32_t j;

	for (j = 0; j < e->n - 1; j++)
		src[j] = buf + (j + 1) * step;
	return parity_xor(buf, src, j, len);
}

/* The parity compared with the XOR of the data (every role read: buf[r] is role r's). */
static int raid5_scrub(struct rt_engine *e, struct engine_ctx *c, struct engine_scrub_piece *p,
		       struct engine_scrub *sc)
{
	uint32_t n = e->n, pr = layout_raid5_parity_role(&e->layout, p->stripe), r, j = 0;
	void *src[RT_MAX_UNITS];
	int ret;

	for (r = 0; r < n; r++)
		if (r != pr)
			src[j++] = p->buf[r] + p->o;
	ret = parity_xor(p->buf[n] + p->o, src, j, p->len);
	if (!ret && memcmp(p->buf[n] + p->o, p->buf[pr] + p->o, p->len)) {
		p->bad = true;
		p->fixed = sc->repair;
		if (sc->repair)
			ret = ctx_add_io(e, c, ENGINE_OP_WRITE, pr, p->buf[n] + p->o, p->pos, p->len);
	}
	return ret;
}

const struct engine_level_ops engine_raid5_ops = {
	.name = "raid5",
	.redundant = true,
	.scratch = true,
	.lock_degraded_reads = true,
	.scrub_needs_all = true,
	.tolerates = raid5_tolerates,
	.read_role = engine_extent_role,
	.read_lost = raid5_reconstruct,
	.map_read_lost = raid5_map_read_lost,
	.write = raid5_write,
	.gather = raid5_gather,
	.map_write = raid5_map_write,
	.map_resume = raid5_map_resume,
	.map_next = raid5_map_next,
	.map_end = raid5_map_end,
	.map_rest = raid5_map_rest,
	.map_undo = raid5_map_undo,
	.zero = raid5_zero,
	.can_recover = raid5_can_recover,
	.recover_read = raid5_recover_read,
	.recover_compute = raid5_recover_compute,
	.scrub = raid5_scrub,
};
