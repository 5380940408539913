/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for lib/parity.c: XOR of 1..n sources against a byte-loop
 * reference, parity checks, xor_into, and the length/alignment contract.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <raidtool/parity.h>

#define MAX_SRC 80u
#define BUF_LEN (64u * 1024u)

struct bufs {
	uint8_t *src[MAX_SRC];
	void *vsrc[MAX_SRC];	/* the same buffers, as the API takes them */
	uint8_t *dst;
	uint8_t *ref;
};

static unsigned rng_state = 0x2545f491u;

static uint8_t rnd8(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return (uint8_t)(rng_state >> 11);
}

static uint8_t *alloc_buf(size_t len)
{
	void *p = NULL;

	assert_int_equal(posix_memalign(&p, 4096, len), 0);
	return p;
}

static int setup(void **state)
{
	struct bufs *b = calloc(1, sizeof(*b));
	unsigned i;
	size_t j;

	if (!b)
		return -1;
	for (i = 0; i < MAX_SRC; i++) {
		b->src[i] = alloc_buf(BUF_LEN);
		b->vsrc[i] = b->src[i];
		for (j = 0; j < BUF_LEN; j++)
			b->src[i][j] = rnd8();
	}
	b->dst = alloc_buf(BUF_LEN);
	b->ref = alloc_buf(BUF_LEN);
	*state = b;
	return 0;
}

static int teardown(void **state)
{
	struct bufs *b = *state;
	unsigned i;

	for (i = 0; i < MAX_SRC; i++)
		free(b->src[i]);
	free(b->dst);
	free(b->ref);
	free(b);
	return 0;
}

static void reference_xor(uint8_t *out, void *const *src, unsigned n, size_t len)
{
	size_t j;
	unsigned i;

	for (j = 0; j < len; j++) {
		uint8_t v = 0;

		for (i = 0; i < n; i++)
			v ^= ((const uint8_t *)src[i])[j];
		out[j] = v;
	}
}

static void check_xor(struct bufs *b, unsigned n, size_t len)
{
	/* guard bytes after len must stay untouched */
	memset(b->dst, 0xee, BUF_LEN);
	reference_xor(b->ref, b->vsrc, n, len);
	assert_int_equal(parity_xor(b->dst, b->vsrc, n, len), 0);
	assert_memory_equal(b->dst, b->ref, len);
	if (len < BUF_LEN)
		assert_int_equal(b->dst[len], 0xee);

	/* the computed parity checks, a flipped bit anywhere does not */
	assert_int_equal(parity_check(b->dst, b->vsrc, n, len), 0);
	if (len > 0) {
		size_t pos[3] = { 0, len / 2 + 3, len - 1 };
		unsigned k;

		for (k = 0; k < 3; k++) {
			b->dst[pos[k]] ^= 0x10;
			assert_int_equal(parity_check(b->dst, b->vsrc, n, len), 1);
			b->dst[pos[k]] ^= 0x10;
		}
		/* a changed source is a mismatch too */
		b->src[n - 1][len - 1] ^= 1;
		assert_int_equal(parity_check(b->dst, b->vsrc, n, len), 1);
		b->src[n - 1][len - 1] ^= 1;
		assert_int_equal(parity_check(b->dst, b->vsrc, n, len), 0);
	}
}

static void test_xor_counts(void **state)
{
	static const unsigned counts[] = { 1, 2, 3, 7 };
	static const size_t lens[] = { 32, 64, 96, 4096, 4128, BUF_LEN };
	struct bufs *b = *state;
	size_t c, l;

	for (c = 0; c < sizeof(counts) / sizeof(counts[0]); c++)
		for (l = 0; l < sizeof(lens) / sizeof(lens[0]); l++)
			check_xor(b, counts[c], lens[l]);
}

/* More sources than one ISA-L call takes at once (64). */
static void test_xor_many(void **state)
{
	struct bufs *b = *state;

	check_xor(b, 63, BUF_LEN);
	check_xor(b, 64, BUF_LEN);
	check_xor(b, 65, BUF_LEN);
	check_xor(b, MAX_SRC, BUF_LEN);
	check_xor(b, MAX_SRC, 4096 + 32);
}

/* One source is a copy; in place it is a no-op. */
static void test_xor_single_copy(void **state)
{
	struct bufs *b = *state;

	memset(b->dst, 0, BUF_LEN);
	assert_int_equal(parity_xor(b->dst, b->vsrc, 1, BUF_LEN), 0);
	assert_memory_equal(b->dst, b->src[0], BUF_LEN);
	memcpy(b->ref, b->src[0], BUF_LEN);
	assert_int_equal(parity_xor(b->src[0], b->vsrc, 1, BUF_LEN), 0);
	assert_memory_equal(b->src[0], b->ref, BUF_LEN);
}

/* Sources XORed with their parity give zeros: a degraded-read reconstruction. */
static void test_reconstruct(void **state)
{
	struct bufs *b = *state;
	void *v[4];

	assert_int_equal(parity_xor(b->dst, b->vsrc, 4, BUF_LEN), 0);
	/* rebuild source 2 from sources 0, 1, 3 and the parity */
	v[0] = b->src[0];
	v[1] = b->src[1];
	v[2] = b->src[3];
	v[3] = b->dst;
	assert_int_equal(parity_xor(b->ref, v, 4, BUF_LEN), 0);
	assert_memory_equal(b->ref, b->src[2], BUF_LEN);
}

static void test_check_zero_parity(void **state)
{
	struct bufs *b = *state;
	void *v[2];

	/* a buffer XORed with itself is zero, so parity zero checks */
	memset(b->dst, 0, BUF_LEN);
	v[0] = b->src[5];
	v[1] = b->src[5];
	assert_int_equal(parity_check(b->dst, v, 2, BUF_LEN), 0);
	/* one source checks against a copy of itself */
	assert_int_equal(parity_check(b->src[5], v, 1, BUF_LEN), 0);
	assert_int_equal(parity_check(b->src[6], v, 1, BUF_LEN), 1);
}

static void test_xor_into(void **state)
{
	struct bufs *b = *state;
	size_t j;

	memcpy(b->dst, b->src[0], BUF_LEN);
	assert_int_equal(parity_xor_into(b->dst, b->src[1], BUF_LEN), 0);
	for (j = 0; j < BUF_LEN; j++)
		assert_int_equal(b->dst[j], b->src[0][j] ^ b->src[1][j]);

	/* partial length leaves the rest alone */
	memcpy(b->dst, b->src[0], BUF_LEN);
	assert_int_equal(parity_xor_into(b->dst, b->src[1], 96), 0);
	for (j = 0; j < 96; j++)
		assert_int_equal(b->dst[j], b->src[0][j] ^ b->src[1][j]);
	assert_memory_equal(b->dst + 96, b->src[0] + 96, BUF_LEN - 96);

	/* twice is the identity; with itself is zero */
	memcpy(b->dst, b->src[2], BUF_LEN);
	assert_int_equal(parity_xor_into(b->dst, b->src[3], BUF_LEN), 0);
	assert_int_equal(parity_xor_into(b->dst, b->src[3], BUF_LEN), 0);
	assert_memory_equal(b->dst, b->src[2], BUF_LEN);
	assert_int_equal(parity_xor_into(b->dst, b->dst, BUF_LEN), 0);
	for (j = 0; j < BUF_LEN; j++)
		assert_int_equal(b->dst[j], 0);

	/* read-modify-write: parity ^= old ^ new equals a fresh parity */
	assert_int_equal(parity_xor(b->dst, b->vsrc, 3, BUF_LEN), 0);
	assert_int_equal(parity_xor_into(b->dst, b->src[1], BUF_LEN), 0);
	assert_int_equal(parity_xor_into(b->dst, b->src[9], BUF_LEN), 0);
	{
		void *v[3] = { b->src[0], b->src[9], b->src[2] };

		assert_int_equal(parity_check(b->dst, v, 3, BUF_LEN), 0);
	}
}

static void test_zero_length(void **state)
{
	struct bufs *b = *state;

	memset(b->dst, 0xee, 32);
	assert_int_equal(parity_xor(b->dst, b->vsrc, 3, 0), 0);
	assert_int_equal(parity_xor(b->dst, b->vsrc, 1, 0), 0);
	assert_int_equal(b->dst[0], 0xee);
	assert_int_equal(parity_xor_into(b->dst, b->src[0], 0), 0);
	assert_int_equal(parity_check(b->dst, b->vsrc, 3, 0), 0);
}

static void test_bad_args(void **state)
{
	static const size_t bad_len[] = { 1, 16, 31, 33, 48, 4095, 4097, BUF_LEN - 8 };
	struct bufs *b = *state;
	void *const *src = b->vsrc;
	void *mis[2] = { b->src[0] + 16, b->src[1] };
	size_t i;

	memset(b->dst, 0xee, BUF_LEN);
	for (i = 0; i < sizeof(bad_len) / sizeof(bad_len[0]); i++) {
		assert_int_equal(parity_xor(b->dst, src, 1, bad_len[i]), -EINVAL);
		assert_int_equal(parity_xor(b->dst, src, 2, bad_len[i]), -EINVAL);
		assert_int_equal(parity_xor(b->dst, src, 7, bad_len[i]), -EINVAL);
		assert_int_equal(parity_xor_into(b->dst, b->src[0], bad_len[i]), -EINVAL);
		assert_int_equal(parity_check(b->dst, src, 3, bad_len[i]), -EINVAL);
	}
	/* nothing was written by the refused calls */
	for (i = 0; i < BUF_LEN; i++)
		assert_int_equal(b->dst[i], 0xee);

	/* no sources, missing or misaligned buffers */
	assert_int_equal(parity_xor(b->dst, src, 0, 64), -EINVAL);
	assert_int_equal(parity_check(b->dst, src, 0, 64), -EINVAL);
	assert_int_equal(parity_xor(NULL, src, 2, 64), -EINVAL);
	assert_int_equal(parity_xor(b->dst, NULL, 2, 64), -EINVAL);
	assert_int_equal(parity_check(NULL, src, 2, 64), -EINVAL);
	assert_int_equal(parity_check(b->dst, NULL, 2, 64), -EINVAL);
	assert_int_equal(parity_xor_into(NULL, b->src[0], 64), -EINVAL);
	assert_int_equal(parity_xor_into(b->dst, NULL, 64), -EINVAL);
	assert_int_equal(parity_xor(b->dst + 8, src, 2, 64), -EINVAL);
	assert_int_equal(parity_xor(b->dst, mis, 2, 64), -EINVAL);
	assert_int_equal(parity_xor(b->dst, mis, 1, 64), -EINVAL);
	assert_int_equal(parity_check(b->dst + 16, src, 2, 64), -EINVAL);
	assert_int_equal(parity_check(b->dst, mis, 2, 64), -EINVAL);
	assert_int_equal(parity_xor_into(b->dst + 4, b->src[0], 64), -EINVAL);
	assert_int_equal(parity_xor_into(b->dst, b->src[0] + 1, 64), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xor_counts),
		cmocka_unit_test(test_xor_many),
		cmocka_unit_test(test_xor_single_copy),
		cmocka_unit_test(test_reconstruct),
		cmocka_unit_test(test_check_zero_parity),
		cmocka_unit_test(test_xor_into),
		cmocka_unit_test(test_zero_length),
		cmocka_unit_test(test_bad_args),
	};

	return cmocka_run_group_tests_name("parity", tests, setup, teardown);
}
