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

/* What the raid5 write path asks: is a range owed a resync (pinned)? */
static void test_pinned(void **state)
{
	struct rt_dirtylog *dl;
	uint8_t bits[9] = { 0 };

	(void)state;
	assert_int_equal(dirtylog_create(70, 4096, &dl), 0);
	assert_false(dirtylog_pinned_any(dl, 0, 69));
	assert_int_equal(dirtylog_pinned(dl, NULL), 0);
	bits[0] = 0x04;		/* region 2 */
	bits[8] = 0x20;		/* region 69, in the second word */
	dirtylog_load(dl, bits);
	assert_int_equal(dirtylog_pinned(dl, NULL), 2);
	assert_false(dirtylog_pinned_any(dl, 0, 1));
	assert_true(dirtylog_pinned_any(dl, 0, 2));
	assert_true(dirtylog_pinned_any(dl, 3, 1000));	/* clamped to the last region */
	assert_false(dirtylog_pinned_any(dl, 3, 68));
	dirtylog_unpin(dl, 69);
	assert_false(dirtylog_pinned_any(dl, 3, 69));
	assert_int_equal(dirtylog_pinned(dl, NULL), 1);
	/* Still dirty on disk until a sweep clears it: unpinned is not clean. */
	assert_true(dirtylog_test(dl, 69));
	dirtylog_unpin_all(dl);
	assert_int_equal(dirtylog_pinned(dl, NULL), 0);
	dirtylog_destroy(dl);
}

/* create and the engine must agree on the log's geometry. */
static void test_geometry(void **state)
{
	uint64_t R, n;

	(void)state;
	dirtylog_geometry(100ull << 20, 64ull << 20, 4096, &R, &n);
	assert_int_equal(R, 64ull << 20);
	assert_int_equal(n, 2);
	dirtylog_geometry(100ull << 20, 0, 4096, &R, &n);	/* 0: the default */
	assert_int_equal(R, RT_DEFAULT_REGION);
	/* More regions than one block holds: the region size doubles until they fit. */
	dirtylog_geometry(1ull << 40, 1ull << 20, 4096, &R, &n);
	assert_true(dirtylog_encoded_size(n) <= 4096);
	assert_int_equal(R, 1ull << 26);	/* 2^15 regions of 2^25 need 4 KiB + 64 bytes */
	assert_int_equal(n, (1ull << 40) / R);
}

/* Regions owed a resync at run time (a write failed on some units) behave as loaded ones. */
static void test_pin_owed(void **state)
{
	struct rt_dirtylog *dl;
	uint8_t out[2];
	unsigned i;

	(void)state;
	assert_int_equal(dirtylog_create(10, 4096, &dl), 0);
	assert_int_equal(dirtylog_pinned(dl, out), 0);
	dirtylog_pin(dl, 3, 4);
	dirtylog_pin(dl, 9, 12);	/* clipped to the last region */
	assert_int_equal(dirtylog_pinned(dl, out), 3);
	assert_int_equal(out[0], 0x18);
	assert_int_equal(out[1], 0x02);
	assert_int_equal(dirtylog_count(dl), 3);
	assert_true(dirtylog_covered(dl, 3, 4));
	/* Neither idle sweeps nor a clean stop clear them. */
	for (i = 0; i < 10; i++)
		assert_int_equal(dirtylog_sweep_begin(dl, 2), 0);
	dirtylog_clear_all(dl);
	assert_int_equal(dirtylog_count(dl), 3);
	/* Once resynced, they age out like any region. */
	dirtylog_unpin(dl, 3);
	dirtylog_unpin(dl, 4);
	dirtylog_unpin(dl, 9);
	assert_int_equal(dirtylog_pinned(dl, NULL), 0);
	assert_true(dirtylog_clear_all(dl));
	assert_int_equal(dirtylog_count(dl), 0);
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
	assert_int_equal(dirtylog_encode(dl, 42, 7, 40, buf, len - 1), -ENOSPC);
	assert_int_equal(dirtylog_encode(dl, 42, 7, 40, buf, len), 0);
	assert_memory_equal(buf, "RTDLOG01", 8);
	assert_int_equal(dirtylog_decode(buf, len, &h, bits, sizeof(bits)), 0);
	assert_int_equal(h.version, 1);
	assert_int_equal(h.events, 42);
	assert_int_equal(h.seq, 7);
	assert_int_equal(h.events_cleared, 40);
	assert_int_equal(buf[56], 40);	/* man/raidtool-format.5: offset 56 */
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

/* Store little-endian @v at @p, and the log's CRC (bytes 52-55) over @len. */
static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void fix_log_crc(uint8_t *buf, size_t len)
{
	put_le(buf + 52, 0, 4);
	put_le(buf + 52, sb_crc32c(buf, len), 4);
}

/*
 * Found by fuzz_dirtylog_decode: a region count near 2^64 made the encoded
 * size wrap to one block, so the decoder accepted a bitmap of 2^64 bits in
 * 4 KiB and examine walked far past its buffer. Counts whose bitmap does
 * not fit the encoded length are refused as damaged.
 */
static void test_decode_region_count(void **state)
{
	struct rt_dirtylog *dl;
	struct rt_dlog_header h;
	uint8_t *buf, bits[8];

	(void)state;
	assert_true(dirtylog_encoded_size(UINT64_MAX - 6) > (1ull << 61));
	assert_int_equal(dirtylog_create(50, 1 << 20, &dl), 0);
	buf = malloc(4096);
	assert_non_null(buf);
	assert_int_equal(dirtylog_encode(dl, 1, 1, 1, buf, 4096), 0);
	for (uint64_t n = UINT64_MAX - 6; n != 0; n++) {
		put_le(buf + 40, n, 8);
		fix_log_crc(buf, 4096);
		assert_int_equal(dirtylog_decode(buf, 4096, &h, bits, sizeof(bits)), -EUCLEAN);
	}
	/* The most one block holds, and one more. */
	put_le(buf + 40, (4096 - 64) * 8, 8);
	fix_log_crc(buf, 4096);
	assert_int_equal(dirtylog_decode(buf, 4096, &h, NULL, 0), 0);
	put_le(buf + 40, (4096 - 64) * 8 + 1, 8);
	fix_log_crc(buf, 4096);
	assert_int_equal(dirtylog_decode(buf, 4096, &h, NULL, 0), -EUCLEAN);
	free(buf);
	dirtylog_destroy(dl);
}

/* A sweep given up (the array lost a role meanwhile) keeps every region. */
static void test_sweep_abort(void **state)
{
	struct rt_dirtylog *dl;

	(void)state;
	assert_int_equal(dirtylog_create(10, 1 << 20, &dl), 0);
	dirtylog_mark(dl, 1, 2);
	dirtylog_publish(dl, 1, 2);
	for (int i = 0; i < 2; i++)
		dirtylog_sweep_begin(dl, 2);	/* the first sweep only sees the write */
	assert_int_equal(dirtylog_sweep_begin(dl, 2), 2);
	assert_true(dirtylog_pending(dl, 1));
	assert_false(dirtylog_covered(dl, 1, 1));
	dirtylog_sweep_abort(dl);
	assert_false(dirtylog_pending(dl, 1));
	assert_int_equal(dirtylog_count(dl), 2);
	/* Live again: a writer needs no log write. */
	assert_true(dirtylog_covered(dl, 1, 2));
	/* A commit after the abort clears nothing. */
	assert_false(dirtylog_sweep_commit(dl));
	assert_int_equal(dirtylog_count(dl), 2);
	/* Unpinning loaded regions lets them age out. */
	{
		uint8_t bits[2] = { 0x10, 0 };

		dirtylog_load(dl, bits);
		for (int i = 0; i < 5; i++)
			dirtylog_sweep_begin(dl, 2);
		assert_true(dirtylog_test(dl, 4));
		assert_false(dirtylog_pending(dl, 4));
		dirtylog_unpin_all(dl);
		for (int i = 0; i < 3; i++)
			dirtylog_sweep_begin(dl, 2);
		assert_true(dirtylog_pending(dl, 4));
		assert_true(dirtylog_sweep_commit(dl));
		assert_false(dirtylog_test(dl, 4));
	}
	dirtylog_destroy(dl);
}

/* A raid5 of 3 at events 20 whose role 1 left; the unit as it was when it left. */
static void readd_fixture(struct rt_sb *array, struct rt_sb *unit)
{
	memset(array, 0, sizeof(*array));
	array->events = 20;
	memset(array->array.uuid, 0xaa, RT_UUID_SIZE);
	array->array.n_devices = 3;
	array->array.n_slots = 3;
	for (unsigned r = 0; r < 3; r++) {
		memset(array->slots[r].uuid, 0x10 + r, RT_UUID_SIZE);
		array->slots[r].state = RT_SLOT_ACTIVE;
	}
	*unit = *array;
	unit->events = 15;
	unit->unit.slot = 1;
	memset(unit->unit.uuid, 0x11, RT_UUID_SIZE);
	/* Failed and removed: the running table forgot who held the role. */
	array->slots[1].state = RT_SLOT_MISSING;
	memset(array->slots[1].uuid, 0, RT_UUID_SIZE);
}

static void test_readd_check(void **state)
{
	struct rt_sb a, u;
	uint32_t role = 99;

	(void)state;
	readd_fixture(&a, &u);
	/* Left at 15; the log is complete since 12: rebuild the dirty regions only. */
	assert_int_equal(dirtylog_readd_check(&a, &u, 12, &role), RT_READD_OK);
	assert_int_equal(role, 1);
	assert_int_equal(dirtylog_readd_check(&a, &u, 15, NULL), RT_READD_OK);
	/* Faulty (not removed) and still naming it, or missing since a degraded start. */
	a.slots[1].state = RT_SLOT_FAULTY;
	memset(a.slots[1].uuid, 0x11, RT_UUID_SIZE);
	assert_int_equal(dirtylog_readd_check(&a, &u, 12, NULL), RT_READD_OK);
	a.slots[1].state = RT_SLOT_MISSING;
	assert_int_equal(dirtylog_readd_check(&a, &u, 12, NULL), RT_READD_OK);

	/* It missed a clearing: regions written before that are clean in the log. */
	assert_int_equal(dirtylog_readd_check(&a, &u, 16, NULL), RT_READD_TOO_OLD);
	/* No usable log. */
	assert_int_equal(dirtylog_readd_check(&a, &u, 0, NULL), RT_READD_NO_LOG);
	/* Failed an I/O: in full. Another role's failure does not matter. */
	a.io_failed = 1ull << 1;
	assert_int_equal(dirtylog_readd_check(&a, &u, 12, NULL), RT_READD_IO_FAILED);
	a.io_failed = 1ull << 2;
	assert_int_equal(dirtylog_readd_check(&a, &u, 12, NULL), RT_READD_OK);
	a.io_failed = 0;
	/* The role was given to another unit since, or works again. */
	memset(a.slots[1].uuid, 0x77, RT_UUID_SIZE);
	assert_int_equal(dirtylog_readd_check(&a, &u, 12, NULL), RT_READD_ROLE_TAKEN);
	memset(a.slots[1].uuid, 0x11, RT_UUID_SIZE);
	a.slots[1].state = RT_SLOT_ACTIVE;
	assert_int_equal(dirtylog_readd_check(&a, &u, 12, NULL), RT_READD_ROLE_TAKEN);
	a.slots[1].state = RT_SLOT_REBUILDING;
	assert_int_equal(dirtylog_readd_check(&a, &u, 12, NULL), RT_READD_ROLE_TAKEN);
	a.slots[1].state = RT_SLOT_MISSING;
	/* It was itself mid-rebuild, or a spare, when it left: not all its data is there. */
	u.slots[1].state = RT_SLOT_REBUILDING;
	assert_int_equal(dirtylog_readd_check(&a, &u, 12, NULL), RT_READD_NO_ROLE);
	u.slots[1].state = RT_SLOT_ACTIVE;
	u.unit.slot = 3;
	assert_int_equal(dirtylog_readd_check(&a, &u, 12, NULL), RT_READD_NO_ROLE);
	u.unit.slot = 1;
	/* Not older than the array: it ran apart from it, never overwritten. */
	u.events = 20;
	assert_int_equal(dirtylog_readd_check(&a, &u, 12, NULL), RT_READD_NEWER);
	u.events = 25;
	assert_int_equal(dirtylog_readd_check(&a, &u, 12, NULL), RT_READD_NEWER);
	u.events = 15;
	/*
	 * Fewer events, but it ran without role 0 while the array has role 0's
	 * unit active: each half ran alone (a degraded start of each).
	 */
	u.slots[0].state = RT_SLOT_MISSING;
	assert_int_equal(dirtylog_readd_check(&a, &u, 12, NULL), RT_READD_RAN_APART);
	u.slots[0].state = RT_SLOT_FAULTY;
	assert_int_equal(dirtylog_readd_check(&a, &u, 12, NULL), RT_READD_RAN_APART);
	/* Role 0 went to another unit since, or was forgotten: no sign of a split. */
	memset(a.slots[0].uuid, 0x55, RT_UUID_SIZE);
	assert_int_equal(dirtylog_readd_check(&a, &u, 12, NULL), RT_READD_OK);
	memset(a.slots[0].uuid, 0x10, RT_UUID_SIZE);
	memset(u.slots[0].uuid, 0, RT_UUID_SIZE);
	assert_int_equal(dirtylog_readd_check(&a, &u, 12, NULL), RT_READD_OK);
	memset(u.slots[0].uuid, 0x10, RT_UUID_SIZE);
	u.slots[0].state = RT_SLOT_ACTIVE;
	/* Another array's unit. */
	u.array.uuid[0] ^= 1;
	assert_int_equal(dirtylog_readd_check(&a, &u, 12, NULL), RT_READD_FOREIGN);
	u.array.uuid[0] ^= 1;
	assert_int_equal(dirtylog_readd_check(&a, &u, 12, &role), RT_READD_OK);
	for (int why = RT_READD_OK; why <= RT_READD_RAN_APART; why++)
		assert_string_not_equal(dirtylog_readd_reason(why), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mark_publish),
		cmocka_unit_test(test_idle_sweep),
		cmocka_unit_test(test_load_pin_clear),
		cmocka_unit_test(test_pinned),
		cmocka_unit_test(test_geometry),
		cmocka_unit_test(test_pin_owed),
		cmocka_unit_test(test_encode_decode),
		cmocka_unit_test(test_decode_region_count),
		cmocka_unit_test(test_sweep_abort),
		cmocka_unit_test(test_readd_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
