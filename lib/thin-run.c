// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A running array's thin pool: every volume exported as a block device of
 * its own (a FUSE mount with one file, a loop device on it, the symlink
 * /dev/raidtool/ARRAY/VOL), its I/O served through the pool onto the
 * engine; commits on every FLUSH/FSYNC from above and at least once a
 * second. The array's own device stays, read-only (writing it would
 * destroy the pool), as /dev/raidtool/ARRAY.pool.
 *
 * First step: one mutex serialises the pool, and the volumes' I/O is
 * synchronous (engine_read/engine_write), not event-driven.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <raidtool/engine.h>
#include <raidtool/export.h>
#include <raidtool/format.h>
#include <raidtool/log.h>
#include <raidtool/thin.h>

#define COMMIT_INTERVAL_MS 1000
/* --when-full queue: how long a write waits for space, and how often it tries again. */
#define QUEUE_TIMEOUT_MS 60000
#define QUEUE_RETRY_MS 100

struct thin_vol_export {
	struct thin_run *tr;
	uint32_t id;
	char name[THIN_NAME_MAX + 1];
	struct rt_fuse_backend be;
	struct rt_export *x;
};

struct thin_run {
	struct rt_engine *e;
	struct thin_io io;
	struct thin_pool *p;
	pthread_mutex_t mu;		/* the pool */
	pthread_mutex_t stop_mu;
	pthread_cond_t stop_cond;
	bool stop, thread_ok, low_warned;
	pthread_t committer;
	char array[RT_NAME_MAX + 1];
	char voldir[PATH_MAX];		/* the volumes' mount points */
	char linkdir[PATH_MAX];		/* /dev/raidtool/ARRAY */
	char array_link[RT_NAME_MAX + 8];	/* ARRAY.pool */
	struct rt_fuse_backend array_be;
	uint32_t blocksize;
	int transport;
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

static int vol_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct thin_vol_export *v = ctx;
	int r;

	pthread_mutex_lock(&v->tr->mu);
	r = thin_vol_read(v->tr->p, v->id, buf, len, off);
	pthread_mutex_unlock(&v->tr->mu);
	return r == -ENOENT ? -EIO : r;
}

/*
 * A full pool fails the write with ENOSPC, or (--when-full queue) the write
 * waits, the pool unlocked, for a discard or a delete to free blocks, up to
 * QUEUE_TIMEOUT_MS. Writing the same bytes again is harmless.
 */
static int vol_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct thin_vol_export *v = ctx;
	struct timespec pause = { .tv_nsec = QUEUE_RETRY_MS * 1000000L };
	bool again;
	int r;

	for (unsigned waited = 0;; waited += QUEUE_RETRY_MS) {
		pthread_mutex_lock(&v->tr->mu);
		r = thin_vol_write(v->tr->p, v->id, buf, len, off);
		pthread_mutex_unlock(&v->tr->mu);
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

/* Under the pool's mutex: commit what changed, else make the data writes stable. */
static int pool_sync(struct thin_run *tr)
{
	return thin_dirty(tr->p) ? thin_commit(tr->p) : engine_flush(tr->e);
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
static int zero_partial(struct thin_vol_export *v, uint64_t off, uint64_t len, uint32_t bs)
{
	static const uint8_t zeros[4096];
	uint64_t pb;
	int r = 0;

	if (len == 0 || thin_lookup(v->tr->p, v->id, off / bs, &pb) == -ENODATA)
		return 0;
	while (r == 0 && len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);

		r = thin_vol_write(v->tr->p, v->id, zeros, n, off);
		off += n;
		len -= n;
	}
	return r;
}

static int vol_discard(void *ctx, uint64_t off, uint64_t len)
{
	struct thin_vol_export *v = ctx;
	struct thin_pool_info info;
	uint64_t first, last;
	int r;

	pthread_mutex_lock(&v->tr->mu);
	thin_pool_get_info(v->tr->p, &info);
	first = (off + info.block_size - 1) / info.block_size * info.block_size;
	last = (off + len) / info.block_size * info.block_size;
	if (first >= last) {
		r = zero_partial(v, off, len, info.block_size);
	} else {
		r = zero_partial(v, off, first - off, info.block_size);
		if (r == 0)
			r = zero_partial(v, last, off + len - last, info.block_size);
		if (r == 0)
			r = thin_vol_discard(v->tr->p, v->id, first, last - first);
	}
	pthread_mutex_unlock(&v->tr->mu);
	return r;
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
		if (thin_dirty(tr->p) && thin_commit(tr->p) < 0)
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

static int vol_export(struct thin_run *tr, const struct thin_vol_info *vi)
{
	struct thin_vol_export *v = calloc(1, sizeof(*v));
	struct rt_export_params xp;
	char mnt[PATH_MAX + 80], link[PATH_MAX + 80], linkname[2 * THIN_NAME_MAX + 8], did[256];
	int r;

	if (!v)
		return -ENOMEM;
	v->tr = tr;
	v->id = vi->id;
	snprintf(v->name, sizeof(v->name), "%s", vi->name);
	v->be = (struct rt_fuse_backend){ .ctx = v, .size = vi->size, .read = vol_read,
					  .write = vol_write, .flush = vol_flush,
					  .discard = vol_discard };
	snprintf(mnt, sizeof(mnt), "%s/%s", tr->voldir, vi->name);
	snprintf(linkname, sizeof(linkname), "%s/%s", tr->array, vi->name);
	snprintf(link, sizeof(link), "%s/%s", tr->linkdir, vi->name);
	/* What an engine killed before us left of this volume. */
	(void)export_recover(vi->name, link, mnt, NULL, did, sizeof(did));
	if (mkdir(mnt, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		free(v);
		return r;
	}
	xp = (struct rt_export_params){
		.name = vi->name,
		.link_name = linkname,
		.mountpoint = mnt,
		.blocksize = tr->blocksize,
		.transport = tr->transport,
		.backend = &v->be,
	};
	r = export_start(NULL, &xp, &v->x);
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "'%s': cannot export volume '%s': %s", tr->array, vi->name,
		       strerror(-r));
		rmdir(mnt);
		free(v);
		return r;
	}
	tr->vols[tr->n_vols++] = v;
	return 0;
}

/* Unexport volume export @i (the list closes up); its mount point goes. */
static int vol_unexport(struct thin_run *tr, unsigned i)
{
	struct thin_vol_export *v = tr->vols[i];
	char mnt[PATH_MAX + 80];
	int r;

	r = export_stop(v->x, -1);
	snprintf(mnt, sizeof(mnt), "%s/%s", tr->voldir, v->name);
	rmdir(mnt);
	free(v);
	tr->vols[i] = tr->vols[--tr->n_vols];
	return r;
}

int thin_run_start(struct rt_engine *e, const struct thin_run_params *rp, struct thin_run **out)
{
	struct thin_run *tr;
	struct thin_pool_info info;
	struct thin_vol_info vi;
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
	tr->transport = rp->transport;
	tr->io = (struct thin_io){ .ctx = e, .read = eng_read, .write = eng_write,
				   .flush = eng_flush };
	pthread_mutex_init(&tr->mu, NULL);
	pthread_mutex_init(&tr->stop_mu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&tr->stop_cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	snprintf(tr->array, sizeof(tr->array), "%s", rp->link_name);
	snprintf(tr->voldir, sizeof(tr->voldir), "%s", rp->voldir);
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
	if (mkdir(tr->voldir, 0700) < 0 && errno != EEXIST) {
		r = -errno;
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
	tr->queue_when_full = info.when_full == THIN_WHEN_FULL_QUEUE;
	if (info.needs_check)
		rt_log(RT_LOG_WARN, "'%s': the thin pool needs a check ('raidtool pool check %s' "
		       "on the stopped array); read-only until then", tr->array, tr->array);
	else if (info.read_only)
		rt_log(RT_LOG_WARN, "'%s': the thin pool is read-only ('raidtool pool set %s "
		       "--read-write')", tr->array, tr->array);
	for (uint32_t k = 0; k < info.n_volumes && thin_vol_at(tr->p, k, &vi) == 0; k++) {
		r = vol_export(tr, &vi);
		if (r < 0)
			goto fail;
	}
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
		int r = export_busy(tr->vols[i]->x, NULL, why, whylen);

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
	if (tr->voldir[0])
		rmdir(tr->voldir);
	pthread_mutex_destroy(&tr->mu);
	pthread_mutex_destroy(&tr->stop_mu);
	pthread_cond_destroy(&tr->stop_cond);
	free(tr);
	return r;
}

/* ---- commands of a running pool (the control socket's "vol") ---- */

static int vol_cmd_create(struct thin_run *tr, const char *name, const char *size,
			  char *msg, size_t len)
{
	struct thin_vol_info vi;
	uint64_t bytes;
	uint32_t id;
	int r;

	if (!name || !size || sb_size_parse(size, &bytes) < 0) {
		snprintf(msg, len, "usage: vol create NAME SIZE");
		return -EINVAL;
	}
	pthread_mutex_lock(&tr->mu);
	r = thin_vol_create(tr->p, name, bytes, &id);
	if (r == 0)
		r = thin_commit(tr->p);
	if (r == 0)
		r = thin_vol_get(tr->p, id, &vi);
	pthread_mutex_unlock(&tr->mu);
	if (r == 0)
		r = vol_export(tr, &vi);
	return r;
}

/*
 * The origin is quiesced for the moment of the snapshot: its requests take
 * the pool's mutex, which the snapshot holds.
 */
static int vol_cmd_snapshot(struct thin_run *tr, const char *origin, const char *name,
			    char *msg, size_t len)
{
	struct thin_vol_info vi;
	uint32_t id;
	int r;

	if (!origin || !name) {
		snprintf(msg, len, "usage: vol snapshot VOL SNAP");
		return -EINVAL;
	}
	pthread_mutex_lock(&tr->mu);
	r = thin_vol_snapshot(tr->p, origin, name, &id);
	if (r == 0)
		r = thin_commit(tr->p);
	if (r == 0)
		r = thin_vol_get(tr->p, id, &vi);
	pthread_mutex_unlock(&tr->mu);
	if (r == 0)
		r = vol_export(tr, &vi);
	return r;
}

/*
 * The device's size cannot change under its users: resized only while
 * nothing holds it, then exported again at the new size.
 */
static int vol_cmd_resize(struct thin_run *tr, const char *name, const char *size,
			  const char *force, char *msg, size_t len)
{
	struct thin_vol_info vi;
	char why[256];
	uint64_t bytes;
	uint32_t id;
	unsigned i;
	int r;

	if (!name || !size || sb_size_parse(size, &bytes) < 0 || (force && strcmp(force, "force"))) {
		snprintf(msg, len, "usage: vol resize VOL SIZE [force]");
		return -EINVAL;
	}
	for (i = 0; i < tr->n_vols && strcmp(tr->vols[i]->name, name); i++)
		;
	if (i < tr->n_vols && export_busy(tr->vols[i]->x, NULL, why, sizeof(why)) < 0) {
		snprintf(msg, len, "'%s': its device is in use (%s); a running volume is resized "
			 "while nothing holds it", name, why);
		return -EBUSY;
	}
	pthread_mutex_lock(&tr->mu);
	r = thin_vol_resize(tr->p, name, bytes, force != NULL);
	if (r == 0)
		r = thin_commit(tr->p);
	if (r == 0)
		r = thin_vol_find(tr->p, name, &id);
	if (r == 0)
		r = thin_vol_get(tr->p, id, &vi);
	pthread_mutex_unlock(&tr->mu);
	if (r < 0 || i == tr->n_vols)
		return r;
	r = vol_unexport(tr, i);
	if (r == 0)
		r = vol_export(tr, &vi);
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
		r = thin_commit(tr->p);
	pthread_mutex_unlock(&tr->mu);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < tr->n_vols; i++) {
		if (strcmp(tr->vols[i]->name, name))
			continue;
		if (export_busy(tr->vols[i]->x, NULL, why, sizeof(why)) == 0)
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
	pthread_mutex_unlock(&tr->mu);
	if (r < 0 && !msg[0])
		snprintf(msg, len, "%s", rt_log_last_error()[0] ? rt_log_last_error()
								 : strerror(-r));
	return r;
}
