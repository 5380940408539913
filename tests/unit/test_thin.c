/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for the thin pool's metadata (lib/thin-*.c) on a RAM device:
 * long random sequences of insert/remove/lookup/snapshot/delete against a
 * simple model, with the reference counts recomputed from the maps
 * (thin_check) after every step; a crash simulator that loses the writes
 * not yet flushed (all, or a random subset) at a random point, after which
 * the pool must reopen at its last completed commit with check clean; the
 * data path (zeros for unmapped blocks, copy on first write to a shared
 * block); refusals that change nothing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <raidtool/thin.h>
#include "../../lib/thin-internal.h"	/* the metadata snapshot's blocks, read raw */

#define PAGE 4096u

/*
 * A RAM block device with a write cache: writes land in @cur (what reads
 * see) and in a pending list; a flush makes them durable. After
 * @ops_left more writes or flushes the power fails: every later call
 * fails with -EIO until ram_crash, which keeps a random subset of what
 * was pending (or none) and makes the durable image current.
 */
struct pending {
	uint64_t off;
	size_t len;
	uint8_t *data;
};

struct ramdev {
	uint64_t size;
	size_t npages;
	uint8_t **cur, **durable;	/* pages, NULL reads as zeros */
	struct pending *pend;
	size_t npend, cap;
	long ops_left;			/* -1: never fails */
	bool dead;
	unsigned writes, flushes;
};

static void page_write(uint8_t **pages, uint64_t off, const uint8_t *src, size_t len)
{
	while (len) {
		size_t pg = off / PAGE, within = off % PAGE;
		size_t n = PAGE - within < len ? PAGE - within : len;

		if (!pages[pg]) {
			pages[pg] = calloc(1, PAGE);
			assert_non_null(pages[pg]);
		}
		memcpy(pages[pg] + within, src, n);
		off += n;
		src += n;
		len -= n;
	}
}

static void page_read(uint8_t *const *pages, uint64_t off, uint8_t *dst, size_t len)
{
	while (len) {
		size_t pg = off / PAGE, within = off % PAGE;
		size_t n = PAGE - within < len ? PAGE - within : len;

		if (pages[pg])
			memcpy(dst, pages[pg] + within, n);
		else
			memset(dst, 0, n);
		off += n;
		dst += n;
		len -= n;
	}
}

static bool power_fails(struct ramdev *d)
{
	if (d->dead)
		return true;
	if (d->ops_left == 0) {
		d->dead = true;
		return true;
	}
	if (d->ops_left > 0)
		d->ops_left--;
	return false;
}

static int ram_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct ramdev *d = ctx;

	if (d->dead)
		return -EIO;
	assert_true(off + len <= d->size);
	page_read(d->cur, off, buf, len);
	return 0;
}

static int ram_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct ramdev *d = ctx;
	struct pending *p;

	if (power_fails(d))
		return -EIO;
	assert_true(off + len <= d->size);
	page_write(d->cur, off, buf, len);
	if (d->npend == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 64;
		d->pend = realloc(d->pend, d->cap * sizeof(*d->pend));
		assert_non_null(d->pend);
	}
	p = &d->pend[d->npend++];
	p->off = off;
	p->len = len;
	p->data = malloc(len);
	assert_non_null(p->data);
	memcpy(p->data, buf, len);
	d->writes++;
	return 0;
}

static void drop_pending(struct ramdev *d, bool keep_random)
{
	for (size_t i = 0; i < d->npend; i++) {
		if (keep_random && rand() % 2)
			page_write(d->durable, d->pend[i].off, d->pend[i].data, d->pend[i].len);
		free(d->pend[i].data);
	}
	d->npend = 0;
}

static int ram_flush(void *ctx)
{
	struct ramdev *d = ctx;

	if (power_fails(d))
		return -EIO;
	for (size_t i = 0; i < d->npend; i++) {
		page_write(d->durable, d->pend[i].off, d->pend[i].data, d->pend[i].len);
		free(d->pend[i].data);
	}
	d->npend = 0;
	d->flushes++;
	return 0;
}

static void ram_crash(struct ramdev *d, bool keep_random)
{
	drop_pending(d, keep_random);
	for (size_t pg = 0; pg < d->npages; pg++) {
		free(d->cur[pg]);
		d->cur[pg] = NULL;
		if (d->durable[pg]) {
			d->cur[pg] = malloc(PAGE);
			assert_non_null(d->cur[pg]);
			memcpy(d->cur[pg], d->durable[pg], PAGE);
		}
	}
	d->dead = false;
	d->ops_left = -1;
}

static struct ramdev *ram_new(uint64_t size)
{
	struct ramdev *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	d->size = size;
	d->npages = size / PAGE;
	d->cur = calloc(d->npages, sizeof(*d->cur));
	d->durable = calloc(d->npages, sizeof(*d->durable));
	assert_non_null(d->cur);
	assert_non_null(d->durable);
	d->ops_left = -1;
	return d;
}

static void ram_free(struct ramdev *d)
{
	drop_pending(d, false);
	for (size_t pg = 0; pg < d->npages; pg++) {
		free(d->cur[pg]);
		free(d->durable[pg]);
	}
	free(d->cur);
	free(d->durable);
	free(d->pend);
	free(d);
}

static struct thin_io ram_io(struct ramdev *d)
{
	return (struct thin_io){ .ctx = d, .read = ram_read, .write = ram_write,
				 .flush = ram_flush };
}

#define BS (64u * 1024u)
#define POOL_BYTES (300ull << 20)	/* about 4700 data blocks */

static struct thin_pool *new_pool(struct ramdev *d, uint64_t meta_blocks)
{
	struct thin_format_params fp = { .pool_bytes = d->size, .block_size = BS,
					 .metadata_blocks = meta_blocks };
	struct thin_io io = ram_io(d);
	struct thin_pool *p;

	assert_int_equal(thin_format(&io, &fp), 0);
	assert_int_equal(thin_open(&io, false, &p), 0);
	return p;
}

static void assert_clean(struct thin_pool *p)
{
	struct thin_check_report rep;

	assert_int_equal(thin_check(p, &rep), 0);
	if (rep.bad_nodes || rep.meta_leaks || rep.meta_missing || rep.data_leaks ||
	    rep.data_missing || rep.bad_counts)
		fail_msg("check: %s", rep.first);
}

/* ---- the model ---- */

#define MAX_VOLS 8
#define VBLOCKS 3000u		/* virtual blocks of each volume: trees of 2-3 levels */

struct mvol {
	bool used;
	char name[16];
	int64_t map[VBLOCKS];	/* -1: unmapped */
	uint64_t mapped;
};

struct model {
	struct mvol v[MAX_VOLS];
	unsigned next;		/* for names */
};

/* Does the pool hold exactly what model @m says? */
static bool model_matches(struct thin_pool *p, const struct model *m)
{
	struct thin_pool_info info;
	uint8_t *used;
	uint64_t distinct = 0;
	unsigned nvols = 0;
	bool ok = true;

	thin_pool_get_info(p, &info);
	used = calloc(info.data_blocks, 1);
	assert_non_null(used);
	for (int i = 0; ok && i < MAX_VOLS; i++) {
		const struct mvol *mv = &m->v[i];
		struct thin_vol_info vi;
		uint32_t id;

		if (!mv->used)
			continue;
		nvols++;
		if (thin_vol_find(p, mv->name, &id) < 0 || thin_vol_get(p, id, &vi) < 0 ||
		    vi.mapped != mv->mapped) {
			ok = false;
			break;
		}
		for (uint64_t b = 0; ok && b < VBLOCKS; b++) {
			uint64_t pb;
			int r = thin_lookup(p, id, b, &pb);

			if (mv->map[b] < 0) {
				ok = r == -ENODATA;
				continue;
			}
			ok = r == 0 && pb == (uint64_t)mv->map[b];
			if (ok && !used[pb]++)
				distinct++;
		}
	}
	/* Every data block the maps use is counted, and no other. */
	ok = ok && info.n_volumes == nvols && info.free_data_blocks == info.data_blocks - distinct;
	free(used);
	return ok;
}

static void model_compare(struct thin_pool *p, const struct model *m)
{
	assert_true(model_matches(p, m));
}

static int pick_vol(const struct model *m)
{
	int i, tries = 0;

	do
		i = rand() % MAX_VOLS;
	while (!m->v[i].used && ++tries < 100);
	return m->v[i].used ? i : -1;
}

static int free_slot(const struct model *m)
{
	for (int i = 0; i < MAX_VOLS; i++)
		if (!m->v[i].used)
			return i;
	return -1;
}

static uint32_t vol_id(struct thin_pool *p, const struct mvol *mv)
{
	uint32_t id;

	assert_int_equal(thin_vol_find(p, mv->name, &id), 0);
	return id;
}

/* Return values: 0 done, or the pool's error (-EIO when the simulated power failed). */
static int step_create(struct thin_pool *p, struct model *m)
{
	int s = free_slot(m), r;
	struct mvol *mv;

	if (s < 0)
		return 0;
	mv = &m->v[s];
	snprintf(mv->name, sizeof(mv->name), "v%u", m->next++);
	r = thin_vol_create(p, mv->name, (uint64_t)VBLOCKS * BS, NULL);
	if (r == 0) {
		mv->used = true;
		mv->mapped = 0;
		for (unsigned b = 0; b < VBLOCKS; b++)
			mv->map[b] = -1;
	}
	return r;
}

static int step_snapshot(struct thin_pool *p, struct model *m)
{
	int o = pick_vol(m), s = free_slot(m), r;
	char name[16];

	if (o < 0 || s < 0)
		return 0;
	snprintf(name, sizeof(name), "v%u", m->next++);
	r = thin_vol_snapshot(p, m->v[o].name, name, NULL);
	if (r == 0) {
		m->v[s] = m->v[o];
		snprintf(m->v[s].name, sizeof(m->v[s].name), "%s", name);
	}
	return r;
}

static int step_delete(struct thin_pool *p, struct model *m)
{
	int o = pick_vol(m), r;

	if (o < 0)
		return 0;
	r = thin_vol_delete(p, m->v[o].name);
	if (r == 0)
		m->v[o].used = false;
	return r;
}

static int step_insert(struct thin_pool *p, struct model *m)
{
	int o = pick_vol(m), r;
	uint64_t vb = (uint64_t)rand() % VBLOCKS, pb;
	struct mvol *mv;

	if (o < 0)
		return 0;
	mv = &m->v[o];
	r = thin_alloc_data_block(p, &pb);
	if (r == -ENOSPC)
		return 0;
	if (r < 0)
		return r;
	r = thin_insert(p, vol_id(p, mv), vb, pb);
	if (r < 0)
		return r;
	if (mv->map[vb] < 0)
		mv->mapped++;
	mv->map[vb] = (int64_t)pb;
	return 0;
}

static int step_remove(struct thin_pool *p, struct model *m)
{
	int o = pick_vol(m), r;
	uint64_t begin = (uint64_t)rand() % VBLOCKS, end = begin + 1 + (uint64_t)rand() % 60;
	struct mvol *mv;

	if (o < 0)
		return 0;
	mv = &m->v[o];
	if (end > VBLOCKS)
		end = VBLOCKS;
	r = thin_remove_range(p, vol_id(p, mv), begin, end);
	if (r < 0)
		return r;
	for (uint64_t b = begin; b < end; b++) {
		if (mv->map[b] >= 0)
			mv->mapped--;
		mv->map[b] = -1;
	}
	return 0;
}

static int step_lookup(struct thin_pool *p, struct model *m)
{
	int o = pick_vol(m), r;
	uint64_t vb = (uint64_t)rand() % VBLOCKS, pb;

	if (o < 0)
		return 0;
	r = thin_lookup(p, vol_id(p, &m->v[o]), vb, &pb);
	if (r == -ENODATA)
		assert_true(m->v[o].map[vb] < 0);
	else if (r == 0)
		assert_int_equal(pb, (uint64_t)m->v[o].map[vb]);
	return r == -ENODATA ? 0 : r;
}

/* One random step; *@committed set when it was a commit that returned 0. */
static int random_step(struct thin_pool *p, struct model *m, bool *commit)
{
	int x = rand() % 100;

	*commit = false;
	if (x < 45)
		return step_insert(p, m);
	if (x < 65)
		return step_remove(p, m);
	if (x < 80)
		return step_lookup(p, m);
	if (x < 84)
		return step_snapshot(p, m);
	if (x < 86)
		return step_delete(p, m);
	if (x < 89)
		return step_create(p, m);
	*commit = true;
	return thin_commit(p);
}

/* ---- tests ---- */

static void test_format_open(void **state)
{
	struct ramdev *d = ram_new(POOL_BYTES);
	struct thin_io io = ram_io(d);
	struct thin_pool_info info;
	struct thin_pool *p;

	assert_int_equal(thin_probe(&io), 0);
	assert_int_equal(thin_open(&io, false, &p), -ENODATA);
	p = new_pool(d, 0);
	assert_int_equal(thin_probe(&io), 1);
	thin_pool_get_info(p, &info);
	assert_int_equal(info.block_size, BS);
	assert_int_equal(info.commit_seq, 1);
	assert_int_equal(info.free_data_blocks, info.data_blocks);
	assert_true(info.data_blocks > 4000 && info.data_blocks < 4800);
	assert_int_equal(info.data_offset % BS, 0);
	assert_int_equal(info.n_volumes, 0);
	assert_false(info.needs_check);
	assert_int_equal(thin_transaction_id(p), 0);
	assert_int_equal(thin_set_transaction_id(p, 1, 5), -EINVAL);
	assert_int_equal(thin_set_transaction_id(p, 0, 5), 0);
	assert_int_equal(thin_commit(p), 0);
	thin_close(p);
	assert_int_equal(thin_open(&io, false, &p), 0);
	assert_int_equal(thin_transaction_id(p), 5);
	assert_clean(p);
	thin_close(p);
	ram_free(d);
}

static void test_random_model(void **state)
{
	struct ramdev *d = ram_new(POOL_BYTES);
	struct thin_pool *p = new_pool(d, 0);
	struct model *m = calloc(1, sizeof(*m));
	bool commit;

	srand(1234);
	assert_non_null(m);
	assert_int_equal(step_create(p, m), 0);
	for (int i = 0; i < 6000; i++) {
		assert_int_equal(random_step(p, m, &commit), 0);
		assert_clean(p);
		if (i % 500 == 0)
			model_compare(p, m);
	}
	model_compare(p, m);
	assert_int_equal(thin_commit(p), 0);
	/* Reopened, the same. */
	thin_close(p);
	struct thin_io io = ram_io(d);

	assert_int_equal(thin_open(&io, false, &p), 0);
	assert_clean(p);
	model_compare(p, m);
	thin_close(p);
	free(m);
	ram_free(d);
}

/* Many small volumes, few metadata blocks: ENOSPC for data before metadata runs out. */
static void test_metadata_reserve(void **state)
{
	struct ramdev *d = ram_new(POOL_BYTES);
	struct thin_pool *p = new_pool(d, 256);
	struct thin_pool_info info;
	uint32_t id;
	uint64_t pb, vb = 0;
	int r;

	assert_int_equal(thin_vol_create(p, "big", (uint64_t)1 << 40, &id), 0);
	/* Sparse keys: one leaf entry per data block, every 2nd block a snapshot's divergence. */
	for (;;) {
		r = thin_alloc_data_block(p, &pb);
		if (r == -ENOSPC)
			break;
		assert_int_equal(r, 0);
		assert_int_equal(thin_insert(p, id, vb, pb), 0);
		vb += 1000;
	}
	thin_pool_get_info(p, &info);
	assert_true(info.free_metadata_blocks > 0);
	assert_clean(p);
	assert_int_equal(thin_commit(p), 0);
	thin_close(p);
	ram_free(d);
}

/*
 * Power fails at a random write or flush; the pool reopens at the last
 * commit that returned 0 (or at the one being written, which may have
 * reached its superblock), check clean.
 */
static void test_crash(void **state)
{
	struct model *m = calloc(1, sizeof(*m)), *committed = calloc(1, sizeof(*m));
	unsigned rounds = 0, inflight_won = 0;

	assert_non_null(m);
	assert_non_null(committed);
	srand(99);
	for (int round = 0; round < 40; round++) {
		struct ramdev *d = ram_new(POOL_BYTES);
		struct thin_io io = ram_io(d);
		struct thin_pool *p = new_pool(d, 0);
		bool commit;
		int r;

		memset(m, 0, sizeof(*m));
		assert_int_equal(step_create(p, m), 0);
		assert_int_equal(thin_commit(p), 0);
		*committed = *m;
		/* Several power failures per device, each after a random number of I/Os. */
		for (int crash = 0; crash < 5; crash++) {
			d->ops_left = 1 + rand() % 300;
			for (;;) {
				r = random_step(p, m, &commit);
				if (r == 0 && commit)
					*committed = *m;
				if (r < 0)
					break;
			}
			assert_int_equal(r, -EIO);
			thin_close(p);
			ram_crash(d, rand() % 2);
			assert_int_equal(thin_open(&io, false, &p), 0);
			assert_clean(p);
			rounds++;
			/*
			 * The last commit that returned 0; or, when power failed
			 * during a commit, possibly the one being written (@m: a
			 * failed step leaves the model as it was).
			 */
			if (model_matches(p, committed)) {
				*m = *committed;
			} else {
				assert_true(commit);
				model_compare(p, m);
				*committed = *m;
				inflight_won++;
			}
		}
		thin_close(p);
		ram_free(d);
	}
	print_message("%u crashes, %u came back at the commit being written\n", rounds,
		      inflight_won);
	free(m);
	free(committed);
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 12));
}

static void test_data_cow(void **state)
{
	struct ramdev *d = ram_new(64ull << 20);
	struct thin_pool *p = new_pool(d, 0);
	size_t len = 3 * BS + 4096;
	uint8_t *a = malloc(len), *b = malloc(len), *z = calloc(1, len), *got = malloc(len);
	struct thin_pool_info i0, i1;
	uint32_t vol, snap, snap2;

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(z);
	assert_non_null(got);
	fill(a, len, 1);
	fill(b, len, 2);
	assert_int_equal(thin_vol_create(p, "origin", 16ull * BS, &vol), 0);
	/* Unmapped: zeros. */
	assert_int_equal(thin_vol_read(p, vol, got, len, 4096), 0);
	assert_memory_equal(got, z, len);
	assert_int_equal(thin_vol_write(p, vol, a, len, 4096), 0);
	assert_int_equal(thin_vol_read(p, vol, got, len, 4096), 0);
	assert_memory_equal(got, a, len);
	/* The first 4 KiB of block 0 were never written: zeros. */
	assert_int_equal(thin_vol_read(p, vol, got, 4096, 0), 0);
	assert_memory_equal(got, z, 4096);
	assert_int_equal(thin_vol_snapshot(p, "origin", "snap", &snap), 0);
	thin_pool_get_info(p, &i0);
	assert_int_equal(thin_vol_write(p, vol, b, len, 4096), 0);
	thin_pool_get_info(p, &i1);
	/* Four blocks copied on first write. */
	assert_int_equal(i0.free_data_blocks - i1.free_data_blocks, 4);
	assert_int_equal(thin_vol_read(p, snap, got, len, 4096), 0);
	assert_memory_equal(got, a, len);
	assert_int_equal(thin_vol_read(p, vol, got, len, 4096), 0);
	assert_memory_equal(got, b, len);
	/* A snapshot of the snapshot, written: the others keep their bytes. */
	assert_int_equal(thin_vol_snapshot(p, "snap", "snap2", &snap2), 0);
	assert_int_equal(thin_vol_write(p, snap2, b, 4096, 8192), 0);
	assert_int_equal(thin_vol_read(p, snap, got, len, 4096), 0);
	assert_memory_equal(got, a, len);
	assert_int_equal(thin_vol_read(p, snap2, got, 4096, 8192), 0);
	assert_memory_equal(got, b, 4096);
	assert_int_equal(thin_vol_read(p, snap2, got, 4096, 4096), 0);
	assert_memory_equal(got, a, 4096);
	assert_clean(p);
	assert_int_equal(thin_commit(p), 0);
	/* Discard returns the origin's unshared blocks. */
	thin_pool_get_info(p, &i0);
	assert_int_equal(thin_vol_discard(p, vol, 0, 16ull * BS), 0);
	thin_pool_get_info(p, &i1);
	assert_int_equal(i1.free_data_blocks - i0.free_data_blocks, 4);
	assert_int_equal(thin_vol_read(p, vol, got, len, 4096), 0);
	assert_memory_equal(got, z, len);
	/* Deleting the rest frees everything. */
	assert_int_equal(thin_vol_delete(p, "snap"), 0);
	assert_int_equal(thin_vol_delete(p, "snap2"), 0);
	assert_int_equal(thin_vol_delete(p, "origin"), 0);
	thin_pool_get_info(p, &i1);
	assert_int_equal(i1.free_data_blocks, i1.data_blocks);
	assert_int_equal(i1.free_metadata_blocks, i1.metadata_blocks);
	assert_clean(p);
	/* Out of range or unaligned. */
	assert_int_equal(thin_vol_create(p, "v", 2ull * BS, &vol), 0);
	assert_int_equal(thin_vol_write(p, vol, a, 4096, 2ull * BS), -EINVAL);
	assert_int_equal(thin_vol_write(p, vol, a, 100, 0), -EINVAL);
	thin_close(p);
	free(a);
	free(b);
	free(z);
	free(got);
	ram_free(d);
}

/*
 * The data path's pieces (lib/thin-run.c): a reserved block is nobody
 * else's and not counted by a commit (a crash leaks nothing), is mapped by
 * thin_insert_reserved; lookups say where a write must copy; a cached-only
 * lookup never reads metadata.
 */
static void test_reserve_map(void **state)
{
	struct ramdev *d = ram_new(64ull << 20);
	struct thin_pool *p = new_pool(d, 0), *view;
	struct thin_io io = ram_io(d);
	struct thin_pool_info i0, i1;
	uint64_t nb, nb2, pb;
	uint32_t vol, snap, rc;
	bool must_copy;

	assert_int_equal(thin_vol_create(p, "v", 16ull * BS, &vol), 0);
	thin_pool_get_info(p, &i0);
	assert_int_equal(thin_data_reserve(p, &nb), 0);
	assert_int_equal(thin_data_reserve(p, &nb2), 0);
	assert_true(nb != nb2);
	thin_pool_get_info(p, &i1);
	assert_int_equal(i0.free_data_blocks - i1.free_data_blocks, 2);
	assert_int_equal(thin_data_refcount(p, nb, &rc), 0);
	assert_int_equal(rc, 0);
	/* thin_alloc_data_block does not hand it out either. */
	for (uint64_t k = 0; k < 8; k++) {
		uint64_t b;

		assert_int_equal(thin_alloc_data_block(p, &b), 0);
		assert_true(b != nb && b != nb2);
		assert_int_equal(thin_release_data_block(p, b), 0);
	}
	assert_int_equal(thin_map_lookup(p, vol, 3, false, &pb, &must_copy), -ENODATA);
	assert_int_equal(thin_insert_reserved(p, vol, 3, nb), 0);
	assert_int_equal(thin_insert_reserved(p, vol, 4, nb), -EINVAL);	/* not reserved now */
	assert_int_equal(thin_map_lookup(p, vol, 3, false, &pb, &must_copy), 0);
	assert_int_equal(pb, nb);
	assert_false(must_copy);	/* new in this transaction */
	assert_int_equal(thin_map_lookup(p, vol, 16, false, &pb, NULL), -EINVAL);
	/* Committed while nb2 is reserved: after a crash it is free, check clean. */
	assert_int_equal(thin_commit(p), 0);
	thin_close(p);
	ram_crash(d, false);
	assert_int_equal(thin_open(&io, false, &p), 0);
	/* Reopened: nothing cached, a cached-only lookup does not read. */
	assert_int_equal(thin_map_lookup(p, vol, 3, true, &pb, NULL), -EWOULDBLOCK);
	assert_clean(p);
	assert_int_equal(thin_data_refcount(p, nb2, &rc), 0);
	assert_int_equal(rc, 0);
	assert_int_equal(thin_map_lookup(p, vol, 3, false, &pb, &must_copy), 0);
	assert_int_equal(pb, nb);
	assert_false(must_copy);	/* committed once, unshared */
	assert_int_equal(thin_map_lookup(p, vol, 3, true, &pb, NULL), 0);
	/* Shared by a snapshot: a write must copy; the snapshot's too. */
	assert_int_equal(thin_vol_snapshot(p, "v", "s", &snap), 0);
	assert_int_equal(thin_map_lookup(p, vol, 3, false, &pb, &must_copy), 0);
	assert_true(must_copy);
	assert_int_equal(thin_map_lookup(p, snap, 3, false, &pb, &must_copy), 0);
	assert_true(must_copy);
	/* A copy for the origin: then each has its own block, and neither copies again. */
	assert_int_equal(thin_data_reserve(p, &nb2), 0);
	assert_int_equal(thin_insert_reserved(p, vol, 3, nb2), 0);
	assert_int_equal(thin_map_lookup(p, vol, 3, false, &pb, &must_copy), 0);
	assert_int_equal(pb, nb2);
	assert_false(must_copy);
	assert_int_equal(thin_map_lookup(p, snap, 3, false, &pb, &must_copy), 0);
	assert_int_equal(pb, nb);
	assert_true(must_copy);		/* the last commit mapped it from the origin */
	/* Committed: the origin writes its blocks in place, also after changing its tree. */
	assert_int_equal(thin_commit(p), 0);
	assert_int_equal(thin_data_reserve(p, &nb), 0);
	assert_int_equal(thin_insert_reserved(p, vol, 9, nb), 0);
	assert_int_equal(thin_map_lookup(p, vol, 3, false, &pb, &must_copy), 0);
	assert_int_equal(pb, nb2);
	assert_false(must_copy);
	/* A reservation given back; a deleted volume's insert fails and frees. */
	assert_int_equal(thin_data_reserve(p, &nb), 0);
	thin_data_unreserve(p, nb);
	assert_int_equal(thin_data_reserve(p, &nb), 0);
	assert_int_equal(thin_vol_delete(p, "s"), 0);
	assert_int_equal(thin_insert_reserved(p, snap, 5, nb), -ENOENT);
	assert_clean(p);
	thin_pool_get_info(p, &i1);
	assert_int_equal(i1.free_data_blocks, i1.data_blocks - 2);
	/*
	 * An abort (back at the last commit) keeps a worker's reservation: no
	 * one else gets the block it is writing, and it maps it afterwards.
	 */
	assert_int_equal(thin_commit(p), 0);
	assert_int_equal(thin_data_reserve(p, &nb), 0);
	assert_int_equal(thin_data_reserve(p, &nb2), 0);
	assert_int_equal(thin_insert_reserved(p, vol, 10, nb2), 0);
	assert_int_equal(thin_abort(p), 0);
	assert_int_equal(thin_map_lookup(p, vol, 10, false, &pb, NULL), -ENODATA);
	thin_pool_get_info(p, &i0);
	assert_int_equal(i0.free_data_blocks, i1.free_data_blocks - 1);
	for (uint64_t k = 0; k < i0.free_data_blocks; k++) {
		uint64_t b;

		assert_int_equal(thin_data_reserve(p, &b), 0);
		assert_true(b != nb);
		thin_data_unreserve(p, b);
	}
	assert_int_equal(thin_insert_reserved(p, vol, 11, nb), 0);
	assert_int_equal(thin_map_lookup(p, vol, 11, false, &pb, NULL), 0);
	assert_int_equal(pb, nb);
	assert_clean(p);
	/* A metadata snapshot copies the last commit, where a reserved block is free. */
	assert_int_equal(thin_data_reserve(p, &nb), 0);
	assert_int_equal(thin_reserve_metadata_snap(p), 0);
	assert_int_equal(thin_open_metadata_snap(&io, &view), 0);
	thin_pool_get_info(p, &i0);
	thin_pool_get_info(view, &i1);
	assert_int_equal(i1.free_data_blocks, i0.free_data_blocks + 1);
	thin_close(view);
	thin_data_unreserve(p, nb);
	assert_int_equal(thin_release_metadata_snap(p), 0);
	assert_clean(p);
	thin_close(p);
	ram_free(d);
}

static void test_bad_input(void **state)
{
	struct ramdev *d = ram_new(64ull << 20);
	struct thin_pool *p = new_pool(d, 0);
	uint32_t id;

	assert_int_equal(thin_vol_create(p, "a", BS, &id), 0);
	assert_int_equal(thin_commit(p), 0);
	assert_false(thin_dirty(p));
	assert_int_equal(thin_vol_create(p, "a", BS, &id), -EEXIST);
	assert_int_equal(thin_vol_create(p, "b", 0, &id), -EINVAL);
	assert_int_equal(thin_vol_create(p, "b", BS + 512, &id), -EINVAL);
	assert_int_equal(thin_vol_create(p, "", BS, &id), -EINVAL);
	assert_int_equal(thin_vol_create(p, "a/b", BS, &id), -EINVAL);
	assert_int_equal(thin_vol_snapshot(p, "missing", "c", &id), -ENOENT);
	assert_int_equal(thin_vol_snapshot(p, "a", "a", &id), -EEXIST);
	assert_int_equal(thin_vol_delete(p, "missing"), -ENOENT);
	assert_int_equal(thin_vol_find(p, "missing", &id), -ENOENT);
	assert_false(thin_dirty(p));
	thin_set_read_only(p, true);
	assert_int_equal(thin_vol_create(p, "b", BS, &id), -EROFS);
	thin_set_read_only(p, false);
	/* Abort drops what was not committed. */
	assert_int_equal(thin_vol_create(p, "b", BS, &id), 0);
	assert_int_equal(thin_abort(p), 0);
	assert_int_equal(thin_vol_find(p, "b", &id), -ENOENT);
	assert_clean(p);
	thin_close(p);
	ram_free(d);
}

static void test_damage(void **state)
{
	struct ramdev *d = ram_new(64ull << 20);
	struct thin_io io = ram_io(d);
	struct thin_pool *p = new_pool(d, 0);
	struct thin_check_report rep;
	struct thin_vol_info vi;
	uint8_t blk[PAGE];
	uint32_t id;

	assert_int_equal(thin_vol_create(p, "a", BS, &id), 0);
	assert_int_equal(thin_commit(p), 0);	/* seq 2 */
	assert_int_equal(thin_vol_create(p, "b", BS, &id), 0);
	assert_int_equal(thin_commit(p), 0);	/* seq 3 */
	thin_close(p);
	/* A torn superblock of seq 3 (slot 1): back at seq 2. */
	page_read(d->cur, PAGE, blk, PAGE);
	blk[100] ^= 0xff;
	page_write(d->cur, PAGE, blk, PAGE);
	assert_int_equal(thin_open(&io, false, &p), 0);
	assert_int_equal(thin_vol_find(p, "a", &id), 0);
	assert_int_equal(thin_vol_find(p, "b", &id), -ENOENT);
	/* A damaged node: check names it, needs_check stays. */
	assert_int_equal(thin_vol_find(p, "a", &id), 0);
	assert_int_equal(thin_vol_get(p, id, &vi), 0);
	thin_close(p);
	{
		/* The root of 'a' is the first node block written: find it by scanning. */
		struct thin_node n;
		uint64_t root = 0;

		for (uint64_t b = 2; b < d->npages && !root; b++) {
			page_read(d->cur, b * PAGE, blk, PAGE);
			if (thin_node_decode(blk, PAGE, b, &n) == 0)
				root = b;
		}
		assert_true(root != 0);
		blk[200] ^= 1;
		page_write(d->cur, root * PAGE, blk, PAGE);
	}
	assert_int_equal(thin_open(&io, false, &p), 0);
	assert_int_equal(thin_check_and_clear(p, &rep), -EUCLEAN);
	assert_true(rep.bad_nodes > 0);
	assert_true(rep.first[0] != '\0');
	assert_true(thin_needs_check(p));
	thin_close(p);
	{
		/*
		 * A count above what memory holds (2 bytes) in the last commit's
		 * data space map, sealed as if written so: refused as damage.
		 */
		struct thin_sb sb = { 0 }, other;
		uint64_t index, b;

		for (uint64_t slot = 0; slot < THIN_SB_SLOTS; slot++) {
			page_read(d->cur, slot * PAGE, blk, PAGE);
			if (thin_sb_decode(blk, PAGE, &other) == 0 && other.seq > sb.seq)
				sb = other;
		}
		assert_true(sb.seq > 0);
		index = THIN_VOLTAB_BLOCKS + (sb.node_blocks + THIN_RC_PER_BLOCK - 1) /
					     THIN_RC_PER_BLOCK;
		b = THIN_AREA_START + (sb.seq % 2) * sb.area_blocks + index;
		page_read(d->cur, b * PAGE, blk, PAGE);
		assert_int_equal(thin_area_verify(blk, b), 0);
		thin_put_le32(blk + 4, 0x10000);
		thin_area_seal(blk, b);
		page_write(d->cur, b * PAGE, blk, PAGE);
	}
	assert_int_equal(thin_open(&io, false, &p), -EUCLEAN);
	ram_free(d);
}

/*
 * A commit that fails drops its transaction at the next one (back to the
 * last commit, needs_check recorded): the pool says so from then on, for
 * flushes to fail (thin-run's pool_sync). A pool that could not load its
 * last commit whole neither writes nor commits.
 */
static void test_commit_failure(void **state)
{
	struct ramdev *d = ram_new(64ull << 20);
	struct thin_pool *p = new_pool(d, 0);
	uint32_t id;

	(void)state;
	assert_int_equal(thin_vol_create(p, "a", BS, &id), 0);
	assert_int_equal(thin_commit(p), 0);
	assert_false(thin_lost(p));
	assert_int_equal(thin_vol_create(p, "b", BS, &id), 0);
	d->ops_left = 0;
	assert_true(thin_commit(p) < 0);
	d->dead = false;
	d->ops_left = -1;
	assert_int_equal(thin_commit(p), -EIO);
	assert_true(thin_lost(p));
	assert_true(thin_needs_check(p));
	assert_int_equal(thin_vol_find(p, "a", &id), 0);
	assert_int_equal(thin_vol_find(p, "b", &id), -ENOENT);
	thin_close(p);

	/* Its last commit unreadable as it is loaded again: no write, no commit after. */
	p = new_pool(d, 0);
	assert_false(thin_lost(p));
	d->dead = true;
	assert_true(thin_abort(p) < 0);
	d->dead = false;
	assert_int_equal(thin_vol_create(p, "c", BS, &id), -EIO);
	assert_int_equal(thin_commit(p), -EIO);
	assert_false(thin_lost(p));
	thin_close(p);
	ram_free(d);
}

/*
 * A tree three levels deep (over 254 * 254 mappings): random inserts, a
 * snapshot half way, removal of every key in random order from the
 * origin; the snapshot keeps all its mappings, counts stay right.
 */
#define DEEP_KEYS 70000u
static void test_deep_tree(void **state)
{
	struct ramdev *d = ram_new((uint64_t)(DEEP_KEYS + 2000) * BS);
	struct thin_pool *p = new_pool(d, 0);
	struct thin_pool_info info;
	uint64_t *order = malloc(DEEP_KEYS * sizeof(*order)), *pbs = malloc(DEEP_KEYS * sizeof(*pbs));
	uint32_t vol, snap;
	uint64_t pb, hi;

	assert_non_null(order);
	assert_non_null(pbs);
	srand(7);
	for (uint64_t i = 0; i < DEEP_KEYS; i++)
		order[i] = i * 3;	/* sparse keys */
	for (uint64_t i = DEEP_KEYS - 1; i > 0; i--) {
		uint64_t j = (uint64_t)rand() % (i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	assert_int_equal(thin_vol_create(p, "deep", (uint64_t)DEEP_KEYS * 3 * BS, &vol), 0);
	for (uint64_t i = 0; i < DEEP_KEYS; i++) {
		assert_int_equal(thin_alloc_data_block(p, &pbs[i]), 0);
		assert_int_equal(thin_insert(p, vol, order[i], pbs[i]), 0);
		if (i == DEEP_KEYS / 2) {
			assert_int_equal(thin_commit(p), 0);
			assert_clean(p);
		}
	}
	assert_int_equal(thin_highest_mapped(p, vol, &hi), 0);
	assert_int_equal(hi, (uint64_t)(DEEP_KEYS - 1) * 3);
	assert_int_equal(thin_commit(p), 0);
	assert_clean(p);
	assert_int_equal(thin_vol_snapshot(p, "deep", "snap", &snap), 0);
	/* Remove from the origin in another random order, checking now and then. */
	for (uint64_t i = DEEP_KEYS - 1; i > 0; i--) {
		uint64_t j = (uint64_t)rand() % (i + 1), t = order[i], tp = pbs[i];

		order[i] = order[j];
		order[j] = t;
		pbs[i] = pbs[j];
		pbs[j] = tp;
	}
	for (uint64_t i = 0; i < DEEP_KEYS; i++) {
		assert_int_equal(thin_remove_range(p, vol, order[i], order[i] + 1), 0);
		if (i % 10000 == 0)
			assert_clean(p);
	}
	assert_int_equal(thin_highest_mapped(p, vol, &hi), -ENODATA);
	for (uint64_t i = 0; i < DEEP_KEYS; i++) {
		assert_int_equal(thin_lookup(p, snap, order[i], &pb), 0);
		assert_int_equal(pb, pbs[i]);
		assert_int_equal(thin_lookup(p, vol, order[i], &pb), -ENODATA);
	}
	assert_clean(p);
	assert_int_equal(thin_commit(p), 0);
	assert_int_equal(thin_vol_delete(p, "snap"), 0);
	assert_int_equal(thin_vol_delete(p, "deep"), 0);
	thin_pool_get_info(p, &info);
	assert_int_equal(info.free_data_blocks, info.data_blocks);
	assert_int_equal(info.free_metadata_blocks, info.metadata_blocks);
	assert_clean(p);
	thin_close(p);
	free(order);
	free(pbs);
	ram_free(d);
}

/*
 * A block the last commit shares is never written in place: the origin and
 * its snapshot both write block 0 after the commit (the origin's write
 * copies, after which the old block is the snapshot's alone), power
 * fails: the origin's block 0 is the old data, not the snapshot's.
 */
static void test_crash_no_cross_write(void **state)
{
	struct ramdev *d = ram_new(64ull << 20);
	struct thin_io io = ram_io(d);
	struct thin_pool *p = new_pool(d, 0);
	uint8_t *a = malloc(BS), *b = malloc(BS), *c = malloc(BS), *got = malloc(BS);
	uint32_t vol, snap;

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_non_null(got);
	fill(a, BS, 1);
	fill(b, BS, 2);
	fill(c, BS, 3);
	assert_int_equal(thin_vol_create(p, "o", 4ull * BS, &vol), 0);
	assert_int_equal(thin_vol_write(p, vol, a, BS, 0), 0);
	assert_int_equal(thin_vol_snapshot(p, "o", "s", &snap), 0);
	assert_int_equal(thin_commit(p), 0);
	assert_int_equal(thin_vol_write(p, vol, b, BS, 0), 0);
	assert_int_equal(thin_vol_write(p, snap, c, BS, 0), 0);
	/* Every write reached the device; the commit did not. */
	assert_int_equal(ram_flush(d), 0);
	thin_close(p);
	ram_crash(d, false);
	assert_int_equal(thin_open(&io, false, &p), 0);
	assert_clean(p);
	assert_int_equal(thin_vol_read(p, vol, got, BS, 0), 0);
	assert_memory_equal(got, a, BS);
	assert_int_equal(thin_vol_read(p, snap, got, BS, 0), 0);
	assert_memory_equal(got, a, BS);
	thin_close(p);
	free(a);
	free(b);
	free(c);
	free(got);
	ram_free(d);
}


/* ---- the metadata snapshot ---- */

/* A digest of what a pool handle shows: every volume's record and mappings. */
struct digest {
	uint64_t h, mappings;
};

static int digest_run(uint64_t vb, uint64_t pb, uint64_t len, void *arg)
{
	struct digest *g = arg;

	g->h = (g->h ^ vb) * 0x100000001b3ull;
	g->h = (g->h ^ pb) * 0x100000001b3ull;
	g->h = (g->h ^ len) * 0x100000001b3ull;
	g->mappings += len;
	return 0;
}

static struct digest pool_digest(struct thin_pool *p)
{
	struct digest g = { .h = 0xcbf29ce484222325ull };
	struct thin_vol_info v;

	for (uint32_t k = 0; thin_vol_at(p, k, &v) == 0; k++) {
		g.h = (g.h ^ v.id) * 0x100000001b3ull;
		g.h = (g.h ^ v.size) * 0x100000001b3ull;
		g.h = (g.h ^ v.mapped) * 0x100000001b3ull;
		assert_int_equal(thin_vol_walk(p, v.id, digest_run, &g), 0);
	}
	return g;
}

/* The blocks a snapshot reaches, read raw: header, table copy, bitmap, every node of its trees. */
struct held_copy {
	uint64_t n, cap;
	uint64_t *blk;
	uint8_t (*data)[PAGE];
};

static bool held_has(const struct held_copy *h, uint64_t blk)
{
	for (uint64_t i = 0; i < h->n; i++)
		if (h->blk[i] == blk)
			return true;
	return false;
}

static void held_add(struct ramdev *d, struct held_copy *h, uint64_t blk)
{
	if (held_has(h, blk))
		return;
	if (h->n == h->cap) {
		h->cap = h->cap ? 2 * h->cap : 256;
		h->blk = realloc(h->blk, h->cap * sizeof(*h->blk));
		h->data = realloc(h->data, h->cap * sizeof(*h->data));
		assert_non_null(h->blk);
		assert_non_null(h->data);
	}
	h->blk[h->n] = blk;
	page_read(d->cur, blk * PAGE, h->data[h->n], PAGE);
	h->n++;
}

static void held_walk(struct ramdev *d, struct held_copy *h, uint64_t blk)
{
	struct thin_node *n = malloc(sizeof(*n));
	uint8_t buf[PAGE];

	assert_non_null(n);
	page_read(d->cur, blk * PAGE, buf, PAGE);
	assert_int_equal(thin_node_decode(buf, PAGE, blk, n), 0);
	held_add(d, h, blk);
	for (uint32_t i = 0; !n->leaf && i < n->n; i++)
		held_walk(d, h, n->val[i]);
	free(n);
}

static void held_collect(struct ramdev *d, uint64_t hdr, struct held_copy *h)
{
	struct thin_msnap ms;
	struct thin_vol_rec v;
	uint8_t buf[PAGE];

	page_read(d->cur, hdr * PAGE, buf, PAGE);
	assert_int_equal(thin_msnap_decode(buf, PAGE, hdr, &ms), 0);
	held_add(d, h, hdr);
	for (uint32_t i = 0; i < ms.n_bitmap; i++)
		held_add(d, h, ms.bitmap[i]);
	for (unsigned t = 0; t < THIN_VOLTAB_BLOCKS; t++) {
		held_add(d, h, ms.table[t]);
		page_read(d->cur, ms.table[t] * PAGE, buf, PAGE);
		assert_int_equal(thin_area_verify(buf, ms.table[t]), 0);
		for (unsigned k = 0; k < THIN_VOLS_PER_BLOCK; k++) {
			assert_int_equal(thin_vol_rec_decode(buf + k * THIN_VOL_RECORD, &v), 0);
			if (v.id)
				held_walk(d, h, v.root);
		}
	}
}

/* How many of the held blocks differ now from their copies. */
static uint64_t held_changed(struct ramdev *d, const struct held_copy *h)
{
	uint8_t buf[PAGE];
	uint64_t changed = 0;

	for (uint64_t i = 0; i < h->n; i++) {
		page_read(d->cur, h->blk[i] * PAGE, buf, PAGE);
		changed += memcmp(buf, h->data[i], PAGE) != 0;
	}
	return changed;
}

static struct digest snap_digest(struct ramdev *d)
{
	struct thin_io io = ram_io(d);
	struct thin_pool *q;
	struct digest g;

	assert_int_equal(thin_open_metadata_snap(&io, &q), 0);
	g = pool_digest(q);
	thin_close(q);
	return g;
}

#define SHARED_MAX 64u

/* Each volume's shared block count, in volume table order; how many volumes. */
static unsigned shared_counts(struct thin_pool *p, uint64_t *shared)
{
	struct thin_vol_info v;
	unsigned k;

	for (k = 0; k < SHARED_MAX && thin_vol_at(p, k, &v) == 0; k++)
		assert_int_equal(thin_vol_shared(p, v.id, &shared[k]), 0);
	return k;
}

/* The snapshot's view recounts its references: the shared counts at its commit. */
static void snap_shared_equal(struct ramdev *d, const uint64_t *shared, unsigned n)
{
	struct thin_io io = ram_io(d);
	struct thin_pool *q;
	uint64_t now[SHARED_MAX];

	assert_int_equal(thin_open_metadata_snap(&io, &q), 0);
	assert_int_equal(shared_counts(q, now), n);
	for (unsigned k = 0; k < n; k++)
		assert_int_equal(now[k], shared[k]);
	thin_close(q);
}

/*
 * Reserve a metadata snapshot, then many random steps and commits (and
 * power failures): no commit writes over a block the snapshot reaches, a
 * reader of the snapshot sees what it saw, check (which counts the
 * snapshot's blocks and verifies its trees are held) stays clean. Release
 * frees its blocks: they are counted free and handed out again.
 */
static void test_metadata_snap(void **state)
{
	struct ramdev *d = ram_new(POOL_BYTES);
	struct thin_io io = ram_io(d);
	struct thin_pool *p = new_pool(d, 0), *q;
	struct model *m = calloc(1, sizeof(*m));
	struct held_copy h = { 0 };
	struct thin_pool_info before, held_info, after;
	struct digest at_reserve, now;
	uint64_t hdr, dummy, shared[SHARED_MAX], shared_sum = 0;
	unsigned n_shared;
	bool commit;
	int r;

	assert_non_null(m);
	srand(4242);
	assert_int_equal(step_create(p, m), 0);
	/* Some of everything, then trees of two levels at least. */
	for (int i = 0; i < 2000; i++)
		assert_int_equal(random_step(p, m, &commit), 0);
	for (int i = 0; i < 4000; i++) {
		assert_int_equal(step_insert(p, m), 0);
		if (i % 100 == 0)
			assert_int_equal(thin_commit(p), 0);
	}
	assert_int_equal(thin_open_metadata_snap(&io, &q), -ENOENT);
	assert_int_equal(thin_release_metadata_snap(p), -ENODATA);
	/* Uncommitted changes go into the commit the snapshot copies. */
	assert_int_equal(step_insert(p, m), 0);
	thin_pool_get_info(p, &before);
	assert_int_equal(thin_reserve_metadata_snap(p), 0);
	assert_false(thin_dirty(p));
	assert_int_equal(thin_reserve_metadata_snap(p), -EBUSY);
	assert_int_equal(thin_get_metadata_snap(p, &hdr), 0);
	thin_pool_get_info(p, &held_info);
	assert_int_equal(held_info.metadata_snap, hdr);
	assert_int_equal(held_info.free_metadata_blocks,
			 before.free_metadata_blocks - 1 - THIN_VOLTAB_BLOCKS - 1);
	model_compare(p, m);
	at_reserve = pool_digest(p);
	print_message("%llu mappings held\n", (unsigned long long)at_reserve.mappings);
	assert_true(at_reserve.mappings > 2000);
	now = snap_digest(d);
	assert_int_equal(now.h, at_reserve.h);
	n_shared = shared_counts(p, shared);
	for (unsigned k = 0; k < n_shared; k++)
		shared_sum += shared[k];
	print_message("%u volumes, %llu blocks shared\n", n_shared,
		      (unsigned long long)shared_sum);
	assert_true(shared_sum > 0);
	snap_shared_equal(d, shared, n_shared);
	/* The reader sees the counts of the commit it copies, and changes nothing. */
	assert_int_equal(thin_open_metadata_snap(&io, &q), 0);
	thin_pool_get_info(q, &after);
	assert_int_equal(after.free_data_blocks, held_info.free_data_blocks);
	assert_int_equal(after.transaction_id, held_info.transaction_id);
	assert_int_equal(thin_vol_create(q, "x", BS, NULL), -EROFS);
	assert_int_equal(thin_commit(q), -EROFS);
	thin_close(q);
	held_collect(d, hdr, &h);
	assert_clean(p);

	for (int round = 0; round < 40; round++) {
		for (int i = 0; i < 300; i++) {
			r = random_step(p, m, &commit);
			assert_int_equal(r, 0);
		}
		assert_int_equal(thin_commit(p), 0);
		assert_int_equal(held_changed(d, &h), 0);
		now = snap_digest(d);
		assert_int_equal(now.h, at_reserve.h);
		snap_shared_equal(d, shared, n_shared);
		assert_clean(p);
		if (round % 10 == 5) {
			/* A power failure: it is still held after reopening. */
			d->ops_left = 1 + rand() % 100;
			while (random_step(p, m, &commit) == 0)
				;
			thin_close(p);
			ram_crash(d, rand() % 2);
			assert_int_equal(thin_open(&io, false, &p), 0);
			assert_int_equal(thin_get_metadata_snap(p, &dummy), 0);
			assert_int_equal(dummy, hdr);
			assert_int_equal(held_changed(d, &h), 0);
			assert_clean(p);
			/* Back at a commit: the model follows the pool. */
			memset(m, 0, sizeof(*m));
			{
				struct thin_vol_info v;

				while (thin_vol_at(p, 0, &v) == 0)
					assert_int_equal(thin_vol_delete(p, v.name), 0);
			}
			assert_int_equal(step_create(p, m), 0);
		}
	}
	thin_pool_get_info(p, &held_info);
	assert_int_equal(thin_release_metadata_snap(p), 0);
	assert_int_equal(thin_get_metadata_snap(p, &dummy), -ENODATA);
	assert_int_equal(thin_open_metadata_snap(&io, &q), -ENOENT);
	thin_pool_get_info(p, &after);
	/* Its own blocks and the nodes only it held are free again. */
	assert_true(after.free_metadata_blocks >= held_info.free_metadata_blocks + 2 +
						   THIN_VOLTAB_BLOCKS);
	assert_clean(p);
	/* ... and handed out again. */
	for (int i = 0; i < 20000 && held_changed(d, &h) == 0; i++) {
		assert_int_equal(random_step(p, m, &commit), 0);
		if (i % 100 == 0)
			assert_int_equal(thin_commit(p), 0);
	}
	assert_true(held_changed(d, &h) > 0);
	assert_int_equal(thin_commit(p), 0);
	assert_clean(p);
	thin_close(p);
	free(h.blk);
	free(h.data);
	free(m);
	ram_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_open),
		cmocka_unit_test(test_random_model),
		cmocka_unit_test(test_metadata_reserve),
		cmocka_unit_test(test_crash),
		cmocka_unit_test(test_data_cow),
		cmocka_unit_test(test_reserve_map),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_damage),
		cmocka_unit_test(test_commit_failure),
		cmocka_unit_test(test_deep_tree),
		cmocka_unit_test(test_crash_no_cross_write),
		cmocka_unit_test(test_metadata_snap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
