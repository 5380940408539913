/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Request contexts from a fixed pool, each with its own io_uring ring:
 * unit I/O queued, submitted, reaped, retried; unit errors judged.
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
 * A raid5 read-modify-write is put back at once (raid5_queue_undo): a
 * faulty role's blocks there are made from that stripe. Until the resync,
 * a stripe written from its data is as exposed as after a crash (a role
 * lost meanwhile could be reconstructed wrong there).
 * Any other read or write error is tried again up to retry_count times,
 * spread over retry_window_ms (engine_set_retries), before the role is
 * failed: a transient error (a bus reset, a path failover) costs a delay,
 * not a rebuild. A failed flush is never tried again (see ctx_complete_io).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <liburing.h>

#include <raidtool/engine.h>
#include <raidtool/layout.h>
#include <raidtool/log.h>

#include "internal.h"

static __thread unsigned engine_ctx_hint;

static int ctx_init_ring(struct engine_ctx *c);

/* ---- context pool ---------------------------------------------------- */

/* A free context, or NULL at once: a walk taking more than one never waits for the rest. */
struct engine_ctx *ctx_try_acquire(struct rt_engine *e)
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

/* A free shared context; else, with @redo, the one kept for redos if free. */
static struct engine_ctx *ctx_try_acquire_for(struct rt_engine *e, bool redo)
{
	struct engine_ctx *c = ctx_try_acquire(e), *kept = &e->ctx[e->n_ctx];

	if (!c && redo && !atomic_exchange(&kept->busy, 1))
		c = kept;
	return c;
}

/*
 * Lock-free when a context is free. Otherwise sleep: a waiter counts itself
 * before rescanning and the releaser clears busy before looking at the
 * count (both sequentially consistent), so a release cannot slip between
 * the waiter's failed scan and its sleep unnoticed.
 */
static struct engine_ctx *ctx_acquire_for(struct rt_engine *e, bool redo)
{
	struct engine_ctx *c = ctx_try_acquire_for(e, redo);

	if (c)
		return c;
	pthread_mutex_lock(&e->pool_mu);
	atomic_fetch_add(&e->pool_waiters, 1);
	atomic_fetch_add(&e->blocked, 1);
	while (!(c = ctx_try_acquire_for(e, redo)))
		pthread_cond_wait(&e->pool_cond, &e->pool_mu);
	atomic_fetch_sub(&e->blocked, 1);
	atomic_fetch_sub(&e->pool_waiters, 1);
	pthread_mutex_unlock(&e->pool_mu);
	return c;
}

struct engine_ctx *ctx_acquire(struct rt_engine *e)
{
	return ctx_acquire_for(e, false);
}

/*
 * The redo of a failed round (engine_aio_redo), its stripes locked: a
 * shared context, else the one kept for redos, waiting for it when another
 * redo has it. That one is always let go soon: a redo waits for nothing
 * else, and no drain takes it (a drain may hold every shared one until
 * this mapping ends).
 */
struct engine_ctx *ctx_acquire_redo(struct rt_engine *e)
{
	return ctx_acquire_for(e, true);
}

void ctx_release(struct rt_engine *e, struct engine_ctx *c)
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
		/* The one kept for redos: only a redo may take it, wake them all. */
		if (c == &e->ctx[e->n_ctx])
			pthread_cond_broadcast(&e->pool_cond);
		else
			pthread_cond_signal(&e->pool_cond);
		pthread_mutex_unlock(&e->pool_mu);
	}
}

/*
 * Make @role faulty: the handler first (it records the failure in the
 * superblocks), then the bit is published, all under fail_mu. A request
 * that hit the same role waits here until then, so no request relies on
 * the role being gone before the handler has run. With @spared_only, a
 * role whose loss the level does not survive is left alone (-EEXIST):
 * decided under fail_mu, so that a unit failing an I/O meanwhile counts.
 */
int engine_mark_faulty(struct rt_engine *e, uint32_t role, bool spared_only)
{
	uint64_t bit = role_bit(role);
	int ret = -EALREADY;

	pthread_mutex_lock(&e->fail_mu);
	if (spared_only && !(atomic_load(&e->faulty) & bit) &&
	    !engine_tolerates(e, atomic_load(&e->faulty) | bit)) {
		ret = -EEXIST;
	} else if (atomic_load(&e->replace_role) == role) {
		/*
		 * The unit being replaced failed: its replacement goes on from the
		 * others. The rebuild bit before the faulty one: a writer that sees
		 * the role faulty also plans its writes (for the replacement).
		 */
		if (!(atomic_load(&e->faulty) & bit)) {
			rt_log(RT_LOG_WARN, "unit %u failed while being replaced: its replacement "
			       "is filled from the other units", role);
			if (e->on_fail)
				e->on_fail(role, e->on_fail_ctx);
			atomic_fetch_or(&e->rebuild, bit);
			atomic_fetch_or(&e->faulty, bit);
			ret = 0;
		}
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
		       !engine_tolerates(e, m) ? (e->ops->redundant ?
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
 * The handler records the failure before the flag is set: until then
 * writes still go to the replacement too, and one that fails there waits
 * here; once set, writes skip it, and a crash must not find it trusted.
 */
void engine_replica_error(struct rt_engine *e, const struct engine_io *io, int res)
{
	pthread_mutex_lock(&e->fail_mu);
	if (!atomic_load(&e->replace_failed)) {
		rt_log(RT_LOG_WARN, "the replacement of unit %u: %s of %u bytes at %llu failed: %s; "
		       "the replace stops", io->role, engine_op_name[io->op], io->len,
		       (unsigned long long)io->off, strerror(-res));
		if (e->on_replica_fail)
			e->on_replica_fail(io->role, e->on_replica_fail_ctx);
		atomic_store(&e->replace_failed, true);
	}
	pthread_mutex_unlock(&e->fail_mu);
}

/*
 * Every failed unit I/O ends here. The role is made faulty once the run
 * has reaped everything (ctx_run_ios); the piece is then retried without it.
 * An I/O that kept returning -EAGAIN/-EINTR is an error but not a fault,
 * and so is one refused for want of space (-ENOSPC, the role stays).
 * Mapped flushes' failed fsyncs too (engine_flush_done).
 */
int engine_unit_error(struct rt_engine *e, struct engine_ctx *c, const struct engine_io *io,
		      int res)
{
	uint64_t bit = role_bit(io->role);

	stat_add(&c->stats.errors, 1);
	stat_add(&c->stats.unit[io->role].errors, 1);
	if (engine_err_nospace(res)) {
		c->run_kept_role = true;
		if (!(atomic_fetch_or(&e->nospace, bit) & bit))
			rt_log(RT_LOG_WARN, "unit %u is out of space (%s): it stays in the "
			       "array; writes that need it fail with ENOSPC until it has room",
			       io->role, strerror(-res));
		return -ENOSPC;
	}
	if (res != -EAGAIN && res != -EINTR)
		c->failed |= bit;
	else if (io->op == ENGINE_OP_WRITE)
		c->run_kept_role = true;
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

/* [write][fixed] */
static const uint8_t io_opcode[2][2] = {
	{ IORING_OP_READ, IORING_OP_READ_FIXED },
	{ IORING_OP_WRITE, IORING_OP_WRITE_FIXED },
};

static bool ctx_prep_io(struct rt_engine *e, struct engine_ctx *c, struct engine_io *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);
	uint32_t len = io->len - io->done;
	uint64_t off = io->off + io->done;
	int fd = io->replica ? e->replace_fd : e->fd[io->role];

	if (!sqe)
		return false;
	switch (io->op) {
	case ENGINE_OP_READ:
	case ENGINE_OP_WRITE:
		/* A registered buffer (io->fixed - 1) or a plain one. */
		io_uring_prep_rw(io_opcode[io->op == ENGINE_OP_WRITE][io->fixed != 0], sqe, fd,
				 io->buf + io->done, len, off);
		if (io->fixed)
			sqe->buf_index = (uint16_t)(io->fixed - 1);
		break;
	default:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	}
	io_uring_sqe_set_data(sqe, io);
	return true;
}

/* @io transferred its whole length. */
static void ctx_io_count(struct rt_engine *e, struct engine_ctx *c, const struct engine_io *io)
{
	if (io->op == ENGINE_OP_READ) {
		stat_add(&c->stats.unit[io->role].reads, 1);
		stat_add(&c->stats.unit[io->role].read_bytes, io->len);
	} else if (io->op == ENGINE_OP_WRITE) {
		uint64_t bit = role_bit(io->role);

		stat_add(&c->stats.unit[io->role].writes, 1);
		stat_add(&c->stats.unit[io->role].write_bytes, io->len);
		if (!io->replica && (atomic_load_explicit(&e->nospace, memory_order_relaxed) & bit) &&
		    (atomic_fetch_and(&e->nospace, ~bit) & bit))
			rt_log(RT_LOG_INFO, "unit %u takes writes again", io->role);
	}
}

int ctx_ios_to_aio(const struct rt_engine *e, const struct engine_ctx *c, struct engine_aio *ar)
{
	unsigned i;

	if (c->n_ios > ENGINE_AIO_MAX)
		return -EAGAIN;
	for (i = 0; i < c->n_ios; i++) {
		const struct engine_io *io = &c->ios[i];

		if (io->op == ENGINE_OP_FSYNC)
			return -EAGAIN;
		ar->io[i] = (struct engine_unit_io){
			.fd = io->replica ? e->replace_fd : e->fd[io->role],
			.write = io->op == ENGINE_OP_WRITE,
			.replica = io->replica,
			.role = io->role,
			.off = io->off,
			.len = io->len,
			.buf = io->buf,
		};
	}
	ar->n = c->n_ios;
	return 0;
}

void ctx_ios_done(struct rt_engine *e, struct engine_ctx *c)
{
	for (unsigned i = 0; i < c->n_ios; i++)
		ctx_io_count(e, c, &c->ios[i]);
	c->n_ios = 0;
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
	    io->op != ENGINE_OP_FSYNC && !(io->replica && atomic_load(&e->replace_failed)) &&
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
	/* The replacement failing ends the replace, not the role (engine_replace_*). */
	if (io->replica && (res < 0 || (res == 0 && io->op != ENGINE_OP_FSYNC))) {
		engine_replica_error(e, io, res < 0 ? res : -ENXIO);
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
	ctx_io_count(e, c, io);
	return err;
}

/*
 * One round of a run: queue what the ring holds (retries first), submit,
 * wait for @wait_all of them (all in flight, or none), reap what completed.
 * Returns < 0 when the ring itself refused (the context is broken then).
 */
static int ctx_round(struct rt_engine *e, struct engine_ctx *c, bool wait_all)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;
	int ret;

	if (c->backoff) {
		c->backoff = false;
		engine_backoff(e);
	}
	while (c->run_inflight < ENGINE_RING_ENTRIES) {
		struct engine_io *io;

		if (c->n_retry)
			io = c->retry[c->n_retry - 1];
		else if (c->run_next < c->n_ios)
			io = &c->ios[c->run_next];
		else
			break;
		if (!ctx_prep_io(e, c, io))
			break;
		if (c->n_retry)
			c->n_retry--;
		else
			c->run_next++;
		c->run_inflight++;
	}
	/* One wake-up for the whole fan-out rather than one per unit. */
	ret = e->hooks.submit ? e->hooks.submit(e->hooks.arg) : 0;
	if (!ret)
		ret = io_uring_submit_and_wait(&c->ring, wait_all ? c->run_inflight : 0);
	if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
		/*
		 * The ring itself refused: wait for what it did take,
		 * then let the context rebuild its ring.
		 */
		unsigned pending = io_uring_sq_ready(&c->ring);

		rt_log(RT_LOG_ERROR, "io_uring submission failed: %s", strerror(-ret));
		c->run_inflight -= pending;
		while (c->run_inflight) {
			if (io_uring_wait_cqe(&c->ring, &cqe) < 0)
				break;
			io_uring_cqe_seen(&c->ring, cqe);
			c->run_inflight--;
		}
		c->broken = true;
		c->run_err = ret;
		return ret;
	}
	io_uring_for_each_cqe(&c->ring, head, cqe) {
		struct engine_io *io = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		seen++;
		c->run_inflight--;
		if (e->hooks.io_result)
			res = e->hooks.io_result(e->hooks.arg, io->op, io->role,
						 io->len - io->done, res);
		c->run_err = ctx_complete_io(e, c, io, res, c->run_err);
	}
	io_uring_cq_advance(&c->ring, seen);
	return 0;
}

/*
 * Submit the queued I/O without waiting for it (a walk computes meanwhile):
 * ctx_run_ios then waits for it and reaps it. Nothing may be queued in
 * between. Returns < 0 when nothing could be submitted (ctx_run_ios still
 * ends the run).
 */
int ctx_start_ios(struct rt_engine *e, struct engine_ctx *c)
{
	c->n_retry = 0;
	c->run_next = c->run_inflight = 0;
	c->run_err = 0;
	c->run_kept_role = false;
	c->run_started = true;
	if (c->broken)
		return -EIO;
	return ctx_round(e, c, false);
}

/*
 * Submit every queued I/O (as many at once as the ring holds), wait for all
 * of them, resubmit short and -EAGAIN transfers. Always reaps everything it
 * submitted before returning, so the buffers are free again.
 */
int ctx_run_ios(struct rt_engine *e, struct engine_ctx *c)
{
	bool started = c->run_started;
	int err;

	c->run_started = false;
	/* Before the broken check: what an earlier run left must not look like this one's. */
	if (!started)
		c->run_kept_role = false;
	if (c->broken && !(started && c->run_err)) {
		c->n_ios = 0;
		return -EIO;
	}
	if (!started) {
		c->n_retry = 0;
		c->run_next = c->run_inflight = 0;
		c->run_err = 0;
	}
	while (!c->broken && (c->run_next < c->n_ios || c->n_retry || c->run_inflight))
		if (ctx_round(e, c, true) < 0)
			break;
	err = c->run_err;
	c->n_ios = 0;
	ctx_fail_roles(e, c);
	return err;
}

void ctx_fail_roles(struct rt_engine *e, struct engine_ctx *c)
{
	while (c->failed) {
		uint32_t r = (uint32_t)__builtin_ctzll(c->failed);

		c->failed &= c->failed - 1;
		(void)engine_mark_faulty(e, r, false);
	}
}

/*
 * Queue one transfer at device offset @off, merged with the queued one of
 * the same kind when both are contiguous (the last, or the one before it
 * when writes go to a role and its replacement in turns). A full queue is
 * run at once: callers only queue I/Os that may run in any order.
 */
static int ctx_queue(struct rt_engine *e, struct engine_ctx *c, enum engine_op op,
		     uint32_t role, uint8_t *buf, uint64_t off, uint64_t len, bool merge,
		     bool replica)
{
	uint8_t fixed = 0;
	struct engine_io *io;
	int ret;

	if (c->fixed_ok && buf && buf >= c->mem && buf < c->mem + c->mem_size)
		fixed = 1;
	else if (c->walk_buf && buf >= c->walk_buf && buf < c->walk_buf + c->walk_buf_len)
		fixed = 2;

	for (unsigned k = 1; merge && k <= 2 && k <= c->n_ios; k++) {
		io = &c->ios[c->n_ios - k];
		if (io->replica != replica)
			continue;
		if (io->op == op && op != ENGINE_OP_FSYNC && io->role == role && io->fixed == fixed &&
		    io->buf + io->len == buf && io->off + io->len == off &&
		    io->len + len <= UINT32_MAX / 2) {
			io->len += (uint32_t)len;
			return 0;
		}
		break;
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
	io->fixed = merge ? fixed : 0;
	io->replica = replica;
	return 0;
}

/* The same to the role's unit and/or its replacement (see replica_mode). */
static int ctx_queue_role(struct rt_engine *e, struct engine_ctx *c, enum engine_op op,
			  uint32_t role, uint8_t *buf, uint64_t off, uint64_t len, bool merge)
{
	enum replica_mode to = replica_mode(e, op, role);
	int ret = 0;

	if (to & TO_UNIT)
		ret = ctx_queue(e, c, op, role, buf, off, len, merge, false);
	if (!ret && (to & TO_REPLICA))
		ret = ctx_queue(e, c, op, role, buf, off, len, merge, true);
	return ret;
}

/*
 * Queue one transfer of @len bytes at @unit_off in @role's data area,
 * merged with the previous one when both are contiguous.
 */
int ctx_add_io(struct rt_engine *e, struct engine_ctx *c, enum engine_op op,
	       uint32_t role, uint8_t *buf, uint64_t unit_off, uint64_t len)
{
	return ctx_queue_role(e, c, op, role, buf, e->data_offset + unit_off, len, true);
}

int ctx_add_raw(struct rt_engine *e, struct engine_ctx *c, enum engine_op op,
		uint32_t role, uint8_t *buf, uint64_t off, uint32_t len)
{
	return ctx_queue_role(e, c, op, role, buf, off, len, false);
}

int ctx_add_io_to(struct rt_engine *e, struct engine_ctx *c, enum engine_op op, uint32_t role,
		  bool replica, uint8_t *buf, uint64_t unit_off, uint64_t len)
{
	return ctx_queue(e, c, op, role, buf, e->data_offset + unit_off, len, true, replica);
}

void engine_drain(struct rt_engine *e)
{
	unsigned i;

	for (i = 0; i < e->n_ctx; i++)
		(void)ctx_acquire(e);
	engine_aread_drain(e);
}

void engine_undrain(struct rt_engine *e)
{
	unsigned i;

	atomic_store(&e->aread_gate, false);
	for (i = 0; i < e->n_ctx; i++)
		ctx_release(e, &e->ctx[i]);
}

void ctx_free(struct engine_ctx *c)
{
	if (c->ring_ok) {
		if (c->fixed_ok)
			io_uring_unregister_buffers(&c->ring);
		io_uring_queue_exit(&c->ring);
	}
	free(c->mem);
	free(c->ios);
	free(c->retry);
	free(c->plan.segs);
	free(c->locks);
}

static int ctx_init_ring(struct engine_ctx *c)
{
	/* Buffer 0: the context's memory; 1: empty until a walk lends its own (ctx_set_walk_buf). */
	struct iovec iov[2] = { { .iov_base = c->mem, .iov_len = c->mem_size } };
	int ret;

	/* Completions are only reaped by the submitting thread, inside io_uring_enter. */
	ret = io_uring_queue_init(ENGINE_RING_ENTRIES, &c->ring, IORING_SETUP_COOP_TASKRUN);
	if (ret == -EINVAL)
		ret = io_uring_queue_init(ENGINE_RING_ENTRIES, &c->ring, 0);
	if (ret)
		return ret;
	c->ring_ok = true;
	/* Registered buffers spare the kernel pinning pages on every I/O. */
	c->walk_buf = NULL;
	c->walk_buf_ok = io_uring_register_buffers(&c->ring, iov, 2) == 0;
	c->fixed_ok = c->walk_buf_ok || io_uring_register_buffers(&c->ring, iov, 1) == 0;
	return 0;
}

/*
 * Register a walk's buffer @buf of @len bytes (NULL: none) as the ring's
 * buffer 1 while the walk holds the context, nothing in flight. Where that
 * fails its transfers simply go unregistered.
 */
void ctx_set_walk_buf(struct engine_ctx *c, uint8_t *buf, size_t len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = buf ? len : 0 };

	if (!c->walk_buf_ok || !c->ring_ok || c->broken || c->walk_buf == buf)
		return;
	c->walk_buf = NULL;
	if (io_uring_register_buffers_update_tag(&c->ring, 1, &iov, NULL, 1) == 1 && buf) {
		c->walk_buf = buf;
		c->walk_buf_len = len;
	}
}

int ctx_init(struct rt_engine *e, struct engine_ctx *c, unsigned idx)
{
	uint64_t C = e->layout.chunk;
	int ret;

	c->scratch_cap = e->ops->scratch ? ENGINE_DATA_CAP : 0;
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
	c->plan.cap = (unsigned)(ENGINE_DATA_CAP / (C * e->data_roles) + 8);
	c->plan.scratch = c->scratch;
	c->plan.scratch_cap = c->scratch_cap;
	c->locks_cap = (unsigned)max_u64(ENGINE_DATA_CAP / e->lock_unit + 2,
					 ENGINE_WALK_STRIPES + 1);
	c->ios = calloc(c->ios_cap, sizeof(*c->ios));
	c->retry = calloc(c->ios_cap, sizeof(*c->retry));
	c->plan.segs = calloc(c->plan.cap, sizeof(*c->plan.segs));
	c->locks = calloc(c->locks_cap, sizeof(*c->locks));
	if (!c->ios || !c->retry || !c->plan.segs || !c->locks)
		return -ENOMEM;
	c->rr = idx;
	return ctx_init_ring(c);
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
