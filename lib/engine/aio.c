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
	if (write && (!e->ops->map_writes || e->lock_all || e->dl || atomic_load(&e->nospace)))
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
		role = write ? ext.role : e->ops->read_role(e, &ext, rr, 0);
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
	if (e->readonly)
		return -EROFS;
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
