// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A running array's thin pool: every volume exported as a block device of
 * its own (a file of the array's FUSE mount, a loop device on it, the
 * symlink /dev/raidtool/ARRAY/VOL), its I/O served through the pool onto the
 * engine; commits on every FLUSH/FSYNC from above and at least once a
 * second. The array's own device stays, read-only (writing it would
 * destroy the pool), as /dev/raidtool/ARRAY.pool.
 *
 * The data path (see "the volumes' data" below): a request maps its
 * blocks under the pool's mutex, which is held for in-memory metadata work
 * (and commits) only, never across a volume's data I/O; the I/O then runs
 * on the FUSE queue's ring (engine_read_map/engine_write_map) or, for what
 * needs a new block, on a worker, with the mutex let go meanwhile.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <raidtool/control.h>
#include <raidtool/engine.h>
#include <raidtool/export.h>
#include <raidtool/format.h>
#include <raidtool/log.h>
#include <raidtool/thin.h>

#define COMMIT_INTERVAL_MS 1000
/* --when-full queue: how long a write waits for space, and how often it tries again. */
#define QUEUE_TIMEOUT_MS 60000
#define QUEUE_RETRY_MS 100
/* Blocks being given a new data block at once (workers wait for a slot). */
#define BUSY_MAX 64u
#define PIN_WAIT_NS 50000L
#define MU_SPIN_TRIES 256u

struct thin_vol_export {
	struct thin_run *tr;
	uint32_t id;
	char name[THIN_NAME_MAX + 1];
	struct rt_fuse_backend be;
	struct rt_export_file *xf;
};

/* A volume block getting a new data block (allocation or copy) on a worker. */
struct busy_block {
	uint32_t id;
	uint64_t vb;
};

struct thin_run {
	struct rt_engine *e;
	struct thin_io io;
	struct thin_pool *p;
	/*
	 * The pool's metadata: held while mapping, inserting, committing,
	 * never while a volume's data moves.
	 */
	pthread_mutex_t mu;
	uint32_t bs;			/* the pool's block size */
	uint64_t data_offset;		/* bytes of the array where data block 0 starts */
	/* Under mu: the blocks being given a new data block; busy_cond when one ends. */
	struct busy_block busy[BUSY_MAX];
	unsigned n_busy;
	pthread_cond_t busy_cond;
	/*
	 * Data I/O in flight to blocks found mapped, counted by epoch (taken
	 * under mu): pins_drain waits for every one taken before it.
	 */
	_Atomic unsigned pins[2];
	_Atomic unsigned epoch;
	/* mu is held across I/O (a commit, a drain): the queues' threads do not wait for it. */
	atomic_bool long_hold;
	pthread_mutex_t stop_mu;
	pthread_cond_t stop_cond;
	bool stop, thread_ok, low_warned;
	pthread_t committer;
	char array[RT_NAME_MAX + 1];
	struct rt_export *x;		/* the array's mount, the volumes' files in it */
	char linkdir[PATH_MAX];		/* /dev/raidtool/ARRAY */
	char array_link[RT_NAME_MAX + 8];	/* ARRAY.pool */
	struct rt_fuse_backend array_be;
	uint32_t blocksize;
	bool queue_when_full;
	/* Each separately allocated: the FUSE threads hold pointers to them. */
	struct thin_vol_export *vols[THIN_MAX_VOLUMES];
	unsigned n_vols;
};

static int eng_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	return engine_read(ctx, buf, len, off);
}

static int eng_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	return engine_write(ctx, buf, len, off);
}

static int eng_flush(void *ctx)
{
	return engine_flush(ctx);
}

int thin_run_probe(struct rt_engine *e)
{
	struct thin_io io = { .ctx = e, .read = eng_read, .write = eng_write, .flush = eng_flush };

	return thin_probe(&io);
}

/* ---- the volumes' files ---- */

/*
 * Rules of the data path, all under tr->mu for the metadata part:
 *  - A block's data I/O runs after its lookup with a pin taken (pins_take)
 *    and drops it when done. Whatever may free or share a mapped block
 *    (discard, delete, snapshot, and a commit, after which a block freed in
 *    the transaction may be reused) first waits for the pins taken before
 *    it (pins_drain): no I/O lands in a block after it changed hands, and
 *    a snapshot sees no write of its origin land after it.
 *  - A write to an unmapped block or one that must be copied gets a new
 *    data block on a worker: reserved (a crash leaks nothing), written
 *    whole (zeros or the old block's bytes around the new ones), then
 *    mapped; the volume block is busy meanwhile, and every other write to
 *    it waits (a second allocation would lose one of the two writes, an
 *    in-place write to the old block would be lost with it).
 *  - The FUSE queue's thread never waits for mu (trylock) nor reads
 *    metadata (cached lookups only): what it cannot map goes to a worker.
 */
static unsigned pins_take(struct thin_run *tr)
{
	unsigned e = atomic_load(&tr->epoch) & 1;

	atomic_fetch_add(&tr->pins[e], 1);
	return e;
}

static void pins_drop(struct thin_run *tr, unsigned e)
{
	atomic_fetch_sub(&tr->pins[e], 1);
}

/* Under mu: every pin taken so far is dropped on return. */
static void pins_drain(struct thin_run *tr)
{
	const struct timespec tick = { .tv_nsec = PIN_WAIT_NS };
	unsigned old = atomic_fetch_add(&tr->epoch, 1) & 1;

	atomic_store(&tr->long_hold, true);
	while (atomic_load(&tr->pins[old]))
		nanosleep(&tick, NULL);
	atomic_store(&tr->long_hold, false);
}

/*
 * mu for a FUSE queue's thread, which must never wait for I/O (its own
 * ring's completions may be what the holder waits for): tried a bounded
 * number of times while the holder does in-memory work only, as the other
 * queue's thread mapping a request does; false sends the request to a worker.
 */
static bool mu_trylock_brief(struct thin_run *tr)
{
	for (unsigned i = 0; i < MU_SPIN_TRIES; i++) {
		if (atomic_load_explicit(&tr->long_hold, memory_order_relaxed))
			return false;
		if (pthread_mutex_trylock(&tr->mu) == 0)
			return true;
	}
	return false;
}

static int busy_find(const struct thin_run *tr, uint32_t id, uint64_t vb)
{
	for (unsigned i = 0; i < tr->n_busy; i++)
		if (tr->busy[i].id == id && tr->busy[i].vb == vb)
			return (int)i;
	return -1;
}

static uint64_t block_off(const struct thin_run *tr, uint64_t pb)
{
	return tr->data_offset + pb * tr->bs;
}

/* A whole block for a copy or a new mapping, aligned for the engine's direct I/O. */
static uint8_t *block_buffer(struct thin_run *tr)
{
	void *b;

	return posix_memalign(&b, 4096, tr->bs) ? NULL : b;
}

/* The volume's size as its file serves it: a live resize changes it (vol_cmd_resize). */
static uint64_t vol_size(const struct thin_vol_export *v)
{
	return __atomic_load_n(&v->be.size, __ATOMIC_ACQUIRE);
}

static bool vol_range_ok(const struct thin_vol_export *v, size_t len, uint64_t off)
{
	uint64_t size = vol_size(v);

	return off % 512 == 0 && len % 512 == 0 && off <= size && len <= size - off;
}

/* One block's part of a read or a write, on a worker: @buf is only read by a write. */
typedef int (*vol_block_fn)(struct thin_vol_export *v, uint8_t *buf, size_t n, uint64_t off);

/* @fn for each pool block's part of [@off, @off + @len), in order, until one fails. */
static int vol_each_block(struct thin_vol_export *v, uint8_t *buf, size_t len, uint64_t off,
			  vol_block_fn fn)
{
	int r = 0;

	if (!vol_range_ok(v, len, off))
		return -EINVAL;
	while (r == 0 && len) {
		size_t n = v->tr->bs - off % v->tr->bs;

		n = n < len ? n : len;
		r = fn(v, buf, n, off);
		buf += n;
		off += n;
		len -= n;
	}
	return r;
}

static int vol_read_block(struct thin_vol_export *v, uint8_t *buf, size_t n, uint64_t off)
{
	struct thin_run *tr = v->tr;
	uint64_t pb;
	unsigned pin = 0;
	int r;

	pthread_mutex_lock(&tr->mu);
	r = thin_map_lookup(tr->p, v->id, off / tr->bs, false, &pb, NULL);
	if (r == 0)
		pin = pins_take(tr);
	pthread_mutex_unlock(&tr->mu);
	if (r == -ENODATA) {
		memset(buf, 0, n);	/* unmapped: the sparse device reads zeros */
		return 0;
	}
	if (r < 0)
		return r;
	r = engine_read(tr->e, buf, n, block_off(tr, pb) + off % tr->bs);
	pins_drop(tr, pin);
	return r;
}

static int vol_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	int r = vol_each_block(ctx, buf, len, off, vol_read_block);

	return r == -ENOENT ? -EIO : r;
}

/*
 * Under mu, @vb busy: a new data block for it holding the old block's
 * bytes (@pb, or zeros when @copy is false) with @n bytes at @off % bs
 * replaced, written with mu let go, then mapped.
 */
static int vol_write_new(struct thin_vol_export *v, const uint8_t *buf, size_t n, uint64_t off,
			 bool copy, uint64_t pb)
{
	struct thin_run *tr = v->tr;
	uint64_t vb = off / tr->bs, nb;
	uint8_t *blk = NULL;
	unsigned pin = 0;
	int r;

	r = thin_data_reserve(tr->p, &nb);
	if (r < 0)
		return r;
	if (copy && n < tr->bs)
		pin = pins_take(tr);
	pthread_mutex_unlock(&tr->mu);
	if (n < tr->bs) {
		blk = block_buffer(tr);
		if (!blk)
			r = -ENOMEM;
		else if (copy)
			r = engine_read(tr->e, blk, tr->bs, block_off(tr, pb));
		else
			memset(blk, 0, tr->bs);
		if (copy)
			pins_drop(tr, pin);
		if (r == 0)
			memcpy(blk + off % tr->bs, buf, n);
	}
	/* The data first: the mapping that points at it commits after a flush. */
	if (r == 0)
		r = engine_write(tr->e, blk ? blk : buf, tr->bs, block_off(tr, nb));
	free(blk);
	pthread_mutex_lock(&tr->mu);
	if (r == 0)
		r = thin_insert_reserved(tr->p, v->id, vb, nb);
	else
		thin_data_unreserve(tr->p, nb);
	return r;
}

static int vol_write_block(struct thin_vol_export *v, uint8_t *buf, size_t n, uint64_t off)
{
	struct thin_run *tr = v->tr;
	uint64_t vb = off / tr->bs, pb = 0;
	bool must_copy = false;
	unsigned pin;
	int r, slot;

	pthread_mutex_lock(&tr->mu);
	while (busy_find(tr, v->id, vb) >= 0 || tr->n_busy == BUSY_MAX)
		pthread_cond_wait(&tr->busy_cond, &tr->mu);
	r = thin_map_lookup(tr->p, v->id, vb, false, &pb, &must_copy);
	if (r == 0 && !must_copy) {
		pin = pins_take(tr);
		pthread_mutex_unlock(&tr->mu);
		r = engine_write(tr->e, buf, n, block_off(tr, pb) + off % tr->bs);
		pins_drop(tr, pin);
		return r;
	}
	if (r == 0 || r == -ENODATA) {
		slot = (int)tr->n_busy++;
		tr->busy[slot] = (struct busy_block){ v->id, vb };
		r = vol_write_new(v, buf, n, off, r == 0, pb);
		/* The list may have changed meanwhile: ours is found again. */
		slot = busy_find(tr, v->id, vb);
		tr->busy[slot] = tr->busy[--tr->n_busy];
		pthread_cond_broadcast(&tr->busy_cond);
	}
	pthread_mutex_unlock(&tr->mu);
	return r;
}

static int vol_write_range(struct thin_vol_export *v, const void *buf, size_t len, uint64_t off)
{
	/* vol_write_block only reads @buf. */
	return vol_each_block(v, (uint8_t *)buf, len, off, vol_write_block);
}

/*
 * A full pool fails the write with ENOSPC, or (--when-full queue) the write
 * waits for a discard or a delete to free blocks, up to QUEUE_TIMEOUT_MS.
 * Writing the same bytes again is harmless.
 */
static int vol_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct thin_vol_export *v = ctx;
	struct timespec pause = { .tv_nsec = QUEUE_RETRY_MS * 1000000L };
	bool again;
	int r;

	for (unsigned waited = 0;; waited += QUEUE_RETRY_MS) {
		r = vol_write_range(v, buf, len, off);
		again = r == -ENOSPC && v->tr->queue_when_full && waited < QUEUE_TIMEOUT_MS &&
			!__atomic_load_n(&v->tr->stop, __ATOMIC_RELAXED);
		if (!again)
			break;
		if (waited == 0)
			rt_log(RT_LOG_WARN, "'%s': thin pool full: writes to '%s' wait for space",
			       v->tr->array, v->name);
		nanosleep(&pause, NULL);
	}
	return r == -ENOENT ? -EIO : r;
}

/*
 * The event-driven path (rt_fuse_backend.map), on the FUSE queue's thread:
 * only when nothing has to wait. Every block of the range mapped, one run
 * of consecutive data blocks, and for a write each one written in place
 * (not shared, not busy); or, for a read, every block unmapped (zeros).
 */
static int vol_map(void *ctx, bool write, uint64_t off, size_t len, uint64_t *engine_off,
		   unsigned *pin)
{
	struct thin_vol_export *v = ctx;
	struct thin_run *tr = v->tr;
	uint64_t first = off / tr->bs, last = (off + len - 1) / tr->bs, pb, start = 0;
	unsigned unmapped = 0;
	bool must_copy;
	int r = 0;

	if (!vol_range_ok(v, len, off))
		return -EAGAIN;
	if (!mu_trylock_brief(tr))
		return -EAGAIN;
	for (uint64_t vb = first; r == 0 && vb <= last; vb++) {
		r = thin_map_lookup(tr->p, v->id, vb, true, &pb, write ? &must_copy : NULL);
		if (r == -ENODATA && !write) {
			unmapped++;
			r = 0;
			continue;
		}
		if (r == 0 && write && (must_copy || busy_find(tr, v->id, vb) >= 0))
			r = -EAGAIN;
		if (r == 0 && vb == first)
			start = pb;
		else if (r == 0 && pb != start + (vb - first))
			r = -EAGAIN;
	}
	if (r == 0 && unmapped && unmapped != last - first + 1)
		r = -EAGAIN;	/* partly mapped */
	if (r == 0 && !unmapped) {
		*pin = pins_take(tr);
		*engine_off = block_off(tr, start) + off % tr->bs;
	}
	pthread_mutex_unlock(&tr->mu);
	if (r < 0)
		return -EAGAIN;
	return unmapped ? 1 : 0;
}

static void vol_unmap(void *ctx, unsigned pin)
{
	struct thin_vol_export *v = ctx;

	pins_drop(v->tr, pin);
}

/*
 * Under the pool's mutex: commit what changed (once the I/O to blocks it
 * may free is over), else make the data writes stable.
 */
static int pool_sync(struct thin_run *tr)
{
	int r;

	atomic_store(&tr->long_hold, true);
	if (!thin_dirty(tr->p)) {
		r = engine_flush(tr->e);
	} else {
		pins_drain(tr);
		atomic_store(&tr->long_hold, true);
		r = thin_commit(tr->p);
	}
	atomic_store(&tr->long_hold, false);
	/* Writes acknowledged before such a flush lost their mappings: never "on disk". */
	return r == 0 && thin_lost(tr->p) ? -EIO : r;
}

static int vol_flush(void *ctx)
{
	struct thin_vol_export *v = ctx;
	int r;

	pthread_mutex_lock(&v->tr->mu);
	r = pool_sync(v->tr);
	pthread_mutex_unlock(&v->tr->mu);
	return r;
}

/* Whole blocks are unmapped; the mapped parts of partial ones are written with zeros. */
static int zero_partial(struct thin_vol_export *v, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[4096];
	struct thin_run *tr = v->tr;
	uint64_t pb;
	int r = 0;

	if (len == 0)
		return 0;
	pthread_mutex_lock(&tr->mu);
	r = thin_map_lookup(tr->p, v->id, off / tr->bs, false, &pb, NULL);
	pthread_mutex_unlock(&tr->mu);
	if (r == -ENODATA)
		return 0;
	while (r == 0 && len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);

		r = vol_write_range(v, zeros, n, off);
		off += n;
		len -= n;
	}
	return r;
}

static int vol_discard(void *ctx, uint64_t off, uint64_t len)
{
	struct thin_vol_export *v = ctx;
	struct thin_run *tr = v->tr;
	uint64_t first, last;
	int r;

	first = (off + tr->bs - 1) / tr->bs * tr->bs;
	last = (off + len) / tr->bs * tr->bs;
	if (first >= last)
		return zero_partial(v, off, len);
	r = zero_partial(v, off, first - off);
	if (r == 0)
		r = zero_partial(v, last, off + len - last);
	if (r < 0)
		return r;
	pthread_mutex_lock(&tr->mu);
	/* Not while a block of the range is given a new one: it would be mapped after. */
	for (unsigned i = 0; i < tr->n_busy; i++) {
		if (tr->busy[i].id == v->id && tr->busy[i].vb >= first / tr->bs &&
		    tr->busy[i].vb < last / tr->bs) {
			pthread_cond_wait(&tr->busy_cond, &tr->mu);
			i = (unsigned)-1;
		}
	}
	r = thin_vol_discard(tr->p, v->id, first, last - first);
	/* The freed blocks may be reused at once: the I/O still on them ends first. */
	pins_drain(tr);
	pthread_mutex_unlock(&tr->mu);
	return r == -ENOENT ? -EIO : r;
}

/* ---- the array's own file: read-only ---- */

static int ro_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	return -EROFS;
}

static int ro_discard(void *ctx, uint64_t off, uint64_t len)
{
	return -EROFS;
}

const struct rt_fuse_backend *thin_run_array_backend(struct thin_run *tr)
{
	return &tr->array_be;
}

const char *thin_run_array_link(struct thin_run *tr)
{
	return tr->array_link;
}

/* ---- commits ---- */

static void *committer_main(void *arg)
{
	struct thin_run *tr = arg;
	struct thin_pool_info info;
	struct timespec ts;

	pthread_mutex_lock(&tr->stop_mu);
	while (!tr->stop) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += COMMIT_INTERVAL_MS / 1000;
		pthread_cond_timedwait(&tr->stop_cond, &tr->stop_mu, &ts);
		if (tr->stop)
			break;
		pthread_mutex_unlock(&tr->stop_mu);
		pthread_mutex_lock(&tr->mu);
		if (thin_dirty(tr->p) && pool_sync(tr) < 0)
			rt_log(RT_LOG_ERROR, "'%s': thin pool commit failed", tr->array);
		thin_pool_get_info(tr->p, &info);
		pthread_mutex_unlock(&tr->mu);
		if (info.below_low_water && !tr->low_warned)
			rt_log(RT_LOG_WARN, "'%s': thin pool below its low-water mark: %llu of %llu "
			       "data blocks free", tr->array, (unsigned long long)info.free_data_blocks,
			       (unsigned long long)info.data_blocks);
		tr->low_warned = info.below_low_water;
		pthread_mutex_lock(&tr->stop_mu);
	}
	pthread_mutex_unlock(&tr->stop_mu);
	return NULL;
}

/* ---- start, stop ---- */

/* A volume's file in the array's mount, its loop device and /dev/raidtool/ARRAY/VOL. */
static int vol_export(struct thin_run *tr, const struct thin_vol_info *vi)
{
	struct thin_vol_export *v = calloc(1, sizeof(*v));
	char file[THIN_NAME_MAX + 8], linkname[RT_NAME_MAX + THIN_NAME_MAX + 8];
	int r;

	if (!v)
		return -ENOMEM;
	v->tr = tr;
	v->id = vi->id;
	snprintf(v->name, sizeof(v->name), "%s", vi->name);
	v->be = (struct rt_fuse_backend){ .ctx = v, .size = vi->size, .read = vol_read,
					  .write = vol_write, .flush = vol_flush,
					  .discard = vol_discard, .engine = tr->e,
					  .map = vol_map, .unmap = vol_unmap };
	snprintf(file, sizeof(file), RT_CONTROL_VOL_PREFIX "%s", vi->name);
	snprintf(linkname, sizeof(linkname), "%s/%s", tr->array, vi->name);
	r = export_add_file(tr->x, file, linkname, &v->be, &v->xf);
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "'%s': cannot export volume '%s': %s", tr->array, vi->name,
		       strerror(-r));
		free(v);
		return r;
	}
	tr->vols[tr->n_vols++] = v;
	return 0;
}

/* Unexport volume export @i (the list closes up). */
static int vol_unexport(struct thin_run *tr, unsigned i)
{
	struct thin_vol_export *v = tr->vols[i];
	int r;

	r = export_remove_file(v->xf, -1);
	/* Still attached (open somewhere): its file stays in the mount, and @v with it. */
	if (r == 0)
		free(v);
	tr->vols[i] = tr->vols[--tr->n_vols];
	return r;
}

/*
 * Links of volumes an engine killed before us left whose loop devices
 * were not ours any more when run_recover_leftovers came (detached by
 * hand: it removes the links of those it detaches); thin_run_export makes
 * those of the volumes there are.
 */
static void remove_old_links(struct thin_run *tr)
{
	struct dirent *de;
	DIR *d = opendir(tr->linkdir);

	if (!d)
		return;
	while ((de = readdir(d)))
		if (de->d_type == DT_LNK)
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
}

int thin_run_export(struct thin_run *tr, struct rt_export *x)
{
	struct thin_vol_info vi;
	int r = 0;

	tr->x = x;
	remove_old_links(tr);
	pthread_mutex_lock(&tr->mu);
	for (uint32_t k = 0; r == 0 && thin_vol_at(tr->p, k, &vi) == 0; k++) {
		pthread_mutex_unlock(&tr->mu);
		r = vol_export(tr, &vi);
		pthread_mutex_lock(&tr->mu);
	}
	pthread_mutex_unlock(&tr->mu);
	return r;
}

int thin_run_start(struct rt_engine *e, const struct thin_run_params *rp, struct thin_run **out)
{
	struct thin_run *tr;
	struct thin_pool_info info;
	int r;

	*out = NULL;
	r = thin_run_probe(e);
	if (r < 0)
		rt_log(RT_LOG_ERROR, "'%s': cannot read its thin pool's superblocks: %s",
		       rp->link_name, strerror(-r));
	if (r <= 0)
		return r;	/* no pool: nothing to do */
	tr = calloc(1, sizeof(*tr));
	if (!tr)
		return -ENOMEM;
	tr->e = e;
	tr->blocksize = rp->blocksize;
	tr->io = (struct thin_io){ .ctx = e, .read = eng_read, .write = eng_write,
				   .flush = eng_flush };
	pthread_mutex_init(&tr->mu, NULL);
	pthread_cond_init(&tr->busy_cond, NULL);
	pthread_mutex_init(&tr->stop_mu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&tr->stop_cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	snprintf(tr->array, sizeof(tr->array), "%s", rp->link_name);
	snprintf(tr->linkdir, sizeof(tr->linkdir), RT_DEV_DIR "/%s", rp->link_name);
	snprintf(tr->array_link, sizeof(tr->array_link), "%s.pool", rp->link_name);
	tr->array_be = (struct rt_fuse_backend){ .ctx = e, .size = engine_size(e),
						 .read = eng_read, .write = ro_write,
						 .flush = eng_flush, .discard = ro_discard };
	r = thin_open(&tr->io, false, &tr->p);
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "'%s': cannot open its thin pool: %s", tr->array,
		       strerror(-r));
		goto fail;
	}
	/* A symlink of the array's name would stand where the volumes' directory goes. */
	{
		struct stat st;

		if (lstat(tr->linkdir, &st) == 0 && S_ISLNK(st.st_mode))
			unlink(tr->linkdir);
	}
	if (mkdir(RT_DEV_DIR, 0755) < 0 && errno != EEXIST) {
		r = -errno;
		goto fail;
	}
	if (mkdir(tr->linkdir, 0755) < 0 && errno != EEXIST) {
		r = -errno;
		rt_log(RT_LOG_ERROR, "'%s': cannot create '%s': %s", tr->array, tr->linkdir,
		       strerror(-r));
		goto fail;
	}
	thin_pool_get_info(tr->p, &info);
	tr->bs = info.block_size;
	tr->data_offset = info.data_offset;
	tr->queue_when_full = info.when_full == THIN_WHEN_FULL_QUEUE;
	if (info.needs_check)
		rt_log(RT_LOG_WARN, "'%s': the thin pool needs a check ('raidtool pool check %s' "
		       "on the stopped array); read-only until then", tr->array, tr->array);
	else if (info.read_only)
		rt_log(RT_LOG_WARN, "'%s': the thin pool is read-only ('raidtool pool set %s "
		       "--read-write')", tr->array, tr->array);
	r = -pthread_create(&tr->committer, NULL, committer_main, tr);
	if (r < 0)
		goto fail;
	tr->thread_ok = true;
	*out = tr;
	return 1;
fail:
	thin_run_stop(tr);
	return r;
}

int thin_run_busy(struct thin_run *tr, char *why, size_t whylen)
{
	for (unsigned i = 0; i < tr->n_vols; i++) {
		int r = export_file_busy(tr->vols[i]->xf, NULL, why, whylen);

		if (r < 0)
			return r;
	}
	return 0;
}

int thin_run_stop(struct thin_run *tr)
{
	int r = 0, q;

	if (!tr)
		return 0;
	__atomic_store_n(&tr->stop, true, __ATOMIC_RELAXED);
	if (tr->thread_ok) {
		pthread_mutex_lock(&tr->stop_mu);
		tr->stop = true;
		pthread_cond_signal(&tr->stop_cond);
		pthread_mutex_unlock(&tr->stop_mu);
		pthread_join(tr->committer, NULL);
	}
	while (tr->n_vols) {
		q = vol_unexport(tr, tr->n_vols - 1);
		if (q < 0 && !r)
			r = q;
	}
	if (tr->p) {
		/* The last commit: what the volumes acknowledged is in it. */
		q = thin_dirty(tr->p) ? thin_commit(tr->p) : 0;
		if (q < 0 && !r)
			r = q;
		thin_close(tr->p);
	}
	if (tr->linkdir[0])
		rmdir(tr->linkdir);
	pthread_mutex_destroy(&tr->mu);
	pthread_cond_destroy(&tr->busy_cond);
	pthread_mutex_destroy(&tr->stop_mu);
	pthread_cond_destroy(&tr->stop_cond);
	free(tr);
	return r;
}

/* ---- commands of a running pool (the control socket's "vol") ---- */

/*
 * A new volume (@origin NULL) or a snapshot of @origin, committed and
 * exported. The commit may free blocks that reads or writes in flight
 * still use, and the origin is quiesced for the moment of the snapshot:
 * its requests map under the pool's mutex, which this holds, and the
 * writes mapped before are waited for.
 */
static int vol_cmd_new(struct thin_run *tr, const char *origin, const char *name,
		       uint64_t bytes)
{
	struct thin_vol_info vi;
	uint32_t id;
	int r;

	pthread_mutex_lock(&tr->mu);
	pins_drain(tr);
	r = origin ? thin_vol_snapshot(tr->p, origin, name, &id)
		   : thin_vol_create(tr->p, name, bytes, &id);
	if (r == 0)
		r = thin_commit(tr->p);
	if (r == 0)
		r = thin_vol_get(tr->p, id, &vi);
	pthread_mutex_unlock(&tr->mu);
	if (r == 0)
		r = vol_export(tr, &vi);
	return r;
}

static int vol_cmd_create(struct thin_run *tr, const char *name, const char *size,
			  char *msg, size_t len)
{
	uint64_t bytes;

	if (!name || !size || sb_size_parse(size, &bytes) < 0) {
		snprintf(msg, len, "usage: vol create NAME SIZE");
		return -EINVAL;
	}
	return vol_cmd_new(tr, NULL, name, bytes);
}

static int vol_cmd_snapshot(struct thin_run *tr, const char *origin, const char *name,
			    char *msg, size_t len)
{
	if (!origin || !name) {
		snprintf(msg, len, "usage: vol snapshot VOL SNAP");
		return -EINVAL;
	}
	return vol_cmd_new(tr, origin, name, 0);
}

/* Volume export @v serves @size bytes, and its file and loop device take that size. */
static int vol_set_size(struct thin_vol_export *v, uint64_t size)
{
	__atomic_store_n(&v->be.size, size, __ATOMIC_RELEASE);
	return export_resize_file(v->xf, size);
}

/*
 * In place: the same file, loop device and /dev/raidtool/ARRAY/VOL, so
 * an open descriptor and a mounted file system stay. A grow is mapped in
 * the pool first, then shown. A shrink is refused while something holds
 * the device (it would cut a file system short under its users); else no
 * I/O beyond the new size starts from the moment the size is shown, and
 * then what lies beyond is unmapped (the pins drained before the commit).
 */
static int vol_cmd_resize(struct thin_run *tr, const char *name, const char *size,
			  const char *force, char *msg, size_t len)
{
	struct thin_vol_export *v = NULL;
	struct thin_vol_info vi = { 0 };
	char why[256];
	uint64_t bytes;
	uint32_t id = 0;
	bool shrink;
	int r;

	if (!name || !size || sb_size_parse(size, &bytes) < 0 || (force && strcmp(force, "force"))) {
		snprintf(msg, len, "usage: vol resize VOL SIZE [force]");
		return -EINVAL;
	}
	for (unsigned i = 0; i < tr->n_vols && !v; i++)
		if (!strcmp(tr->vols[i]->name, name))
			v = tr->vols[i];
	pthread_mutex_lock(&tr->mu);
	r = thin_vol_find(tr->p, name, &id);
	if (r == 0)
		r = thin_vol_get(tr->p, id, &vi);
	pthread_mutex_unlock(&tr->mu);
	shrink = r == 0 && bytes < vi.size && force;
	if (shrink && v && export_file_busy(v->xf, NULL, why, sizeof(why)) < 0) {
		snprintf(msg, len, "'%s': its device is in use (%s); a running volume is shrunk "
			 "while nothing holds it", name, why);
		return -EBUSY;
	}
	/* A size the pool refuses (not whole blocks) is not shown either. */
	if (shrink && v && bytes % tr->bs == 0 && bytes) {
		r = vol_set_size(v, bytes);
		if (r < 0) {
			vol_set_size(v, vi.size);
			return r;
		}
	}
	pthread_mutex_lock(&tr->mu);
	r = thin_vol_resize(tr->p, name, bytes, force != NULL);
	if (r == 0)
		r = pool_sync(tr);	/* after the I/O to the blocks a shrink frees */
	if (r == 0)
		r = thin_vol_get(tr->p, id, &vi);
	pthread_mutex_unlock(&tr->mu);
	if (!v)
		return r;
	/* A failed shrink shows the size the pool has again; a grow shows the new one. */
	if (r < 0 && shrink)
		vol_set_size(v, vi.size);
	else if (r == 0 && !shrink)
		r = vol_set_size(v, vi.size);
	return r;
}

/* Safe while the volume is open: its I/O fails from now on; the device goes when free. */
static int vol_cmd_delete(struct thin_run *tr, const char *name, char *msg, size_t len)
{
	char why[256];
	int r;

	if (!name) {
		snprintf(msg, len, "usage: vol delete VOL");
		return -EINVAL;
	}
	pthread_mutex_lock(&tr->mu);
	r = thin_vol_delete(tr->p, name);
	if (r == 0)
		r = pool_sync(tr);	/* after the I/O to its blocks */
	pthread_mutex_unlock(&tr->mu);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < tr->n_vols; i++) {
		if (strcmp(tr->vols[i]->name, name))
			continue;
		if (export_file_busy(tr->vols[i]->xf, NULL, why, sizeof(why)) == 0)
			return vol_unexport(tr, i);
		snprintf(msg, len, "deleted; its device stays until it is closed and the array "
			 "stops (%s)", why);
		return 0;
	}
	return 0;
}

int thin_run_command(struct thin_run *tr, const char *arg, char *msg, size_t len)
{
	char buf[512], *words[5] = { NULL }, *save = NULL;
	unsigned n = 0;
	int r;

	msg[0] = '\0';
	if (!tr) {
		snprintf(msg, len, "the array holds no thin pool");
		return -ENODATA;
	}
	snprintf(buf, sizeof(buf), "%s", arg ? arg : "");
	for (char *w = strtok_r(buf, " ", &save); w && n < 5; w = strtok_r(NULL, " ", &save))
		words[n++] = w;
	rt_log_clear_error();
	if (n && !strcmp(words[0], "create"))
		r = vol_cmd_create(tr, words[1], words[2], msg, len);
	else if (n && !strcmp(words[0], "snapshot"))
		r = vol_cmd_snapshot(tr, words[1], words[2], msg, len);
	else if (n && !strcmp(words[0], "delete"))
		r = vol_cmd_delete(tr, words[1], msg, len);
	else if (n && !strcmp(words[0], "resize"))
		r = vol_cmd_resize(tr, words[1], words[2], words[3], msg, len);
	else {
		snprintf(msg, len, "usage: vol create|snapshot|delete|resize ...");
		return -EINVAL;
	}
	/* The pool's own refusal ("'x': no such volume") is the client's message. */
	if (r < 0 && !msg[0])
		snprintf(msg, len, "%s", rt_log_last_error()[0] ? rt_log_last_error()
								 : strerror(-r));
	return r;
}

/* ---- the control socket's "pool" request ---- */

static int pool_cmd_set_transaction_id(struct thin_run *tr, const char *old, const char *id,
				       char *msg, size_t len)
{
	unsigned long long o, v;
	char *end;
	int r;

	if (!old || !id) {
		snprintf(msg, len, "usage: pool set-transaction-id OLD NEW");
		return -EINVAL;
	}
	errno = 0;
	o = strtoull(old, &end, 10);
	if (errno || *end || *old == '-') {
		snprintf(msg, len, "'%s': not a transaction id", old);
		return -EINVAL;
	}
	v = strtoull(id, &end, 10);
	if (errno || *end || *id == '-') {
		snprintf(msg, len, "'%s': not a transaction id", id);
		return -EINVAL;
	}
	r = thin_set_transaction_id(tr->p, o, v);
	return r < 0 ? r : thin_commit(tr->p);
}

int thin_run_pool_command(struct thin_run *tr, bool readonly_run, const char *arg, char *msg,
			  size_t len)
{
	char buf[256], *words[4] = { NULL }, *save = NULL;
	struct thin_pool_info info;
	bool view;
	unsigned n = 0;
	int r;

	msg[0] = '\0';
	snprintf(buf, sizeof(buf), "%s", arg ? arg : "");
	for (char *w = strtok_r(buf, " ", &save); w && n < 4; w = strtok_r(NULL, " ", &save))
		words[n++] = w;
	view = n == 1 && (!strcmp(words[0], "reserve-metadata-snap") ||
			  !strcmp(words[0], "release-metadata-snap"));
	if (!tr && readonly_run && view) {
		/* A read-only start runs no pool: its last commit stays as it is. */
		snprintf(msg, len, THIN_RUN_NOTHING_COMMITS);
		return 0;
	}
	if (!tr) {
		snprintf(msg, len, readonly_run ? "the array runs read-only (activate --readonly): "
			 "its pool is not started" : "the array holds no thin pool");
		return readonly_run ? -EROFS : -ENODATA;
	}
	rt_log_clear_error();
	pthread_mutex_lock(&tr->mu);
	/*
	 * Each commits, or goes back to the last commit (abort): the I/O in
	 * flight to blocks that may be freed ends first, and the queues' threads
	 * do not wait for mu meanwhile.
	 */
	pins_drain(tr);
	atomic_store(&tr->long_hold, true);
	thin_pool_get_info(tr->p, &info);
	if (view && info.read_only && !info.metadata_snap) {
		/* Nothing commits: the last commit is a consistent copy already. */
		snprintf(msg, len, THIN_RUN_NOTHING_COMMITS);
		r = 0;
	} else if (n == 1 && !strcmp(words[0], "reserve-metadata-snap")) {
		r = thin_reserve_metadata_snap(tr->p);
	} else if (n == 1 && !strcmp(words[0], "release-metadata-snap")) {
		r = thin_release_metadata_snap(tr->p);
	} else if (n == 1 && !strcmp(words[0], "abort")) {
		/* dm's abort: the uncommitted mappings go (their writes read as before). */
		r = thin_abort(tr->p);
		if (r == 0) {
			thin_pool_get_info(tr->p, &info);
			snprintf(msg, len, "back at commit %llu", (unsigned long long)info.commit_seq);
		}
	} else if (n >= 1 && !strcmp(words[0], "set-transaction-id") && n <= 3) {
		r = pool_cmd_set_transaction_id(tr, words[1], words[2], msg, len);
	} else if (n == 1 && (!strcmp(words[0], "read-only") || !strcmp(words[0], "read-write"))) {
		r = thin_set_mode(tr->p, !strcmp(words[0], "read-only"));
	} else {
		snprintf(msg, len, "usage: pool reserve-metadata-snap|release-metadata-snap|abort|"
			 "set-transaction-id OLD NEW|read-only|read-write");
		r = -EINVAL;
	}
	atomic_store(&tr->long_hold, false);
	pthread_mutex_unlock(&tr->mu);
	if (r < 0 && !msg[0])
		snprintf(msg, len, "%s", rt_log_last_error()[0] ? rt_log_last_error()
								 : strerror(-r));
	return r;
}
