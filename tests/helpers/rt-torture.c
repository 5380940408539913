// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * rt-torture: the workload and the model of the torture run (tests/bats/torture.bats,
 * in the manner of ZFS's ztest).
 *
 *   rt-torture init   [--seed S] DEVICE STATE       a model of DEVICE, every block unwritten
 *   rt-torture write  [--seed S] [--seconds T] [--threads N] [--sync-pct P]
 *                     [--fsync-pct P] DEVICE STATE  random writes, kept in the model
 *   rt-torture fill   DEVICE STATE                  every block written once more, O_SYNC
 *   rt-torture verify DEVICE STATE                  every block checked against the model
 *   rt-torture ops    STATE                         writes made so far (for the driver)
 *
 * The model block is the device's logical block size (the array's block size). Block B's
 * content at generation G is derived from (content seed, B, G): a header naming them,
 * then a PRNG stream; generation 0 is the unwritten block, all zeros. So the model is a
 * few numbers per block, kept in STATE (a file mapped shared, which survives the kill of
 * any process):
 *
 *   acked   A: the generation the block is known to hold: written and then made durable
 *              (an O_SYNC write returned, or an fsync returned after the write did), or
 *              found by the last verify;
 *   floor   F, issued W: the generations in (F, W] were issued after A was settled; a
 *              write that was in flight (or returned but not yet made durable) when the
 *              engine was killed may or may not be on the units.
 *
 * A block must hold A or a generation in (F, W]: never an older one, never another
 * block's, never garbage. R, the last generation whose write returned, is kept too:
 * a block found older than R lost a write that returned but was not yet made durable,
 * which the model allows (only a flush acknowledges) and verify counts, since a
 * write-through engine should lose none of those to a kill either. verify settles each block on what it found (A = found,
 * F = W), so a later verify tells a lost write from a stale copy coming back.
 *
 * Each writer thread owns the extents (1 MiB each) whose number is its own modulo the
 * thread count, so no two writes to one block race (whose result the model could not
 * know), while neighbouring extents, and so the stripes they share, are written
 * concurrently. Writes are aligned to the block, of random length within one extent.
 * A thread also reads back ranges of its own blocks at random: they must hold exactly
 * what it wrote last (returned writes are visible whether durable or not).
 *
 * Exit status: 0 the model holds; 1 a block differs from the model (a bug); 2 usage
 * or setup error; 3 an I/O error on DEVICE (expected when the engine was killed: the
 * driver tells). The seed is printed so that a run can be replayed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STATE_MAGIC 0x52544d4f44454c31ull	/* "RTMODEL1" */
#define BLOCK_MAGIC 0x5254544f52545552ull	/* "RTTORTUR" */
#define EXTENT_BYTES (1u << 20)
#define MAX_THREADS 16
#define MAX_REPORTS 20

enum { EXIT_OK = 0, EXIT_MISMATCH = 1, EXIT_USAGE = 2, EXIT_IO = 3 };

/* The head of STATE; the generation arrays follow, each n_blocks long. */
struct model_head {
	uint64_t magic;
	uint64_t n_blocks;
	uint64_t block_size;
	uint64_t content_seed;
	_Atomic uint64_t ops;		/* writes made by every run so far */
};

#define HEAD_BYTES 4096u
#define MODEL_ARRAYS 4u		/* acked, floor, issued, returned */

/* What a block's first bytes say about it. */
struct block_header {
	uint64_t magic;
	uint64_t content_seed;
	uint64_t block;
	uint64_t gen;
};

static struct {
	struct model_head *head;
	uint32_t *acked, *floor, *issued, *returned;
	size_t map_bytes;
	uint64_t n_blocks;
	unsigned bs;
	int fd, sync_fd;
	/* write options */
	uint64_t seed;
	unsigned seconds, threads, sync_pct, fsync_pct;
	atomic_int stop;
	atomic_int io_error;		/* errno of the first failed I/O */
	atomic_int mismatch;
	pthread_mutex_t report_lock;
	unsigned reports;
	_Atomic uint64_t writes, bytes, fsyncs, readbacks;
} t = { .seconds = 5, .threads = 4, .sync_pct = 20, .fsync_pct = 5,
	.report_lock = PTHREAD_MUTEX_INITIALIZER };

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A uniform number in [0, n). */
static uint64_t below(uint64_t *rng, uint64_t n)
{
	return n ? splitmix64(rng) % n : 0;
}

/* Block @b's content at generation @gen into @buf (one block). */
static void fill_block(uint8_t *buf, uint64_t b, uint32_t gen)
{
	struct block_header h = { BLOCK_MAGIC, t.head->content_seed, b, gen };
	uint64_t x = t.head->content_seed ^ (b * 0xd6e8feb86659fd93ull) ^
		     ((uint64_t)gen << 32 | gen);

	if (!gen) {
		memset(buf, 0, t.bs);
		return;
	}
	memcpy(buf, &h, sizeof(h));
	for (unsigned i = sizeof(h); i < t.bs; i += 8) {
		uint64_t v = splitmix64(&x);

		memcpy(buf + i, &v, 8);
	}
}

static int all_zero(const uint8_t *buf, unsigned len)
{
	for (unsigned i = 0; i < len; i++)
		if (buf[i])
			return 0;
	return 1;
}

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void report(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&t.report_lock);
	if (t.reports++ < MAX_REPORTS) {
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		fflush(stdout);
	}
	pthread_mutex_unlock(&t.report_lock);
}

/*
 * The generation block @b's bytes @buf hold, or -1 when they are no block's content at
 * any generation of this model; @why then says what they are.
 */
static int64_t found_gen(const uint8_t *buf, uint64_t b, uint8_t *scratch, char *why, size_t len)
{
	struct block_header h;

	if (all_zero(buf, t.bs))
		return 0;
	memcpy(&h, buf, sizeof(h));
	if (h.magic != BLOCK_MAGIC || h.content_seed != t.head->content_seed) {
		snprintf(why, len, "garbage (no torture header)");
		return -1;
	}
	if (h.block != b) {
		snprintf(why, len, "the content of block %" PRIu64 " gen %" PRIu64
			 " (misplaced)", h.block, h.gen);
		return -1;
	}
	if (h.gen > UINT32_MAX) {
		snprintf(why, len, "a header with gen %" PRIu64, h.gen);
		return -1;
	}
	fill_block(scratch, b, (uint32_t)h.gen);
	if (memcmp(scratch, buf, t.bs)) {
		unsigned i = 0;

		while (scratch[i] == buf[i])
			i++;
		snprintf(why, len, "gen %" PRIu64 "'s header with other bytes from byte %u (torn)",
			 h.gen, i);
		return -1;
	}
	return (int64_t)h.gen;
}

static int open_model(const char *path, int create, uint64_t n_blocks, unsigned bs)
{
	size_t bytes = HEAD_BYTES + MODEL_ARRAYS * n_blocks * sizeof(uint32_t);
	struct stat st;
	int fd, rc = -1;
	void *map;

	fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0600);
	if (fd < 0) {
		fprintf(stderr, "rt-torture: '%s': %s\n", path, strerror(errno));
		return -1;
	}
	if (create && ftruncate(fd, (off_t)bytes) < 0) {
		fprintf(stderr, "rt-torture: '%s': %s\n", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0 || (size_t)st.st_size < HEAD_BYTES) {
		fprintf(stderr, "rt-torture: '%s': not a model\n", path);
		goto out;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		fprintf(stderr, "rt-torture: '%s': %s\n", path, strerror(errno));
		goto out;
	}
	t.head = map;
	t.map_bytes = (size_t)st.st_size;
	if (create) {
		t.head->magic = STATE_MAGIC;
		t.head->n_blocks = n_blocks;
		t.head->block_size = bs;
	}
	if (t.head->magic != STATE_MAGIC ||
	    t.map_bytes < HEAD_BYTES + MODEL_ARRAYS * t.head->n_blocks * sizeof(uint32_t)) {
		fprintf(stderr, "rt-torture: '%s': not a model\n", path);
		goto out;
	}
	t.n_blocks = t.head->n_blocks;
	t.acked = (uint32_t *)((uint8_t *)map + HEAD_BYTES);
	t.floor = t.acked + t.n_blocks;
	t.issued = t.floor + t.n_blocks;
	t.returned = t.issued + t.n_blocks;
	rc = 0;
out:
	close(fd);
	return rc;
}

/* Open DEVICE for direct I/O and learn its block size and length in blocks. */
static int open_device(const char *dev, uint64_t *n_blocks, unsigned *bs)
{
	uint64_t bytes;
	int ssz;

	t.fd = open(dev, O_RDWR | O_DIRECT | O_CLOEXEC);
	t.sync_fd = open(dev, O_RDWR | O_DIRECT | O_SYNC | O_CLOEXEC);
	if (t.fd < 0 || t.sync_fd < 0) {
		fprintf(stderr, "rt-torture: '%s': %s\n", dev, strerror(errno));
		return -1;
	}
	if (ioctl(t.fd, BLKSSZGET, &ssz) < 0 || ioctl(t.fd, BLKGETSIZE64, &bytes) < 0) {
		fprintf(stderr, "rt-torture: '%s': not a block device: %s\n", dev, strerror(errno));
		return -1;
	}
	*bs = (unsigned)ssz;
	*n_blocks = bytes / (unsigned)ssz;
	return 0;
}

/* The generation block @b holds for its owner, who wrote it last (or not at all). */
static uint32_t current_gen(uint64_t b)
{
	return t.issued[b] > t.floor[b] ? t.issued[b] : t.acked[b];
}

static void io_failed(const char *what, uint64_t b, ssize_t n)
{
	int err = n < 0 ? errno : EIO;
	int expected = 0;

	if (atomic_compare_exchange_strong(&t.io_error, &expected, err))
		printf("rt-torture: %s at block %" PRIu64 " failed: %s\n", what, b,
		       n < 0 ? strerror(err) : "short transfer");
	atomic_store(&t.stop, 1);
}

/* Read blocks [b, b + n) back: each must hold exactly what its owner wrote last. */
static int read_back(uint8_t *buf, uint8_t *scratch, uint64_t b, unsigned n)
{
	ssize_t len = (ssize_t)n * t.bs, got;
	char why[160];

	got = pread(t.fd, buf, (size_t)len, (off_t)(b * t.bs));
	if (got != len) {
		io_failed("read", b, got);
		return -1;
	}
	atomic_fetch_add(&t.readbacks, 1);
	for (unsigned i = 0; i < n; i++) {
		uint32_t want = current_gen(b + i);
		int64_t g = found_gen(buf + (size_t)i * t.bs, b + i, scratch, why, sizeof(why));

		if (g == want)
			continue;
		if (g >= 0)
			snprintf(why, sizeof(why), "gen %" PRId64, g);
		report("MISMATCH read-back block %" PRIu64 ": holds %s, its writer's last write "
		       "was gen %u (acked %u)\n", b + i, why, want, t.acked[b + i]);
		atomic_store(&t.mismatch, 1);
		atomic_store(&t.stop, 1);
		return -1;
	}
	return 0;
}

/* How many blocks one write covers: mostly small, sometimes a whole extent. */
static unsigned write_length(uint64_t *rng, unsigned extent_blocks)
{
	uint64_t r = below(rng, 100), kib = (r < 45) ? 0 : (r < 80) ? 64 : (r < 95) ? 256 : 1024;
	unsigned max = kib ? (unsigned)(kib * 1024 / t.bs) : 1;

	if (max > extent_blocks)
		max = extent_blocks;
	return 1 + (unsigned)below(rng, max);
}

/*
 * New generations are issued only on a settled model: a write of unknown fate
 * (the engine was killed) must first be found out by verify.
 */
static int model_settled(void)
{
	for (uint64_t b = 0; b < t.n_blocks; b++)
		if (t.floor[b] != t.issued[b]) {
			fprintf(stderr, "rt-torture: block %" PRIu64 " has writes of unknown fate: "
				"verify first\n", b);
			return 0;
		}
	return 1;
}

struct writer {
	pthread_t tid;
	unsigned index;
	uint64_t *pending;	/* blocks written since this thread's last fsync */
	size_t n_pending, cap_pending;
};

static int pend(struct writer *w, uint64_t b, unsigned n)
{
	if (w->n_pending + n > w->cap_pending) {
		size_t cap = (w->cap_pending + n) * 2;
		uint64_t *p = realloc(w->pending, cap * sizeof(*p));

		if (!p)
			return -1;
		w->pending = p;
		w->cap_pending = cap;
	}
	for (unsigned i = 0; i < n; i++)
		w->pending[w->n_pending++] = b + i;
	return 0;
}

/* The fsync returned: what this thread wrote before it is durable. */
static void settle_pending(struct writer *w)
{
	for (size_t i = 0; i < w->n_pending; i++) {
		uint64_t b = w->pending[i];

		t.acked[b] = t.floor[b] = t.issued[b];
	}
	w->n_pending = 0;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	unsigned extent_blocks = EXTENT_BYTES / t.bs;
	uint64_t n_extents = (t.n_blocks + extent_blocks - 1) / extent_blocks;
	uint64_t owned = w->index < n_extents ?
			 (n_extents - w->index + t.threads - 1) / t.threads : 0;
	uint64_t rng = t.seed * 0x2545f4914f6cdd1dull + w->index + 1;
	uint8_t *buf = NULL, *scratch = NULL;

	if (posix_memalign((void **)&buf, 4096, EXTENT_BYTES) ||
	    posix_memalign((void **)&scratch, 4096, t.bs)) {
		io_failed("allocation", 0, -1);
		goto out;
	}
	while (!atomic_load(&t.stop) && owned) {
		uint64_t e = w->index + below(&rng, owned) * t.threads;
		uint64_t first = e * extent_blocks, room = t.n_blocks - first;
		unsigned n = write_length(&rng, room < extent_blocks ? (unsigned)room : extent_blocks);
		uint64_t b = first + below(&rng, (room < extent_blocks ? room : extent_blocks) - n + 1);
		int sync = below(&rng, 100) < t.sync_pct;
		ssize_t len = (ssize_t)n * t.bs, done;

		if (below(&rng, 100) < 10) {
			if (read_back(buf, scratch, b, n))
				break;
			continue;
		}
		/* Issued before it is made: the units may hold it from now on. */
		for (unsigned i = 0; i < n; i++) {
			t.issued[b + i]++;
			fill_block(buf + (size_t)i * t.bs, b + i, t.issued[b + i]);
		}
		done = pwrite(sync ? t.sync_fd : t.fd, buf, (size_t)len, (off_t)(b * t.bs));
		if (done != len) {
			io_failed("write", b, done);
			break;
		}
		atomic_fetch_add(&t.head->ops, 1);
		atomic_fetch_add(&t.writes, 1);
		atomic_fetch_add(&t.bytes, (uint64_t)len);
		for (unsigned i = 0; i < n; i++)
			t.returned[b + i] = t.issued[b + i];
		if (sync) {
			for (unsigned i = 0; i < n; i++)
				t.acked[b + i] = t.floor[b + i] = t.issued[b + i];
		} else if (pend(w, b, n)) {
			io_failed("allocation", b, -1);
			break;
		}
		if (below(&rng, 100) < t.fsync_pct) {
			if (fsync(t.fd) < 0) {
				io_failed("fsync", b, -1);
				break;
			}
			atomic_fetch_add(&t.fsyncs, 1);
			settle_pending(w);
		}
	}
out:
	free(buf);
	free(scratch);
	return NULL;
}

static int cmd_write(void)
{
	struct writer w[MAX_THREADS] = { 0 };
	struct timespec end;
	unsigned i;
	int rc = EXIT_OK;

	if (!model_settled())
		return EXIT_USAGE;
	printf("rt-torture write: seed %" PRIu64 ", %u s, %u threads, %u blocks of %u bytes\n",
	       t.seed, t.seconds, t.threads, (unsigned)t.n_blocks, t.bs);
	fflush(stdout);
	for (i = 0; i < t.threads; i++) {
		w[i].index = i;
		if (pthread_create(&w[i].tid, NULL, writer_main, &w[i])) {
			fprintf(stderr, "rt-torture: cannot start a thread\n");
			atomic_store(&t.stop, 1);
			t.threads = i;
			rc = EXIT_USAGE;
			break;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += t.seconds;
	while (!atomic_load(&t.stop) &&
	       clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &end, NULL) == EINTR)
		;
	atomic_store(&t.stop, 1);
	for (i = 0; i < t.threads; i++)
		pthread_join(w[i].tid, NULL);
	/* Half the runs end with a flush: the rest leave writes not yet durable. */
	if (rc == EXIT_OK && !atomic_load(&t.io_error) && !atomic_load(&t.mismatch) &&
	    (splitmix64(&t.seed) & 1)) {
		if (fsync(t.fd) < 0) {
			io_failed("final fsync", 0, -1);
		} else {
			atomic_fetch_add(&t.fsyncs, 1);
			for (i = 0; i < t.threads; i++)
				settle_pending(&w[i]);
		}
	}
	for (i = 0; i < t.threads; i++)
		free(w[i].pending);
	printf("rt-torture write: %" PRIu64 " writes, %" PRIu64 " KiB, %" PRIu64 " fsyncs, %"
	       PRIu64 " read-backs\n", atomic_load(&t.writes), atomic_load(&t.bytes) >> 10,
	       atomic_load(&t.fsyncs), atomic_load(&t.readbacks));
	if (atomic_load(&t.mismatch))
		return EXIT_MISMATCH;
	if (atomic_load(&t.io_error))
		return EXIT_IO;
	return rc;
}

/* Every block written once more, in order, each write durable when it returns. */
static int cmd_fill(void)
{
	uint64_t chunk = EXTENT_BYTES / t.bs;
	uint8_t *buf = NULL;
	int rc = EXIT_OK;

	if (!model_settled() || posix_memalign((void **)&buf, 4096, EXTENT_BYTES))
		return EXIT_USAGE;
	for (uint64_t b = 0; b < t.n_blocks; b += chunk) {
		uint64_t n = t.n_blocks - b < chunk ? t.n_blocks - b : chunk;
		ssize_t done;

		for (uint64_t i = 0; i < n; i++) {
			t.issued[b + i]++;
			fill_block(buf + i * t.bs, b + i, t.issued[b + i]);
		}
		done = pwrite(t.sync_fd, buf, n * t.bs, (off_t)(b * t.bs));
		if (done != (ssize_t)(n * t.bs)) {
			io_failed("fill", b, done);
			rc = EXIT_IO;
			goto out;
		}
		atomic_fetch_add(&t.head->ops, 1);
		for (uint64_t i = 0; i < n; i++)
			t.acked[b + i] = t.floor[b + i] = t.returned[b + i] = t.issued[b + i];
	}
	printf("rt-torture fill: %" PRIu64 " blocks written\n", t.n_blocks);
out:
	free(buf);
	return rc;
}

static int cmd_verify(void)
{
	uint64_t chunk = EXTENT_BYTES / t.bs, errors = 0, in_flight = 0, lost = 0, written = 0;
	uint64_t returned_lost = 0;
	uint8_t *buf = NULL, *scratch = NULL;
	char why[160];
	int rc = EXIT_OK;

	if (posix_memalign((void **)&buf, 4096, EXTENT_BYTES) ||
	    posix_memalign((void **)&scratch, 4096, t.bs))
		return EXIT_USAGE;
	for (uint64_t b = 0; b < t.n_blocks; b += chunk) {
		uint64_t n = t.n_blocks - b < chunk ? t.n_blocks - b : chunk;
		ssize_t got = pread(t.fd, buf, n * t.bs, (off_t)(b * t.bs));

		if (got != (ssize_t)(n * t.bs)) {
			io_failed("verify read", b, got);
			rc = EXIT_IO;
			goto out;
		}
		for (uint64_t i = 0; i < n; i++) {
			uint64_t blk = b + i;
			uint32_t a = t.acked[blk], f = t.floor[blk], w = t.issued[blk];
			int64_t g = found_gen(buf + i * t.bs, blk, scratch, why, sizeof(why));

			if (g >= 0 && (g == a || (g > f && g <= w))) {
				written += g > 0;
				in_flight += g != a;
				lost += g == a && w > f;
				returned_lost += g < t.returned[blk];
				t.acked[blk] = t.returned[blk] = (uint32_t)g;
				t.floor[blk] = w;
				continue;
			}
			if (g >= 0)
				snprintf(why, sizeof(why), "gen %" PRId64, g);
			errors++;
			report("MISMATCH block %" PRIu64 " (byte %" PRIu64 "): holds %s; the model "
			       "allows gen %u%s or (%u, %u]\n", blk, blk * t.bs, why, a,
			       a ? "" : " (unwritten)", f, w);
		}
	}
	printf("rt-torture verify: %" PRIu64 " blocks, %" PRIu64 " written, %" PRIu64
	       " holding a write that was in flight, %" PRIu64 " without one (not durable), %"
	       PRIu64 " without a write that had returned (not durable either), %" PRIu64
	       " wrong\n", t.n_blocks, written, in_flight, lost, returned_lost, errors);
	if (errors)
		rc = EXIT_MISMATCH;
out:
	free(buf);
	free(scratch);
	return rc;
}

static void usage(void)
{
	fprintf(stderr, "usage: rt-torture init [--seed S] DEVICE STATE\n"
		"       rt-torture write [--seed S] [--seconds T] [--threads N] [--sync-pct P]"
		" [--fsync-pct P] DEVICE STATE\n"
		"       rt-torture fill DEVICE STATE\n"
		"       rt-torture verify DEVICE STATE\n"
		"       rt-torture ops STATE\n");
}

static int parse_uint(const char *arg, const char *what, uint64_t min, uint64_t max,
		      uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(arg, &end, 0);
	if (errno || end == arg || *end || *out < min || *out > max) {
		fprintf(stderr, "rt-torture: --%s '%s': not a number from %" PRIu64 " to %" PRIu64
			"\n", what, arg, min, max);
		return -1;
	}
	return 0;
}

/* The numeric options besides --seed, in the order of main's option table. */
static const struct num_opt {
	const char *name;
	unsigned min, max;
	unsigned *value;
} num_opts[] = {
	{ "seconds", 0, 86400, &t.seconds },
	{ "threads", 1, MAX_THREADS, &t.threads },
	{ "sync-pct", 0, 100, &t.sync_pct },
	{ "fsync-pct", 0, 100, &t.fsync_pct },
};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seed", required_argument, NULL, 's' },
		{ "seconds", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 'n' },
		{ "sync-pct", required_argument, NULL, 'n' },
		{ "fsync-pct", required_argument, NULL, 'n' },
		{ 0 }
	};
	const struct num_opt *no;
	uint64_t v, n_blocks;
	unsigned bs;
	const char *cmd;
	int c, index;

	while ((c = getopt_long(argc, argv, "", opts, &index)) != -1) {
		switch (c) {
		case 's':
			if (parse_uint(optarg, "seed", 0, UINT64_MAX, &t.seed))
				return EXIT_USAGE;
			break;
		case 'n':
			no = &num_opts[index - 1];
			if (parse_uint(optarg, no->name, no->min, no->max, &v))
				return EXIT_USAGE;
			*no->value = (unsigned)v;
			break;
		default:
			usage();
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage();
		return EXIT_USAGE;
	}
	cmd = argv[optind++];
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(cmd, "ops") && argc - optind == 1) {
		if (open_model(argv[optind], 0, 0, 0))
			return EXIT_USAGE;
		printf("%" PRIu64 "\n", atomic_load(&t.head->ops));
		return EXIT_OK;
	}
	if (argc - optind != 2 || (strcmp(cmd, "init") && strcmp(cmd, "write") &&
				   strcmp(cmd, "fill") && strcmp(cmd, "verify"))) {
		usage();
		return EXIT_USAGE;
	}
	if (open_device(argv[optind], &n_blocks, &bs) ||
	    open_model(argv[optind + 1], !strcmp(cmd, "init"), n_blocks, bs))
		return EXIT_USAGE;
	if (!strcmp(cmd, "init")) {
		t.head->content_seed = t.seed;
		printf("rt-torture init: %" PRIu64 " blocks of %u bytes, content seed %" PRIu64
		       "\n", n_blocks, bs, t.seed);
		return EXIT_OK;
	}
	if (t.n_blocks != n_blocks || t.head->block_size != bs) {
		fprintf(stderr, "rt-torture: '%s' has %" PRIu64 " blocks of %u bytes, the model "
			"%" PRIu64 " of %" PRIu64 "\n", argv[optind], n_blocks, bs, t.n_blocks,
			t.head->block_size);
		return EXIT_USAGE;
	}
	t.bs = bs;
	if (!strcmp(cmd, "write"))
		return cmd_write();
	return !strcmp(cmd, "fill") ? cmd_fill() : cmd_verify();
}
