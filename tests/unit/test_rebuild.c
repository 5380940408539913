/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Background walks on loop devices: recover onto a fresh unit while
 * writers run, cancel and resume from the checkpoint, check/repair after
 * corrupting stripes behind the engine's back. Every role's bytes are
 * checked against an in-memory model and an XOR computed here.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <raidtool/dirtylog.h>
#include <raidtool/engine.h>
#include <raidtool/format.h>
#include <raidtool/layout.h>
#include <raidtool/rebuild.h>
#include <raidtool/unit.h>

#define MIB (1ull << 20)
#define NU 4			/* units incl. the spare */
#define UNIT_MIB 40
#define CHUNK (64u * 1024u)	/* the fixture's chunk unless a test sets fx_chunk */

struct fx {
	int32_t level;
	uint32_t n;
	uint32_t chunk;
	char dir[64];
	char path[NU][96];
	struct rt_unit *unit[NU];
	struct rt_sb sb;
	struct rt_engine *e;
	uint64_t size, role_bytes;
	uint8_t *model;
	/* walk callbacks */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int done_calls, done_result;
	uint32_t done_role;
	uint64_t ckpt[64];
	unsigned n_ckpt;
};

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

static void rng_fill(uint64_t *s, uint8_t *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)(rng_next(s) >> 32);
}

static int open_unit(struct fx *f, unsigned i, bool garbage)
{
	int fd, ret;

	snprintf(f->path[i], sizeof(f->path[i]), "%s/u%u.img", f->dir, i);
	fd = open(f->path[i], O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -errno;
	ret = ftruncate(fd, (off_t)(UNIT_MIB * MIB));
	if (!ret && garbage) {
		/* A spare that held something else: the rebuild must overwrite it all. */
		uint8_t *b = malloc(MIB);
		uint64_t s = 77 + i, off;

		for (off = 0; b && off < UNIT_MIB * MIB; off += MIB) {
			rng_fill(&s, b, MIB);
			if (pwrite(fd, b, MIB, (off_t)off) != (ssize_t)MIB)
				ret = -1;
		}
		free(b);
	}
	close(fd);
	if (ret)
		return -EIO;
	return unit_open(f->path[i], RT_UNIT_ATTACH | RT_UNIT_WRITE | RT_UNIT_EXCL | RT_UNIT_DIRECT,
			 &f->unit[i]);
}

/*
 * A loop host for the walks' pieces, as lib/fuse.c's queues are one: a
 * thread running each piece's rounds with pread/pwrite. Every fail_every-th
 * read round and every fail_every-th write round (0: none) are reported
 * failed without their I/O, so that the walk's thread must do that part
 * itself.
 */
struct test_host {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct engine_walk_piece *q[16];
	unsigned head, n, fail_every;
	unsigned rounds[2];		/* read rounds, write rounds */
	bool stop, running;
	pthread_t th;
	struct engine_aio ar;
};

static struct test_host the_host;
/* The next fixture's walks: -1 on their own rings, else on the_host failing every Nth round of a kind. */
static int fx_host_fail = -1;

static bool host_submit(void *arg, struct engine_walk_piece *wp)
{
	struct test_host *h = arg;
	bool ok;

	pthread_mutex_lock(&h->mu);
	ok = h->n < 16;
	if (ok)
		h->q[(h->head + h->n++) % 16] = wp;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->mu);
	return ok;
}

static bool host_round(struct test_host *h)
{
	unsigned i, w = h->ar.n && h->ar.io[0].write;

	if (h->fail_every && ++h->rounds[w] % h->fail_every == 0)
		return false;
	for (i = 0; i < h->ar.n; i++) {
		const struct engine_unit_io *io = &h->ar.io[i];
		ssize_t r = io->write ? pwrite(io->fd, io->buf, io->len, (off_t)io->off) :
					pread(io->fd, io->buf, io->len, (off_t)io->off);

		if (r != (ssize_t)io->len)
			return false;
	}
	return true;
}

static void *host_main(void *arg)
{
	struct test_host *h = arg;

	for (;;) {
		struct engine_walk_piece *wp;
		bool ok = true;

		pthread_mutex_lock(&h->mu);
		while (!h->n && !h->stop)
			pthread_cond_wait(&h->cond, &h->mu);
		if (!h->n) {
			pthread_mutex_unlock(&h->mu);
			return NULL;
		}
		wp = h->q[h->head];
		h->head = (h->head + 1) % 16;
		h->n--;
		pthread_mutex_unlock(&h->mu);
		while (engine_walk_piece_step(wp, ok, &h->ar) > 0)
			ok = host_round(h);
	}
}

static void host_stop(struct test_host *h)
{
	if (!h->running)
		return;
	pthread_mutex_lock(&h->mu);
	h->stop = true;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->th, NULL);
	h->running = false;
}

static int fx_engine(struct fx *f)
{
	struct test_host *h = &the_host;
	int r = engine_create(&f->sb, f->unit, f->n, &f->e);

	if (r || fx_host_fail < 0)
		return r;
	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cond, NULL);
	h->fail_every = (unsigned)fx_host_fail;
	if (pthread_create(&h->th, NULL, host_main, h))
		return -1;
	h->running = true;
	engine_set_loop_host(f->e, &(struct engine_loop_host){ host_submit, h });
	return 0;
}

/*
 * Where the walks' pieces ran: on the host when there is one (all of them
 * when it fails no round and, @all, no piece has copies that differ), on
 * their own rings too when it fails rounds; and the failed rounds' work
 * was redone (the caller checks the bytes).
 */
static void fx_check_host(struct fx *f, bool all)
{
	struct rt_engine_stats st;

	engine_get_stats(f->e, &st);
	if (!the_host.running) {
		assert_int_equal(st.walk_loop_pieces, 0);
		assert_true(st.walk_own_pieces > 0);
		return;
	}
	assert_true(st.walk_loop_pieces > 0);
	if (the_host.fail_every)
		assert_true(st.walk_own_pieces > 0);
	else if (all)
		assert_int_equal(st.walk_own_pieces, 0);
	else	/* only pieces whose copies differ (a scrub's) are settled on the thread */
		assert_true(st.walk_own_pieces < st.walk_loop_pieces);
	/* Failed rounds of both kinds, where there are writes on the host (not a scrub's). */
	if (the_host.fail_every)
		assert_true(the_host.rounds[0] >= the_host.fail_every &&
			    (!all || the_host.rounds[1] >= the_host.fail_every));
}

/* The chunk of the next fixture (recover_case sets it for its own). */
static uint32_t fx_chunk = CHUNK;

/*
 * The test's fixture: static, not on its stack, so that fx_cleanup can
 * still undo it after a failed assertion. fx_live: set up, not torn down.
 */
static struct fx the_fx;
static struct fx *fx_live;

static int fx_setup(struct fx *f, int32_t level, uint32_t n)
{
	uint64_t rs[RT_MAX_UNITS] = { 0 };
	struct rt_geometry g;
	struct layout l;
	uint32_t r;

	memset(f, 0, sizeof(*f));
	fx_live = f;
	f->level = level;
	f->n = n;
	f->chunk = fx_chunk;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cond, NULL);
	strcpy(f->dir, "/tmp/raidtool-rebuild.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	for (r = 0; r < n; r++) {
		if (open_unit(f, r, false))
			return -1;
		if (sb_geometry(unit_size(f->unit[r]), f->chunk, &g))
			return -1;
		f->sb.unit.data_offset = g.data_offset;
		f->sb.unit.data_size = g.data_size;
		f->sb.unit.log_offset = g.log_offset;
		f->sb.unit.log_size = g.log_size;
		f->sb.slots[r].data_size = g.data_size;
		f->sb.slots[r].state = RT_SLOT_ACTIVE;
		rs[r] = g.data_size;
	}
	f->sb.version = RT_SB_VERSION;
	f->sb.events = 5;
	f->sb.array.level = level;
	f->sb.array.chunk_size = f->chunk;
	f->sb.array.blocksize = 4096;
	f->sb.array.n_devices = n;
	f->sb.array.n_slots = n;
	f->sb.array.region_size = 4 * MIB;
	if (layout_init(&l, level, n, f->chunk, rs))
		return -1;
	f->sb.array.nblocks = l.size / 4096;
	f->role_bytes = l.unit_size / f->chunk * f->chunk;
	if (fx_engine(f))
		return -1;
	f->size = engine_size(f->e);
	f->model = calloc(1, f->size);
	return f->model ? 0 : -1;
}

static void fx_teardown(struct fx *f)
{
	unsigned i;

	engine_destroy(f->e);	/* a walk cancelled there still hands pieces to the host */
	host_stop(&the_host);
	for (i = 0; i < NU; i++) {
		if (f->unit[i])
			unit_close(f->unit[i]);
		if (f->path[i][0])
			unlink(f->path[i]);
	}
	if (f->dir[0])
		rmdir(f->dir);
	free(f->model);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cond);
	fx_live = NULL;
}

/*
 * After every test, also one whose assertion failed (cmocka jumps out of
 * it): what it left set up goes, loop devices first, rather than staying
 * attached on the machine.
 */
static int fx_cleanup(void **state)
{
	fx_host_fail = -1;
	if (fx_live)
		fx_teardown(fx_live);
	return 0;
}

static bool skip_without_root(void)
{
	const char *req = getenv("RAIDTOOL_TEST_REQUIRE_ROOT");

	if (geteuid() == 0 && access("/dev/loop-control", F_OK) == 0)
		return false;
	if (req && !strcmp(req, "1"))
		fail_msg("needs root and loop devices");
	return true;
}

/* ---- writers ---------------------------------------------------------- */

#define CELL (192u * 1024u + 512u)	/* crosses stripes, not block multiples */
#define WRITERS 3

struct writer {
	struct fx *f;
	unsigned idx;
	atomic_bool *stop;
	unsigned max_rounds;
	int err;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct fx *f = w->f;
	uint64_t s = 1000 + w->idx, cells = f->size / CELL, i;
	uint8_t *buf = malloc(CELL);
	unsigned round = 0;

	while (buf && !atomic_load(w->stop) && (!w->max_rounds || round < w->max_rounds)) {
		for (i = w->idx; i < cells && !atomic_load(w->stop); i += WRITERS * 7) {
			uint64_t off = i * CELL + rng_next(&s) % (CELL / 2);
			uint64_t len = 1 + rng_next(&s) % (CELL / 2 - 1);
			int ret;

			rng_fill(&s, buf, len);
			ret = engine_write(f->e, buf, len, off);
			if (ret) {
				w->err = ret;
				goto out;
			}
			memcpy(f->model + off, buf, len);	/* cells are per thread */
		}
		round++;
	}
out:
	free(buf);
	return NULL;
}

static void fill_all(struct fx *f, uint64_t seed)
{
	uint64_t s = seed, off;
	uint8_t *b = malloc(MIB);

	assert_non_null(b);
	for (off = 0; off < f->size; off += MIB) {
		uint64_t len = f->size - off < MIB ? f->size - off : MIB;

		rng_fill(&s, b, len);
		assert_int_equal(engine_write(f->e, b, len, off), 0);
		memcpy(f->model + off, b, len);
	}
	free(b);
}

/* ---- verification ------------------------------------------------------ */

static void read_role(struct fx *f, uint32_t r, uint64_t off, uint8_t *buf, size_t len)
{
	ssize_t got = pread(unit_fd(f->unit[r]), buf, len, (off_t)(f->sb.unit.data_offset + off));

	if (got != (ssize_t)len)
		fail_msg("pread unit %u at %llu", r, (unsigned long long)off);
}

/* Every role's bytes: raid1 mirrors equal the model; raid5 data chunks and parity. */
static void verify_roles(struct fx *f)
{
	uint8_t *ch[NU], *x = NULL;
	uint64_t off, i;
	uint32_t r, n = f->n;

	for (r = 0; r < n; r++)
		assert_int_equal(posix_memalign((void **)&ch[r], 4096, f->chunk), 0);
	assert_int_equal(posix_memalign((void **)&x, 4096, f->chunk), 0);
	for (off = 0; off < f->role_bytes; off += f->chunk) {
		uint64_t s = off / f->chunk;

		for (r = 0; r < n; r++)
			read_role(f, r, off, ch[r], f->chunk);
		if (f->level == RT_LEVEL_1) {
			for (r = 0; r < n; r++)
				if (off < f->size && memcmp(ch[r], f->model + off,
							    f->size - off < f->chunk ? f->size - off : f->chunk))
					fail_msg("raid1 unit %u chunk %llu differs from the model", r,
						 (unsigned long long)s);
		} else {
			uint32_t p = (n - 1) - (uint32_t)(s % n), k;

			memset(x, 0, f->chunk);
			for (k = 0; k < n - 1; k++) {
				uint32_t dr = (p + 1 + k) % n;
				uint64_t lg = (s * (n - 1) + k) * f->chunk;

				if (lg < f->size && memcmp(ch[dr], f->model + lg,
							   f->size - lg < f->chunk ? f->size - lg : f->chunk))
					fail_msg("raid5 stripe %llu data %u on unit %u differs",
						 (unsigned long long)s, k, dr);
				for (i = 0; i < f->chunk; i++)
					x[i] ^= ch[dr][i];
			}
			if (memcmp(x, ch[p], f->chunk))
				fail_msg("raid5 stripe %llu: parity on unit %u is not the XOR",
					 (unsigned long long)s, p);
		}
	}
	for (r = 0; r < n; r++)
		free(ch[r]);
	free(x);
}

static void verify_engine(struct fx *f)
{
	uint8_t *b = malloc(MIB);
	uint64_t off;

	assert_non_null(b);
	for (off = 0; off < f->size; off += MIB) {
		uint64_t len = f->size - off < MIB ? f->size - off : MIB;

		assert_int_equal(engine_read(f->e, b, len, off), 0);
		if (memcmp(b, f->model + off, len))
			fail_msg("engine read at %llu differs from the model", (unsigned long long)off);
	}
	free(b);
}

/* ---- walk callbacks ---------------------------------------------------- */

static void on_ckpt(uint32_t role, uint64_t offset, void *ctx)
{
	struct fx *f = ctx;

	(void)role;
	pthread_mutex_lock(&f->mu);
	if (f->n_ckpt < 64)
		f->ckpt[f->n_ckpt++] = offset;
	pthread_mutex_unlock(&f->mu);
}

static void on_done(int kind, uint32_t role, int result, void *ctx)
{
	struct fx *f = ctx;

	(void)kind;
	pthread_mutex_lock(&f->mu);
	f->done_calls++;
	f->done_result = result;
	f->done_role = role;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
}

static int wait_done(struct fx *f, int calls)
{
	int r;

	pthread_mutex_lock(&f->mu);
	while (f->done_calls < calls)
		pthread_cond_wait(&f->cond, &f->mu);
	r = f->done_result;
	pthread_mutex_unlock(&f->mu);
	return r;
}

static int start_walk(struct fx *f, int kind, uint32_t role, uint64_t start)
{
	struct rt_walk_params p = {
		.kind = kind, .role = role, .start = start,
		.checkpoint = on_ckpt, .done = on_done, .ctx = f,
	};

	return engine_walk_start(f->e, &p);
}

/* Fail @role, take its unit out and put a fresh, garbage-filled one in (unit NU-1). */
static void replace_role(struct fx *f, uint32_t role)
{
	struct rt_unit *old = NULL;

	assert_int_equal(engine_fail_role(f->e, role), 0);
	assert_int_equal(engine_detach_unit(f->e, role, &old), 0);
	assert_ptr_equal(old, f->unit[role]);
	unit_close(old);
	unlink(f->path[role]);
	f->unit[role] = NULL;
	assert_int_equal(open_unit(f, role, true), 0);
	assert_int_equal(engine_attach_unit(f->e, role, f->unit[role]), 0);
	assert_int_equal(engine_attach_unit(f->e, role, f->unit[role]), -EEXIST);
}

/* ---- tests -------------------------------------------------------------- */

static void recover_case(int32_t level, uint32_t n, uint32_t role, uint32_t chunk)
{
	struct writer w[WRITERS];
	pthread_t th[WRITERS];
	atomic_bool stop = false;
	struct rt_walk_progress pr;
	struct fx *f = &the_fx;
	unsigned i;

	if (skip_without_root())
		skip();
	fx_chunk = chunk;
	assert_int_equal(fx_setup(f, level, n), 0);
	fx_chunk = CHUNK;
	fill_all(f, 11);
	replace_role(f, role);
	assert_int_equal(engine_role_state(f->e, role), RT_ROLE_FAULTY);
	for (i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){ .f = f, .idx = i, .stop = &stop };
		assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
	}
	assert_int_equal(start_walk(f, RT_WALK_RECOVER, role, 0), 0);
	assert_int_equal(start_walk(f, RT_WALK_CHECK, 0, 0), -EBUSY);
	assert_int_equal(wait_done(f, 1), 0);
	usleep(100000);		/* writers on the now active role */
	atomic_store(&stop, true);
	for (i = 0; i < WRITERS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].err, 0);
	}
	assert_int_equal(engine_role_state(f->e, role), RT_ROLE_ACTIVE);
	assert_int_equal(engine_state(f->e), RT_ENGINE_OK);
	engine_walk_progress(f->e, &pr);
	assert_int_equal(pr.kind, RT_WALK_RECOVER);
	assert_false(pr.running);
	assert_int_equal(pr.result, 0);
	assert_int_equal(pr.done, f->role_bytes);
	assert_int_equal(pr.total, f->role_bytes);
	assert_true(f->n_ckpt >= 2);
	assert_int_equal(f->ckpt[f->n_ckpt - 1], f->role_bytes);
	assert_int_equal(engine_flush(f->e), 0);
	verify_engine(f);
	verify_roles(f);
	fx_check_host(f, true);
	fx_teardown(f);
}

/*
 * A checkpoint past the role's share (saved when engines laid the array
 * out on a bigger unit's size): the walk starts, and the share is done.
 */
static void test_recover_checkpoint_past_share(void **state)
{
	struct rt_walk_progress pr;
	struct fx *f = &the_fx;

	(void)state;
	if (skip_without_root())
		skip();
	assert_int_equal(fx_setup(f, RT_LEVEL_1, 2), 0);
	replace_role(f, 1);
	assert_int_equal(start_walk(f, RT_WALK_RECOVER, 1, f->role_bytes + 4 * CHUNK), 0);
	assert_int_equal(wait_done(f, 1), 0);
	engine_walk_progress(f->e, &pr);
	assert_int_equal(pr.result, 0);
	assert_int_equal(pr.total, f->role_bytes);
	assert_int_equal(engine_role_state(f->e, 1), RT_ROLE_ACTIVE);
	fx_teardown(f);
}

static void test_recover_raid1(void **state)
{
	(void)state;
	recover_case(RT_LEVEL_1, 2, 1, CHUNK);
}

static void test_recover_raid5(void **state)
{
	(void)state;
	recover_case(RT_LEVEL_5, 3, 0, CHUNK);
}

/*
 * A chunk bigger than the walk's piece (ENGINE_WALK_STEP, 2 MiB): a stripe
 * is rebuilt in several pieces, one after the other under its lock, while
 * writers go on.
 */
static void test_recover_raid5_big_chunk(void **state)
{
	(void)state;
	recover_case(RT_LEVEL_5, 3, 1, 4u << 20);
}

/*
 * Cancel mid-way, write meanwhile, start a new engine (the role's slot is
 * REBUILDING), resume from the last checkpoint: the walk writes only what
 * lies above it, and the result is whole.
 */
static void test_cancel_resume_raid5(void **state)
{
	struct writer w = { 0 };
	atomic_bool stop = false;
	struct rt_walk_progress pr;
	struct rt_engine_stats st;
	pthread_t th;
	uint64_t ck;
	uint32_t role = 1;
	struct fx *f = &the_fx;

	(void)state;
	if (skip_without_root())
		skip();
	assert_int_equal(fx_setup(f, RT_LEVEL_5, 3), 0);
	fill_all(f, 12);
	replace_role(f, role);
	assert_int_equal(start_walk(f, RT_WALK_RECOVER, role, 0), 0);
	do {
		usleep(2000);
		engine_walk_progress(f->e, &pr);
	} while (pr.running && pr.done < 18 * MIB);
	assert_int_equal(engine_walk_cancel(f->e), 0);
	assert_int_equal(f->done_calls, 1);
	assert_int_equal(f->done_result, -ECANCELED);
	assert_int_equal(f->done_role, role);
	assert_true(f->n_ckpt >= 2);
	ck = f->ckpt[f->n_ckpt - 1];
	assert_true(ck >= 16 * MIB && ck < f->role_bytes);
	assert_int_equal(engine_role_state(f->e, role), RT_ROLE_FAULTY);

	/* Writes between the cancel and the restart land on the unit too. */
	w = (struct writer){ .f = f, .idx = 0, .stop = &stop, .max_rounds = 1 };
	assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
	pthread_join(th, NULL);
	assert_int_equal(w.err, 0);
	assert_int_equal(engine_flush(f->e), 0);
	verify_engine(f);

	engine_destroy(f->e);
	f->e = NULL;
	f->sb.slots[role].state = RT_SLOT_REBUILDING;
	f->sb.slots[role].recovery_offset = ck;
	assert_int_equal(fx_engine(f), 0);
	assert_int_equal(engine_role_state(f->e, role), RT_ROLE_FAULTY);
	assert_int_equal(engine_attach_unit(f->e, role, f->unit[role]), 0);
	f->n_ckpt = 0;
	assert_int_equal(start_walk(f, RT_WALK_RECOVER, role, ck), 0);
	assert_int_equal(wait_done(f, 2), 0);
	engine_get_stats(f->e, &st);
	/* Only what lies above the checkpoint was rebuilt. */
	/* (The dirty log's 4 KiB writes may add a little.) */
	assert_true(st.unit[role].write_bytes >= f->role_bytes - ck &&
		    st.unit[role].write_bytes < f->role_bytes - ck + 64 * 4096);
	assert_int_equal(engine_role_state(f->e, role), RT_ROLE_ACTIVE);
	verify_engine(f);
	verify_roles(f);
	fx_teardown(f);
}

/*
 * engine_replace_finish's commit (where raidtool records the swap in the
 * superblocks): a write started now must not be acknowledged before the
 * swap, as it reaches the new unit alone from then on.
 */
struct swap_probe {
	struct fx *f;
	pthread_t th;
	atomic_bool written;
	int err;
	bool early;
};

static void *swap_writer(void *arg)
{
	struct swap_probe *sp = arg;
	uint8_t buf[4096];

	memset(buf, 0x5a, sizeof(buf));
	sp->err = engine_write(sp->f->e, buf, sizeof(buf), 0);
	memcpy(sp->f->model, buf, sizeof(buf));
	atomic_store(&sp->written, true);
	return NULL;
}

static void swap_commit(void *arg)
{
	struct swap_probe *sp = arg;

	assert_int_equal(pthread_create(&sp->th, NULL, swap_writer, sp), 0);
	usleep(200000);
	sp->early = atomic_load(&sp->written);
}

/*
 * A hot replace records its progress on the way as a rebuild does, not
 * only at its end: a replace that dies (kill -9) resumes from its last
 * checkpoint instead of copying the whole role again. Each checkpoint lies
 * at or below what was copied, and the last is the whole role. At the
 * swap, no write is acknowledged while the superblocks are being written
 * (swap_commit), and one made then lands on the new unit.
 */
static void test_replace_checkpoints(void **state)
{
	struct swap_probe sp = { 0 };
	struct rt_unit *old = NULL;
	uint32_t role = 1;
	struct fx *f = &the_fx;
	unsigned i;

	(void)state;
	if (skip_without_root())
		skip();
	assert_int_equal(fx_setup(f, RT_LEVEL_5, 3), 0);
	fill_all(f, 13);
	assert_int_equal(open_unit(f, NU - 1, true), 0);
	assert_int_equal(engine_replace_start(f->e, role, f->unit[NU - 1]), 0);
	assert_int_equal(start_walk(f, RT_WALK_REPLACE, role, 0), 0);
	assert_int_equal(wait_done(f, 1), 0);
	assert_true(f->n_ckpt >= 2);
	for (i = 1; i < f->n_ckpt; i++)
		assert_true(f->ckpt[i] > f->ckpt[i - 1]);
	assert_true(f->ckpt[0] > 0 && f->ckpt[0] < f->role_bytes);
	assert_int_equal(f->ckpt[f->n_ckpt - 1], f->role_bytes);
	sp.f = f;
	assert_int_equal(engine_replace_finish(f->e, role, &old, swap_commit, &sp), 0);
	pthread_join(sp.th, NULL);
	assert_int_equal(sp.err, 0);
	assert_false(sp.early);
	assert_ptr_equal(old, f->unit[role]);
	unit_close(old);
	f->unit[role] = f->unit[NU - 1];
	f->unit[NU - 1] = NULL;
	verify_engine(f);
	verify_roles(f);
	fx_teardown(f);
}

/*
 * A flush mapped on a ring while a role is being replaced fsyncs the
 * replacement too. Its failure ends the replace and fails no role, judged
 * from the result the ring reported (a writeback error is reported once:
 * the fsync engine_flush_done asks again would succeed). The failure of a
 * replacement whose replace ended since is not charged to the next one.
 */
static void test_replace_mapped_flush(void **state)
{
	struct engine_aio *ar = calloc(1, sizeof(*ar));
	int res[ENGINE_AIO_MAX] = { 0 };
	struct rt_engine_stats st;
	struct fx *f = &the_fx;
	struct rt_unit *u = NULL;
	unsigned i, replicas = 0, at = 0;
	uint32_t role = 1;

	(void)state;
	if (skip_without_root())
		skip();
	assert_non_null(ar);
	assert_int_equal(fx_setup(f, RT_LEVEL_5, 3), 0);
	assert_int_equal(open_unit(f, NU - 1, true), 0);
	assert_int_equal(engine_replace_start(f->e, role, f->unit[NU - 1]), 0);
	assert_int_equal(engine_flush_map(f->e, ar), 0);
	assert_int_equal(ar->n, f->n + 1);
	for (i = 0; i < ar->n; i++) {
		assert_true(ar->io[i].fsync);
		if (!ar->io[i].replica)
			continue;
		replicas++;
		at = i;
		assert_int_equal(ar->io[i].role, role);
		assert_int_equal(ar->io[i].fd, unit_fd(f->unit[NU - 1]));
	}
	assert_int_equal(replicas, 1);
	res[at] = -EIO;
	/*
	 * Noted as the mapping ends, before its worker judges the rest: a
	 * replace's end meanwhile (its last checkpoint's fsync told nothing,
	 * the error reported once) must not swap the replacement in.
	 */
	engine_flush_unmap(f->e, ar, res);
	assert_true(engine_replace_failed(f->e));
	assert_int_equal(engine_replace_finish(f->e, role, &u, NULL, NULL), -EIO);
	assert_null(u);
	assert_int_equal(engine_flush_done(f->e, ar, res), 0);
	engine_get_stats(f->e, &st);
	assert_int_equal(st.faulty_mask, 0);
	assert_int_equal(engine_replace_abort(f->e, &u), 0);
	assert_ptr_equal(u, f->unit[NU - 1]);
	free(ar);
	fx_teardown(f);
}

/* One full stripe of new data at stripe @s (every role written), in the model too. */
static void write_stripe(struct fx *f, uint64_t s, uint64_t *seed)
{
	uint64_t w = (uint64_t)f->chunk * (f->n - 1);
	uint8_t *b = NULL;

	assert_int_equal(posix_memalign((void **)&b, 4096, w), 0);
	rng_fill(seed, b, w);
	assert_int_equal(engine_write(f->e, b, w, s * w), 0);
	memcpy(f->model + s * w, b, w);
	free(b);
}

/*
 * The unit being replaced failed, then its replacement: the role's writes
 * go nowhere (its parity holds them), not to the replacement again and
 * again with retries, while the walk has yet to notice the replace is over.
 */
static void test_replace_both_failed(void **state)
{
	struct rt_engine_stats st;
	struct fx *f = &the_fx;
	struct rt_unit *u = NULL;
	uint64_t seed = 0xb0f4, retries, errors;
	uint8_t *before = NULL, *after = NULL;
	uint32_t role = 1;
	int ro, rw;

	(void)state;
	if (skip_without_root())
		skip();
	assert_int_equal(fx_setup(f, RT_LEVEL_5, 3), 0);
	assert_int_equal(engine_set_retries(f->e, 2, 20), 0);
	write_stripe(f, 0, &seed);
	assert_int_equal(open_unit(f, NU - 1, true), 0);
	assert_int_equal(engine_replace_start(f->e, role, f->unit[NU - 1]), 0);
	assert_int_equal(engine_fail_role(f->e, role), 0);
	/* The unit is opened O_DIRECT: aligned buffers. */
	assert_int_equal(posix_memalign((void **)&before, 4096, UNIT_MIB * MIB), 0);
	assert_int_equal(posix_memalign((void **)&after, 4096, UNIT_MIB * MIB), 0);
	rw = dup(unit_fd(f->unit[NU - 1]));
	ro = open(f->path[NU - 1], O_RDONLY);
	assert_true(ro >= 0 && rw >= 0);
	assert_int_equal(dup2(ro, unit_fd(f->unit[NU - 1])), unit_fd(f->unit[NU - 1]));
	close(ro);

	/* The replacement's write fails, tried again: the replace is given up, not the write. */
	write_stripe(f, 1, &seed);
	assert_true(engine_replace_failed(f->e));
	engine_get_stats(f->e, &st);
	retries = st.unit[role].retries;
	errors = st.errors;
	assert_true(retries > 0);

	/* Writable again, it must still get nothing: the replace is over for the writers. */
	assert_int_equal(dup2(rw, unit_fd(f->unit[NU - 1])), unit_fd(f->unit[NU - 1]));
	close(rw);
	assert_int_equal(pread(unit_fd(f->unit[NU - 1]), before, UNIT_MIB * MIB, 0),
			 (ssize_t)(UNIT_MIB * MIB));
	write_stripe(f, 2, &seed);
	write_stripe(f, 3, &seed);
	assert_int_equal(engine_flush(f->e), 0);
	assert_int_equal(pread(unit_fd(f->unit[NU - 1]), after, UNIT_MIB * MIB, 0),
			 (ssize_t)(UNIT_MIB * MIB));
	if (memcmp(before, after, UNIT_MIB * MIB))
		fail_msg("the failed replacement was written to after its replace failed");
	free(before);
	free(after);
	engine_get_stats(f->e, &st);
	if (st.unit[role].retries != retries || st.errors != errors)
		fail_msg("writes after the replace failed still went to it: %llu retries, "
			 "%llu errors more", (unsigned long long)(st.unit[role].retries - retries),
			 (unsigned long long)(st.errors - errors));
	assert_int_equal(st.faulty_mask, 1ull << role);
	assert_int_equal(engine_flush(f->e), 0);
	assert_int_equal(engine_replace_abort(f->e, &u), 0);
	assert_ptr_equal(u, f->unit[NU - 1]);
	verify_engine(f);
}

/* Damage @count stripes behind the engine: raid1 mirror 1, raid5 the parity chunk. */
static void corrupt(struct fx *f, unsigned count)
{
	uint8_t *b = NULL;
	unsigned i;

	assert_int_equal(posix_memalign((void **)&b, 4096, 4096), 0);
	memset(b, 0x5a, 4096);
	for (i = 0; i < count; i++) {
		uint64_t s = 3 + i * 37;
		/*
		 * raid1: with two mirrors role 1 (a repair keeps role 0's copy),
		 * with three role 0 (the majority's copy must win over it).
		 */
		uint32_t r = f->level == RT_LEVEL_1 ? (f->n == 2) : (f->n - 1) - (uint32_t)(s % f->n);
		uint64_t off = f->sb.unit.data_offset + s * f->chunk + 8192;

		assert_int_equal(pwrite(unit_fd(f->unit[r]), b, 4096, (off_t)off), 4096);
	}
	free(b);
}

/* One walk of @kind at @limit bytes/s (0: none), waited for. */
static void run_walk(struct fx *f, int kind, uint64_t limit, struct rt_walk_progress *pr)
{
	struct rt_walk_params p = {
		.kind = kind, .max_bytes_per_sec = limit, .done = on_done, .ctx = f,
	};
	int calls = f->done_calls;

	assert_int_equal(engine_walk_start(f->e, &p), 0);
	assert_int_equal(wait_done(f, calls + 1), 0);
	engine_walk_progress(f->e, pr);
	assert_int_equal(pr->kind, kind);
	assert_int_equal(pr->result, 0);
	assert_int_equal(pr->done, f->role_bytes);
}

/*
 * With @bad stripes damaged: a check (at @limit bytes/s) finds each once,
 * a repair (the same) fixes them all, a check then finds none, and every
 * byte is as written.
 */
static void scrub_fixes(struct fx *f, uint64_t bad, uint64_t limit)
{
	struct rt_walk_progress pr;

	run_walk(f, RT_WALK_CHECK, limit, &pr);
	assert_int_equal(pr.mismatches, bad);
	assert_int_equal(pr.repaired, 0);
	run_walk(f, RT_WALK_REPAIR, limit, &pr);
	assert_int_equal(pr.mismatches, bad);
	assert_int_equal(pr.repaired, bad);
	assert_int_equal(pr.ties, 0);
	/* Only two mirrors tie; the repair says it kept role 0's copy. */
	assert_int_equal(pr.kept_roles, f->level == RT_LEVEL_1 && f->n == 2 ? 1 : 0);
	run_walk(f, RT_WALK_CHECK, 0, &pr);
	assert_int_equal(pr.mismatches, 0);
	verify_engine(f);
	verify_roles(f);
}

static void check_case(int32_t level, uint32_t n)
{
	struct writer w[WRITERS];
	pthread_t th[WRITERS];
	atomic_bool stop = false;
	struct rt_walk_progress pr;
	struct fx *f = &the_fx;
	unsigned i;

	if (skip_without_root())
		skip();
	assert_int_equal(fx_setup(f, level, n), 0);
	fill_all(f, 13);
	/* A healthy array with writers going on: nothing to find. */
	for (i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){ .f = f, .idx = i, .stop = &stop };
		assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
	}
	run_walk(f, RT_WALK_CHECK, 0, &pr);
	atomic_store(&stop, true);
	for (i = 0; i < WRITERS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].err, 0);
	}
	assert_int_equal(pr.mismatches, 0);
	assert_int_equal(engine_flush(f->e), 0);
	corrupt(f, 5);
	scrub_fixes(f, 5, 0);
	fx_teardown(f);
}

static void test_check_raid1(void **state)
{
	(void)state;
	check_case(RT_LEVEL_1, 2);
}

static void test_check_raid1_majority(void **state)
{
	(void)state;
	check_case(RT_LEVEL_1, 3);
}

static void test_check_raid5(void **state)
{
	(void)state;
	check_case(RT_LEVEL_5, 3);
}

/*
 * A walk's done callback that takes a lock of the caller's (the run's
 * superblock lock): @held is that lock, taken by the test meanwhile.
 */
static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool in_done;

static void on_done_locking(int kind, uint32_t role, int result, void *ctx)
{
	atomic_store(&in_done, true);
	pthread_mutex_lock(&held);
	pthread_mutex_unlock(&held);
	on_done(kind, role, result, ctx);
}

/* on_done_locking, having said first that the walk's outcome is recorded. */
static void on_done_recorded_locking(int kind, uint32_t role, int result, void *ctx)
{
	struct fx *f = ctx;

	engine_walk_outcome_recorded(f->e);
	on_done_locking(kind, role, result, ctx);
}

/*
 * Start walk @p whose done callback waits for @held (taken here): returns
 * once the callback runs (in_done), up to 30 s.
 */
static void start_walk_held(struct fx *f, const struct rt_walk_params *p)
{
	int i;

	atomic_store(&in_done, false);
	pthread_mutex_lock(&held);
	assert_int_equal(engine_walk_start(f->e, p), 0);
	for (i = 0; i < 30000 && !atomic_load(&in_done); i++)
		usleep(1000);
}

/* A written 2-unit raid1 whose first walk @p (its ctx: @f) is held in its done callback. */
static void start_first_walk_held(struct fx *f, struct rt_walk_params *p)
{
	assert_int_equal(fx_setup(f, RT_LEVEL_1, 2), 0);
	fill_all(f, 4);
	p->ctx = f;
	start_walk_held(f, p);
}

static void *start_check(void *arg)
{
	struct fx *f = arg;
	struct rt_walk_params p = { .kind = RT_WALK_CHECK, .done = on_done, .ctx = f };

	return (void *)(intptr_t)engine_walk_start(f->e, &p);
}

struct progress_call {
	struct fx *f;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool returned;
};

static void *read_progress(void *arg)
{
	struct progress_call *pc = arg;
	struct rt_walk_progress pr;

	engine_walk_progress(pc->f->e, &pr);
	pthread_mutex_lock(&pc->mu);
	pc->returned = true;
	pthread_cond_signal(&pc->cond);
	pthread_mutex_unlock(&pc->mu);
	return NULL;
}

/*
 * A walk ended and its done callback waits for a lock a status holds
 * while it asks for the walk's progress; a new walk starting meanwhile
 * joins the ended one's thread without the walk's mutex, so the status
 * gets its answer, lets go, and everything ends (it deadlocked: start
 * held the mutex while joining).
 */
static void test_walk_start_while_done_waits(void **state)
{
	struct progress_call pc = { .mu = PTHREAD_MUTEX_INITIALIZER,
				    .cond = PTHREAD_COND_INITIALIZER };
	struct rt_walk_params p = { .kind = RT_WALK_CHECK, .done = on_done_locking };
	struct rt_walk_progress pr;
	struct fx *f = &the_fx;
	struct timespec ts;
	pthread_t starter, status;
	bool in_time;
	void *res;
	int r = 0;

	(void)state;
	if (skip_without_root())
		skip();
	start_first_walk_held(f, &p);
	assert_true(atomic_load(&in_done));
	/* The second walk's start, then the status (holding @held) asks. */
	assert_int_equal(pthread_create(&starter, NULL, start_check, f), 0);
	usleep(100000);
	pc.f = f;
	assert_int_equal(pthread_create(&status, NULL, read_progress, &pc), 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	pthread_mutex_lock(&pc.mu);
	while (!pc.returned && r == 0)
		r = pthread_cond_timedwait(&pc.cond, &pc.mu, &ts);
	in_time = pc.returned;
	pthread_mutex_unlock(&pc.mu);
	/* Let go in any case, so that a deadlock fails here instead of hanging. */
	pthread_mutex_unlock(&held);
	assert_int_equal(pthread_join(status, NULL), 0);
	assert_int_equal(pthread_join(starter, &res), 0);
	assert_int_equal(wait_done(f, 2), 0);
	assert_true(in_time);
	assert_int_equal((int)(intptr_t)res, 0);
	engine_walk_progress(f->e, &pr);
	assert_false(pr.running);
}

static atomic_bool start_returned;

static void *cancel_walk(void *arg)
{
	struct fx *f = arg;

	return (void *)(intptr_t)engine_walk_cancel(f->e);
}

static void *start_check_noting(void *arg)
{
	void *r = start_check(arg);

	atomic_store(&start_returned, true);
	return r;
}

/*
 * A cancel joins an ended walk's thread whose done callback still runs; a
 * start from a third thread meanwhile waits for that join, as for its own,
 * instead of starting a walk beside the callback (which then could clear
 * the new walk's state, or touch it after a teardown freed it).
 */
static void test_walk_start_waits_for_cancel_join(void **state)
{
	struct rt_walk_params p = { .kind = RT_WALK_CHECK, .done = on_done_locking };
	struct fx *f = &the_fx;
	pthread_t canceller, starter;
	void *res, *cres;
	bool waited;

	(void)state;
	if (skip_without_root())
		skip();
	start_first_walk_held(f, &p);
	atomic_store(&start_returned, false);
	assert_int_equal(pthread_create(&canceller, NULL, cancel_walk, f), 0);
	usleep(100000);
	assert_int_equal(pthread_create(&starter, NULL, start_check_noting, f), 0);
	usleep(200000);
	waited = !atomic_load(&start_returned);
	/* Let go in any case, so that a failure fails here instead of hanging. */
	pthread_mutex_unlock(&held);
	assert_int_equal(pthread_join(canceller, &cres), 0);
	assert_int_equal(pthread_join(starter, &res), 0);
	assert_int_equal(wait_done(f, 2), 0);
	assert_true(atomic_load(&in_done));
	assert_true(waited);
	assert_int_equal((int)(intptr_t)res, 0);
	/* Cancelled while its outcome was being recorded: said so, not "no walk". */
	assert_int_equal((int)(intptr_t)cres, -EALREADY);
}

/*
 * While a walk's done callback runs (a replace's swap, a rebuild's role
 * table update), its progress says it ended but is ending: status counts
 * that as running, so that `wait` returns only once the outcome is
 * recorded. Once the callback returned, it is not ending either.
 */
static void test_walk_ending_while_done_runs(void **state)
{
	struct rt_walk_params p = { .kind = RT_WALK_CHECK, .done = on_done_locking };
	struct rt_walk_progress pr;
	struct fx *f = &the_fx;
	int i;

	(void)state;
	if (skip_without_root())
		skip();
	start_first_walk_held(f, &p);
	engine_walk_progress(f->e, &pr);
	pthread_mutex_unlock(&held);
	assert_true(atomic_load(&in_done));
	assert_false(pr.running);
	assert_true(pr.ending);
	assert_int_equal(pr.result, 0);
	assert_int_equal(wait_done(f, 1), 0);
	for (i = 0; i < 5000; i++) {
		engine_walk_progress(f->e, &pr);
		if (!pr.ending)
			break;
		usleep(1000);
	}
	assert_false(pr.ending);
	assert_false(pr.running);

	/* A callback that says its outcome is recorded is not ending while it goes on. */
	p.done = on_done_recorded_locking;
	start_walk_held(f, &p);
	engine_walk_progress(f->e, &pr);
	pthread_mutex_unlock(&held);
	assert_true(atomic_load(&in_done));
	assert_false(pr.running);
	assert_false(pr.ending);
	assert_int_equal(wait_done(f, 2), 0);
}

/*
 * Damage stripe @s behind the engine at byte @at of its chunk: raid1 the
 * mirror a repair overwrites, raid5 the parity chunk.
 */
static void corrupt_stripe(struct fx *f, uint64_t s, uint64_t at)
{
	uint32_t r = f->level == RT_LEVEL_1 ? (f->n == 2) : (f->n - 1) - (uint32_t)(s % f->n);
	uint8_t *b = NULL;

	assert_int_equal(posix_memalign((void **)&b, 4096, 4096), 0);
	memset(b, 0xa5, 4096);
	assert_int_equal(pwrite(unit_fd(f->unit[r]), b, 4096,
				(off_t)(f->sb.unit.data_offset + s * f->chunk + at)), 4096);
	free(b);
}

/*
 * The pipelined scrub counts each bad stripe once and repairs every one:
 * bad stripes at the first and last stripes, on both sides of the walk's
 * piece boundaries (a scrub's piece is 512 KiB per role: 8 stripes of
 * 64 KiB; a 4 MiB stripe is 8 pieces), each damaged twice (in two pieces
 * when a stripe is bigger than one), under a rate limit that cuts the walk
 * into short runs and without one.
 */
static void scrub_edges_case(int32_t level, uint32_t n, uint32_t chunk)
{
	static const uint64_t near[] = { 0, 1, 31, 32, 33, 63, 64, 65, 127, 128 };
	uint64_t bad[32], S, s;
	struct rt_walk_progress pr;
	unsigned k = 0, i, j;
	struct fx *f = &the_fx;

	if (skip_without_root())
		skip();
	fx_chunk = chunk;
	assert_int_equal(fx_setup(f, level, n), 0);
	fx_chunk = CHUNK;
	fill_all(f, 17);
	assert_int_equal(engine_flush(f->e), 0);
	S = f->role_bytes / chunk;
	for (i = 0; i < sizeof(near) / sizeof(near[0]) + 3; i++) {
		s = i < sizeof(near) / sizeof(near[0]) ? near[i] :
		    i == sizeof(near) / sizeof(near[0]) ? S / 2 : S - (i - sizeof(near) / sizeof(near[0]));
		for (j = 0; j < k && bad[j] != s; j++)
			;
		if (s >= S || j < k)
			continue;
		bad[k++] = s;
		corrupt_stripe(f, s, 8192);
		corrupt_stripe(f, s, chunk - 8192);
	}
	assert_true(k >= 5);
	/* Without a limit, and under one that cuts the walk into about a dozen runs. */
	run_walk(f, RT_WALK_CHECK, 0, &pr);
	assert_int_equal(pr.mismatches, k);
	scrub_fixes(f, k, f->role_bytes * 10 / 12);
	fx_check_host(f, false);
	fx_teardown(f);
}

static void test_scrub_edges_raid5(void **state)
{
	(void)state;
	scrub_edges_case(RT_LEVEL_5, 3, CHUNK);
}

static void test_scrub_edges_raid5_big_chunk(void **state)
{
	(void)state;
	scrub_edges_case(RT_LEVEL_5, 3, 4u << 20);
}

/* The walks' pieces on a loop host, and on one that fails rounds (the thread does that part). */
static void test_recover_raid5_hosted(void **state)
{
	(void)state;
	fx_host_fail = 0;
	recover_case(RT_LEVEL_5, 3, 0, CHUNK);
	fx_host_fail = -1;
}

static void test_recover_raid1_hosted_failing(void **state)
{
	(void)state;
	fx_host_fail = 2;
	recover_case(RT_LEVEL_1, 3, 2, CHUNK);
	fx_host_fail = -1;
}

static void test_scrub_edges_raid5_hosted_failing(void **state)
{
	(void)state;
	fx_host_fail = 4;
	scrub_edges_case(RT_LEVEL_5, 3, CHUNK);
	fx_host_fail = -1;
}

static void test_scrub_edges_raid1_hosted(void **state)
{
	(void)state;
	fx_host_fail = 0;
	scrub_edges_case(RT_LEVEL_1, 3, CHUNK);
	fx_host_fail = -1;
}

static void test_scrub_edges_raid1(void **state)
{
	(void)state;
	scrub_edges_case(RT_LEVEL_1, 2, CHUNK);
}

/* ---- dirty-region log on disk ----------------------------------------- */

/* Decode unit @u's log; its region bits into @bits. */
static void read_log(struct fx *f, unsigned u, uint8_t *bits, size_t len)
{
	struct rt_dlog_header h;
	uint8_t *b = NULL;

	assert_int_equal(posix_memalign((void **)&b, 4096, 4096), 0);
	assert_int_equal(pread(unit_fd(f->unit[u]), b, 4096, (off_t)f->sb.unit.log_offset), 4096);
	assert_int_equal(dirtylog_decode(b, 4096, &h, bits, len), 0);
	assert_int_equal(h.events, f->sb.events);
	free(b);
}

static bool bit(const uint8_t *bits, uint64_t i)
{
	return bits[i / 8] & (1u << (i % 8));
}

/* raid5: a 4 KiB write into role region @k (a stripe inside it). */
static void write_region(struct fx *f, uint64_t R, uint64_t k)
{
	uint64_t s = k * R / f->chunk + 1, lg = s * f->chunk * (f->n - 1) + 4096;
	uint8_t b[4096];

	memset(b, (int)k + 1, sizeof(b));
	assert_int_equal(engine_write(f->e, b, sizeof(b), lg), 0);
	memcpy(f->model + lg, b, sizeof(b));
}

static void corrupt_parity_in(struct fx *f, uint64_t R, uint64_t k)
{
	uint64_t s = k * R / f->chunk + 2;
	uint32_t p = (f->n - 1) - (uint32_t)(s % f->n);
	uint8_t *b = NULL;

	assert_int_equal(posix_memalign((void **)&b, 4096, 4096), 0);
	memset(b, 0xee, 4096);
	assert_int_equal(pwrite(unit_fd(f->unit[p]), b, 4096,
				(off_t)(f->sb.unit.data_offset + s * f->chunk)), 4096);
	free(b);
}

/* Within 3 s the sweeper has cleared every region of the log (its idle time set short). */
static void wait_log_clean(struct fx *f)
{
	uint64_t nd = 1;
	unsigned i;

	for (i = 0; i < 300; i++) {
		assert_int_equal(engine_dirtylog_dirty(f->e, NULL, 0, &nd), 0);
		if (nd == 0)
			break;
		usleep(10000);
	}
	assert_int_equal(nd, 0);
}

static void test_dirtylog_disk(void **state)
{
	uint8_t bits[16], want[16] = { 0 };
	struct rt_walk_progress pr;
	uint64_t R, n, nd;
	struct fx *f = &the_fx;
	unsigned u, i;

	(void)state;
	if (skip_without_root())
		skip();
	assert_int_equal(fx_setup(f, RT_LEVEL_5, 3), 0);
	assert_int_equal(engine_dirtylog_info(f->e, &R, &n), 0);
	assert_int_equal(R, 4 * MIB);
	assert_int_equal(n, (f->role_bytes + R - 1) / R);
	assert_true(n >= 8 && n <= 128);
	/* A fresh array: no valid log anywhere yet. */
	assert_int_equal(engine_dirtylog_load(f->e, bits, sizeof(bits), &nd), -ENODATA);
	assert_int_equal(nd, 0);
	engine_dirtylog_set_idle(f->e, 200);

	/* When the write returns, every unit's log already shows its region. */
	write_region(f, R, 2);
	write_region(f, R, 7);
	for (u = 0; u < f->n; u++) {
		read_log(f, u, bits, sizeof(bits));
		assert_true(bit(bits, 2) && bit(bits, 7) && !bit(bits, 3) && !bit(bits, 0));
	}
	/* Idle regions are cleared, on disk too. */
	wait_log_clean(f);
	for (u = 0; u < f->n; u++) {
		read_log(f, u, bits, sizeof(bits));
		for (i = 0; i < n; i++)
			assert_false(bit(bits, i));
	}

	/* Unclean stop with regions 1 and 4 dirty; 4 and 6 get bad parity. */
	engine_dirtylog_set_idle(f->e, 60000);
	write_region(f, R, 1);
	write_region(f, R, 4);
	assert_int_equal(engine_flush(f->e), 0);
	engine_destroy(f->e);
	f->e = NULL;
	corrupt_parity_in(f, R, 4);
	corrupt_parity_in(f, R, 6);
	assert_int_equal(fx_engine(f), 0);
	assert_int_equal(engine_dirtylog_load(f->e, bits, sizeof(bits), &nd), 0);
	assert_int_equal(nd, 2);
	want[0] = (1u << 1) | (1u << 4);
	assert_memory_equal(bits, want, (n + 7) / 8);

	/* Resync visits only the dirty regions: region 6 stays wrong. */
	{
		struct rt_walk_params p = {
			.kind = RT_WALK_RESYNC, .regions = bits, .region_size = R,
			.done = on_done, .ctx = f,
		};

		assert_int_equal(engine_walk_start(f->e, &p), 0);
		assert_int_equal(wait_done(f, 1), 0);
	}
	engine_walk_progress(f->e, &pr);
	assert_int_equal(pr.kind, RT_WALK_RESYNC);
	assert_int_equal(pr.regions_total, 2);
	assert_int_equal(pr.regions, 2);
	assert_int_equal(pr.mismatches, 1);	/* region 4's stripe */
	assert_int_equal(pr.repaired, 1);
	assert_int_equal(start_walk(f, RT_WALK_CHECK, 0, 0), 0);
	assert_int_equal(wait_done(f, 2), 0);
	engine_walk_progress(f->e, &pr);
	assert_int_equal(pr.mismatches, 1);	/* region 6, never dirty */

	/* A clean stop clears the log everywhere. */
	assert_int_equal(engine_dirtylog_clean(f->e), 0);
	for (u = 0; u < f->n; u++) {
		read_log(f, u, bits, sizeof(bits));
		for (i = 0; i < n; i++)
			assert_false(bit(bits, i));
	}
	verify_engine(f);
	fx_teardown(f);
}

/*
 * The run's failure handler takes the superblock lock, and a re-add holds
 * that lock while it asks the log when it was last cleared. A log write
 * that fails calls the handler with the log's mutex held, so the question
 * must not need that mutex.
 */
struct lock_order {
	pthread_mutex_t sb_lock;	/* the run's, as the handler takes it */
	_Atomic bool in_handler;
	_Atomic bool answered;
	struct rt_engine *e;
	uint64_t cleared;
	struct fx *f;
	uint64_t R;
};

static void lock_order_handler(uint32_t role, void *ctx)
{
	struct lock_order *lo = ctx;

	(void)role;
	atomic_store(&lo->in_handler, true);
	pthread_mutex_lock(&lo->sb_lock);
	pthread_mutex_unlock(&lo->sb_lock);
}

static void *lock_order_writer(void *arg)
{
	struct lock_order *lo = arg;

	write_region(lo->f, lo->R, 5);
	return NULL;
}

static void *lock_order_asker(void *arg)
{
	struct lock_order *lo = arg;

	if (engine_dirtylog_cleared(lo->e, &lo->cleared) == 0)
		atomic_store(&lo->answered, true);
	return NULL;
}

static void test_dirtylog_failure_lock_order(void **state)
{
	struct lock_order lo = { .sb_lock = PTHREAD_MUTEX_INITIALIZER };
	struct fx *f = &the_fx;
	pthread_t writer, asker;
	uint64_t n;
	bool in_time;
	int ro, i;

	(void)state;
	if (skip_without_root())
		skip();
	assert_int_equal(fx_setup(f, RT_LEVEL_5, 3), 0);
	assert_int_equal(engine_dirtylog_info(f->e, &lo.R, &n), 0);
	lo.e = f->e;
	lo.f = f;
	/* A clean log, so that the write below must write it. */
	engine_dirtylog_set_idle(f->e, 200);
	wait_log_clean(f);
	engine_dirtylog_set_idle(f->e, 60000);
	engine_set_failure_handler(f->e, lock_order_handler, &lo);
	/* Unit 2 refuses writes (EBADF): the next log write fails on it. */
	ro = open(f->path[2], O_RDONLY);
	assert_true(ro >= 0);
	assert_int_equal(dup2(ro, unit_fd(f->unit[2])), unit_fd(f->unit[2]));
	close(ro);

	pthread_mutex_lock(&lo.sb_lock);	/* a re-add in progress */
	assert_int_equal(pthread_create(&writer, NULL, lock_order_writer, &lo), 0);
	for (i = 0; i < 500 && !atomic_load(&lo.in_handler); i++)
		usleep(10000);
	assert_true(atomic_load(&lo.in_handler));
	assert_int_equal(pthread_create(&asker, NULL, lock_order_asker, &lo), 0);
	for (i = 0; i < 200 && !atomic_load(&lo.answered); i++)
		usleep(10000);
	in_time = atomic_load(&lo.answered);
	pthread_mutex_unlock(&lo.sb_lock);	/* lets a stuck asker finish too */
	pthread_join(asker, NULL);
	pthread_join(writer, NULL);
	if (!in_time)
		fail_msg("engine_dirtylog_cleared waited for the log's mutex held by a failing log write");
	assert_int_equal(lo.cleared, f->sb.events);
	assert_int_equal(engine_role_state(f->e, 2), RT_ROLE_FAULTY);
	verify_engine(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_recover_raid1, fx_cleanup),
		cmocka_unit_test_teardown(test_recover_checkpoint_past_share, fx_cleanup),
		cmocka_unit_test_teardown(test_recover_raid5, fx_cleanup),
		cmocka_unit_test_teardown(test_recover_raid5_big_chunk, fx_cleanup),
		cmocka_unit_test_teardown(test_cancel_resume_raid5, fx_cleanup),
		cmocka_unit_test_teardown(test_replace_checkpoints, fx_cleanup),
		cmocka_unit_test_teardown(test_replace_mapped_flush, fx_cleanup),
		cmocka_unit_test_teardown(test_replace_both_failed, fx_cleanup),
		cmocka_unit_test_teardown(test_check_raid1, fx_cleanup),
		cmocka_unit_test_teardown(test_check_raid1_majority, fx_cleanup),
		cmocka_unit_test_teardown(test_check_raid5, fx_cleanup),
		cmocka_unit_test_teardown(test_walk_start_while_done_waits, fx_cleanup),
		cmocka_unit_test_teardown(test_walk_ending_while_done_runs, fx_cleanup),
		cmocka_unit_test_teardown(test_walk_start_waits_for_cancel_join, fx_cleanup),
		cmocka_unit_test_teardown(test_scrub_edges_raid5, fx_cleanup),
		cmocka_unit_test_teardown(test_scrub_edges_raid5_big_chunk, fx_cleanup),
		cmocka_unit_test_teardown(test_scrub_edges_raid1, fx_cleanup),
		cmocka_unit_test_teardown(test_dirtylog_disk, fx_cleanup),
		cmocka_unit_test_teardown(test_dirtylog_failure_lock_order, fx_cleanup),
		cmocka_unit_test_teardown(test_recover_raid5_hosted, fx_cleanup),
		cmocka_unit_test_teardown(test_recover_raid1_hosted_failing, fx_cleanup),
		cmocka_unit_test_teardown(test_scrub_edges_raid5_hosted_failing, fx_cleanup),
		cmocka_unit_test_teardown(test_scrub_edges_raid1_hosted, fx_cleanup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
