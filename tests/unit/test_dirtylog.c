/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The dirty-region log's pure part: marking, idle ageing, pins, encoding. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <raidtool/dirtylog.h>

static void test_mark_publish(void **state)
{
	struct rt_dirtylog *dl;

	(void)state;
	assert_int_equal(dirtylog_create(0, 1, &dl), -EINVAL);
	assert_int_equal(dirtylog_create(100, 1 << 20, &dl), 0);
	assert_false(dirtylog_covered(dl, 3, 5));
	assert_true(dirtylog_mark(dl, 3, 5));
	/* Not live until published: the image is not on disk yet. */
	assert_false(dirtylog_covered(dl, 3, 5));
	dirtylog_publish(dl, 3, 5);
	assert_true(dirtylog_covered(dl, 3, 5));
	assert_true(dirtylog_covered(dl, 4, 4));
	assert_false(dirtylog_covered(dl, 5, 6));
	assert_false(dirtylog_mark(dl, 4, 5));	/* already in the image */
	assert_int_equal(dirtylog_count(dl), 3);
	assert_true(dirtylog_test(dl, 3) && dirtylog_test(dl, 5) && !dirtylog_test(dl, 6));
	/* Past the end is clamped. */
	assert_true(dirtylog_mark(dl, 99, 200));
	assert_int_equal(dirtylog_count(dl), 4);
	dirtylog_destroy(dl);
}

static void test_idle_sweep(void **state)
{
	struct rt_dirtylog *dl;
	unsigned i;

	(void)state;
	assert_int_equal(dirtylog_create(70, 4096, &dl), 0);
	dirtylog_mark(dl, 1, 1);
	dirtylog_publish(dl, 1, 1);
	dirtylog_mark(dl, 65, 65);
	dirtylog_publish(dl, 65, 65);
	/* Written since the mark: the first sweep only resets the count. */
	assert_int_equal(dirtylog_sweep_begin(dl, 3), 0);
	for (i = 0; i < 2; i++) {
		assert_true(dirtylog_covered(dl, 65, 65));	/* 65 stays busy */
		assert_int_equal(dirtylog_sweep_begin(dl, 3), 0);
	}
	assert_true(dirtylog_covered(dl, 65, 65));
	assert_int_equal(dirtylog_sweep_begin(dl, 3), 1);
	assert_true(dirtylog_pending(dl, 1));
	assert_false(dirtylog_pending(dl, 65));
	assert_false(dirtylog_covered(dl, 1, 1));	/* writers take the slow path */
	assert_true(dirtylog_sweep_commit(dl));
	assert_false(dirtylog_test(dl, 1));
	assert_true(dirtylog_test(dl, 65));

	/* A writer re-dirties a pending region before the commit: it stays. */
	for (i = 0; i < 4 && !dirtylog_pending(dl, 65); i++)
		dirtylog_sweep_begin(dl, 3);
	assert_true(dirtylog_pending(dl, 65));
	assert_false(dirtylog_mark(dl, 65, 65));
	dirtylog_publish(dl, 65, 65);
	assert_false(dirtylog_sweep_commit(dl));
	assert_true(dirtylog_test(dl, 65));
	dirtylog_destroy(dl);
}

static void test_load_pin_clear(void **state)
{
	struct rt_dirtylog *dl;
	uint8_t bits[2] = { 0x81, 0x02 }, out[2];
	unsigned i;

	(void)state;
	assert_int_equal(dirtylog_create(10, 4096, &dl), 0);
	dirtylog_load(dl, bits);
	assert_int_equal(dirtylog_count(dl), 3);
	assert_true(dirtylog_covered(dl, 0, 0) && dirtylog_covered(dl, 7, 7) &&
		    dirtylog_covered(dl, 9, 9));
	/* Pinned regions never age out, nor go at a clean stop. */
	for (i = 0; i < 10; i++)
		assert_int_equal(dirtylog_sweep_begin(dl, 2), 0);
	dirtylog_mark(dl, 4, 4);
	dirtylog_publish(dl, 4, 4);
	assert_true(dirtylog_clear_all(dl));
	assert_int_equal(dirtylog_count(dl), 3);
	dirtylog_unpin(dl, 7);
	for (i = 0; i < 3; i++)
		dirtylog_sweep_begin(dl, 2);
	assert_true(dirtylog_sweep_commit(dl));
	dirtylog_bitmap(dl, out);
	assert_int_equal(out[0], 0x01);
	assert_int_equal(out[1], 0x02);
	dirtylog_destroy(dl);
}

static void test_encode_decode(void **state)
{
	struct rt_dirtylog *dl;
	struct rt_dlog_header h;
	uint8_t *buf, bits[8];
	size_t len;

	(void)state;
	assert_int_equal(dirtylog_encoded_size(1), 4096);
	assert_int_equal(dirtylog_encoded_size((4096 - 64) * 8), 4096);
	assert_int_equal(dirtylog_encoded_size((4096 - 64) * 8 + 1), 8192);
	assert_int_equal(dirtylog_create(50, 64 << 20, &dl), 0);
	dirtylog_mark(dl, 2, 3);
	dirtylog_mark(dl, 49, 49);
	len = dirtylog_encoded_size(50);
	buf = malloc(len);
	assert_non_null(buf);
	assert_int_equal(dirtylog_encode(dl, 42, 7, buf, len - 1), -ENOSPC);
	assert_int_equal(dirtylog_encode(dl, 42, 7, buf, len), 0);
	assert_memory_equal(buf, "RTDLOG01", 8);
	assert_int_equal(dirtylog_decode(buf, len, &h, bits, sizeof(bits)), 0);
	assert_int_equal(h.version, 1);
	assert_int_equal(h.events, 42);
	assert_int_equal(h.seq, 7);
	assert_int_equal(h.region_size, 64 << 20);
	assert_int_equal(h.n_regions, 50);
	assert_int_equal(bits[0], 0x0c);
	assert_int_equal(bits[6], 0x02);
	assert_int_equal(dirtylog_decode(buf, len, &h, bits, 6), -ENOSPC);
	assert_int_equal(dirtylog_decode(buf, 32, &h, NULL, 0), -EINVAL);
	/* A flipped bit anywhere, also in the padding, fails the CRC. */
	buf[len - 1] ^= 1;
	assert_int_equal(dirtylog_decode(buf, len, &h, NULL, 0), -EBADMSG);
	buf[len - 1] ^= 1;
	buf[64] ^= 0x10;
	assert_int_equal(dirtylog_decode(buf, len, &h, NULL, 0), -EBADMSG);
	buf[64] ^= 0x10;
	assert_int_equal(dirtylog_decode(buf, len, &h, NULL, 0), 0);
	memset(buf, 0, 8);
	assert_int_equal(dirtylog_decode(buf, len, &h, NULL, 0), -ENODATA);
	free(buf);
	dirtylog_destroy(dl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mark_publish),
		cmocka_unit_test(test_idle_sweep),
		cmocka_unit_test(test_load_pin_clear),
		cmocka_unit_test(test_encode_decode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
