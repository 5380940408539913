/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine on real loop devices: concurrent random writes (aligned and
 * not, tiny to several MiB, same-stripe races with a defined result)
 * mirrored into an in-memory model, read back through the engine, then the
 * units read directly to check where every chunk and every parity chunk
 * landed. Needs root and loop devices.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <raidtool/dirtylog.h>
#include <raidtool/engine.h>
#include <raidtool/format.h>
#include <raidtool/layout.h>
#include <raidtool/loopdev.h>
#include <raidtool/parity.h>
#include <raidtool/unit.h>

#include "../../lib/engine/internal.h"

#define MIB (1ull << 20)
#define KIB 1024ull
#define MAX_TEST_UNITS 5
#define MAX_WRITE (3 * MIB + 4096)
#define ENGINE_TEST_CONTEXTS 16	/* lib/engine/internal.h: ENGINE_CONTEXTS */	/* more than one engine piece */

struct engine_case {
	const char *name;
	int32_t level;
	uint32_t n;
	uint32_t chunk;
	uint64_t unit_mib[MAX_TEST_UNITS];
	uint32_t missing;		/* roles started without a unit (bit mask) */
	uint32_t faultyfs;		/* role + 1 whose unit is an rt-faultyfs disk; 0: none */
};

/*
 * Set by unsynced_setup for the next fixture_setup: units full of random
 * bytes and a log with every region dirty, as create leaves an array on
 * used disks before its initial sync.
 */
static bool setup_unsynced;

struct fixture {
	const struct engine_case *tc;
	char dir[64];
	char path[MAX_TEST_UNITS][96];
	/* rt-faultyfs: its process, mount point and the loop device on its disk. */
	pid_t ffs_pid;
	char ffs_mnt[96], ffs_dev[64];
	struct rt_unit *unit[MAX_TEST_UNITS];
	struct rt_sb sb;
	struct rt_engine *e;
	uint64_t size;
	uint64_t faulty;		/* roles expected faulty: not checked on disk */
	uint8_t *model;
	/* Expected totals for the stats check. */
	uint64_t writes, write_bytes;
	pthread_mutex_t count_mu;
};

/* ---- helpers --------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: fast and good enough for test data and offsets. */
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
	return n ? rng_next(s) % n : 0;
}

static void rng_fill(uint64_t *s, uint8_t *buf, size_t len)
{
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		uint64_t v = rng_next(s);

		memcpy(buf + i, &v, 8);
	}
	for (; i < len; i++)
		buf[i] = (uint8_t)rng_next(s);
}

static bool have_root(void)
{
	return geteuid() == 0 && access("/dev/loop-control", F_OK) == 0;
}

static bool require_root(void)
{
	const char *req = getenv("RAIDTOOL_TEST_REQUIRE_ROOT");

	return req && strcmp(req, "1") == 0;
}

/* Skip the test without root and loop devices, or fail it when they are required. */
static void skip_without_root(void)
{
	if (have_root())
		return;
	if (require_root())
		fail_msg("cannot run: needs root and loop devices (RAIDTOOL_TEST_REQUIRE_ROOT=1)");
	skip();
}

/* ---- fixture --------------------------------------------------------- */

#define FAULTYFS_BIN "build/tests/rt-faultyfs"

/*
 * Serve @backing through rt-faultyfs in DIR/ffs and open a direct-I/O loop
 * device on its disk: a unit that fails for real on "fail rw".
 */
static int faultyfs_start(struct fixture *f, const char *backing, struct rt_unit **out)
{
	char disk[128];
	int i, ret;

	if (access(FAULTYFS_BIN, X_OK)) {
		fprintf(stderr, "# %s missing: make %s\n", FAULTYFS_BIN, FAULTYFS_BIN);
		return -ENOENT;
	}
	snprintf(f->ffs_mnt, sizeof(f->ffs_mnt), "%s/ffs", f->dir);
	if (mkdir(f->ffs_mnt, 0700))
		return -errno;
	f->ffs_pid = fork();
	if (f->ffs_pid < 0)
		return -errno;
	if (f->ffs_pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0)
			dup2(null, STDERR_FILENO);	/* libfuse's chatter */
		execl(FAULTYFS_BIN, FAULTYFS_BIN, backing, f->ffs_mnt, (char *)NULL);
		_exit(127);
	}
	snprintf(disk, sizeof(disk), "%s/disk", f->ffs_mnt);
	for (i = 0; i < 500 && access(disk, F_OK); i++)
		usleep(10000);
	ret = loopdev_attach(disk, RT_LOOP_DIRECT_IO, 0, f->ffs_dev, sizeof(f->ffs_dev));
	if (ret) {
		f->ffs_dev[0] = '\0';
		return ret;
	}
	return unit_open(f->ffs_dev, RT_UNIT_WRITE | RT_UNIT_EXCL | RT_UNIT_DIRECT, out);
}

static void faultyfs_stop(struct fixture *f)
{
	if (f->ffs_dev[0])
		(void)loopdev_detach(f->ffs_dev);
	if (f->ffs_pid > 0) {
		if (umount2(f->ffs_mnt, 0))
			(void)umount2(f->ffs_mnt, MNT_DETACH);
		kill(f->ffs_pid, SIGTERM);
		waitpid(f->ffs_pid, NULL, 0);
	}
	if (f->ffs_mnt[0])
		rmdir(f->ffs_mnt);
}

static int faultyfs_ctl(struct fixture *f, const char *cmd)
{
	char ctl[128];
	int fd, ret = 0;

	snprintf(ctl, sizeof(ctl), "%s/ctl", f->ffs_mnt);
	fd = open(ctl, O_WRONLY);
	if (fd < 0)
		return -errno;
	if (write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd))
		ret = -EIO;
	close(fd);
	return ret;
}

/*
 * Used disks before the initial sync: every unit's data area random, and
 * the log of every unit with each region (1 MiB here) dirty.
 */
static int unsynced_units(struct fixture *f, uint64_t role_bytes)
{
	uint64_t seed = 0xfeedull, R, n, off;
	struct rt_dirtylog *dl;
	uint8_t *buf = NULL;
	uint32_t r;
	int ret = 0;

	if (posix_memalign((void **)&buf, 4096, MIB))
		return -1;
	f->sb.array.region_size = MIB;
	dirtylog_geometry(role_bytes, MIB, f->sb.unit.log_size, &R, &n);
	if (dirtylog_create(n, R, &dl)) {
		free(buf);
		return -1;
	}
	dirtylog_mark(dl, 0, n - 1);
	for (r = 0; r < f->tc->n && !ret; r++) {
		for (off = 0; off < role_bytes && !ret; off += MIB) {
			rng_fill(&seed, buf, MIB);
			if (pwrite(unit_fd(f->unit[r]), buf, MIB,
				   (off_t)(f->sb.unit.data_offset + off)) != (ssize_t)MIB)
				ret = -1;
		}
		if (!ret && unit_write_dirtylog(f->unit[r], &f->sb, dl))
			ret = -1;
	}
	dirtylog_destroy(dl);
	free(buf);
	return ret;
}

static int fixture_build(void **state)
{
	const struct engine_case *tc = *state;
	uint64_t role_size[RT_MAX_UNITS] = { 0 };
	struct layout l;
	struct fixture *f;
	uint32_t r;
	int ret;

	*state = NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	f->tc = tc;
	pthread_mutex_init(&f->count_mu, NULL);
	*state = f;
	if (!have_root())
		return 0;	/* the test skips or fails with the reason */

	strcpy(f->dir, "/tmp/raidtool-engine.XXXXXX");
	if (!mkdtemp(f->dir)) {
		f->dir[0] = '\0';
		return -1;
	}
	for (r = 0; r < tc->n; r++) {
		struct rt_geometry g;
		int fd;

		snprintf(f->path[r], sizeof(f->path[r]), "%s/u%u.img", f->dir, r);
		fd = open(f->path[r], O_RDWR | O_CREAT | O_EXCL, 0600);
		if (fd < 0)
			return -1;
		ret = ftruncate(fd, (off_t)(tc->unit_mib[r] * MIB));
		close(fd);
		if (ret)
			return -1;
		if (tc->faultyfs == r + 1)
			ret = faultyfs_start(f, f->path[r], &f->unit[r]);
		else
			ret = unit_open(f->path[r], RT_UNIT_ATTACH | RT_UNIT_WRITE | RT_UNIT_EXCL |
					RT_UNIT_DIRECT, &f->unit[r]);
		if (ret) {
			fprintf(stderr, "# unit_open %s: %s\n", f->path[r], strerror(-ret));
			return -1;
		}
		ret = sb_geometry(unit_size(f->unit[r]), tc->chunk, &g);
		if (ret)
			return -1;
		/* The engine takes one data offset for all units, as create makes them. */
		if (r > 0 && g.data_offset != f->sb.unit.data_offset)
			return -1;
		f->sb.unit.data_offset = g.data_offset;
		f->sb.unit.data_size = g.data_size;
		f->sb.unit.log_offset = setup_unsynced ? g.log_offset : 0;
		f->sb.unit.log_size = setup_unsynced ? g.log_size : 0;
		f->sb.slots[r].data_size = g.data_size;
		f->sb.slots[r].state = RT_SLOT_ACTIVE;
		role_size[r] = g.data_size;
	}
	f->sb.version = RT_SB_VERSION;
	f->sb.array.level = tc->level;
	f->sb.array.layout = RT_LAYOUT_LEFT_SYMMETRIC;
	f->sb.array.chunk_size = tc->chunk;
	f->sb.array.blocksize = 4096;
	f->sb.array.n_devices = tc->n;
	f->sb.array.n_slots = tc->n;
	if (layout_init(&l, tc->level, tc->n, tc->chunk, role_size))
		return -1;
	f->sb.array.nblocks = l.size / 4096;
	if (setup_unsynced && unsynced_units(f, l.unit_size) < 0)
		return -1;

	{
		/* A degraded start: the unit exists (the test reads it) but is not given. */
		struct rt_unit *given[MAX_TEST_UNITS];

		for (r = 0; r < tc->n; r++) {
			given[r] = tc->missing & (1u << r) ? NULL : f->unit[r];
			if (!given[r])
				f->sb.slots[r].state = RT_SLOT_MISSING;
		}
		f->faulty = tc->missing;
		ret = engine_create(&f->sb, given, tc->n, &f->e);
	}
	if (ret) {
		fprintf(stderr, "# engine_create: %s\n", strerror(-ret));
		return -1;
	}
	f->size = engine_size(f->e);
	f->model = calloc(1, f->size);	/* sparse units read as zeros */
	return f->model ? 0 : -1;
}

static int fixture_teardown(void **state);

/*
 * cmocka runs no teardown after a failed setup: undo what was built (loop
 * devices, the faultyfs mount, files) here, or it outlives the test.
 */
static int fixture_setup(void **state)
{
	if (fixture_build(state) == 0)
		return 0;
	fixture_teardown(state);
	*state = NULL;
	return -1;
}

static int unsynced_setup(void **state)
{
	int ret;

	setup_unsynced = true;
	ret = fixture_setup(state);
	setup_unsynced = false;
	return ret;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;
	uint32_t r;

	if (!f)
		return 0;
	engine_destroy(f->e);
	for (r = 0; r < MAX_TEST_UNITS; r++) {
		if (f->unit[r])
			unit_close(f->unit[r]);	/* detaches the loop device */
	}
	faultyfs_stop(f);
	for (r = 0; r < MAX_TEST_UNITS; r++)
		if (f->path[r][0])
			unlink(f->path[r]);
	if (f->dir[0])
		rmdir(f->dir);
	free(f->model);
	pthread_mutex_destroy(&f->count_mu);
	free(f);
	return 0;
}

/* ---- writers --------------------------------------------------------- */

/*
 * A round: the window [base, base + span) is cut into cells of @cell bytes;
 * cell i belongs to thread i % threads. Every thread walks its cells in
 * order writing a random part of each, so all threads are in the same
 * stripes at the same time while never writing the same byte: the final
 * content is defined. Cells that are not block multiples put the races
 * inside blocks too.
 */
struct round {
	uint64_t base, span, cell;
	unsigned threads;
	bool flusher;			/* one extra thread calling engine_flush */
};

struct writer {
	struct fixture *f;
	const struct round *rd;
	unsigned idx;
	uint64_t seed;
	int err;
	char what[160];
	uint64_t writes, bytes;
};

static volatile int writers_done;

static int writer_one(struct writer *w, uint8_t *buf, uint8_t *check, uint64_t off, uint64_t len)
{
	struct fixture *f = w->f;
	/* Mostly an aligned caller buffer (zero-copy path), sometimes not. */
	size_t skew = rng_below(&w->seed, 4) == 0 ? 1 + rng_below(&w->seed, 63) : 0;
	int ret;

	rng_fill(&w->seed, buf + skew, len);
	ret = engine_write(f->e, buf + skew, len, off);
	if (ret) {
		snprintf(w->what, sizeof(w->what), "engine_write(%llu, %llu): %s",
			 (unsigned long long)off, (unsigned long long)len, strerror(-ret));
		return ret;
	}
	memcpy(f->model + off, buf + skew, len);
	w->writes++;
	w->bytes += len;
	if (rng_below(&w->seed, 4) == 0) {
		/* Read back while the neighbours keep writing the same stripes. */
		ret = engine_read(f->e, check + skew, len, off);
		if (ret) {
			snprintf(w->what, sizeof(w->what), "engine_read(%llu, %llu): %s",
				 (unsigned long long)off, (unsigned long long)len, strerror(-ret));
			return ret;
		}
		if (memcmp(check + skew, buf + skew, len)) {
			snprintf(w->what, sizeof(w->what), "read back of [%llu, +%llu) differs",
				 (unsigned long long)off, (unsigned long long)len);
			return -EILSEQ;
		}
	}
	return 0;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	const struct round *rd = w->rd;
	uint64_t ncells = rd->span / rd->cell, i;
	uint8_t *buf = NULL, *check = NULL;

	if (posix_memalign((void **)&buf, 4096, MAX_WRITE + 64) ||
	    posix_memalign((void **)&check, 4096, MAX_WRITE + 64)) {
		w->err = -ENOMEM;
		goto out;
	}
	for (i = w->idx; i < ncells && !w->err; i += rd->threads) {
		uint64_t c0 = rd->base + i * rd->cell, lo, hi;

		switch (rng_below(&w->seed, 4)) {
		case 0:		/* the whole cell */
			lo = 0;
			hi = rd->cell;
			break;
		case 1:		/* a block-aligned part */
			lo = rng_below(&w->seed, rd->cell / 512) * 512;
			hi = lo + 512 + rng_below(&w->seed, (rd->cell - lo) / 512) * 512;
			if (hi > rd->cell)
				hi = rd->cell;
			break;
		case 2:		/* a few bytes */
			lo = rng_below(&w->seed, rd->cell);
			hi = lo + 1 + rng_below(&w->seed, 16);
			break;
		default:	/* anything */
			lo = rng_below(&w->seed, rd->cell);
			hi = lo + 1 + rng_below(&w->seed, rd->cell - lo);
			break;
		}
		if (hi > rd->cell)
			hi = rd->cell;
		if (hi - lo > MAX_WRITE)
			hi = lo + MAX_WRITE;
		w->err = writer_one(w, buf, check, c0 + lo, hi - lo);
	}
out:
	free(buf);
	free(check);
	return NULL;
}

static void *flusher_main(void *arg)
{
	struct writer *w = arg;

	while (!__atomic_load_n(&writers_done, __ATOMIC_ACQUIRE) && !w->err) {
		int ret = engine_flush(w->f->e);

		if (ret) {
			w->err = ret;
			snprintf(w->what, sizeof(w->what), "engine_flush: %s", strerror(-ret));
		}
		usleep(2000);
	}
	return NULL;
}

static void run_round(struct fixture *f, const struct round *rd, uint64_t seed)
{
	struct writer w[33];
	pthread_t th[33];
	unsigned i, n = rd->threads + (rd->flusher ? 1 : 0);

	assert_true(n <= 33);
	assert_true(rd->base + rd->span <= f->size);
	__atomic_store_n(&writers_done, 0, __ATOMIC_RELEASE);
	for (i = 0; i < n; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].f = f;
		w[i].rd = rd;
		w[i].idx = i;
		w[i].seed = seed * 1000003u + i * 7919u + 1;
		assert_int_equal(pthread_create(&th[i], NULL,
						i < rd->threads ? writer_main : flusher_main, &w[i]), 0);
	}
	for (i = 0; i < rd->threads; i++)
		pthread_join(th[i], NULL);
	__atomic_store_n(&writers_done, 1, __ATOMIC_RELEASE);
	for (; i < n; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < n; i++) {
		if (w[i].err)
			fail_msg("%s: thread %u: %s", f->tc->name, i, w[i].what);
		f->writes += w[i].writes;
		f->write_bytes += w[i].bytes;
	}
}

/* Single-threaded writes anywhere, the array's last bytes included. */
static void random_writes(struct fixture *f, uint64_t seed, unsigned count)
{
	struct writer w = { .f = f, .seed = seed };
	uint8_t *buf = NULL, *check = NULL;
	unsigned i;

	assert_int_equal(posix_memalign((void **)&buf, 4096, MAX_WRITE + 64), 0);
	assert_int_equal(posix_memalign((void **)&check, 4096, MAX_WRITE + 64), 0);
	for (i = 0; i < count; i++) {
		uint64_t len = 1 + rng_below(&w.seed, i % 3 ? 64 * KIB : MAX_WRITE);
		uint64_t off;

		if (len > f->size)
			len = f->size;
		off = i % 5 == 0 ? f->size - len : rng_below(&w.seed, f->size - len + 1);
		if (writer_one(&w, buf, check, off, len))
			fail_msg("%s: %s", f->tc->name, w.what);
	}
	f->writes += w.writes;
	f->write_bytes += w.bytes;
	free(buf);
	free(check);
}

/* ---- checks ---------------------------------------------------------- */

static void verify_through_engine(struct fixture *f)
{
	uint64_t seed = 42, off = 0;
	uint8_t *buf = malloc(MAX_WRITE + 1);
	int ret;

	assert_non_null(buf);
	while (off < f->size) {
		/* Odd sizes and an unaligned buffer: the bounce-buffer path. */
		uint64_t len = 1 + rng_below(&seed, MAX_WRITE);

		if (len > f->size - off)
			len = f->size - off;
		ret = engine_read(f->e, buf + (len & 1), len, off);
		if (ret)
			fail_msg("%s: engine_read(%llu, %llu): %s", f->tc->name,
				 (unsigned long long)off, (unsigned long long)len, strerror(-ret));
		if (memcmp(buf + (len & 1), f->model + off, len)) {
			uint64_t i;

			for (i = 0; i < len && buf[(len & 1) + i] == f->model[off + i]; i++)
				;
			fail_msg("%s: array byte %llu differs from the model", f->tc->name,
				 (unsigned long long)(off + i));
		}
		off += len;
	}
	free(buf);
}

/* Read @len bytes at @off in @role's data area, straight from the unit. */
static void unit_read_data(struct fixture *f, uint32_t role, uint64_t off, uint8_t *buf, size_t len)
{
	ssize_t got = pread(unit_fd(f->unit[role]), buf, len,
			    (off_t)(f->sb.unit.data_offset + off));

	if (got != (ssize_t)len)
		fail_msg("%s: pread of unit %u at %llu: %s", f->tc->name, role,
			 (unsigned long long)off, got < 0 ? strerror(errno) : "short read");
}

static void expect_model(struct fixture *f, const uint8_t *got, uint64_t logical, uint64_t len,
			 uint32_t role, uint64_t off)
{
	if (logical >= f->size)
		return;		/* beyond nblocks: not part of the array */
	if (len > f->size - logical)
		len = f->size - logical;
	if (memcmp(got, f->model + logical, len))
		fail_msg("%s: unit %u offset %llu should hold array offset %llu", f->tc->name,
			 role, (unsigned long long)off, (unsigned long long)logical);
}

/* engine_aio.resume of a mapped write queued on a stripe lock: counted. */
static unsigned resumed;

static void count_resume(struct engine_aio *ar)
{
	(void)ar;
	resumed++;
}

/*
 * Event-driven reads: the unit reads engine_read_map hands out, done here
 * with pread as a FUSE queue would on its ring, give the model's bytes, and
 * the request counts as a read; none goes to a missing role (raid1 reads
 * a working mirror, raid5 rebuilds the role's chunks from the others' in
 * engine_aio_next). Anything it must not take (unaligned, over 1 MiB) is
 * -EAGAIN, for the synchronous path.
 */
static void verify_mapped_reads(struct fixture *f)
{
	struct engine_aio *ar = calloc(1, sizeof(*ar)), *other = calloc(1, sizeof(*other));
	struct rt_engine_stats before, after;
	uint64_t seed = 0xa5a5, mapped = 0;
	uint8_t *buf = NULL;

	assert_non_null(ar);
	assert_non_null(other);
	assert_int_equal(posix_memalign((void **)&buf, 4096, MIB + 4096), 0);
	assert_int_equal(engine_read_map(f->e, buf + 1, 4096, 0, ar), -EAGAIN);
	assert_int_equal(engine_read_map(f->e, buf, 4096 + 100, 0, ar), -EAGAIN);
	assert_int_equal(engine_read_map(f->e, buf, 2 * MIB, 0, ar), -EAGAIN);
	assert_int_equal(engine_read_map(f->e, buf, 4096, f->size, ar), -EINVAL);
	engine_get_stats(f->e, &before);
	for (int i = 0; i < 64; i++) {
		/* A role missing: raid5 rebuilds its chunks in a hold's buffer, up to 1 MiB. */
		uint64_t len = (1 + rng_below(&seed, (f->tc->missing ? MIB / 4 : MIB) / 4096)) * 4096;
		uint64_t off = rng_below(&seed, (f->size - len) / 4096 + 1) * 4096;

		memset(buf, 0x5a, len);
		assert_int_equal(engine_read_map(f->e, buf, len, off, ar), 0);
		assert_true(ar->n >= 1 && ar->n <= ENGINE_AIO_MAX);
		for (unsigned k = 0; k < ar->n; k++) {
			const struct engine_unit_io *io = &ar->io[k];
			ssize_t got = pread(io->fd, io->buf, io->len, (off_t)io->off);

			assert_true(io->role < f->tc->n);
			assert_false(f->tc->missing & (1u << io->role));
			assert_int_equal(got, (ssize_t)io->len);
		}
		assert_int_equal(engine_aio_next(f->e, ar), 0);	/* raid5: the rebuilt chunks */
		engine_aio_unmap(f->e, ar, true);
		mapped++;
		expect_model(f, buf, off, len, 0, 0);
	}
	engine_get_stats(f->e, &after);
	assert_int_equal(after.reads - before.reads, mapped);

	/*
	 * Writes: linear, raid0 (a write there is its unit writes), raid1 (one
	 * to every working mirror, none to a missing one) and raid5 (two
	 * rounds: reads, then data and parity, engine_aio_next; across chunks
	 * too, held and, gathering nothing, planned as the synchronous path
	 * plans it; a role missing: planned without it, in rounds), done here
	 * with pread/pwrite as a FUSE queue would; the model follows, so verify_units checks where they landed (and the
	 * parity). A mapping that locks holds its stripes until unmapped: a
	 * second mapping overlapping it is -EAGAIN meanwhile, one beside it is
	 * not; with a resume callback the overlapping one is queued instead
	 * (raid1: -EINPROGRESS) and resumed once the first is unmapped.
	 */
	/* raid5 maps small writes only while it gathers no stripes. */
	if (f->tc->level == RT_LEVEL_5)
		assert_int_equal(engine_set_gather_window(f->e, 0), 0);
	for (int i = 0; i < 64; i++) {
		uint64_t len = (1 + rng_below(&seed, MIB / 4096)) * 4096, off;
		bool striped = f->tc->level == RT_LEVEL_LINEAR || f->tc->level == RT_LEVEL_0;
		bool mirror = f->tc->level == RT_LEVEL_1, parity = f->tc->level == RT_LEVEL_5;
		uint64_t per_role[MAX_TEST_UNITS] = { 0 }, C = f->tc->chunk;
		int r, rounds = 0;

		if (parity) {
			/* Up to 16 KiB inside one chunk, now and then across two. */
			len = (1 + rng_below(&seed, 4)) * 4096;
			off = rng_below(&seed, (f->size - len) / 4096 + 1) * 4096;
			if (i % 8 != 7 && off / C != (off + len - 1) / C)
				off = (off + len - 1) / C * C;
		} else {
			off = rng_below(&seed, (f->size - len) / 4096 + 1) * 4096;
		}
		rng_fill(&seed, buf, len);
		r = engine_write_map(f->e, buf, len, off, ar);
		assert_true(striped || mirror || parity);
		assert_int_equal(r, 0);
		assert_true(ar->write);
		if (mirror || parity) {
			uint64_t W = parity ? C * (f->tc->n - 1) : C;
			uint64_t beside = (off + len + W - 1) / W * W;

			other->resume = NULL;
			assert_int_equal(engine_write_map(f->e, buf, 4096, off + len - 4096, other),
					 -EAGAIN);
			if (beside + 4096 <= f->size) {
				assert_int_equal(engine_write_map(f->e, buf, 4096, beside, other), 0);
				other->n = 0;	/* never sent: nothing written */
				engine_aio_unmap(f->e, other, false);
			}
			/* Queued (raid5: its part offered to the holder, which does not gather). */
			other->resume = count_resume;
			resumed = 0;
			assert_int_equal(engine_write_map(f->e, buf, 4096, off + len - 4096, other),
					 -EINPROGRESS);
			assert_int_equal(resumed, 0);
		}
		do {
			rounds++;
			for (unsigned k = 0; k < ar->n; k++) {
				const struct engine_unit_io *io = &ar->io[k];
				ssize_t done = io->write ?
					pwrite(io->fd, io->buf, io->len, (off_t)io->off) :
					pread(io->fd, io->buf, io->len, (off_t)io->off);

				assert_false(f->tc->missing & (1u << io->role));
				assert_int_equal(done, (ssize_t)io->len);
				if (io->write)
					per_role[io->role] += io->len;
				else
					assert_true(parity && (rounds == 1 || f->tc->missing));
			}
		} while ((r = engine_aio_next(f->e, ar)) > 0);
		assert_int_equal(r, 0);
		/*
		 * A role missing: raid5 writes in rounds of one column range each,
		 * the data alone where the parity is lost (one round).
		 */
		if (parity && f->tc->missing)
			assert_true(rounds >= 1 && rounds <= 4);
		else
			assert_int_equal(rounds, parity ? 2 : 1);
		for (uint32_t role = 0; mirror && role < f->tc->n; role++)
			assert_int_equal(per_role[role],
					 f->tc->missing & (1u << role) ? 0 : len);
		engine_aio_unmap(f->e, ar, true);
		if (mirror || parity) {
			/* Resumed once the lock it waited for was let go: it maps now. */
			assert_int_equal(resumed, 1);
			assert_int_equal(engine_write_map(f->e, buf, 4096, off + len - 4096, other), 0);
			other->n = 0;	/* never sent: nothing written */
			engine_aio_unmap(f->e, other, false);
		}
		memcpy(f->model + off, buf, len);
		f->writes++;
		f->write_bytes += len;
	}
	verify_through_engine(f);
	free(buf);
	free(ar);
	free(other);
}

/*
 * Placement, computed here from the documented layouts rather than through
 * layout_map, so that a mapping the engine misuses cannot hide itself.
 */
static void verify_units(struct fixture *f)
{
	const struct engine_case *tc = f->tc;
	uint64_t C = tc->chunk, unit_data = UINT64_MAX, off, start;
	uint8_t *chunk[MAX_TEST_UNITS] = { NULL }, *x = NULL;
	uint32_t r, n = tc->n;

	for (r = 0; r < n; r++) {
		assert_int_equal(posix_memalign((void **)&chunk[r], 4096, C), 0);
		if (f->sb.slots[r].data_size / C * C < unit_data)
			unit_data = f->sb.slots[r].data_size / C * C;
	}
	assert_int_equal(posix_memalign((void **)&x, 4096, C), 0);

	switch (tc->level) {
	case RT_LEVEL_LINEAR:
		start = 0;
		for (r = 0; r < n; r++) {
			uint64_t rs = f->sb.slots[r].data_size / C * C;

			for (off = 0; off < rs; off += C) {
				unit_read_data(f, r, off, chunk[0], C);
				expect_model(f, chunk[0], start + off, C, r, off);
			}
			start += rs;
		}
		break;
	case RT_LEVEL_0:
		for (off = 0; off < unit_data; off += C)
			for (r = 0; r < n; r++) {
				unit_read_data(f, r, off, chunk[0], C);
				expect_model(f, chunk[0], ((off / C) * n + r) * C, C, r, off);
			}
		break;
	case RT_LEVEL_1:
		for (off = 0; off < unit_data; off += C)
			for (r = 0; r < n; r++) {
				if (f->faulty & (1ull << r))
					continue;	/* stale: not part of the array */
				unit_read_data(f, r, off, chunk[0], C);
				expect_model(f, chunk[0], off, C, r, off);
			}
		break;
	case RT_LEVEL_5:
		for (off = 0; off < unit_data; off += C) {
			uint64_t s = off / C;
			uint32_t p = (n - 1) - (uint32_t)(s % n), k;
			uint64_t *xw = (uint64_t *)x, i;

			/*
			 * The parity must cover every data chunk of the stripe, a
			 * lost role's too: it is compared with the XOR of the model,
			 * never with anything derived from the units themselves.
			 */
			memset(x, 0, C);
			for (k = 0; k < n - 1; k++) {
				uint32_t dr = (p + 1 + k) % n;
				uint64_t at = (s * (n - 1) + k) * C;
				const uint64_t *mw = (const uint64_t *)(f->model + at);

				for (i = 0; i < C / 8; i++)
					xw[i] ^= mw[i];
				if (f->faulty & (1ull << dr))
					continue;	/* stale: not part of the array */
				unit_read_data(f, dr, off, chunk[0], C);
				expect_model(f, chunk[0], at, C, dr, off);
			}
			if (f->faulty & (1ull << p))
				continue;	/* the parity was lost with its role */
			unit_read_data(f, p, off, chunk[0], C);
			if (memcmp(x, chunk[0], C))
				fail_msg("%s: stripe %llu: parity on unit %u is not the XOR of its data",
					 tc->name, (unsigned long long)s, p);
		}
		break;
	}
	for (r = 0; r < n; r++)
		free(chunk[r]);
	free(x);
}

static void verify_stats(struct fixture *f)
{
	struct rt_engine_stats st;
	uint64_t unit_bytes = 0;
	uint32_t r;

	engine_get_stats(f->e, &st);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.writes, f->writes);
	assert_int_equal(st.write_bytes, f->write_bytes);
	assert_true(st.reads > 0);
	assert_true(st.flushes > 0);
	assert_int_equal(st.faulty_mask, f->faulty);
	assert_int_equal(st.state, f->faulty ? RT_ENGINE_DEGRADED : RT_ENGINE_OK);
	for (r = 0; r < f->tc->n; r++) {
		assert_int_equal(st.unit[r].errors, 0);
		assert_int_equal(engine_role_state(f->e, r),
				 f->faulty & (1ull << r) ? RT_ROLE_FAULTY : RT_ROLE_ACTIVE);
		unit_bytes += st.unit[r].write_bytes;
		/* Every working mirror gets every write; a missing one none. */
		if (f->tc->level == RT_LEVEL_1 && (f->tc->missing & (1u << r)))
			assert_int_equal(st.unit[r].write_bytes, 0);
		else if (f->tc->level == RT_LEVEL_1 && !f->faulty)
			assert_int_equal(st.unit[r].write_bytes, st.unit[0].write_bytes);
	}
	assert_true(unit_bytes >= f->write_bytes);
}

/*
 * Degraded starts beyond what the level spares are refused; one it spares
 * works. The units stay open by the fixture; engine_create only borrows.
 */
static void check_start_refusals(struct fixture *f)
{
	const struct engine_case *tc = f->tc;
	struct rt_unit *given[MAX_TEST_UNITS];
	struct rt_engine *e2 = NULL;
	struct rt_sb sb = f->sb;
	uint32_t r, spare;

	if (tc->missing)
		return;
	/* raid1 spares all but one, raid5 one, linear/raid0 none. */
	spare = tc->level == RT_LEVEL_1 ? tc->n - 1 : tc->level == RT_LEVEL_5 ? 1 : 0;
	for (r = 0; r < tc->n; r++)
		given[r] = r < spare ? NULL : f->unit[r];
	if (spare) {
		/* The running engine has the units open too: only the start is tested. */
		assert_int_equal(engine_create(&sb, given, tc->n, &e2), 0);
		assert_int_equal(engine_state(e2), RT_ENGINE_DEGRADED);
		assert_int_equal(engine_role_state(e2, 0), RT_ROLE_FAULTY);
		engine_destroy(e2);
	}
	given[spare] = NULL;
	assert_int_equal(engine_create(&sb, given, tc->n, &e2), -ENODEV);
	assert_null(e2);
	/* A unit present but not ACTIVE in the role table counts as missing. */
	for (r = 0; r < tc->n; r++)
		given[r] = f->unit[r];
	for (r = 0; r <= spare; r++)
		sb.slots[r].state = r % 2 ? RT_SLOT_FAULTY : RT_SLOT_MISSING;
	assert_int_equal(engine_create(&sb, given, tc->n, &e2), -ENODEV);
}

/* ---- the test -------------------------------------------------------- */

/*
 * Discard ranges (engine_discard): whole stripes zeroed on the units, ragged
 * edges written as zeros; the model takes zeros. verify_units then checks
 * that parity and mirrors still agree with the data on the units.
 */
static void discard_ranges(struct fixture *f)
{
	const uint64_t ranges[][2] = {
		{ 0, 2 * MIB },				/* aligned, several stripes */
		{ 5 * MIB + 4096 + 100, 7 * MIB + 333 },	/* ragged ends, sub-block */
		{ f->size / 2 + 512, 4096 },		/* one block, not aligned */
		{ f->size - 3 * MIB - 4096, 3 * MIB + 4096 },	/* to the end */
	};
	struct rt_engine_stats st;
	size_t i;

	for (i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		assert_int_equal(engine_discard(f->e, ranges[i][0], ranges[i][1]), 0);
		memset(f->model + ranges[i][0], 0, ranges[i][1]);
	}
	assert_int_equal(engine_discard(f->e, f->size - 4096, 8192), -EINVAL);
	engine_get_stats(f->e, &st);
	assert_int_equal(st.discards, sizeof(ranges) / sizeof(ranges[0]));
}

static void test_engine_level(void **state)
{
	struct fixture *f = *state;
	const struct engine_case *tc = f->tc;
	uint64_t seed = 0x1234567ull + tc->chunk + (uint64_t)tc->n * 31 + (uint64_t)(tc->level + 1) * 977;
	uint8_t tmp[16];
	uint64_t mid;

	if (!have_root()) {
		const char *why = geteuid() ? "needs root (loop devices)" : "no /dev/loop-control";

		if (require_root())
			fail_msg("cannot run: %s (and RAIDTOOL_TEST_REQUIRE_ROOT=1)", why);
		print_message("# skip: %s\n", why);
		skip();
	}
	assert_non_null(f->e);
	assert_true(f->size > 16 * MIB);
	mid = (f->size / 2) & ~(MIB - 1);

	/* The edges of the contract. */
	assert_int_equal(engine_read(f->e, tmp, 0, f->size), 0);
	assert_int_equal(engine_read(f->e, tmp, 1, f->size), -EINVAL);
	assert_int_equal(engine_write(f->e, tmp, 16, f->size - 8), -EINVAL);
	assert_int_equal(engine_read(f->e, tmp, 16, UINT64_MAX - 4), -EINVAL);

	{
		/* Same-stripe races: 4 KiB cells, sub-block pieces, 6 threads. */
		struct round r1 = { .base = 0, .span = 4 * MIB, .cell = 4096, .threads = 6 };
		/* Odd cells straddle blocks and chunks; more threads than contexts. */
		struct round r2 = { .base = mid, .span = 6 * MIB, .cell = 3 * 4096 + 300,
				     .threads = 24 };
		/* Big cells: full stripes, multi-stripe and multi-piece writes. */
		struct round r3 = { .base = 6 * MIB, .span = 12 * MIB, .cell = 1 * MIB,
				    .threads = 4, .flusher = true };
		struct round r4 = { .base = mid - 8 * MIB + 4096, .span = 8 * MIB,
				    .cell = MAX_WRITE - 4096 + 512, .threads = 3 };
		/* Partial stripes with several chunks: RMW and RCW both chosen. */
		struct round r5 = { .base = 2 * MIB, .span = 6 * MIB, .cell = 192 * KIB + 4096,
				    .threads = 5, .flusher = true };

		run_round(f, &r1, seed + 1);
		run_round(f, &r2, seed + 2);
		run_round(f, &r3, seed + 3);
		run_round(f, &r4, seed + 4);
		run_round(f, &r5, seed + 5);
	}
	random_writes(f, seed + 6, 60);
	discard_ranges(f);

	verify_through_engine(f);
	verify_mapped_reads(f);
	assert_int_equal(engine_flush(f->e), 0);
	verify_units(f);
	verify_stats(f);
	check_start_refusals(f);
}

/* ---- raid5: small writes on the ring and stripe gathering --------------- */

struct gather_holder {
	struct rt_engine *e;
	const uint8_t *buf;
	size_t len;
	uint64_t off;
	int ret;
};

static void *gather_holder_main(void *arg)
{
	struct gather_holder *h = arg;

	h->ret = engine_write(h->e, h->buf, h->len, h->off);
	return NULL;
}

static bool stripe_is_held(struct rt_engine *e, uint64_t stripe)
{
	struct stripe_lock_bucket *b = stripe_lock_bucket(e, stripe);
	const struct stripe_lock_entry *l;
	bool held = false;

	pthread_mutex_lock(&b->mu);
	for (l = b->held; l && !held; l = l->next)
		held = l->stripe == stripe;
	pthread_mutex_unlock(&b->mu);
	return held;
}

/*
 * Start a holder writing [off, off + len) of @buf on its thread, gathering
 * the rest of its stripe @s, and wait until it holds the stripe.
 */
static void gather_holder_start(struct gather_holder *h, pthread_t *t, struct rt_engine *e,
				const uint8_t *buf, uint64_t off, size_t len, uint64_t s)
{
	int i;

	*h = (struct gather_holder){ .e = e, .buf = buf, .len = len, .off = off, .ret = -1 };
	assert_int_equal(pthread_create(t, NULL, gather_holder_main, h), 0);
	for (i = 0; i < 10000 && !stripe_is_held(e, s); i++)
		usleep(500);
	assert_true(stripe_is_held(e, s));
}

/* Run a mapped write's rounds with pread/pwrite as a FUSE queue would; the model follows. */
static void run_mapped_write(struct fixture *f, struct engine_aio *ar, const uint8_t *buf,
			     uint64_t off, uint64_t len)
{
	int r;

	do {
		for (unsigned k = 0; k < ar->n; k++) {
			const struct engine_unit_io *io = &ar->io[k];
			ssize_t done = io->write ?
				pwrite(io->fd, io->buf, io->len, (off_t)io->off) :
				pread(io->fd, io->buf, io->len, (off_t)io->off);

			assert_int_equal(done, (ssize_t)io->len);
		}
	} while ((r = engine_aio_next(f->e, ar)) > 0);
	assert_int_equal(r, 0);
	engine_aio_unmap(f->e, ar, true);
	memcpy(f->model + off, buf, len);
}

/*
 * Run a mapping's rounds with pread/pwrite as a FUSE queue would, none of
 * its unit I/O on @avoid (a faulty role); unmapped as done.
 */
static void run_mapped_avoiding(struct fixture *f, struct engine_aio *ar, uint32_t avoid)
{
	int r;

	do {
		for (unsigned k = 0; k < ar->n; k++) {
			const struct engine_unit_io *io = &ar->io[k];
			ssize_t done;

			assert_int_not_equal(io->role, avoid);
			done = io->write ? pwrite(io->fd, io->buf, io->len, (off_t)io->off) :
					   pread(io->fd, io->buf, io->len, (off_t)io->off);
			assert_int_equal(done, (ssize_t)io->len);
		}
	} while ((r = engine_aio_next(f->e, ar)) > 0);
	assert_int_equal(r, 0);
	engine_aio_unmap(f->e, ar, true);
}

/* Fail the first write of @len bytes to @role (a holder's whole-stripe column). */
struct gather_fault {
	_Atomic int armed;
	uint32_t role, len;
};

static int gather_fault_result(void *arg, int op, uint32_t role, uint32_t len, int res)
{
	struct gather_fault *gf = arg;

	if (op == 1 && role == gf->role && len == gf->len && atomic_exchange(&gf->armed, 0))
		return -EIO;
	return res;
}

/*
 * Between @b and @a: one stripe written whole from several writers' pieces,
 * none read-modify-written or reconstruct-written, nothing read from the
 * units.
 */
static void assert_one_gathered(const struct fixture *f, const struct rt_engine_stats *b,
				const struct rt_engine_stats *a)
{
	assert_int_equal(a->stripe_full - b->stripe_full, 1);
	assert_int_equal(a->stripe_merged - b->stripe_merged, 1);
	assert_int_equal(a->stripe_rmw + a->stripe_rcw, b->stripe_rmw + b->stripe_rcw);
	for (uint32_t r = 0; r < f->tc->n; r++)
		assert_int_equal(a->unit[r].read_bytes, b->unit[r].read_bytes);
}

/*
 * Since @b: one stripe gathered (assert_one_gathered) from @writes writes;
 * flushed, the engine and the units hold the model.
 */
static void verify_one_gathered(struct fixture *f, const struct rt_engine_stats *b,
				uint64_t writes)
{
	struct rt_engine_stats a;

	engine_get_stats(f->e, &a);
	assert_one_gathered(f, b, &a);
	assert_int_equal(a.writes - b->writes, writes);
	assert_int_equal(engine_flush(f->e), 0);
	verify_through_engine(f);
	verify_units(f);
}

/*
 * With stripe gathering on: a small write whose stripe is free goes on the
 * ring only once gathering was given up on (waits in vain: random writes)
 * and it continues no recent write; one whose stripe a writer holds and
 * gathers offers its part to it while queued (-EINPROGRESS), is written
 * by it as part of the whole stripe (no read, no read-modify-write or
 * reconstruct-write), and is then mapped with no unit I/O left.
 */
static void test_engine_ring_gather(void **state)
{
	struct fixture *f = *state;
	struct rt_engine *e = f->e;
	uint64_t C = f->tc->chunk, W = C * (f->tc->n - 1), s = 7, base = s * W, seed = 0x6a7e;
	struct engine_aio *ar = calloc(1, sizeof(*ar));
	struct rt_engine_stats before, after;
	struct gather_holder h;
	uint8_t *buf = NULL;
	pthread_t t;

	skip_without_root();
	assert_non_null(e);
	assert_non_null(ar);
	assert_int_equal(posix_memalign((void **)&buf, 4096, 2 * W), 0);
	assert_int_equal(engine_set_gather_window(e, ENGINE_GATHER_US_MAX), 0);

	/* Stripe 3 written (and its dirty-log region marked) by the synchronous path. */
	rng_fill(&seed, buf, W);
	assert_int_equal(engine_write(e, buf, W, 3 * W), 0);
	memcpy(f->model + 3 * W, buf, W);
	/*
	 * Gathering not given up on, but no resume callback (a thin volume's
	 * write): the holder cannot wait on the ring, so a small write is
	 * mapped alone (two rounds: read, then write).
	 */
	rng_fill(&seed, buf, 8192);
	atomic_store(&e->gather_misses, 0);
	assert_int_equal(engine_write_map(e, buf, 4096, 3 * W + 8192, ar), 0);
	assert_true(ar->n > 0);
	run_mapped_write(f, ar, buf, 3 * W + 8192, 4096);
	assert_false(stripe_is_held(e, 3));
	/* Given up on: mapped alone, a part of a stream too (it cannot wait either). */
	atomic_store(&e->gather_misses, ENGINE_GATHER_MISSES);
	assert_int_equal(engine_write_map(e, buf + 4096, 4096, 3 * W + 12288, ar), 0);
	assert_true(ar->n > 0);
	run_mapped_write(f, ar, buf + 4096, 3 * W + 12288, 4096);

	/* A holder gathering stripe s: all of it but the last 4 KiB, waiting for the rest. */
	atomic_store(&e->gather_misses, 0);
	rng_fill(&seed, buf, W);
	engine_get_stats(e, &before);
	gather_holder_start(&h, &t, e, buf, base, W - 4096, s);
	ar->resume = count_resume;
	resumed = 0;
	assert_int_equal(engine_write_map(e, buf + W - 4096, 4096, base + W - 4096, ar),
			 -EINPROGRESS);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(h.ret, 0);
	assert_int_equal(resumed, 1);
	/* Written with the whole stripe: mapped again, nothing is left to run. */
	assert_int_equal(engine_write_map(e, buf + W - 4096, 4096, base + W - 4096, ar), 0);
	assert_int_equal(ar->n, 0);
	assert_int_equal(engine_aio_next(e, ar), 0);
	engine_aio_unmap(e, ar, true);
	memcpy(f->model + base, buf, W);
	verify_one_gathered(f, &before, 2);

	/*
	 * One thread may call the engine (engine_add_callers), and it is the
	 * holder: no other part can come, so it writes its part alone at once
	 * rather than wait for nothing, and that is not a wait in vain (random
	 * writes), which would stop the next holders from gathering.
	 */
	{
		uint64_t base3 = (s + 2) * W;

		engine_add_callers(e, 1, false);
		atomic_store(&e->gather_misses, 0);
		rng_fill(&seed, buf, W);
		engine_get_stats(e, &before);
		assert_int_equal(engine_write(e, buf, W - 4096, base3), 0);
		engine_get_stats(e, &after);
		engine_add_callers(e, -1, false);
		assert_int_equal(atomic_load(&e->gather_misses), 0);
		assert_int_equal(after.stripe_full - before.stripe_full, 0);
		assert_int_equal(after.stripe_rmw + after.stripe_rcw - before.stripe_rmw -
				 before.stripe_rcw, 1);
		memcpy(f->model + base3, buf, W - 4096);
		/* Callers not known: the same write waits, in vain, and says so. */
		assert_int_equal(engine_write(e, buf, W - 4096, base3), 0);
		assert_int_equal(atomic_load(&e->gather_misses), 1);
		verify_through_engine(f);
		verify_units(f);
	}
	/*
	 * The holder's whole-stripe write fails (a unit error on role 1): the
	 * offer is given back, not reported written; mapped again it is
	 * written on the ring without role 1, faulty now.
	 */
	{
		struct gather_fault gf = { .armed = 1, .role = 1, .len = (uint32_t)C - 4096 };
		struct engine_fault_hooks hk = { .io_result = gather_fault_result, .arg = &gf };
		uint64_t base2 = (s + 1) * W;

		atomic_store(&e->retry_count, 0);
		engine_set_fault_hooks(e, &hk);
		atomic_store(&e->gather_misses, 0);
		rng_fill(&seed, buf, W);
		gather_holder_start(&h, &t, e, buf, base2, W - 4096, s + 1);
		resumed = 0;
		assert_int_equal(engine_write_map(e, buf + W - 4096, 4096, base2 + W - 4096, ar),
				 -EINPROGRESS);
		assert_int_equal(pthread_join(t, NULL), 0);
		engine_set_fault_hooks(e, NULL);
		assert_int_equal(h.ret, 0);
		assert_int_equal(atomic_load(&gf.armed), 0);
		assert_true(engine_faulty(e) & role_bit(1));
		assert_int_equal(resumed, 1);
		assert_int_equal(engine_write_map(e, buf + W - 4096, 4096, base2 + W - 4096, ar),
				 0);
		run_mapped_avoiding(f, ar, 1);
		memcpy(f->model + base2, buf, W);
		verify_through_engine(f);
	}

	free(buf);
	free(ar);
}

/*
 * Wake a holder waiting on the ring at its time as a FUSE queue would
 * (engine_aio_expire) and map it again, until it is no longer waiting.
 */
static int hold_until_done(struct rt_engine *e, struct engine_aio *ar, const uint8_t *buf,
			   size_t len, uint64_t off)
{
	int r = -EINPROGRESS, i;

	for (i = 0; i < 100000 && r == -EINPROGRESS; i++) {
		struct timespec t;
		uint64_t now;

		clock_gettime(CLOCK_MONOTONIC, &t);
		now = (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
		assert_true(ar->wake_ns > 0);
		if (now < ar->wake_ns)
			usleep((useconds_t)((ar->wake_ns - now) / 1000 + 1));
		assert_true(engine_aio_expire(e, ar));
		/* Once woken, it is not woken again. */
		assert_false(engine_aio_expire(e, ar));
		r = engine_write_map(e, buf, len, off, ar);
	}
	return r;
}

/* The holders' pool (raid5_map_hold): how many are free. */
static unsigned holds_free(struct rt_engine *e)
{
	const struct raid5_hold *h;
	unsigned n = 0;

	for (h = e->hold_free; h; h = h->next)
		n++;
	return n;
}

/*
 * A raid5 write that finds its stripes free holds them on the caller's
 * ring, no thread: the part of another write queued on its last stripe
 * wakes it (resume, once), and it is mapped to the stripe's writes whole,
 * parity from the new data alone, with that part in them; the other write
 * is then mapped with nothing left to run. Without the other part it
 * waits until its time (engine_aio_expire), gives up (a miss: the next
 * holder does not wait again) and is the synchronous path's, while the
 * next holder of that stripe, not waiting, is written in rounds on the
 * ring; a small write that gives up is mapped alone.
 */
static void test_engine_ring_hold(void **state)
{
	struct fixture *f = *state;
	struct rt_engine *e = f->e;
	uint64_t C = f->tc->chunk, W = C * (f->tc->n - 1), s = 30, base = s * W, seed = 0x401d;
	struct engine_aio *ar = calloc(1, sizeof(*ar)), *ar2 = calloc(1, sizeof(*ar2));
	struct rt_engine_stats before, after;
	uint8_t *buf = NULL;

	skip_without_root();
	assert_non_null(e);
	assert_non_null(ar);
	assert_non_null(ar2);
	assert_int_equal(posix_memalign((void **)&buf, 4096, 2 * W), 0);
	ar->resume = ar2->resume = count_resume;

	/* Held and gathered: the holder's stripe made whole by a queued part. */
	assert_int_equal(engine_set_gather_window(e, ENGINE_GATHER_US_MAX), 0);
	atomic_store(&e->gather_misses, 0);
	rng_fill(&seed, buf, W);
	engine_get_stats(e, &before);
	resumed = 0;
	assert_int_equal(engine_write_map(e, buf, W - 4096, base, ar), -EINPROGRESS);
	assert_true(ar->wake_ns > 0);
	assert_true(stripe_is_held(e, s));
	assert_int_equal(resumed, 0);
	assert_int_equal(engine_write_map(e, buf + W - 4096, 4096, base + W - 4096, ar2),
			 -EINPROGRESS);
	assert_int_equal(resumed, 1);			/* the holder, woken by the offer */
	assert_false(engine_aio_expire(e, ar));		/* woken once */
	assert_int_equal(engine_write_map(e, buf, W - 4096, base, ar), 0);
	assert_true(ar->n > 0);
	for (unsigned k = 0; k < ar->n; k++)
		assert_true(ar->io[k].write);
	run_mapped_write(f, ar, buf, base, W - 4096);
	assert_int_equal(resumed, 2);			/* the other write, as its stripe is let go */
	assert_int_equal(engine_write_map(e, buf + W - 4096, 4096, base + W - 4096, ar2), 0);
	assert_int_equal(ar2->n, 0);
	run_mapped_write(f, ar2, buf + W - 4096, base + W - 4096, 4096);
	assert_false(stripe_is_held(e, s));
	verify_one_gathered(f, &before, 2);

	/*
	 * Nobody brings the part: it waits until its time, gives up (a miss),
	 * and lets the stripe go for the synchronous path, where it offers its
	 * part to whoever holds the stripe next (not in rounds: see
	 * raid5_map_fallback). That path does not wait again (no second miss).
	 */
	{
		uint64_t b2 = (s + 1) * W;

		assert_int_equal(engine_set_gather_window(e, 20000), 0);
		atomic_store(&e->gather_misses, 0);
		rng_fill(&seed, buf, W);
		assert_int_equal(engine_write_map(e, buf, W - 4096, b2, ar), -EINPROGRESS);
		assert_int_equal(hold_until_done(e, ar, buf, W - 4096, b2), -EAGAIN);
		assert_false(stripe_is_held(e, s + 1));
		assert_int_equal(holds_free(e), ENGINE_RING_HOLDS);
		assert_int_equal(atomic_load(&e->gather_misses), 1);
		/*
		 * The other part's write, large, holds the stripe given up on
		 * but may not wait: in rounds on the ring, its part alone (a
		 * worker here wrote fewer stripes whole in stripe.bats).
		 */
		rng_fill(&seed, buf + W, W);
		assert_int_equal(engine_write_map(e, buf + W, W, b2 + W - 4096, ar2), 0);
		assert_true(ar2->n > 0);
		run_mapped_write(f, ar2, buf + W, b2 + W - 4096, W);
		assert_false(stripe_is_held(e, s + 1));
		assert_false(stripe_is_held(e, s + 2));
		assert_int_equal(holds_free(e), ENGINE_RING_HOLDS);
		assert_int_equal(engine_write(e, buf, W - 4096, b2), 0);
		assert_int_equal(atomic_load(&e->gather_misses), 1);
		memcpy(f->model + b2, buf, W - 4096);
		memcpy(f->model + b2 + W - 4096, buf + W, W);
		verify_through_engine(f);
		verify_units(f);
	}

	/* A small write of a stripe, likewise, then mapped alone (read, then write). */
	{
		uint64_t b3 = (s + 2) * W + 8192;

		atomic_store(&e->gather_misses, 0);
		rng_fill(&seed, buf, 4096);
		assert_int_equal(engine_write_map(e, buf, 4096, b3, ar), -EINPROGRESS);
		assert_int_equal(hold_until_done(e, ar, buf, 4096, b3), 0);
		assert_true(ar->n > 0);
		assert_false(ar->io[0].write);
		run_mapped_write(f, ar, buf, b3, 4096);
		assert_false(stripe_is_held(e, s + 2));
	}

	/*
	 * Whole stripes only (the write covers stripes s+3 and s+4): written
	 * at once, nothing to wait for. A partial stripe whose write has no
	 * resume callback (a thin volume's) cannot wait: written in rounds.
	 */
	{
		uint64_t b4 = (s + 3) * W;

		rng_fill(&seed, buf, 2 * W);
		engine_get_stats(e, &before);
		assert_int_equal(engine_write_map(e, buf, 2 * W, b4, ar), 0);
		run_mapped_write(f, ar, buf, b4, 2 * W);
		engine_get_stats(e, &after);
		assert_int_equal(after.stripe_full - before.stripe_full, 2);
		assert_int_equal(after.stripe_merged - before.stripe_merged, 0);
		ar2->resume = NULL;
		assert_int_equal(engine_write_map(e, buf, W - 4096, b4 + 2 * W, ar2), 0);
		assert_true(stripe_is_held(e, s + 5));
		run_mapped_write(f, ar2, buf, b4 + 2 * W, W - 4096);
		assert_false(stripe_is_held(e, s + 5));
		ar2->resume = count_resume;
	}

	/*
	 * Bounds: holders do not need the contexts (every one taken by the
	 * workers, they still hold); ENGINE_RING_HOLDS holding keep a write
	 * from holding; a holder whose caller will not queue it again (its
	 * ring failed: queued at the limit) gives up when woken, leaving its
	 * stripe free.
	 */
	{
		uint64_t b6 = (s + 6) * W;
		unsigned n = ENGINE_RING_HOLDS, i;
		struct engine_aio *hs = calloc(n, sizeof(*hs));

		assert_non_null(hs);
		assert_int_equal(engine_set_gather_window(e, ENGINE_GATHER_US_MAX), 0);
		atomic_store(&e->gather_misses, 0);
		rng_fill(&seed, buf, W);
		for (i = 0; i < e->n_ctx; i++)
			assert_non_null(ctx_try_acquire(e));
		assert_null(ctx_try_acquire(e));
		for (i = 0; i < n; i++) {
			hs[i].resume = count_resume;
			assert_int_equal(engine_write_map(e, buf, W - 4096, b6 + (i + 1) * W, &hs[i]),
					 -EINPROGRESS);
		}
		for (i = 0; i < e->n_ctx; i++)
			ctx_release(e, &e->ctx[i]);
		assert_null(e->hold_free);
		assert_int_equal(engine_write_map(e, buf, W - 4096, b6, ar), -EAGAIN);
		assert_false(stripe_is_held(e, s + 6));
		for (i = 0; i < n; i++) {
			assert_true(engine_aio_expire(e, &hs[i]));
			hs[i].queued = ENGINE_AIO_QUEUED_MAX;
			assert_int_equal(engine_write_map(e, buf, W - 4096, b6 + (i + 1) * W, &hs[i]),
					 -EAGAIN);
			assert_false(stripe_is_held(e, s + 7 + i));
		}
		assert_int_equal(holds_free(e), n);
		free(hs);
	}
	assert_int_equal(engine_set_gather_window(e, 0), 0);
	assert_int_equal(engine_flush(e), 0);
	verify_through_engine(f);
	verify_units(f);
	free(buf);
	free(ar);
	free(ar2);
}

/* Fail every write to @role (the unit is gone): an engine_fault_hooks io_result. */
static int redo_fault_result(void *arg, int op, uint32_t role, uint32_t len, int res)
{
	(void)len;
	return op == 1 && role == *(const uint32_t *)arg ? -EIO : res;
}

/*
 * Run a mapped raid5 write's read round, then its round of writes but for
 * its last unit write, which is lost (@res says so, as a FUSE queue's
 * completions would).
 */
/*
 * Run @ar's round on the units, as the caller's ring would, each result in
 * @res; with @fail, its last unit I/O fails (-EIO) instead.
 */
static void run_round_failing(const struct engine_aio *ar, int *res, bool fail)
{
	for (unsigned k = 0; k < ar->n; k++) {
		const struct engine_unit_io *io = &ar->io[k];

		if (fail && k + 1 == ar->n) {
			res[k] = -EIO;
			continue;
		}
		res[k] = (int)(io->write ? pwrite(io->fd, io->buf, io->len, (off_t)io->off) :
					   pread(io->fd, io->buf, io->len, (off_t)io->off));
		assert_int_equal(res[k], (int)io->len);
	}
}

static void run_write_losing_one(struct engine_aio *ar, struct rt_engine *e, int *res)
{
	assert_false(ar->io[0].write);
	run_round_failing(ar, res, false);
	assert_int_equal(engine_aio_next(e, ar), 1);
	assert_true(ar->io[0].write);
	run_round_failing(ar, res, true);
}

/*
 * A mapped raid5 write whose round of writes failed in part is redone with
 * its stripe still locked (engine_aio_redo): the lost unit write run again
 * succeeds, the write is done, the parity matches, and no stripe is owed a
 * resync, even with every shared context taken (and the one kept for
 * redos: then it waits for that one). A round of reads that
 * failed is not redone (nothing written). A unit that fails the write
 * again and again has its role failed, and the write is done all the
 * same: its part is reconstructed from the parity.
 */
/* Another redo letting go of the context kept for redos after @delay_us. */
struct kept_release {
	struct rt_engine *e;
	unsigned delay_us;
};

static void *kept_release_main(void *arg)
{
	struct kept_release *kr = arg;

	usleep(kr->delay_us);
	ctx_release(kr->e, &kr->e->ctx[kr->e->n_ctx]);
	return NULL;
}

static void test_engine_ring_redo(void **state)
{
	struct fixture *f = *state;
	struct rt_engine *e = f->e;
	uint64_t C = f->tc->chunk, W = C * (f->tc->n - 1), s = 50, seed = 0x7ed0;
	uint64_t off = s * W + 8192, owed = atomic_load(&e->owed_all);
	struct engine_aio *ar = calloc(1, sizeof(*ar));
	int res[ENGINE_AIO_MAX];
	uint8_t *buf = NULL;
	uint32_t role;
	unsigned i;
	int r;

	skip_without_root();
	assert_non_null(e);
	assert_non_null(ar);
	assert_int_equal(posix_memalign((void **)&buf, 4096, 4096), 0);
	assert_int_equal(engine_set_gather_window(e, 0), 0);

	rng_fill(&seed, buf, 4096);
	assert_int_equal(engine_write_map(e, buf, 4096, off, ar), 0);
	run_write_losing_one(ar, e, res);
	/* Workers hold every shared context: the redo takes the one kept for it. */
	for (i = 0; i < e->n_ctx; i++)
		assert_non_null(ctx_try_acquire(e));
	assert_null(ctx_try_acquire(e));
	r = engine_aio_redo(e, ar, res);
	for (i = 0; i < e->n_ctx; i++)
		ctx_release(e, &e->ctx[i]);
	assert_int_equal(r, 0);
	engine_aio_unmap(e, ar, true);
	memcpy(f->model + off, buf, 4096);
	assert_int_equal(atomic_load(&e->owed_all), owed);
	assert_false(engine_dl_resync_owed(e, s * C, C));
	assert_int_equal(engine_faulty(e), 0);
	verify_units(f);

	/*
	 * Every shared context taken and another redo holding the kept one:
	 * it waits for that one rather than give the write up (a degraded
	 * stripe owed a resync could not be mended from the data).
	 */
	rng_fill(&seed, buf, 4096);
	assert_int_equal(engine_write_map(e, buf, 4096, off + 4 * W, ar), 0);
	run_write_losing_one(ar, e, res);
	for (i = 0; i < e->n_ctx; i++)
		assert_non_null(ctx_try_acquire(e));
	assert_int_equal(atomic_exchange(&e->ctx[e->n_ctx].busy, 1), 0);
	{
		struct kept_release kr = { .e = e, .delay_us = 100000 };
		struct timespec t0, t1;
		pthread_t t;
		long waited_ns;

		assert_int_equal(pthread_create(&t, NULL, kept_release_main, &kr), 0);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		r = engine_aio_redo(e, ar, res);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		pthread_join(t, NULL);
		/* Every context back before asserting: a failure must not hang the teardown. */
		for (i = 0; i < e->n_ctx; i++)
			ctx_release(e, &e->ctx[i]);
		waited_ns = (t1.tv_sec - t0.tv_sec) * 1000000000L + t1.tv_nsec - t0.tv_nsec;
		assert_true(waited_ns >= 50000000L);
	}
	assert_int_equal(r, 0);
	engine_aio_unmap(e, ar, true);
	memcpy(f->model + off + 4 * W, buf, 4096);
	assert_int_equal(atomic_load(&e->owed_all), owed);
	verify_units(f);

	/* Its reads failed: not redone; the synchronous path writes it. */
	rng_fill(&seed, buf, 4096);
	assert_int_equal(engine_write_map(e, buf, 4096, off + W, ar), 0);
	for (unsigned k = 0; k < ar->n; k++)
		res[k] = k == 0 ? -EIO : (int)ar->io[k].len;
	assert_int_equal(engine_aio_redo(e, ar, res), -EAGAIN);
	engine_aio_unmap(e, ar, false);
	assert_int_equal(engine_write(e, buf, 4096, off + W), 0);
	memcpy(f->model + off + W, buf, 4096);
	verify_units(f);

	/* The unit of the lost write is gone: its role is failed, the write done. */
	rng_fill(&seed, buf, 4096);
	assert_int_equal(engine_write_map(e, buf, 4096, off + 2 * W, ar), 0);
	run_write_losing_one(ar, e, res);
	role = ar->io[ar->n - 1].role;
	{
		struct engine_fault_hooks hk = { .io_result = redo_fault_result, .arg = &role };

		atomic_store(&e->retry_count, 0);
		engine_set_fault_hooks(e, &hk);
		assert_int_equal(engine_aio_redo(e, ar, res), 0);
		engine_set_fault_hooks(e, NULL);
	}
	assert_true(engine_faulty(e) & role_bit(role));
	engine_aio_unmap(e, ar, true);
	memcpy(f->model + off + 2 * W, buf, 4096);
	verify_through_engine(f);
	free(buf);
	free(ar);
}

/*
 * Map @len bytes at @off from @buf (a large raid5 write, no window: in
 * rounds on the ring) and run its rounds until the one @fail_at picks
 * (rounds that write counted in *@writes): that round's last unit I/O
 * fails, its results in @res, and it is left to the caller.
 */
static void run_rounds_until(struct rt_engine *e, struct engine_aio *ar, const uint8_t *buf,
			     uint64_t len, uint64_t off, int *res,
			     bool (*fail_at)(bool write, unsigned writes))
{
	unsigned writes = 0;

	assert_int_equal(engine_write_map(e, buf, len, off, ar), 0);
	for (;;) {
		bool w = ar->io[0].write, fail;

		writes += w;
		fail = fail_at(w, writes);
		run_round_failing(ar, res, fail);
		if (fail)
			return;
		assert_int_equal(engine_aio_next(e, ar), 1);
	}
}

static bool fail_second_writes(bool write, unsigned writes)
{
	return write && writes == 2;
}

static bool fail_reads_after_writes(bool write, unsigned writes)
{
	return !write && writes > 0;
}

/* No stripe of [off, off + len) owed a resync, nor the whole array more than before (@owed). */
static void assert_nothing_owed(struct rt_engine *e, uint64_t off, uint64_t len, uint64_t owed)
{
	uint64_t C = e->layout.chunk, W = e->lock_unit, s;

	assert_int_equal(atomic_load(&e->owed_all), owed);
	for (s = off / W; s <= (off + len - 1) / W; s++)
		assert_false(engine_dl_resync_owed(e, s * C, C));
}

/*
 * A large raid5 write whose holding gave up (no window) is written in
 * rounds on the ring, batch after batch (4K chunks: 1 MiB is many column
 * ranges), none on a thread, no stripe owed a resync. A batch whose writes
 * failed in part is redone (engine_aio_redo), which writes the batches not
 * come to yet on its thread; one whose reads failed (the batches before it
 * written) owes nothing, and the synchronous path writes the request; nor
 * does a round never sent.
 */
static void test_engine_ring_rounds(void **state)
{
	struct fixture *f = *state;
	struct rt_engine *e = f->e;
	uint64_t W = e ? e->lock_unit : 0, len = 1 << 20, off = 10 * W + 4096, seed = 0x20d5;
	uint64_t owed = e ? atomic_load(&e->owed_all) : 0;
	struct engine_aio *ar = calloc(1, sizeof(*ar));
	int res[ENGINE_AIO_MAX], r;
	unsigned rounds = 1;
	uint8_t *buf = NULL;

	skip_without_root();
	assert_non_null(e);
	assert_non_null(ar);
	assert_int_equal(posix_memalign((void **)&buf, 4096, len), 0);
	assert_int_equal(engine_set_gather_window(e, 0), 0);
	ar->resume = count_resume;

	rng_fill(&seed, buf, len);
	assert_int_equal(engine_write_map(e, buf, len, off, ar), 0);
	for (; run_round_failing(ar, res, false), (r = engine_aio_next(e, ar)) > 0; rounds++)
		;
	assert_int_equal(r, 0);
	assert_true(rounds > 3);
	engine_aio_unmap(e, ar, true);
	memcpy(f->model + off, buf, len);
	assert_nothing_owed(e, off, len, owed);
	verify_units(f);

	off += len + W;
	rng_fill(&seed, buf, len);
	run_rounds_until(e, ar, buf, len, off, res, fail_second_writes);
	assert_int_equal(engine_aio_redo(e, ar, res), 0);
	engine_aio_unmap(e, ar, true);
	memcpy(f->model + off, buf, len);
	assert_nothing_owed(e, off, len, owed);
	assert_int_equal(engine_faulty(e), 0);
	verify_units(f);

	off += len + W;
	rng_fill(&seed, buf, len);
	run_rounds_until(e, ar, buf, len, off, res, fail_reads_after_writes);
	assert_int_equal(engine_aio_redo(e, ar, res), -EAGAIN);
	engine_aio_unmap(e, ar, false);
	assert_nothing_owed(e, off, len, owed);
	assert_int_equal(engine_write(e, buf, len, off), 0);
	memcpy(f->model + off, buf, len);
	verify_units(f);

	/* Whole stripes: its first round writes; never sent (a failed ring), it owes nothing. */
	off = (off + len) / W * W + 2 * W;
	assert_int_equal(engine_write_map(e, buf, 64 * W, off, ar), 0);
	assert_true(ar->n > 0 && ar->io[0].write);
	ar->n = 0;
	engine_aio_unmap(e, ar, false);
	assert_nothing_owed(e, off, 64 * W, owed);
	verify_through_engine(f);
	free(buf);
	free(ar);
}

/* The logical offset of the data chunk of stripe @s on @role (@s's parity role: none). */
static uint64_t chunk_on_role(const struct rt_engine *e, uint64_t s, uint32_t role)
{
	uint64_t C = e->layout.chunk, W = C * e->data_roles, k;
	struct layout_extent ext;

	for (k = 0; k < e->data_roles; k++) {
		assert_int_equal(layout_map(&e->layout, s * W + k * C, C, &ext), 0);
		if (ext.role == role)
			return s * W + k * C;
	}
	return UINT64_MAX;
}

/* Map a read of [off, off + len), run it avoiding @avoid: the model's bytes. */
static void mapped_read_degraded(struct fixture *f, struct engine_aio *ar, uint8_t *buf,
				 uint64_t off, uint64_t len, uint32_t avoid)
{
	memset(buf, 0xa5, len);
	assert_int_equal(engine_read_map(f->e, buf, len, off, ar), 0);
	assert_non_null(ar->areq);	/* a degraded raid5 read locks its stripes */
	run_mapped_avoiding(f, ar, avoid);
	assert_memory_equal(buf, f->model + off, len);
}

/* Map a write of [off, off + len) from @buf, run it avoiding @avoid; the model follows. */
static void mapped_write_degraded(struct fixture *f, struct engine_aio *ar, const uint8_t *buf,
				  uint64_t off, uint64_t len, uint32_t avoid)
{
	assert_int_equal(engine_write_map(f->e, buf, len, off, ar), 0);
	run_mapped_avoiding(f, ar, avoid);
	memcpy(f->model + off, buf, len);
}

/* Every write to @role comes back -EAGAIN (past its retries: an error, not a fault). */
static int eagain_write_result(void *arg, int op, uint32_t role, uint32_t len, int res)
{
	(void)len;
	return op == ENGINE_OP_WRITE && role == *(const uint32_t *)arg ? -EAGAIN : res;
}

/*
 * A degraded raid5's read-modify-write whose parity write fails with
 * -EAGAIN past its retries (the parity's role stays in service): the data
 * chunk it wrote is put back, so that the faulty role's chunk of that
 * stripe, made from the parity and the other chunks, still reads as
 * written. Torn, it read as garbage: acknowledged data lost. On the
 * synchronous path, and on the ring (engine_aio_redo).
 */
static void test_engine_degraded_rmw_kept_role(void **state)
{
	struct fixture *f = *state;
	struct rt_engine *e = f->e;
	uint64_t seed = 0x7e1a, s = 3, off;
	uint32_t victim = 1, parity = UINT32_MAX, w = UINT32_MAX, r, retries;
	struct engine_aio *ar = calloc(1, sizeof(*ar));
	int res[ENGINE_AIO_MAX];
	uint8_t *buf = NULL;
	unsigned k;

	skip_without_root();
	assert_non_null(e);
	assert_non_null(ar);
	assert_int_equal(posix_memalign((void **)&buf, 4096, 4096), 0);
	random_writes(f, seed, 20);
	assert_int_equal(engine_fail_role(e, victim), 0);
	f->faulty |= 1ull << victim;
	/* A stripe where the faulty role holds data; its parity's role and another data role. */
	while (chunk_on_role(e, s, victim) == UINT64_MAX)
		s++;
	for (r = 0; r < f->tc->n; r++) {
		if (r == victim)
			continue;
		if (chunk_on_role(e, s, r) == UINT64_MAX)
			parity = r;
		else
			w = r;
	}
	assert_true(parity != UINT32_MAX && w != UINT32_MAX);
	off = chunk_on_role(e, s, w) + 4096;
	rng_fill(&seed, buf, 4096);
	retries = atomic_load(&e->retry_count);
	atomic_store(&e->retry_count, 0);
	{
		struct engine_fault_hooks hk = { .io_result = eagain_write_result, .arg = &parity };

		engine_set_fault_hooks(e, &hk);
		assert_int_equal(engine_write(e, buf, 4096, off), -EIO);
		engine_set_fault_hooks(e, NULL);
	}
	atomic_store(&e->retry_count, retries);
	/* Not a fault: the parity's role is in service, the write failed, nothing changed. */
	assert_int_equal(engine_faulty(e), 1ull << victim);
	verify_through_engine(f);

	/*
	 * On the ring: the same write mapped, its round of writes run but for
	 * the parity's (-EAGAIN), whose redo is refused -EAGAIN again.
	 */
	rng_fill(&seed, buf, 4096);
	assert_int_equal(engine_write_map(e, buf, 4096, off, ar), 0);
	run_round_failing(ar, res, false);
	assert_int_equal(engine_aio_next(e, ar), 1);
	for (k = 0; k < ar->n; k++) {
		const struct engine_unit_io *io = &ar->io[k];

		assert_true(io->write);
		if (io->role == parity) {
			res[k] = -EAGAIN;
			continue;
		}
		res[k] = (int)pwrite(io->fd, io->buf, io->len, (off_t)io->off);
		assert_int_equal(res[k], (int)io->len);
	}
	atomic_store(&e->retry_count, 0);
	{
		struct engine_fault_hooks hk = { .io_result = eagain_write_result, .arg = &parity };

		engine_set_fault_hooks(e, &hk);
		assert_true(engine_aio_redo(e, ar, res) < 0);
		engine_set_fault_hooks(e, NULL);
	}
	atomic_store(&e->retry_count, retries);
	engine_aio_unmap(e, ar, false);
	assert_int_equal(engine_faulty(e), 1ull << victim);
	verify_through_engine(f);
	free(buf);
	free(ar);
}

/*
 * A raid5 array with a role faulty is served on the ring too: a read of
 * the faulty role's chunk is rebuilt from the other roles read on the
 * ring (in the request's scratch, or a borrowed hold's buffer for a large
 * one; what the read covers itself is not read twice), a write is planned without that role and written in rounds; no
 * unit I/O goes to it, everything reads back through the synchronous path
 * and every stripe's parity covers the lost role's data. Beyond what raid5
 * spares (a second role faulty), and with no buffer to rebuild in, it is
 * the synchronous path's, holding no lock afterwards.
 */
static void test_engine_ring_degraded(void **state)
{
	struct fixture *f = *state;
	struct rt_engine *e = f->e;
	uint64_t C = f->tc->chunk, W = C * (f->tc->n - 1), seed = 0xde9a, off, s;
	struct engine_aio *ar = calloc(1, sizeof(*ar));
	struct rt_engine_stats before, after;
	uint32_t victim = 1;
	struct raid5_hold *free_holds;
	uint8_t *buf = NULL;

	skip_without_root();
	assert_non_null(e);
	assert_non_null(ar);
	assert_int_equal(posix_memalign((void **)&buf, 4096, 4 * W), 0);
	ar->resume = count_resume;
	random_writes(f, seed, 20);
	assert_int_equal(engine_fail_role(e, victim), 0);
	f->faulty |= 1ull << victim;

	/* Reads: inside the lost chunk, across stripes (a hold's buffer), healthy chunks only. */
	engine_get_stats(e, &before);
	off = chunk_on_role(e, 5, victim);
	mapped_read_degraded(f, ar, buf, off + 8192, 16384, victim);
	mapped_read_degraded(f, ar, buf, 7 * W + 4096, 2 * W, victim);
	s = 9;
	off = chunk_on_role(e, s, victim) == s * W ? s * W + C : s * W;
	mapped_read_degraded(f, ar, buf, off, C, victim);
	/* Whole stripes: the lost chunks from the data read anyway and the parity, no more. */
	memset(buf, 0xa5, 2 * W);
	assert_int_equal(engine_read_map(e, buf, 2 * W, 60 * W, ar), 0);
	{
		uint64_t unit_bytes = 0;

		for (unsigned k = 0; k < ar->n; k++)
			unit_bytes += ar->io[k].len;
		assert_int_equal(unit_bytes, 2 * W);
	}
	run_mapped_avoiding(f, ar, victim);
	assert_memory_equal(buf, f->model + 60 * W, 2 * W);
	engine_get_stats(e, &after);
	assert_int_equal(after.reads - before.reads, 4);
	assert_false(stripe_is_held(e, 5));

	/* Writes: into the lost chunk, beside it, a stripe whose parity is lost, across stripes. */
	for (s = 11; s < 11 + f->tc->n; s++) {
		off = chunk_on_role(e, s, victim);
		rng_fill(&seed, buf, 8192);
		if (off == UINT64_MAX) {
			mapped_write_degraded(f, ar, buf, s * W + C + 4096, 8192, victim);
			continue;
		}
		mapped_write_degraded(f, ar, buf, off + 4096, 8192, victim);
		mapped_write_degraded(f, ar, buf, (off == s * W ? off + C : s * W) + 4096, 4096,
				      victim);
	}
	rng_fill(&seed, buf, 3 * W);
	mapped_write_degraded(f, ar, buf, 20 * W + 12288, 3 * W - 8192, victim);
	mapped_write_degraded(f, ar, buf, 30 * W + C / 2, 40960, victim);
	engine_get_stats(e, &before);
	assert_int_equal(before.writes - after.writes, 2 * f->tc->n - 1 + 2);
	assert_false(stripe_is_held(e, 20));

	/* No hold free: a large read or write is the synchronous path's, no lock kept. */
	free_holds = e->hold_free;
	e->hold_free = NULL;
	assert_int_equal(engine_read_map(e, buf, 2 * W, 7 * W + 4096, ar), -EAGAIN);
	assert_int_equal(engine_write_map(e, buf, 2 * W, 40 * W, ar), -EAGAIN);
	e->hold_free = free_holds;
	assert_false(stripe_is_held(e, 8));
	assert_false(stripe_is_held(e, 40));

	verify_through_engine(f);
	assert_int_equal(engine_flush(e), 0);
	verify_units(f);

	/* A second role gone: nothing of its chunks can be rebuilt, nothing written. */
	assert_int_equal(engine_fail_role(e, 0), 0);
	off = chunk_on_role(e, 5, victim);
	assert_int_equal(engine_read_map(e, buf, 4096, off, ar), -EAGAIN);
	assert_int_equal(engine_write_map(e, buf, 4096, off, ar), -EAGAIN);
	assert_false(stripe_is_held(e, 5));
	f->faulty |= 1ull;
	free(buf);
	free(ar);
}

/*
 * engine_write_map while every holder's buffers are out (ENGINE_RING_HOLDS
 * hold): a raid5 write cannot hold its stripes on the ring then
 * (raid5_map_hold), so one too large to be written alone is the
 * synchronous path's (-EAGAIN), with done_head and done_tail saying what
 * holders wrote.
 */
static int write_map_unheld(struct rt_engine *e, const uint8_t *buf, size_t len, uint64_t off,
			    struct engine_aio *ar)
{
	struct raid5_hold *free_holds = e->hold_free;
	int r;

	e->hold_free = NULL;
	r = engine_write_map(e, buf, len, off, ar);
	e->hold_free = free_holds;
	return r;
}

/*
 * A raid5 write too large to be mapped (over 16 KiB, across chunks) whose
 * stripe a holder gathers does not wait on a thread: it is queued with its
 * part of that stripe offered (-EINPROGRESS), the holder writes that part
 * with the whole stripe, and mapped again the write is -EAGAIN with
 * done_head (a part at its start) or done_tail (at its end) saying what the
 * synchronous path need not write; when the part was all of it, it is
 * mapped with no unit I/O. A part the holder did not take is withdrawn; a
 * held stripe the write covers whole is waited for, queued, with nothing
 * offered.
 */
static void test_engine_ring_gather_large(void **state)
{
	struct fixture *f = *state;
	struct rt_engine *e = f->e;
	uint64_t C = f->tc->chunk, W = C * (f->tc->n - 1), s = 20, base = s * W, seed = 0x1a76;
	uint64_t X = 48 << 10, Y = 80 << 10, Z = 32 << 10;
	struct engine_aio *ar = calloc(1, sizeof(*ar));
	struct rt_engine_stats before, after;
	struct gather_holder h;
	uint8_t *buf = NULL;
	pthread_t t;

	skip_without_root();
	assert_non_null(e);
	assert_non_null(ar);
	assert_true(X + Y <= C * 2 && X > ENGINE_AREQ_WRITE_MAX && Z < C);
	assert_int_equal(posix_memalign((void **)&buf, 4096, 3 * W), 0);
	ar->resume = count_resume;

	/* The mapped write's first part, the last X bytes of stripe s, is the holder's missing piece. */
	assert_int_equal(engine_set_gather_window(e, ENGINE_GATHER_US_MAX), 0);
	atomic_store(&e->gather_misses, 0);
	rng_fill(&seed, buf, 2 * W);
	engine_get_stats(e, &before);
	gather_holder_start(&h, &t, e, buf, base, W - X, s);
	/* Without a resume callback it is the synchronous path's at once, as before. */
	ar->resume = NULL;
	assert_int_equal(engine_write_map(e, buf + W - X, X + Y, base + W - X, ar), -EAGAIN);
	ar->resume = count_resume;
	resumed = 0;
	ar->done_head = ar->done_tail = 0;
	assert_int_equal(engine_write_map(e, buf + W - X, X + Y, base + W - X, ar), -EINPROGRESS);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(h.ret, 0);
	assert_int_equal(resumed, 1);
	engine_get_stats(e, &after);
	assert_one_gathered(f, &before, &after);
	/*
	 * No window: the stripe left, free now, is held but not waited for;
	 * the rest is written in rounds on the ring (read, then write), the
	 * part the holder wrote left out.
	 */
	assert_int_equal(engine_set_gather_window(e, 0), 0);
	assert_int_equal(engine_write_map(e, buf + W - X, X + Y, base + W - X, ar), 0);
	assert_int_equal(ar->done_head, X);
	assert_int_equal(ar->done_tail, 0);
	for (unsigned k = 0; k < ar->n; k++)
		assert_true(ar->io[k].off >= f->e->data_offset + (base + W) / W * C);
	run_mapped_write(f, ar, buf + W - X, base + W - X, X + Y);
	memcpy(f->model + base, buf, W + Y);

	/* Its part at its end: the holder of its last stripe lacks the stripe's first Z bytes. */
	{
		uint64_t b4 = (s + 4) * W;

		assert_int_equal(engine_set_gather_window(e, ENGINE_GATHER_US_MAX), 0);
		atomic_store(&e->gather_misses, 0);
		rng_fill(&seed, buf, 2 * W);
		gather_holder_start(&h, &t, e, buf + C + Z, b4 + Z, W - Z, s + 4);
		resumed = 0;
		ar->done_head = ar->done_tail = 0;
		assert_int_equal(engine_write_map(e, buf, C + Z, b4 - C, ar), -EINPROGRESS);
		assert_int_equal(pthread_join(t, NULL), 0);
		assert_int_equal(h.ret, 0);
		assert_int_equal(resumed, 1);
		assert_int_equal(engine_set_gather_window(e, 0), 0);
		assert_int_equal(write_map_unheld(e, buf, C + Z, b4 - C, ar), -EAGAIN);
		assert_int_equal(ar->done_head, 0);
		assert_int_equal(ar->done_tail, Z);
		assert_int_equal(engine_write(e, buf, C, b4 - C), 0);
		memcpy(f->model + b4 - C, buf, C + W);
	}

	/* All of it one stripe's missing part: done with no unit I/O. */
	{
		uint64_t b2 = (s + 2) * W;

		assert_int_equal(engine_set_gather_window(e, ENGINE_GATHER_US_MAX), 0);
		atomic_store(&e->gather_misses, 0);
		rng_fill(&seed, buf, W);
		gather_holder_start(&h, &t, e, buf, b2, W - X, s + 2);
		resumed = 0;
		ar->done_head = ar->done_tail = 0;
		assert_int_equal(engine_write_map(e, buf + W - X, X, b2 + W - X, ar), -EINPROGRESS);
		assert_int_equal(pthread_join(t, NULL), 0);
		assert_int_equal(h.ret, 0);
		assert_int_equal(resumed, 1);
		assert_int_equal(engine_write_map(e, buf + W - X, X, b2 + W - X, ar), 0);
		assert_int_equal(ar->n, 0);
		assert_int_equal(engine_aio_next(e, ar), 0);
		engine_aio_unmap(e, ar, true);
		assert_int_equal(ar->done_head + ar->done_tail, 0);
		memcpy(f->model + b2, buf, W);
	}

	/*
	 * The holder gives up (a 4 KiB gap no writer fills) and writes its
	 * part alone: the offer is withdrawn, and the write left whole to the
	 * synchronous path.
	 */
	{
		uint64_t b6 = (s + 6) * W;

		assert_int_equal(engine_set_gather_window(e, ENGINE_GATHER_US_MAX), 0);
		atomic_store(&e->gather_misses, 0);
		rng_fill(&seed, buf, 2 * W);
		gather_holder_start(&h, &t, e, buf, b6, W - X - 4096, s + 6);
		resumed = 0;
		ar->done_head = ar->done_tail = 0;
		assert_int_equal(engine_write_map(e, buf + W - X, X + Y, b6 + W - X, ar),
				 -EINPROGRESS);
		assert_int_equal(pthread_join(t, NULL), 0);
		assert_int_equal(h.ret, 0);
		assert_int_equal(resumed, 1);
		assert_int_equal(engine_set_gather_window(e, 0), 0);
		assert_int_equal(write_map_unheld(e, buf + W - X, X + Y, b6 + W - X, ar), -EAGAIN);
		assert_int_equal(ar->done_head + ar->done_tail, 0);
		assert_int_equal(engine_write(e, buf + W - X, X + Y, b6 + W - X), 0);
		memcpy(f->model + b6, buf, W - X - 4096);
		memcpy(f->model + b6 + W - X, buf + W - X, X + Y);
	}

	/*
	 * Resumed while the holder still waits (another stripe of the bucket
	 * let go), after ENGINE_AIO_QUEUED_MAX times queued: its offer is
	 * withdrawn rather than queued again, and the write left to the
	 * synchronous path, which the holder no longer counts on.
	 */
	{
		uint64_t b10 = (s + 10) * W;
		struct stripe_lock_bucket *b = stripe_lock_bucket(e, s + 10);
		const struct stripe_contrib *k;
		bool offered = false;

		assert_int_equal(engine_set_gather_window(e, ENGINE_GATHER_US_MAX), 0);
		atomic_store(&e->gather_misses, 0);
		rng_fill(&seed, buf, 2 * W);
		gather_holder_start(&h, &t, e, buf, b10, W - X - 4096, s + 10);
		ar->done_head = ar->done_tail = 0;
		ar->queued = 0;
		assert_int_equal(engine_write_map(e, buf + W - X, X + Y, b10 + W - X, ar),
				 -EINPROGRESS);
		assert_int_equal(ar->queued, 1);
		/* What a let-go of another stripe of the bucket does: take the queue. */
		pthread_mutex_lock(&b->mu);
		assert_ptr_equal(b->parked, ar);
		b->parked = ar->wait_next;
		ar->wait_next = NULL;
		pthread_mutex_unlock(&b->mu);
		ar->queued = ENGINE_AIO_QUEUED_MAX;
		assert_int_equal(engine_write_map(e, buf + W - X, X + Y, b10 + W - X, ar), -EAGAIN);
		assert_int_equal(ar->done_head + ar->done_tail, 0);
		pthread_mutex_lock(&b->mu);
		for (k = b->offers; k; k = k->next)
			offered |= k->stripe == s + 10;
		pthread_mutex_unlock(&b->mu);
		assert_false(offered);
		assert_true(stripe_is_held(e, s + 10));
		assert_int_equal(pthread_join(t, NULL), 0);
		assert_int_equal(h.ret, 0);
		assert_int_equal(engine_write(e, buf + W - X, X + Y, b10 + W - X), 0);
		memcpy(f->model + b10, buf, W - X - 4096);
		memcpy(f->model + b10 + W - X, buf + W - X, X + Y);
		ar->queued = 0;
	}

	/*
	 * A held stripe the write covers whole: queued on it with nothing
	 * offered, resumed once the holder lets go, then left whole to the
	 * synchronous path.
	 */
	{
		uint64_t b8 = (s + 8) * W;
		uint8_t *mine = buf + W;

		rng_fill(&seed, buf, 3 * W);
		gather_holder_start(&h, &t, e, buf, b8, W - X, s + 8);
		resumed = 0;
		ar->done_head = ar->done_tail = 0;
		assert_int_equal(engine_write_map(e, mine, W + Z, b8, ar), -EINPROGRESS);
		assert_int_equal(pthread_join(t, NULL), 0);
		assert_int_equal(h.ret, 0);
		assert_int_equal(resumed, 1);
		assert_int_equal(engine_set_gather_window(e, 0), 0);
		assert_int_equal(write_map_unheld(e, mine, W + Z, b8, ar), -EAGAIN);
		assert_int_equal(ar->done_head + ar->done_tail, 0);
		assert_int_equal(engine_write(e, mine, W + Z, b8), 0);
		memcpy(f->model + b8, mine, W + Z);
	}

	assert_int_equal(engine_flush(e), 0);
	verify_through_engine(f);
	verify_units(f);
	free(buf);
	free(ar);
}

/* ---- flushes on the caller's ring --------------------------------------- */

/* Run a mapped flush's fsyncs as the caller's ring would; their results in @res. */
static void run_mapped_flush(const struct engine_aio *ar, int *res)
{
	for (unsigned i = 0; i < ar->n; i++) {
		assert_true(ar->io[i].fsync);
		assert_int_equal(ar->io[i].len, 0);
		res[i] = fdatasync(ar->io[i].fd) < 0 ? -errno : 0;
	}
}

/* A mapped flush's end as the caller's loop and worker do it. */
static int flush_end(struct rt_engine *e, struct engine_aio *ar, const int *res)
{
	engine_flush_unmap(e, ar, res);
	return engine_flush_done(e, ar, res);
}

/*
 * engine_flush_map: one fdatasync per unit holding data; all succeed: the
 * flush is counted, nothing else. One fails with EIO: that unit is failed
 * at once (a writeback error is reported once) and the flush still
 * succeeds from the others (raid5 spares one); the next flush leaves the
 * failed unit out. One never submitted: flushed synchronously, nobody
 * failed. Out of space: -ENOSPC, the unit stays. Two units gone: -EAGAIN
 * (engine_flush says -EIO).
 */
static void test_engine_flush_map(void **state)
{
	struct fixture *f = *state;
	struct rt_engine *e = f->e;
	struct engine_aio *ar = calloc(1, sizeof(*ar));
	struct rt_engine_stats before, after;
	int res[ENGINE_AIO_MAX];
	uint32_t n = f->tc->n;

	skip_without_root();
	assert_non_null(e);
	assert_non_null(ar);

	engine_get_stats(e, &before);
	assert_int_equal(engine_flush_map(e, ar), 0);
	assert_int_equal(ar->n, n);
	run_mapped_flush(ar, res);
	assert_int_equal(flush_end(e, ar, NULL), 0);
	engine_get_stats(e, &after);
	assert_int_equal(after.flushes - before.flushes, 1);
	assert_int_equal(after.errors - before.errors, 0);
	/* The same @ar mapped for a read next (a ring entry's): no fsync left in it. */
	{
		uint8_t *b = NULL;

		assert_int_equal(posix_memalign((void **)&b, 4096, 65536), 0);
		assert_int_equal(engine_read_map(e, b, 65536, 0, ar), 0);
		for (unsigned i = 0; i < ar->n; i++)
			assert_false(ar->io[i].fsync);
		engine_aio_unmap(e, ar, false);
		free(b);
	}

	/*
	 * Role 1's fsync fails, but another unit took role 1 before the
	 * error is judged (a spare): the old unit's error is not charged to
	 * it, the role is flushed again.
	 */
	assert_int_equal(engine_flush_map(e, ar), 0);
	run_mapped_flush(ar, res);
	res[1] = -EIO;
	engine_flush_unmap(e, ar, res);
	atomic_fetch_add(&e->unit_gen[1], 1);
	assert_int_equal(engine_flush_done(e, ar, res), 0);
	assert_int_equal(engine_faulty(e), 0);

	/* Role 1's fsync fails: faulty now, the flush succeeds from the others. */
	assert_int_equal(engine_flush_map(e, ar), 0);
	run_mapped_flush(ar, res);
	res[1] = -EIO;
	assert_int_equal(flush_end(e, ar, res), 0);
	assert_true(engine_faulty(e) & role_bit(1));
	engine_get_stats(e, &after);
	assert_int_equal(after.flushes - before.flushes, 3);
	assert_int_equal(after.unit[1].errors - before.unit[1].errors, 1);
	assert_int_equal(engine_flush_map(e, ar), 0);
	assert_int_equal(ar->n, n - 1);
	for (unsigned i = 0; i < ar->n; i++)
		assert_int_not_equal(ar->io[i].role, 1);

	/* Never submitted: the flush is done on this thread, nobody is failed. */
	run_mapped_flush(ar, res);
	res[0] = -ECANCELED;
	assert_int_equal(flush_end(e, ar, res), 0);
	assert_int_equal(engine_faulty(e), role_bit(1));

	/* Out of space: the unit stays, the flush says so. */
	assert_int_equal(engine_flush_map(e, ar), 0);
	run_mapped_flush(ar, res);
	res[0] = -ENOSPC;
	assert_int_equal(flush_end(e, ar, res), -ENOSPC);
	assert_int_equal(engine_faulty(e), role_bit(1));
	assert_true(engine_nospace(e) & role_bit(ar->io[0].role));

	/* A second unit gone: the array cannot hold its data, engine_flush says -EIO. */
	assert_int_equal(engine_mark_faulty(e, 2, false), 0);
	assert_int_equal(engine_flush_map(e, ar), -EAGAIN);
	assert_int_equal(engine_flush(e), -EIO);
	free(ar);
}

/* ---- writes before the initial sync ------------------------------------ */

/*
 * raid5 on used disks, no region synced yet: single-block writes (which a
 * synced array does by read-modify-write) must leave their rows with parity
 * that matches the data, so that a role failing afterwards reconstructs
 * every written block. raid1: reads come from one mirror, the resync's
 * source, and written blocks survive the other's failure.
 */
static void test_engine_unsynced(void **state)
{
	struct fixture *f = *state;
	const struct engine_case *tc = f->tc;
	uint64_t seed = 0xabcdefull, nblk, i, k, done = 0;
	uint64_t sizes[RT_MAX_UNITS];
	enum { WRITES = 200 };
	uint64_t at[WRITES];
	uint8_t *blk = NULL, *row = NULL, *seen;
	struct layout l;
	uint32_t r;

	skip_without_root();
	assert_non_null(f->e);
	for (r = 0; r < tc->n; r++)
		sizes[r] = f->sb.slots[r].data_size;
	assert_int_equal(layout_init(&l, tc->level, tc->n, tc->chunk, sizes), 0);
	nblk = f->size / 4096;
	seen = calloc(nblk, 1);
	/* Aligned: the units are open with O_DIRECT. */
	assert_int_equal(posix_memalign((void **)&blk, 4096, (size_t)WRITES * 4096), 0);
	assert_int_equal(posix_memalign((void **)&row, 4096, 4096 * (size_t)(tc->n + 1)), 0);
	assert_non_null(seen);
	while (done < WRITES) {
		k = rng_below(&seed, nblk);
		if (seen[k])
			continue;
		seen[k] = 1;
		at[done] = k * 4096;
		rng_fill(&seed, blk + done * 4096, 4096);
		assert_int_equal(engine_write(f->e, blk + done * 4096, 4096, at[done]), 0);
		done++;
	}
	assert_int_equal(engine_flush(f->e), 0);
	if (tc->level == RT_LEVEL_1) {
		/*
		 * Copies differ where nothing was written: a read is served by
		 * the mirror the resync copies from (role 0), every time.
		 */
		for (i = 0; i < WRITES; i++) {
			k = rng_below(&seed, nblk);
			assert_int_equal(engine_read(f->e, row, 4096, k * 4096), 0);
			unit_read_data(f, 0, k * 4096, row + 4096, 4096);
			if (memcmp(row, row + 4096, 4096))
				fail_msg("%s: block %llu not read from the resync source",
					 tc->name, (unsigned long long)k);
		}
		goto failed_role;
	}
	for (i = 0; i < WRITES; i++) {
		struct layout_extent ext;
		void *src[RT_MAX_UNITS];

		assert_int_equal(layout_map(&l, at[i], 4096, &ext), 0);
		for (r = 0; r < tc->n; r++) {
			unit_read_data(f, r, ext.offset, row + (size_t)r * 4096, 4096);
			src[r] = row + (size_t)r * 4096;
		}
		if (memcmp(row + (size_t)ext.role * 4096, blk + i * 4096, 4096))
			fail_msg("%s: block at %llu not on role %u", tc->name,
				 (unsigned long long)at[i], ext.role);
		/* XOR of data and parity of a consistent row: zero. */
		assert_int_equal(parity_xor(row + (size_t)tc->n * 4096, src, tc->n, 4096), 0);
		for (k = 0; k < 4096; k++)
			if (row[(size_t)tc->n * 4096 + k])
				fail_msg("%s: parity of the row of array offset %llu (role offset "
					 "%llu) does not match its data after a write into an "
					 "unsynced region", tc->name, (unsigned long long)at[i],
					 (unsigned long long)ext.offset);
	}
failed_role:
	/* And what that is for: with a role gone, every written block reads back. */
	assert_int_equal(engine_fail_role(f->e, 1), 0);
	for (i = 0; i < WRITES; i++) {
		assert_int_equal(engine_read(f->e, row, 4096, at[i]), 0);
		if (memcmp(row, blk + i * 4096, 4096))
			fail_msg("%s: block at %llu wrong with role 1 failed", tc->name,
				 (unsigned long long)at[i]);
	}
	free(seen);
	free(blk);
	free(row);
}

/* ---- failures while running ------------------------------------------ */

struct fail_log {
	_Atomic unsigned calls;
	_Atomic uint32_t last_role;
	_Atomic uint64_t roles;
};

static void on_failure(uint32_t role, void *ctx)
{
	struct fail_log *fl = ctx;

	atomic_fetch_add(&fl->calls, 1);
	atomic_store(&fl->last_role, role);
	atomic_fetch_or(&fl->roles, 1ull << role);
	usleep(20000);	/* a slow superblock update: others must wait for it */
}

struct failer {
	struct rt_engine *e;
	uint32_t role;
	unsigned delay_us;
	int ret;
};

static void *failer_main(void *arg)
{
	struct failer *fl = arg;

	usleep(fl->delay_us);
	fl->ret = engine_fail_role(fl->e, fl->role);
	return NULL;
}

/* Every chunk of the array: served and equal to the model, or -EIO when its role is gone. */
static void verify_partial(struct fixture *f)
{
	const struct engine_case *tc = f->tc;
	uint64_t role_size[RT_MAX_UNITS] = { 0 }, off;
	uint8_t *buf = malloc(tc->chunk);
	unsigned served = 0, failed = 0;
	struct layout l;
	uint32_t r;

	assert_non_null(buf);
	for (r = 0; r < tc->n; r++)
		role_size[r] = f->sb.slots[r].data_size;
	assert_int_equal(layout_init(&l, tc->level, tc->n, tc->chunk, role_size), 0);
	for (off = 0; off + tc->chunk <= f->size; off += tc->chunk) {
		struct layout_extent ext;
		int ret = engine_read(f->e, buf, tc->chunk, off);
		bool gone;

		assert_int_equal(layout_map(&l, off, tc->chunk, &ext), 0);
		gone = tc->level == RT_LEVEL_1 ? (f->faulty + 1) >> tc->n : (f->faulty >> ext.role) & 1;
		if (gone) {
			if (ret != -EIO)
				fail_msg("%s: read of a lost chunk at %llu: %d", tc->name,
					 (unsigned long long)off, ret);
			failed++;
			continue;
		}
		if (ret || memcmp(buf, f->model + off, tc->chunk))
			fail_msg("%s: chunk at %llu on a working role: %s", tc->name,
				 (unsigned long long)off, ret ? strerror(-ret) : "differs from the model");
		served++;
	}
	print_message("# %s: %u chunks served, %u lost\n", tc->name, served, failed);
	free(buf);
}

static void test_engine_failure(void **state)
{
	struct fixture *f = *state;
	const struct engine_case *tc = f->tc;
	uint64_t seed = 0xfa11ull + tc->chunk + tc->n;
	struct fail_log fl = { 0 };
	struct failer fr = { 0 };
	pthread_t th;
	uint8_t *buf;
	bool redundant = tc->level == RT_LEVEL_1 || tc->level == RT_LEVEL_5;
	uint32_t victim = tc->n - 1, second = 0;

	skip_without_root();
	assert_non_null(f->e);
	engine_set_failure_handler(f->e, on_failure, &fl);
	assert_int_equal(engine_fail_role(f->e, tc->n), -EINVAL);
	assert_int_equal(engine_fail_role_spared(f->e, tc->n), -EINVAL);
	if (!redundant) {
		/* `raidtool fail` leaves alone a role the level cannot spare. */
		assert_int_equal(engine_fail_role_spared(f->e, victim), -EEXIST);
		assert_int_equal(atomic_load(&fl.calls), 0);
		assert_int_equal(engine_state(f->e), RT_ENGINE_OK);
	}

	/* Healthy writes first, then a role fails in the middle of a busy round. */
	random_writes(f, seed, 20);
	{
		struct round rd = { .base = MIB, .span = 8 * MIB, .cell = 3 * 4096 + 300,
				    .threads = 8, .flusher = redundant };

		fr.e = f->e;
		fr.role = victim;
		fr.delay_us = 30000;
		assert_int_equal(pthread_create(&th, NULL, failer_main, &fr), 0);
		if (redundant) {
			run_round(f, &rd, seed + 1);	/* no error may reach the writers */
		} else {
			usleep(100000);
		}
		pthread_join(th, NULL);
	}
	assert_int_equal(fr.ret, 0);
	assert_int_equal(atomic_load(&fl.calls), 1);
	assert_int_equal(atomic_load(&fl.last_role), victim);
	assert_int_equal(engine_fail_role(f->e, victim), -EALREADY);
	assert_int_equal(atomic_load(&fl.calls), 1);
	f->faulty |= 1ull << victim;
	assert_int_equal(engine_role_state(f->e, victim), RT_ROLE_FAULTY);

	if (redundant) {
		/* Degraded: more writes, everything reads back, parity covers the lost role. */
		assert_int_equal(engine_state(f->e), RT_ENGINE_DEGRADED);
		random_writes(f, seed + 2, 30);
		verify_through_engine(f);
		assert_int_equal(engine_flush(f->e), 0);
		verify_units(f);
		/* raid1 x2 loses its last mirror, raid5 a second role. */
		second = tc->level == RT_LEVEL_1 ? 0 : 1;
		assert_int_equal(engine_fail_role_spared(f->e, second), -EEXIST);
		assert_int_equal(atomic_load(&fl.calls), 1);
		assert_int_equal(engine_state(f->e), RT_ENGINE_DEGRADED);
		assert_int_equal(engine_fail_role(f->e, second), 0);
		assert_int_equal(atomic_load(&fl.calls), 2);
		f->faulty |= 1ull << second;
		assert_int_equal(engine_state(f->e), RT_ENGINE_FAILED);
	} else {
		assert_int_equal(engine_state(f->e), RT_ENGINE_FAILED);
	}

	/* Beyond tolerance: writes stop (raid1/5) or fail where the role is needed. */
	buf = calloc(1, tc->chunk);
	assert_non_null(buf);
	{
		/* About 64 chunks spread over the whole array (linear: over every role). */
		uint64_t off, k = f->size / tc->chunk / 64 + 1, step;
		unsigned ok = 0, eio = 0;

		while (k % tc->n == 0)
			k++;	/* raid0: visit every role */
		step = k * tc->chunk;

		for (off = 0; off + tc->chunk <= f->size; off += step) {
			int ret;

			memset(buf, (int)(off / tc->chunk), tc->chunk);
			ret = engine_write(f->e, buf, tc->chunk, off);
			if (ret == 0) {
				memcpy(f->model + off, buf, tc->chunk);
				ok++;
			} else {
				assert_int_equal(ret, -EIO);
				eio++;
			}
		}
		if (redundant)
			assert_int_equal(ok, 0);
		else
			assert_true(ok > 0 && eio > 0);
	}
	free(buf);
	assert_int_equal(engine_flush(f->e), -EIO);
	verify_partial(f);
}

struct ctl_failer {
	struct fixture *f;
	unsigned delay_us;
	int ret;
};

static void *ctl_failer_main(void *arg)
{
	struct ctl_failer *cf = arg;

	usleep(cf->delay_us);
	cf->ret = faultyfs_ctl(cf->f, "fail rw");
	return NULL;
}

/* A real unit I/O error mid-workload: nothing reaches the writers. */
static void test_engine_ioerror(void **state)
{
	struct fixture *f = *state;
	const struct engine_case *tc = f->tc;
	uint32_t victim = tc->faultyfs - 1;
	struct round rd = { .base = MIB, .span = 8 * MIB, .cell = 3 * 4096 + 300,
			    .threads = 8, .flusher = true };
	struct ctl_failer cf = { .f = f, .delay_us = 30000 };
	struct fail_log fl = { 0 };
	struct rt_engine_stats st;
	unsigned during;
	pthread_t th;

	skip_without_root();
	assert_non_null(f->e);
	engine_set_failure_handler(f->e, on_failure, &fl);
	random_writes(f, 0x10e7, 10);
	assert_int_equal(atomic_load(&fl.calls), 0);

	assert_int_equal(pthread_create(&th, NULL, ctl_failer_main, &cf), 0);
	run_round(f, &rd, 0x10e8);
	pthread_join(th, NULL);
	assert_int_equal(cf.ret, 0);
	during = atomic_load(&fl.calls);
	/* Should the round have ended first, these writes meet the dead unit. */
	random_writes(f, 0x10e9, 40);
	print_message("# %s: unit failed %s the busy round\n", tc->name,
		      during ? "during" : "after");
	assert_int_equal(atomic_load(&fl.calls), 1);
	assert_int_equal(atomic_load(&fl.last_role), victim);
	f->faulty = 1ull << victim;
	assert_int_equal(engine_state(f->e), RT_ENGINE_DEGRADED);
	engine_get_stats(f->e, &st);
	assert_true(st.unit[victim].errors > 0);
	assert_int_equal(st.faulty_mask, f->faulty);

	verify_through_engine(f);
	assert_int_equal(engine_flush(f->e), 0);
	verify_units(f);
	assert_int_equal(atomic_load(&fl.calls), 1);
}

/* ---- completions and submissions no real unit gives on demand ---------- */

enum fault_mode { FAULT_NONE, FAULT_SHORT, FAULT_AGAIN, FAULT_ZERO };

struct fault_state {
	_Atomic int mode;
	_Atomic int left;		/* completions still to rewrite */
	_Atomic int rewritten;
	_Atomic int role;		/* FAULT_ZERO: only writes to this role */
	_Atomic int submit_err;		/* the next submissions fail with it */
	_Atomic int submit_left;
	_Atomic int submits_failed;
};

static int fault_io_result(void *arg, int op, uint32_t role, uint32_t len, int res)
{
	struct fault_state *fs = arg;
	int mode = atomic_load(&fs->mode);

	if (mode == FAULT_NONE || res <= 0 || op == 2 || atomic_load(&fs->left) <= 0)
		return res;
	switch (mode) {
	case FAULT_SHORT:
		/* Half, in whole blocks: the rest must be asked for again (O_DIRECT). */
		if (len < 8192 || (uint32_t)res != len)
			return res;
		res = (int)((len / 2) & ~4095u);
		break;
	case FAULT_AGAIN:
		res = atomic_load(&fs->rewritten) % 2 ? -EINTR : -EAGAIN;
		break;
	case FAULT_ZERO:
		if (op != 1 || (int)role != atomic_load(&fs->role))
			return res;
		res = 0;
		break;
	}
	atomic_fetch_sub(&fs->left, 1);
	atomic_fetch_add(&fs->rewritten, 1);
	return res;
}

static int fault_submit(void *arg)
{
	struct fault_state *fs = arg;

	if (atomic_load(&fs->submit_left) <= 0)
		return 0;
	atomic_fetch_sub(&fs->submit_left, 1);
	atomic_fetch_add(&fs->submits_failed, 1);
	return atomic_load(&fs->submit_err);
}

static void expect_no_errors(struct fixture *f, uint64_t faulty)
{
	struct rt_engine_stats st;

	engine_get_stats(f->e, &st);
	assert_int_equal(st.faulty_mask, faulty);
	if (!faulty)
		assert_int_equal(st.errors, 0);
}

/*
 * Short transfers, -EAGAIN/-EINTR and zero-byte completions (rewritten by a
 * fault hook: a loop device never shows them, it completes short reads
 * itself), and io_uring submissions that fail: data verifies throughout.
 */
static void test_engine_faults(void **state)
{
	struct fixture *f = *state;
	struct fault_state fs = { 0 };
	struct engine_fault_hooks h = { .io_result = fault_io_result, .submit = fault_submit,
					.arg = &fs };
	uint8_t *buf = NULL, *back = NULL;
	int ret;

	skip_without_root();
	assert_non_null(f->e);
	engine_set_fault_hooks(f->e, &h);
	assert_int_equal(posix_memalign((void **)&buf, 4096, MIB), 0);
	assert_int_equal(posix_memalign((void **)&back, 4096, MIB), 0);

	/* Short transfers: the rest is asked for again, nothing fails. */
	atomic_store(&fs.left, 400);
	atomic_store(&fs.mode, FAULT_SHORT);
	random_writes(f, 0x5407, 40);
	verify_through_engine(f);
	assert_true(atomic_load(&fs.rewritten) > 0);
	expect_no_errors(f, 0);

	/* -EAGAIN and -EINTR: tried again, no error, no unit failed. */
	atomic_store(&fs.mode, FAULT_NONE);
	atomic_store(&fs.rewritten, 0);
	atomic_store(&fs.left, 300);
	atomic_store(&fs.mode, FAULT_AGAIN);
	random_writes(f, 0xa6a1, 30);
	verify_through_engine(f);
	assert_true(atomic_load(&fs.rewritten) > 0);
	expect_no_errors(f, 0);
	atomic_store(&fs.mode, FAULT_NONE);

	/* A failed submission that is only busy: submitted again, transparently. */
	atomic_store(&fs.submit_err, -EBUSY);
	atomic_store(&fs.submit_left, 5);
	rng_fill(&(uint64_t){ 77 }, buf, MIB);
	assert_int_equal(engine_write(f->e, buf, MIB, 3 * MIB), 0);
	memcpy(f->model + 3 * MIB, buf, MIB);
	assert_int_equal(atomic_load(&fs.submits_failed), 5);
	assert_int_equal(engine_read(f->e, back, MIB, 3 * MIB), 0);
	assert_memory_equal(back, buf, MIB);
	expect_no_errors(f, 0);

	/*
	 * The ring refuses (-ENOMEM): the request fails, no unit is blamed,
	 * the context gets a fresh ring and the same write then works.
	 */
	atomic_store(&fs.submit_err, -ENOMEM);
	atomic_store(&fs.submit_left, 1);
	rng_fill(&(uint64_t){ 78 }, buf, MIB);
	ret = engine_write(f->e, buf, MIB, 5 * MIB);
	assert_int_not_equal(ret, 0);
	print_message("# a write whose submission failed with ENOMEM: %s\n", strerror(-ret));
	assert_int_equal(engine_state(f->e), RT_ENGINE_OK);
	for (unsigned i = 0; i < 2 * ENGINE_TEST_CONTEXTS; i++)
		assert_int_equal(engine_write(f->e, buf, MIB, 5 * MIB), 0);
	memcpy(f->model + 5 * MIB, buf, MIB);
	atomic_store(&fs.submit_left, 1);
	ret = engine_read(f->e, back, MIB, 5 * MIB);
	assert_int_not_equal(ret, 0);
	assert_int_equal(engine_read(f->e, back, MIB, 5 * MIB), 0);
	assert_memory_equal(back, buf, MIB);
	verify_through_engine(f);
	{
		struct rt_engine_stats st;

		engine_get_stats(f->e, &st);
		assert_int_equal(st.faulty_mask, 0);
	}

	/* A write that completes with 0 bytes: the unit ends there; it is failed. */
	atomic_store(&fs.role, 1);
	atomic_store(&fs.rewritten, 0);
	atomic_store(&fs.left, 1);
	atomic_store(&fs.mode, FAULT_ZERO);
	random_writes(f, 0x2e60, 20);
	assert_int_equal(atomic_load(&fs.rewritten), 1);
	atomic_store(&fs.mode, FAULT_NONE);
	f->faulty = 1ull << 1;
	expect_no_errors(f, f->faulty);
	assert_int_equal(engine_state(f->e), RT_ENGINE_DEGRADED);
	verify_through_engine(f);
	assert_int_equal(engine_flush(f->e), 0);
	verify_units(f);
	engine_set_fault_hooks(f->e, NULL);
	free(buf);
	free(back);
}

#define MIBS(...) { __VA_ARGS__ }
static const struct engine_case cases[] = {
	{ "linear 64K, unequal units", RT_LEVEL_LINEAR, 3, 64 * 1024, MIBS(24, 40, 33), 0, 0 },
	{ "linear 512K, unequal units", RT_LEVEL_LINEAR, 3, 512 * 1024, MIBS(40, 24, 36), 0, 0 },
	{ "raid0 x3 64K", RT_LEVEL_0, 3, 64 * 1024, MIBS(32, 32, 32), 0, 0 },
	{ "raid0 x3 512K", RT_LEVEL_0, 3, 512 * 1024, MIBS(32, 32, 33), 0, 0 },
	{ "raid1 x2 64K", RT_LEVEL_1, 2, 64 * 1024, MIBS(40, 40), 0, 0 },
	{ "raid1 x2 512K", RT_LEVEL_1, 2, 512 * 1024, MIBS(40, 41), 0, 0 },
	{ "raid5 x3 64K", RT_LEVEL_5, 3, 64 * 1024, MIBS(32, 32, 32), 0, 0 },
	{ "raid5 x3 512K", RT_LEVEL_5, 3, 512 * 1024, MIBS(32, 32, 32), 0, 0 },
	{ "raid5 x5 64K", RT_LEVEL_5, 5, 64 * 1024, MIBS(24, 24, 24, 24, 24), 0, 0 },
	{ "raid5 x5 512K", RT_LEVEL_5, 5, 512 * 1024, MIBS(24, 24, 25, 24, 24), 0, 0 },
	/* Degraded starts: one role without a unit from the beginning. */
	{ "raid5 x3 64K, role 1 missing", RT_LEVEL_5, 3, 64 * 1024, MIBS(32, 32, 32), 1u << 1, 0 },
	{ "raid5 x5 64K, role 4 missing", RT_LEVEL_5, 5, 64 * 1024, MIBS(24, 24, 24, 24, 24),
	  1u << 4, 0 },
	{ "raid5 x5 512K, role 0 missing", RT_LEVEL_5, 5, 512 * 1024, MIBS(24, 24, 24, 24, 24),
	  1u << 0, 0 },
	{ "raid1 x2 64K, role 0 missing", RT_LEVEL_1, 2, 64 * 1024, MIBS(40, 40), 1u << 0, 0 },
};

#define ENGINE_TEST(i) \
	{ cases[i].name, test_engine_level, fixture_setup, fixture_teardown, (void *)&cases[i] }

static const struct engine_case fail_cases[] = {
	{ "fail: raid5 x3 64K", RT_LEVEL_5, 3, 64 * 1024, MIBS(24, 24, 24), 0, 0 },
	{ "fail: raid5 x5 64K", RT_LEVEL_5, 5, 64 * 1024, MIBS(16, 16, 16, 16, 16), 0, 0 },
	{ "fail: raid1 x2 64K", RT_LEVEL_1, 2, 64 * 1024, MIBS(24, 24), 0, 0 },
	{ "fail: raid0 x3 64K", RT_LEVEL_0, 3, 64 * 1024, MIBS(16, 16, 16), 0, 0 },
	{ "fail: linear 64K", RT_LEVEL_LINEAR, 3, 64 * 1024, MIBS(8, 12, 8), 0, 0 },
};

static const struct engine_case ioerror_cases[] = {
	{ "I/O error: raid5 x3 64K, role 1 on rt-faultyfs", RT_LEVEL_5, 3, 64 * 1024,
	  MIBS(24, 24, 24), 0, 2 },
	{ "I/O error: raid1 x2 64K, role 0 on rt-faultyfs", RT_LEVEL_1, 2, 64 * 1024,
	  MIBS(24, 24), 0, 1 },
};

static const struct engine_case unsynced_cases[] = {
	{ "unsynced: raid5 x5 64K, used disks", RT_LEVEL_5, 5, 64 * 1024, MIBS(16, 16, 16, 16, 16),
	  0, 0 },
	{ "unsynced: raid5 x4 512K, used disks", RT_LEVEL_5, 4, 512 * 1024, MIBS(16, 16, 16, 16),
	  0, 0 },
	{ "unsynced: raid1 x2 64K, used disks", RT_LEVEL_1, 2, 64 * 1024, MIBS(16, 16), 0, 0 },
};

static const struct engine_case ring_rounds_case = {
	"ring rounds: raid5 x4 4K, a large write given up goes in rounds, a failed one redone",
	RT_LEVEL_5, 4, 4 * 1024, MIBS(16, 16, 16, 16), 0, 0
};

static const struct engine_case ring_degraded_case = {
	"ring degraded: raid5 x4 64K, a faulty role's reads rebuilt and writes planned on the ring",
	RT_LEVEL_5, 4, 64 * 1024, MIBS(16, 16, 16, 16), 0, 0
};

static const struct engine_case ring_gather_case = {
	"ring gather: raid5 x4 64K, small mapped writes offered to a gathering holder",
	RT_LEVEL_5, 4, 64 * 1024, MIBS(16, 16, 16, 16), 0, 0
};

static const struct engine_case fault_case = {
	"faults: raid5 x3 64K, short, EAGAIN, zero-byte completions, failed submissions",
	RT_LEVEL_5, 3, 64 * 1024, MIBS(24, 24, 24), 0, 0
};

#define FAIL_TEST(i) \
	{ fail_cases[i].name, test_engine_failure, fixture_setup, fixture_teardown, \
	  (void *)&fail_cases[i] }

int main(void)
{
	const struct CMUnitTest tests[] = {
		ENGINE_TEST(0), ENGINE_TEST(1), ENGINE_TEST(2), ENGINE_TEST(3), ENGINE_TEST(4),
		ENGINE_TEST(5), ENGINE_TEST(6), ENGINE_TEST(7), ENGINE_TEST(8), ENGINE_TEST(9),
		ENGINE_TEST(10), ENGINE_TEST(11), ENGINE_TEST(12), ENGINE_TEST(13),
		FAIL_TEST(0), FAIL_TEST(1), FAIL_TEST(2), FAIL_TEST(3), FAIL_TEST(4),
		{ ioerror_cases[0].name, test_engine_ioerror, fixture_setup, fixture_teardown,
		  (void *)&ioerror_cases[0] },
		{ ioerror_cases[1].name, test_engine_ioerror, fixture_setup, fixture_teardown,
		  (void *)&ioerror_cases[1] },
		{ fault_case.name, test_engine_faults, fixture_setup, fixture_teardown,
		  (void *)&fault_case },
		{ ring_gather_case.name, test_engine_ring_gather, fixture_setup, fixture_teardown,
		  (void *)&ring_gather_case },
		{ "ring gather: raid5 x4 64K, large writes queued with their part offered",
		  test_engine_ring_gather_large, fixture_setup, fixture_teardown,
		  (void *)&ring_gather_case },
		{ "ring hold: raid5 x4 64K, a write holds its stripes on the ring and gathers",
		  test_engine_ring_hold, fixture_setup, fixture_teardown, (void *)&ring_gather_case },
		{ "ring redo: raid5 x4 64K, a round of writes that failed in part is redone, locked",
		  test_engine_ring_redo, fixture_setup, fixture_teardown, (void *)&ring_gather_case },
		{ ring_degraded_case.name, test_engine_ring_degraded, fixture_setup,
		  fixture_teardown, (void *)&ring_degraded_case },
		{ "degraded raid5 x4 64K: a write refused -EAGAIN on the parity is put back",
		  test_engine_degraded_rmw_kept_role, fixture_setup, fixture_teardown,
		  (void *)&ring_degraded_case },
		{ ring_rounds_case.name, test_engine_ring_rounds, fixture_setup, fixture_teardown,
		  (void *)&ring_rounds_case },
		{ "flush on the caller's ring: raid5 x4 64K", test_engine_flush_map, fixture_setup,
		  fixture_teardown, (void *)&ring_gather_case },
		{ unsynced_cases[0].name, test_engine_unsynced, unsynced_setup, fixture_teardown,
		  (void *)&unsynced_cases[0] },
		{ unsynced_cases[1].name, test_engine_unsynced, unsynced_setup, fixture_teardown,
		  (void *)&unsynced_cases[1] },
		{ unsynced_cases[2].name, test_engine_unsynced, unsynced_setup, fixture_teardown,
		  (void *)&unsynced_cases[2] },
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
