/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * raid1: every role a mirror of the whole data area. Reads are spread
 * over the working mirrors (but regions owed a resync always read the
 * mirror the resync copies from); writes go to every working mirror and
 * to one being rebuilt.
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
#include <raidtool/rebuild.h>
#include <raidtool/unit.h>

#include "internal.h"

/* raid1 writes go on while one mirror works. */
static bool raid1_tolerates(const struct rt_engine *e, uint64_t m)
{
	return (unsigned)__builtin_popcountll(m) < e->n;
}

/* raid1: the working mirror to copy from (never a unit being rebuilt). */
static uint32_t raid1_source_mirror(const struct rt_engine *e, uint64_t m)
{
	uint32_t r;

	for (r = 0; r < e->n; r++)
		if (!(m & role_bit(r)))
			return r;
	return LAYOUT_NO_ROLE;
}

/* The next working mirror, LAYOUT_NO_ROLE when none is left. */
static uint32_t raid1_read_role(const struct rt_engine *e, const struct layout_extent *ext,
				unsigned rr, uint64_t m)
{
	uint32_t r, i;

	/*
	 * Copies not yet made equal (initial sync, or after an unclean stop):
	 * always the mirror the resync copies from, so a block reads the same
	 * twice, and the same as after the resync.
	 */
	if (engine_dl_resync_owed(e, ext->offset, ext->len))
		return raid1_source_mirror(e, m);
	r = (uint32_t)((ext->stripe + rr) % e->n);	/* spread over mirrors */
	for (i = 0; i < e->n; i++, r = (r + 1) % e->n)
		if (!(m & role_bit(r)))
			return r;
	return LAYOUT_NO_ROLE;
}

/* Queue one unit write of a mirror: on a context's ring, or a request's (engine_aio). */
typedef int (*raid1_queue_fn)(struct rt_engine *e, void *q, uint32_t role, uint8_t *buf,
			      uint64_t unit_off, uint64_t len);

/*
 * Each extent of [off, off + len) from @buf (which holds @off) to every
 * working mirror, a mirror being rebuilt included: one merged I/O each.
 */
static int raid1_queue_writes(struct rt_engine *e, raid1_queue_fn queue, void *q, uint8_t *buf,
			      uint64_t off, uint64_t len, uint64_t m, uint64_t rb)
{
	struct layout_extent ext;
	uint64_t pos;
	uint32_t r;
	int ret;

	m &= ~rb;
	for (r = 0; r < e->n; r++) {
		if (m & role_bit(r))
			continue;
		for (pos = off; pos < off + len; pos += ext.len) {
			ret = layout_map(&e->layout, pos, off + len - pos, &ext);
			if (!ret)
				ret = queue(e, q, r, buf + (pos - off), ext.offset, ext.len);
			if (ret)
				return ret;
		}
	}
	return 0;
}

static int raid1_queue_ctx(struct rt_engine *e, void *q, uint32_t role, uint8_t *buf,
			   uint64_t unit_off, uint64_t len)
{
	return ctx_add_io(e, q, ENGINE_OP_WRITE, role, buf, unit_off, len);
}

static int raid1_queue_aio(struct rt_engine *e, void *q, uint32_t role, uint8_t *buf,
			   uint64_t unit_off, uint64_t len)
{
	return engine_aio_add(e, q, true, role, unit_off, buf, len);
}

static int raid1_write(struct rt_engine *e, struct engine_ctx *c, uint8_t *data,
		       uint64_t a0, uint64_t a1, uint64_t m, uint64_t rb)
{
	int ret = raid1_queue_writes(e, raid1_queue_ctx, c, data, a0, a1 - a0, m, rb);

	return ret ? ret : ctx_run_ios(e, c);
}

/*
 * The same unit writes as raid1_write, on the caller's ring. Beyond what
 * the level spares, engine_write fails the request.
 */
static int raid1_map_write(struct rt_engine *e, struct engine_aio *ar, uint8_t *buf,
			   uint64_t off, uint64_t len, uint64_t m, uint64_t rb)
{
	if (!raid1_tolerates(e, m))
		return -EAGAIN;
	return raid1_queue_writes(e, raid1_queue_aio, ar, buf, off, len, m, rb);
}

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

/* Every mirror, each extent. */
static int raid1_zero(struct rt_engine *e, uint64_t first, uint64_t last)
{
	uint64_t W = e->lock_unit, pos, end = (last + 1) * W;
	struct layout_extent ext;
	uint32_t r;
	int ret = 0;

	for (pos = first * W; pos < end && !ret; pos += ext.len) {
		ret = layout_map(&e->layout, pos, end - pos, &ext);
		for (r = 0; r < e->n && !ret; r++)
			ret = unit_zero_range(e->unit[r], e->data_offset + ext.offset, ext.len);
	}
	return ret;
}

/* A copy of any working mirror (raid1_recover_read fails when none is left). */
static bool raid1_can_recover(const struct rt_engine *e, uint32_t role, uint64_t m)
{
	return true;
}

static int raid1_recover_read(struct rt_engine *e, struct engine_ctx *c, uint32_t role,
			      uint8_t *buf, uint64_t step, uint64_t off, uint64_t len, uint64_t m)
{
	uint32_t r = raid1_source_mirror(e, m);

	if (r == LAYOUT_NO_ROLE)
		return -EIO;
	return ctx_add_io(e, c, ENGINE_OP_READ, r, buf, off, len);
}

/* raid1 blocks compared (and settled) one at a time: the smallest write. */
#define SCRUB_BLOCK 512u

/*
 * Settle each block of the piece: the copies that differ from the one
 * chosen (scrub_mirror_block) are rewritten with it when repairing.
 */
static int raid1_scrub(struct rt_engine *e, struct engine_ctx *c, struct engine_scrub_piece *p,
		       struct engine_scrub *sc)
{
	uint64_t b, bl, o = p->o;
	uint32_t w;
	int ret = 0;

	for (b = 0; b < p->len && !ret; b += bl) {
		int k;

		bl = min_u64(p->len - b, SCRUB_BLOCK);
		k = scrub_mirror_block(p->buf, o + b, bl, p->nw, p->roles, sc, &p->kept);
		if (k == -1)
			continue;
		p->bad = true;
		if (!sc->repair)
			continue;
		if (k == -2) {
			p->tie = true;
			continue;
		}
		for (w = 0; w < p->nw && !ret; w++) {
			if (w == (uint32_t)k || !memcmp(p->buf[k] + o + b, p->buf[w] + o + b, bl))
				continue;
			p->fixed = true;
			ret = ctx_add_io(e, c, ENGINE_OP_WRITE, p->roles[w], p->buf[k] + o + b,
					 p->pos + b, bl);
		}
	}
	return ret;
}

const struct engine_level_ops engine_raid1_ops = {
	.name = "raid1",
	.redundant = true,
	.tolerates = raid1_tolerates,
	.read_role = raid1_read_role,
	.write = raid1_write,
	.map_write = raid1_map_write,
	.zero = raid1_zero,
	.can_recover = raid1_can_recover,
	.recover_read = raid1_recover_read,
	.scrub = raid1_scrub,
};
