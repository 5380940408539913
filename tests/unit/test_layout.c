/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for lib/layout.c: the mappings of every level checked both ways
 * against tables written out by hand, plus round-trip and coverage
 * properties over small arrays.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <raidtool/layout.h>

#define K64 (64u * 1024u)
#define NR(a) (sizeof(a) / sizeof((a)[0]))

/* One logical chunk of a hand-written table. */
struct row {
	uint64_t chunk;		/* logical chunk number */
	uint32_t role;
	uint64_t stripe;
	uint32_t parity;	/* LAYOUT_NO_ROLE when none */
	uint32_t data_index;
	uint64_t offset_chunks;	/* chunk number inside the role's data area */
};

#define NP LAYOUT_NO_ROLE

static void init_equal(struct layout *l, int32_t level, uint32_t n, uint32_t chunk,
		       uint64_t each)
{
	uint64_t sizes[RT_MAX_UNITS];
	uint32_t r;

	for (r = 0; r < n; r++)
		sizes[r] = each;
	assert_int_equal(layout_init(l, level, n, chunk, sizes), 0);
}

/*
 * Check a table both ways: map at the start, middle and last byte of each
 * chunk, and unmap the same places.
 */
static void check_table(const struct layout *l, const struct row *t, size_t nrows)
{
	static const uint64_t withins[] = { 0, 1, 4096, K64 / 2, K64 - 1 };
	size_t i, w;

	for (i = 0; i < nrows; i++) {
		for (w = 0; w < NR(withins); w++) {
			uint64_t within = withins[w] % l->chunk;
			uint64_t logical = t[i].chunk * l->chunk + within;
			uint64_t back = UINT64_MAX;
			struct layout_extent e;

			memset(&e, 0xa5, sizeof(e));
			assert_int_equal(layout_map(l, logical, UINT64_MAX, &e), 0);
			assert_int_equal(e.role, t[i].role);
			assert_int_equal(e.stripe, t[i].stripe);
			assert_int_equal(e.parity_role, t[i].parity);
			assert_int_equal(e.data_index, t[i].data_index);
			assert_int_equal(e.offset, t[i].offset_chunks * l->chunk + within);
			assert_int_equal(e.len, l->chunk - within);

			assert_int_equal(layout_unmap(l, t[i].role,
						      t[i].offset_chunks * l->chunk + within,
						      &back), 0);
			assert_int_equal(back, logical);
		}
	}
}

/* ---- raid5 ------------------------------------------------------------ */

/*
 * raid5, 3 units, left-symmetric:
 *   stripe 0:  D0  D1  P
 *   stripe 1:  D3  P   D2
 *   stripe 2:  P   D4  D5
 *   stripe 3:  D6  D7  P
 *   stripe 4:  D9  P   D8
 *   stripe 5:  P   D10 D11
 */
static const struct row raid5_3[] = {
	{ 0, 0, 0, 2, 0, 0 },	{ 1, 1, 0, 2, 1, 0 },
	{ 2, 2, 1, 1, 0, 1 },	{ 3, 0, 1, 1, 1, 1 },
	{ 4, 1, 2, 0, 0, 2 },	{ 5, 2, 2, 0, 1, 2 },
	{ 6, 0, 3, 2, 0, 3 },	{ 7, 1, 3, 2, 1, 3 },
	{ 8, 2, 4, 1, 0, 4 },	{ 9, 0, 4, 1, 1, 4 },
	{ 10, 1, 5, 0, 0, 5 },	{ 11, 2, 5, 0, 1, 5 },
};

/*
 * raid5, 5 units, left-symmetric:
 *   stripe 0:  D0  D1  D2  D3  P
 *   stripe 1:  D5  D6  D7  P   D4
 *   stripe 2:  D10 D11 P   D8  D9
 *   stripe 3:  D15 P   D12 D13 D14
 *   stripe 4:  P   D16 D17 D18 D19
 *   stripes 5..9 repeat the pattern with 20 added.
 */
static const struct row raid5_5[] = {
	{ 0, 0, 0, 4, 0, 0 },	{ 1, 1, 0, 4, 1, 0 },
	{ 2, 2, 0, 4, 2, 0 },	{ 3, 3, 0, 4, 3, 0 },
	{ 4, 4, 1, 3, 0, 1 },	{ 5, 0, 1, 3, 1, 1 },
	{ 6, 1, 1, 3, 2, 1 },	{ 7, 2, 1, 3, 3, 1 },
	{ 8, 3, 2, 2, 0, 2 },	{ 9, 4, 2, 2, 1, 2 },
	{ 10, 0, 2, 2, 2, 2 },	{ 11, 1, 2, 2, 3, 2 },
	{ 12, 2, 3, 1, 0, 3 },	{ 13, 3, 3, 1, 1, 3 },
	{ 14, 4, 3, 1, 2, 3 },	{ 15, 0, 3, 1, 3, 3 },
	{ 16, 1, 4, 0, 0, 4 },	{ 17, 2, 4, 0, 1, 4 },
	{ 18, 3, 4, 0, 2, 4 },	{ 19, 4, 4, 0, 3, 4 },
	{ 20, 0, 5, 4, 0, 5 },	{ 21, 1, 5, 4, 1, 5 },
	{ 22, 2, 5, 4, 2, 5 },	{ 23, 3, 5, 4, 3, 5 },
	{ 24, 4, 6, 3, 0, 6 },	{ 25, 0, 6, 3, 1, 6 },
	{ 26, 1, 6, 3, 2, 6 },	{ 27, 2, 6, 3, 3, 6 },
	{ 28, 3, 7, 2, 0, 7 },	{ 29, 4, 7, 2, 1, 7 },
	{ 30, 0, 7, 2, 2, 7 },	{ 31, 1, 7, 2, 3, 7 },
	{ 32, 2, 8, 1, 0, 8 },	{ 33, 3, 8, 1, 1, 8 },
	{ 34, 4, 8, 1, 2, 8 },	{ 35, 0, 8, 1, 3, 8 },
	{ 36, 1, 9, 0, 0, 9 },	{ 37, 2, 9, 0, 1, 9 },
	{ 38, 3, 9, 0, 2, 9 },	{ 39, 4, 9, 0, 3, 9 },
};

/* The parity role of each stripe 0..9 of the tables above, and its data roles. */
static void test_raid5_tables(void **state)
{
	static const uint32_t par3[] = { 2, 1, 0, 2, 1, 0 };
	static const uint32_t par5[] = { 4, 3, 2, 1, 0, 4, 3, 2, 1, 0 };
	struct layout l;
	uint64_t logical;
	size_t s;

	(void)state;
	init_equal(&l, RT_LEVEL_5, 3, K64, 16 * (uint64_t)K64);
	check_table(&l, raid5_3, NR(raid5_3));
	for (s = 0; s < NR(par3); s++) {
		assert_int_equal(layout_raid5_parity_role(&l, s), par3[s]);
		assert_int_equal(layout_unmap(&l, par3[s], s * K64 + 100, &logical), -ENOENT);
	}
	/* data roles of stripe 1: D2 on role 2, D3 on role 0 */
	assert_int_equal(layout_raid5_data_role(&l, 1, 0), 2);
	assert_int_equal(layout_raid5_data_role(&l, 1, 1), 0);
	assert_int_equal(layout_raid5_data_role(&l, 1, 2), LAYOUT_NO_ROLE);
	assert_int_equal(layout_data_roles(&l), 2);

	init_equal(&l, RT_LEVEL_5, 5, K64, 16 * (uint64_t)K64);
	check_table(&l, raid5_5, NR(raid5_5));
	for (s = 0; s < NR(par5); s++) {
		assert_int_equal(layout_raid5_parity_role(&l, s), par5[s]);
		assert_int_equal(layout_unmap(&l, par5[s], s * K64, &logical), -ENOENT);
		assert_int_equal(layout_unmap(&l, par5[s], s * K64 + K64 - 1, &logical),
				 -ENOENT);
	}
	/* stripe 2: D8 D9 D10 D11 on roles 3 4 0 1 */
	assert_int_equal(layout_raid5_data_role(&l, 2, 0), 3);
	assert_int_equal(layout_raid5_data_role(&l, 2, 1), 4);
	assert_int_equal(layout_raid5_data_role(&l, 2, 2), 0);
	assert_int_equal(layout_raid5_data_role(&l, 2, 3), 1);
	assert_int_equal(layout_data_roles(&l), 4);
}

/* ---- raid0 ------------------------------------------------------------ */

/*
 * raid0, 3 units:          raid0, 4 units:
 *   row 0: D0 D1 D2          row 0: D0  D1  D2  D3
 *   row 1: D3 D4 D5          row 1: D4  D5  D6  D7
 *   row 2: D6 D7 D8          row 2: D8  D9  D10 D11
 *   row 3: D9 D10 D11
 */
static const struct row raid0_3[] = {
	{ 0, 0, 0, NP, 0, 0 },	{ 1, 1, 0, NP, 1, 0 },	{ 2, 2, 0, NP, 2, 0 },
	{ 3, 0, 1, NP, 0, 1 },	{ 4, 1, 1, NP, 1, 1 },	{ 5, 2, 1, NP, 2, 1 },
	{ 6, 0, 2, NP, 0, 2 },	{ 7, 1, 2, NP, 1, 2 },	{ 8, 2, 2, NP, 2, 2 },
	{ 9, 0, 3, NP, 0, 3 },	{ 10, 1, 3, NP, 1, 3 },	{ 11, 2, 3, NP, 2, 3 },
};

static const struct row raid0_4[] = {
	{ 0, 0, 0, NP, 0, 0 },	{ 1, 1, 0, NP, 1, 0 },
	{ 2, 2, 0, NP, 2, 0 },	{ 3, 3, 0, NP, 3, 0 },
	{ 4, 0, 1, NP, 0, 1 },	{ 5, 1, 1, NP, 1, 1 },
	{ 6, 2, 1, NP, 2, 1 },	{ 7, 3, 1, NP, 3, 1 },
	{ 8, 0, 2, NP, 0, 2 },	{ 9, 1, 2, NP, 1, 2 },
	{ 10, 2, 2, NP, 2, 2 },	{ 11, 3, 2, NP, 3, 2 },
};

static void test_raid0_tables(void **state)
{
	struct layout l;

	(void)state;
	init_equal(&l, RT_LEVEL_0, 3, K64, 4 * (uint64_t)K64);
	assert_int_equal(l.size, 12 * (uint64_t)K64);
	check_table(&l, raid0_3, NR(raid0_3));
	assert_int_equal(layout_data_roles(&l), 3);
	assert_int_equal(layout_raid5_parity_role(&l, 0), LAYOUT_NO_ROLE);
	assert_int_equal(layout_raid5_data_role(&l, 0, 0), LAYOUT_NO_ROLE);

	init_equal(&l, RT_LEVEL_0, 4, K64, 3 * (uint64_t)K64);
	assert_int_equal(l.size, 12 * (uint64_t)K64);
	check_table(&l, raid0_4, NR(raid0_4));
	assert_int_equal(layout_data_roles(&l), 4);
}

/* ---- linear ----------------------------------------------------------- */

/*
 * linear, 3 units of 3 chunks + 100 bytes, 1 chunk, 2 chunks + 65535 bytes:
 * each rounds down to whole chunks (3, 1, 2), the array has 6 chunks.
 *   D0 D1 D2 on role 0 (its chunks 0 1 2), D3 on role 1 (chunk 0),
 *   D4 D5 on role 2 (chunks 0 1). The stripe is the array chunk number.
 */
static const struct row linear_3[] = {
	{ 0, 0, 0, NP, 0, 0 },	{ 1, 0, 1, NP, 0, 1 },	{ 2, 0, 2, NP, 0, 2 },
	{ 3, 1, 3, NP, 0, 0 },
	{ 4, 2, 4, NP, 0, 0 },	{ 5, 2, 5, NP, 0, 1 },
};

static void test_linear_table(void **state)
{
	const uint64_t sizes[3] = { 3 * (uint64_t)K64 + 100, K64, 2 * (uint64_t)K64 + 65535 };
	struct layout l;
	uint64_t logical;

	(void)state;
	assert_int_equal(layout_init(&l, RT_LEVEL_LINEAR, 3, K64, sizes), 0);
	assert_int_equal(l.size, 6 * (uint64_t)K64);
	assert_int_equal(l.role_size[0], 3 * (uint64_t)K64);
	assert_int_equal(l.role_size[1], K64);
	assert_int_equal(l.role_size[2], 2 * (uint64_t)K64);
	check_table(&l, linear_3, NR(linear_3));
	assert_int_equal(layout_data_roles(&l), 1);
	/* the rounded-off tails are outside the data */
	assert_int_equal(layout_unmap(&l, 0, 3 * (uint64_t)K64, &logical), -ERANGE);
	assert_int_equal(layout_unmap(&l, 1, K64, &logical), -ERANGE);
	assert_int_equal(layout_unmap(&l, 2, 2 * (uint64_t)K64 + 1, &logical), -ERANGE);
}

/* A linear role smaller than one chunk contributes nothing and is skipped. */
static void test_linear_empty_role(void **state)
{
	const uint64_t sizes[3] = { K64, 4096, K64 };
	struct layout l;
	struct layout_extent e;
	uint64_t logical;

	(void)state;
	assert_int_equal(layout_init(&l, RT_LEVEL_LINEAR, 3, K64, sizes), 0);
	assert_int_equal(l.size, 2 * (uint64_t)K64);
	assert_int_equal(l.role_size[1], 0);
	assert_int_equal(layout_map(&l, K64, 10, &e), 0);
	assert_int_equal(e.role, 2);
	assert_int_equal(e.offset, 0);
	assert_int_equal(layout_unmap(&l, 1, 0, &logical), -ERANGE);
	assert_int_equal(layout_unmap(&l, 2, 5, &logical), 0);
	assert_int_equal(logical, K64 + 5);
}

/* ---- raid1 ------------------------------------------------------------ */

static void test_raid1(void **state)
{
	const uint64_t sizes[3] = { 5 * (uint64_t)K64 + 7, 4 * (uint64_t)K64 + 9, 6 * (uint64_t)K64 };
	struct layout l;
	struct layout_extent e;
	uint64_t logical;
	uint32_t r;

	(void)state;
	assert_int_equal(layout_init(&l, RT_LEVEL_1, 3, K64, sizes), 0);
	assert_int_equal(l.unit_size, 4 * (uint64_t)K64);
	assert_int_equal(l.size, 4 * (uint64_t)K64);
	assert_int_equal(layout_data_roles(&l), 1);

	/* role 0, offset = logical, chunk index as stripe, never across a chunk */
	assert_int_equal(layout_map(&l, 0, 3 * (uint64_t)K64, &e), 0);
	assert_int_equal(e.role, 0);
	assert_int_equal(e.offset, 0);
	assert_int_equal(e.len, K64);
	assert_int_equal(e.stripe, 0);
	assert_int_equal(e.parity_role, LAYOUT_NO_ROLE);
	assert_int_equal(layout_map(&l, 2 * (uint64_t)K64 + 300, 1000, &e), 0);
	assert_int_equal(e.role, 0);
	assert_int_equal(e.offset, 2 * (uint64_t)K64 + 300);
	assert_int_equal(e.len, 1000);
	assert_int_equal(e.stripe, 2);
	assert_int_equal(e.data_index, 0);

	/* every mirror maps offset to the same logical offset */
	for (r = 0; r < 3; r++) {
		assert_int_equal(layout_unmap(&l, r, 3 * (uint64_t)K64 + 17, &logical), 0);
		assert_int_equal(logical, 3 * (uint64_t)K64 + 17);
		assert_int_equal(layout_unmap(&l, r, 4 * (uint64_t)K64, &logical), -ERANGE);
	}
}

/* ---- sizes and errors ------------------------------------------------- */

static void test_sizes(void **state)
{
	/* unequal sizes: the smallest, rounded down to a chunk, on every role */
	const uint64_t sizes[4] = {
		10 * (uint64_t)K64 + 5, 7 * (uint64_t)K64 + K64 - 1,
		9 * (uint64_t)K64, 100 * (uint64_t)K64,
	};
	struct layout l;
	uint32_t r;

	(void)state;
	assert_int_equal(layout_init(&l, RT_LEVEL_0, 4, K64, sizes), 0);
	assert_int_equal(l.unit_size, 7 * (uint64_t)K64);
	assert_int_equal(l.size, 28 * (uint64_t)K64);
	for (r = 0; r < 4; r++)
		assert_int_equal(l.role_size[r], 7 * (uint64_t)K64);

	assert_int_equal(layout_init(&l, RT_LEVEL_1, 4, K64, sizes), 0);
	assert_int_equal(l.size, 7 * (uint64_t)K64);

	assert_int_equal(layout_init(&l, RT_LEVEL_5, 4, K64, sizes), 0);
	assert_int_equal(l.unit_size, 7 * (uint64_t)K64);
	assert_int_equal(l.size, 21 * (uint64_t)K64);
	assert_int_equal(l.n, 4);
	assert_int_equal(l.chunk, K64);
	assert_int_equal(l.level, RT_LEVEL_5);

	assert_int_equal(layout_init(&l, RT_LEVEL_LINEAR, 4, K64, sizes), 0);
	assert_int_equal(l.size, (10 + 7 + 9 + 100) * (uint64_t)K64);

	/* smallest legal chunk and a single-unit raid0 and linear */
	assert_int_equal(layout_init(&l, RT_LEVEL_0, 1, 4096, sizes), 0);
	assert_int_equal(l.size, 10 * (uint64_t)K64);
	assert_int_equal(layout_init(&l, RT_LEVEL_LINEAR, 1, RT_MAX_CHUNK,
				     (const uint64_t[]){ 3 * (uint64_t)RT_MAX_CHUNK + 1 }), 0);
	assert_int_equal(l.size, 3 * (uint64_t)RT_MAX_CHUNK);

	/* the largest array: RT_MAX_UNITS roles */
	init_equal(&l, RT_LEVEL_5, RT_MAX_UNITS, K64, 2 * (uint64_t)K64);
	assert_int_equal(l.size, 2 * (uint64_t)K64 * (RT_MAX_UNITS - 1));

	/* 1 TiB units */
	init_equal(&l, RT_LEVEL_5, 3, RT_DEFAULT_CHUNK, 1ull << 40);
	assert_int_equal(l.size, 2ull << 40);
}

static void test_init_errors(void **state)
{
	uint64_t sizes[RT_MAX_UNITS + 1];
	struct layout l;
	size_t i;

	(void)state;
	for (i = 0; i < NR(sizes); i++)
		sizes[i] = 16 * (uint64_t)K64;

	/* unknown levels */
	assert_int_equal(layout_init(&l, 2, 3, K64, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, 4, 3, K64, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, 6, 4, K64, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, 10, 4, K64, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, -2, 3, K64, sizes), -EINVAL);

	/* too few roles */
	assert_int_equal(layout_init(&l, RT_LEVEL_LINEAR, 0, K64, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, RT_LEVEL_0, 0, K64, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, RT_LEVEL_1, 1, K64, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, RT_LEVEL_5, 2, K64, sizes), -EINVAL);

	/* too many roles */
	assert_int_equal(layout_init(&l, RT_LEVEL_0, RT_MAX_UNITS + 1, K64, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, RT_LEVEL_5, RT_MAX_UNITS + 1, K64, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, RT_LEVEL_0, UINT32_MAX, K64, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, RT_LEVEL_0, RT_MAX_UNITS, K64, sizes), 0);

	/* chunk: power of two, 4 KiB .. 64 MiB */
	assert_int_equal(layout_init(&l, RT_LEVEL_0, 2, 0, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, RT_LEVEL_0, 2, 512, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, RT_LEVEL_0, 2, 2048, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, RT_LEVEL_0, 2, 4097, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, RT_LEVEL_0, 2, 6144, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, RT_LEVEL_0, 2, 3 * K64, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, RT_LEVEL_0, 2, RT_MAX_CHUNK * 2, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, RT_LEVEL_0, 2, 0x80000000u, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, RT_LEVEL_0, 2, 4096, sizes), 0);

	/* resulting size 0 */
	sizes[1] = K64 - 1;
	assert_int_equal(layout_init(&l, RT_LEVEL_0, 3, K64, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, RT_LEVEL_1, 3, K64, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, RT_LEVEL_5, 3, K64, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, RT_LEVEL_LINEAR, 3, K64, sizes), 0);
	sizes[0] = sizes[2] = 0;
	assert_int_equal(layout_init(&l, RT_LEVEL_LINEAR, 3, K64, sizes), -EINVAL);

	/* sizes that overflow 64 bits */
	for (i = 0; i < NR(sizes); i++)
		sizes[i] = UINT64_MAX / 2;
	assert_int_equal(layout_init(&l, RT_LEVEL_LINEAR, 3, K64, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, RT_LEVEL_0, 3, K64, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, RT_LEVEL_5, 4, K64, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, RT_LEVEL_1, 4, K64, sizes), 0);

	/* missing arguments */
	assert_int_equal(layout_init(NULL, RT_LEVEL_0, 2, K64, sizes), -EINVAL);
	assert_int_equal(layout_init(&l, RT_LEVEL_0, 2, K64, NULL), -EINVAL);
}

static void test_map_errors(void **state)
{
	struct layout l;
	struct layout_extent e;
	uint64_t logical;

	(void)state;
	init_equal(&l, RT_LEVEL_5, 3, K64, 4 * (uint64_t)K64);
	assert_int_equal(l.size, 8 * (uint64_t)K64);

	assert_int_equal(layout_map(&l, l.size, 1, &e), -ERANGE);
	assert_int_equal(layout_map(&l, l.size + K64, 1, &e), -ERANGE);
	assert_int_equal(layout_map(&l, UINT64_MAX, 1, &e), -ERANGE);
	assert_int_equal(layout_map(&l, 0, 0, &e), -ERANGE);
	assert_int_equal(layout_map(&l, 0, 1, NULL), -EINVAL);
	assert_int_equal(layout_map(NULL, 0, 1, &e), -EINVAL);

	/* the last byte maps, capped at the array's end */
	assert_int_equal(layout_map(&l, l.size - 1, UINT64_MAX, &e), 0);
	assert_int_equal(e.len, 1);
	assert_int_equal(e.stripe, 3);
	assert_int_equal(e.offset, 4 * (uint64_t)K64 - 1);

	/* a short request is not extended; a long one stops at the chunk end */
	assert_int_equal(layout_map(&l, 100, 5, &e), 0);
	assert_int_equal(e.len, 5);
	assert_int_equal(layout_map(&l, 100, K64, &e), 0);
	assert_int_equal(e.len, K64 - 100);

	assert_int_equal(layout_unmap(&l, 3, 0, &logical), -EINVAL);
	assert_int_equal(layout_unmap(&l, UINT32_MAX, 0, &logical), -EINVAL);
	assert_int_equal(layout_unmap(&l, 0, 4 * (uint64_t)K64, &logical), -ERANGE);
	assert_int_equal(layout_unmap(&l, 0, UINT64_MAX, &logical), -ERANGE);
	assert_int_equal(layout_unmap(&l, 0, 0, NULL), -EINVAL);
	assert_int_equal(layout_unmap(NULL, 0, 0, &logical), -EINVAL);
}

/* ---- properties ------------------------------------------------------- */

/*
 * For one layout:
 *  - every logical offset, stepping by chunk/2, maps inside a chunk, within
 *    the role's used area, and unmaps back to itself;
 *  - a request spanning the whole array is covered exactly by consecutive
 *    extents;
 *  - every (role, offset) of the used data area, stepping by chunk/2, maps
 *    to exactly one logical offset (per mirror for raid1) or is parity, and
 *    raid5 has exactly one parity chunk per stripe, on the parity role.
 */
static void check_properties(const struct layout *l)
{
	uint64_t step = l->chunk / 2, x, off, logical, pos;
	uint64_t nchunks = l->size / l->chunk;
	uint8_t *seen;
	uint32_t r;
	int rc;

	assert_int_equal(l->size % l->chunk, 0);

	for (x = 0; x < l->size; x += step) {
		struct layout_extent e;

		assert_int_equal(layout_map(l, x, UINT64_MAX, &e), 0);
		assert_true(e.role < l->n);
		assert_int_equal(e.len, l->chunk - x % l->chunk);
		assert_true(e.offset + e.len <= l->role_size[e.role]);
		assert_int_equal(e.offset % l->chunk, x % l->chunk);
		if (l->level == RT_LEVEL_5) {
			assert_int_equal(e.parity_role, layout_raid5_parity_role(l, e.stripe));
			assert_int_not_equal(e.parity_role, e.role);
			assert_int_equal(e.role,
					 layout_raid5_data_role(l, e.stripe, e.data_index));
			assert_int_equal(e.stripe, e.offset / l->chunk);
		} else {
			assert_int_equal(e.parity_role, LAYOUT_NO_ROLE);
		}
		assert_true(e.data_index < layout_data_roles(l));
		assert_int_equal(layout_unmap(l, e.role, e.offset, &logical), 0);
		assert_int_equal(logical, x);
	}

	/* one request over the whole array */
	for (pos = 0; pos < l->size;) {
		struct layout_extent e;

		assert_int_equal(layout_map(l, pos, l->size - pos, &e), 0);
		assert_true(e.len > 0);
		pos += e.len;
	}
	assert_int_equal(pos, l->size);

	/* reverse coverage */
	seen = calloc(nchunks * 2, 1);
	assert_non_null(seen);
	for (r = 0; r < l->n; r++) {
		if (l->level == RT_LEVEL_1)
			memset(seen, 0, nchunks * 2);
		for (off = 0; off < l->role_size[r]; off += step) {
			rc = layout_unmap(l, r, off, &logical);
			if (l->level == RT_LEVEL_5 &&
			    r == layout_raid5_parity_role(l, off / l->chunk)) {
				assert_int_equal(rc, -ENOENT);
				continue;
			}
			assert_int_equal(rc, 0);
			assert_true(logical < l->size);
			assert_int_equal(logical % step, 0);
			assert_int_equal(seen[logical / step], 0);
			seen[logical / step] = 1;
		}
		assert_int_equal(layout_unmap(l, r, l->role_size[r], &logical), -ERANGE);
		if (l->level == RT_LEVEL_1)
			for (x = 0; x < nchunks * 2; x++)
				assert_int_equal(seen[x], 1);
	}
	for (x = 0; x < nchunks * 2; x++)
		assert_int_equal(seen[x], 1);
	free(seen);

	/* raid5: exactly one parity chunk per stripe */
	if (l->level == RT_LEVEL_5) {
		uint64_t s;

		for (s = 0; s < l->unit_size / l->chunk; s++) {
			unsigned parity = 0;

			for (r = 0; r < l->n; r++)
				if (layout_unmap(l, r, s * l->chunk, &logical) == -ENOENT)
					parity++;
			assert_int_equal(parity, 1);
		}
	}
}

static void test_properties(void **state)
{
	static const struct {
		int32_t level;
		uint32_t n;
		uint32_t chunk;
	} cfg[] = {
		{ RT_LEVEL_0, 1, 4096 },  { RT_LEVEL_0, 2, K64 },  { RT_LEVEL_0, 3, K64 },
		{ RT_LEVEL_0, 4, 8192 },  { RT_LEVEL_0, 7, 4096 },
		{ RT_LEVEL_1, 2, K64 },   { RT_LEVEL_1, 3, 4096 },
		{ RT_LEVEL_5, 3, K64 },   { RT_LEVEL_5, 4, K64 },  { RT_LEVEL_5, 5, 4096 },
		{ RT_LEVEL_5, 6, 8192 },  { RT_LEVEL_5, 8, 4096 },
		{ RT_LEVEL_5, RT_MAX_UNITS, 4096 },
		{ RT_LEVEL_LINEAR, 1, K64 }, { RT_LEVEL_LINEAR, 3, K64 },
		{ RT_LEVEL_LINEAR, 5, 4096 },
	};
	uint64_t sizes[RT_MAX_UNITS];
	struct layout l;
	size_t i;
	uint32_t r;

	(void)state;
	for (i = 0; i < NR(cfg); i++) {
		/* unequal sizes that are not whole chunks: 2n .. 3n chunks + a tail */
		for (r = 0; r < cfg[i].n; r++)
			sizes[r] = (uint64_t)cfg[i].chunk * (2 * cfg[i].n + (r * 7) % (cfg[i].n + 1))
				   + (r * 1237) % cfg[i].chunk;
		assert_int_equal(layout_init(&l, cfg[i].level, cfg[i].n, cfg[i].chunk, sizes), 0);
		check_properties(&l);
	}
}

/* Random requests: the extents of a request tile it exactly and round-trip. */
static void test_random_requests(void **state)
{
	static const int32_t levels[] = { RT_LEVEL_LINEAR, RT_LEVEL_0, RT_LEVEL_1, RT_LEVEL_5 };
	uint64_t sizes[RT_MAX_UNITS];
	unsigned seed = 12345;
	struct layout l;
	size_t li;
	int iter;
	uint32_t r;

	(void)state;
	for (li = 0; li < NR(levels); li++) {
		for (r = 0; r < 6; r++)
			sizes[r] = 40 * (uint64_t)K64 + r * 3 * (uint64_t)K64 + r * 4096;
		assert_int_equal(layout_init(&l, levels[li], 6, K64, sizes), 0);
		for (iter = 0; iter < 2000; iter++) {
			uint64_t start, len, pos, logical, left;

			seed = seed * 1103515245u + 12345u;
			start = ((uint64_t)seed << 7) % l.size;
			seed = seed * 1103515245u + 12345u;
			len = 1 + (seed >> 4) % (5 * (uint64_t)K64);
			left = len;
			for (pos = start; left > 0 && pos < l.size;) {
				struct layout_extent e;

				assert_int_equal(layout_map(&l, pos, left, &e), 0);
				assert_true(e.len > 0 && e.len <= left);
				assert_true(e.len <= K64 - pos % K64);
				assert_int_equal(layout_unmap(&l, e.role, e.offset, &logical), 0);
				assert_int_equal(logical, pos);
				assert_int_equal(layout_unmap(&l, e.role, e.offset + e.len - 1,
							      &logical), 0);
				assert_int_equal(logical, pos + e.len - 1);
				pos += e.len;
				left -= e.len;
			}
			assert_true(left == 0 || pos == l.size);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_raid5_tables),
		cmocka_unit_test(test_raid0_tables),
		cmocka_unit_test(test_linear_table),
		cmocka_unit_test(test_linear_empty_role),
		cmocka_unit_test(test_raid1),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_init_errors),
		cmocka_unit_test(test_map_errors),
		cmocka_unit_test(test_properties),
		cmocka_unit_test(test_random_requests),
	};

	return cmocka_run_group_tests_name("layout", tests, NULL, NULL);
}
