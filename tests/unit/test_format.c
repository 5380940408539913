/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the superblock format. The byte offsets used here are the
 * ones documented in man/raidtool-format.5, written out again on purpose:
 * they pin the on-disk layout independently of lib/format.c.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <raidtool/format.h>

/* cmocka passes every test a state pointer these tests do not use. */
#define UNUSED __attribute__((unused))

#define KiB (1024ull)
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)

/* Documented offsets (man/raidtool-format.5). */
enum {
	O_MAGIC = 0, O_VERSION = 8, O_SB_SIZE = 12, O_COPY = 16, O_STATE = 20,
	O_COMPAT = 24, O_INCOMPAT = 32, O_RO_COMPAT = 40, O_EVENTS = 48, O_UTIME = 56,
	O_NAME = 128, O_DESC = 192, O_A_UUID = 320, O_A_HASH = 336, O_LEVEL = 340,
	O_LAYOUT = 344, O_CHUNK = 348, O_BLOCKSIZE = 352, O_NDEV = 356, O_NSLOTS = 360,
	O_NBLOCKS = 368, O_CTIME = 376, O_REGION = 384,
	O_U_UUID = 512, O_U_HASH = 528, O_U_SLOT = 532, O_U_START = 536, O_U_LENGTH = 544,
	O_U_SB0 = 552, O_U_SB1 = 560, O_U_LOG_OFF = 568, O_U_LOG_SIZE = 576,
	O_U_DATA_OFF = 584, O_U_DATA_SIZE = 592,
	O_SLOTS = 1024, SLOT_SIZE = 40,
	S_UUID = 0, S_HASH = 16, S_STATE = 20, S_DATA_SIZE = 24, S_RECOVERY = 32,
	O_CRC = 4092,
};

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	wr32(p + 4, (uint32_t)(v >> 32));
}

static void fix_crc(uint8_t *buf)
{
	wr32(buf + O_CRC, sb_crc32c(buf, O_CRC));
}

#define UNIT_LENGTH (10 * GiB + 12345)	/* not a multiple of 4 KiB on purpose */
#define CHUNK (64 * KiB)

/*
 * A valid raid5 superblock in which every field holds a value that differs
 * from its neighbours, so that a swapped or misplaced field shows.
 */
static void make_sb(struct rt_sb *sb)
{
	struct rt_geometry g;
	static const uint32_t states[7] = {
		RT_SLOT_ACTIVE, RT_SLOT_FAULTY, RT_SLOT_MISSING, RT_SLOT_ACTIVE,
		RT_SLOT_REBUILDING, RT_SLOT_SPARE, RT_SLOT_FAULTY,
	};

	assert_int_equal(sb_geometry(UNIT_LENGTH, CHUNK, &g), 0);
	memset(sb, 0, sizeof(*sb));
	sb->version = RT_SB_VERSION;
	sb->feature_compat = 0x0102030405060708ull;	/* unknown compat flags are kept */
	sb->feature_incompat = 0;
	sb->feature_ro_compat = 0;
	sb->events = 0x1122334455667788ull;
	sb->state = RT_ARRAY_DIRTY;
	sb->utime = 0x00000000650a0b0cull;

	strcpy(sb->array.name, "Array-01.x_Y");
	memset(sb->array.desc, 'd', RT_DESC_MAX);	/* longest description */
	sb->array.desc[0] = 'D';
	sb->array.desc[RT_DESC_MAX - 1] = 'z';
	for (unsigned i = 0; i < RT_UUID_SIZE; i++) {
		sb->array.uuid[i] = (uint8_t)(0xa0 + i);
		sb->unit.uuid[i] = (uint8_t)(0x30 + i);
	}
	sb->array.hashcode = 0xdeadbeef;
	sb->array.level = RT_LEVEL_5;
	sb->array.layout = RT_LAYOUT_LEFT_SYMMETRIC;
	sb->array.chunk_size = CHUNK;
	sb->array.blocksize = 512;
	sb->array.n_devices = 5;
	sb->array.n_slots = 7;
	sb->array.nblocks = (4 * g.data_size) / 512 - 3;
	sb->array.ctime = 0x0000000060708090ull;
	sb->array.region_size = 128 * MiB;

	sb->unit.hashcode = 0x30313233;
	sb->unit.slot = 3;
	sb->unit.start = 0x12345000;
	sb->unit.length = UNIT_LENGTH;
	sb->unit.sb_offset[0] = g.sb_offset[0];
	sb->unit.sb_offset[1] = g.sb_offset[1];
	sb->unit.log_offset = g.log_offset;
	sb->unit.log_size = g.log_size - 4096;
	sb->unit.data_offset = g.data_offset;
	sb->unit.data_size = g.data_size;

	for (unsigned i = 0; i < 7; i++) {
		struct rt_slot *s = &sb->slots[i];

		for (unsigned k = 0; k < RT_UUID_SIZE; k++)
			s->uuid[k] = (uint8_t)(0x10 * i + k + 1);
		s->hashcode = 0x50000000u + i;
		s->state = states[i];
		s->data_size = g.data_size - i * CHUNK;
		s->recovery_offset = i == 4 ? 7 * MiB + i : 0;
	}
	/* The unit is the one its own role table entry names. */
	memcpy(sb->slots[3].uuid, sb->unit.uuid, RT_UUID_SIZE);
	sb->slots[3].hashcode = sb->unit.hashcode;
	sb->slots[3].data_size = sb->unit.data_size;
	assert_int_equal(sb_validate(sb), 0);
}

static void encode_ok(const struct rt_sb *sb, unsigned copy, uint8_t *buf)
{
	assert_int_equal(sb_encode(sb, copy, buf), 0);
}

static void assert_sb_equal(const struct rt_sb *a, const struct rt_sb *b)
{
	assert_int_equal(a->version, b->version);
	assert_int_equal(a->feature_compat, b->feature_compat);
	assert_int_equal(a->feature_incompat, b->feature_incompat);
	assert_int_equal(a->feature_ro_compat, b->feature_ro_compat);
	assert_int_equal(a->events, b->events);
	assert_int_equal(a->state, b->state);
	assert_int_equal(a->utime, b->utime);

	assert_memory_equal(a->array.name, b->array.name, sizeof(a->array.name));
	assert_memory_equal(a->array.desc, b->array.desc, sizeof(a->array.desc));
	assert_memory_equal(a->array.uuid, b->array.uuid, RT_UUID_SIZE);
	assert_int_equal(a->array.hashcode, b->array.hashcode);
	assert_int_equal(a->array.level, b->array.level);
	assert_int_equal(a->array.layout, b->array.layout);
	assert_int_equal(a->array.chunk_size, b->array.chunk_size);
	assert_int_equal(a->array.blocksize, b->array.blocksize);
	assert_int_equal(a->array.n_devices, b->array.n_devices);
	assert_int_equal(a->array.n_slots, b->array.n_slots);
	assert_int_equal(a->array.nblocks, b->array.nblocks);
	assert_int_equal(a->array.ctime, b->array.ctime);
	assert_int_equal(a->array.region_size, b->array.region_size);

	assert_memory_equal(a->unit.uuid, b->unit.uuid, RT_UUID_SIZE);
	assert_int_equal(a->unit.hashcode, b->unit.hashcode);
	assert_int_equal(a->unit.slot, b->unit.slot);
	assert_int_equal(a->unit.start, b->unit.start);
	assert_int_equal(a->unit.length, b->unit.length);
	assert_int_equal(a->unit.sb_offset[0], b->unit.sb_offset[0]);
	assert_int_equal(a->unit.sb_offset[1], b->unit.sb_offset[1]);
	assert_int_equal(a->unit.log_offset, b->unit.log_offset);
	assert_int_equal(a->unit.log_size, b->unit.log_size);
	assert_int_equal(a->unit.data_offset, b->unit.data_offset);
	assert_int_equal(a->unit.data_size, b->unit.data_size);

	for (unsigned i = 0; i < RT_MAX_UNITS; i++) {
		assert_memory_equal(a->slots[i].uuid, b->slots[i].uuid, RT_UUID_SIZE);
		assert_int_equal(a->slots[i].hashcode, b->slots[i].hashcode);
		assert_int_equal(a->slots[i].state, b->slots[i].state);
		assert_int_equal(a->slots[i].data_size, b->slots[i].data_size);
		assert_int_equal(a->slots[i].recovery_offset, b->slots[i].recovery_offset);
	}
}

/* ---- checksum ---- */

static void test_crc32c_check_value(void **state UNUSED)
{
	assert_int_equal(sb_crc32c("123456789", 9), 0xE3069283u);
	assert_int_equal(sb_crc32c("", 0), 0);
	/* RFC 3720 B.4: 32 bytes of zeros, and of 0xff. */
	uint8_t z[32];

	memset(z, 0, sizeof(z));
	assert_int_equal(sb_crc32c(z, sizeof(z)), 0x8A9136AAu);
	memset(z, 0xff, sizeof(z));
	assert_int_equal(sb_crc32c(z, sizeof(z)), 0x62A8AB43u);
}

/* ---- geometry ---- */

static void test_geometry_sizes(void **state UNUSED)
{
	struct rt_geometry g;

	assert_int_equal(sb_geometry(1 * GiB, 512 * KiB, &g), 0);
	assert_int_equal(g.sb_offset[0], 4096);
	assert_int_equal(g.sb_offset[1], 1 * GiB - 4096);
	assert_int_equal(g.log_offset, 8192);
	assert_int_equal(g.log_size, 1 * MiB - 8192);
	assert_int_equal(g.data_offset, 1 * MiB);
	assert_int_equal(g.data_size, 1 * GiB - 1 * MiB - 512 * KiB);

	/* A length that is not a whole number of 4 KiB blocks is rounded down. */
	assert_int_equal(sb_geometry(100 * MiB + 1000, 4096, &g), 0);
	assert_int_equal(g.sb_offset[1], 100 * MiB - 4096);
	assert_int_equal(g.data_size, 99 * MiB - 4096);

	assert_int_equal(sb_geometry(UINT64_MAX, RT_MAX_CHUNK, &g), 0);
	assert_int_equal(g.sb_offset[1], (UINT64_MAX & ~4095ull) - 4096);
	assert_int_equal(g.data_size % RT_MAX_CHUNK, 0);
	assert_true(g.data_offset + g.data_size <= g.sb_offset[1]);
}

static void test_geometry_minimal(void **state UNUSED)
{
	static const uint32_t chunks[] = { RT_MIN_CHUNK, 64 * KiB, RT_DEFAULT_CHUNK, RT_MAX_CHUNK };
	struct rt_geometry g;

	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		uint64_t min = RT_DATA_ALIGN + chunks[i] + RT_SB_SIZE;

		assert_int_equal(sb_geometry(min, chunks[i], &g), 0);
		assert_int_equal(g.data_size, chunks[i]);
		assert_int_equal(g.sb_offset[1], RT_DATA_ALIGN + chunks[i]);
		assert_int_equal(sb_geometry(min - 1, chunks[i], &g), -ENOSPC);
		assert_int_equal(sb_geometry(min - 4096, chunks[i], &g), -ENOSPC);
	}
	assert_int_equal(sb_geometry(0, 4096, &g), -ENOSPC);
	assert_int_equal(sb_geometry(4095, 4096, &g), -ENOSPC);
	assert_int_equal(sb_geometry(8192, 4096, &g), -ENOSPC);
	assert_int_equal(sb_geometry(RT_DATA_ALIGN + 4096, 4096, &g), -ENOSPC);
}

static void test_geometry_bad_chunk(void **state UNUSED)
{
	static const uint32_t bad[] = { 0, 1, 2048, 3000, 4097, 12288, 128u << 20, 0x80000000u };
	struct rt_geometry g;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sb_geometry(10 * GiB, bad[i], &g), -EINVAL);
}

/* ---- encode / decode ---- */

static void test_roundtrip(void **state UNUSED)
{
	struct rt_sb sb, out;
	uint8_t buf[RT_SB_SIZE];

	make_sb(&sb);
	for (unsigned copy = 0; copy < 2; copy++) {
		encode_ok(&sb, copy, buf);
		memset(&out, 0x5a, sizeof(out));
		assert_int_equal(sb_decode(buf, sizeof(buf), &out), 0);
		assert_sb_equal(&sb, &out);
	}
}

/* Every field sits where the man page says, little-endian. */
static void test_documented_offsets(void **state UNUSED)
{
	struct rt_sb sb;
	uint8_t buf[RT_SB_SIZE];

	make_sb(&sb);
	encode_ok(&sb, 1, buf);
	assert_memory_equal(buf + O_MAGIC, "RAIDTOOL", 8);
	assert_int_equal(rd32(buf + O_VERSION), 1);
	assert_int_equal(rd32(buf + O_SB_SIZE), 4096);
	assert_int_equal(rd32(buf + O_COPY), 1);
	assert_int_equal(rd32(buf + O_STATE), RT_ARRAY_DIRTY);
	assert_int_equal(rd64(buf + O_COMPAT), sb.feature_compat);
	assert_int_equal(rd64(buf + O_INCOMPAT), 0);
	assert_int_equal(rd64(buf + O_RO_COMPAT), 0);
	assert_int_equal(rd64(buf + O_EVENTS), sb.events);
	assert_int_equal(rd64(buf + O_UTIME), sb.utime);
	assert_string_equal((const char *)buf + O_NAME, sb.array.name);
	assert_memory_equal(buf + O_DESC, sb.array.desc, 128);
	assert_memory_equal(buf + O_A_UUID, sb.array.uuid, 16);
	assert_int_equal(rd32(buf + O_A_HASH), sb.array.hashcode);
	assert_int_equal(rd32(buf + O_LEVEL), 5);
	assert_int_equal(rd32(buf + O_LAYOUT), 0);
	assert_int_equal(rd32(buf + O_CHUNK), CHUNK);
	assert_int_equal(rd32(buf + O_BLOCKSIZE), 512);
	assert_int_equal(rd32(buf + O_NDEV), 5);
	assert_int_equal(rd32(buf + O_NSLOTS), 7);
	assert_int_equal(rd64(buf + O_NBLOCKS), sb.array.nblocks);
	assert_int_equal(rd64(buf + O_CTIME), sb.array.ctime);
	assert_int_equal(rd64(buf + O_REGION), sb.array.region_size);
	assert_memory_equal(buf + O_U_UUID, sb.unit.uuid, 16);
	assert_int_equal(rd32(buf + O_U_HASH), sb.unit.hashcode);
	assert_int_equal(rd32(buf + O_U_SLOT), 3);
	assert_int_equal(rd64(buf + O_U_START), sb.unit.start);
	assert_int_equal(rd64(buf + O_U_LENGTH), sb.unit.length);
	assert_int_equal(rd64(buf + O_U_SB0), 4096);
	assert_int_equal(rd64(buf + O_U_SB1), sb.unit.sb_offset[1]);
	assert_int_equal(rd64(buf + O_U_LOG_OFF), sb.unit.log_offset);
	assert_int_equal(rd64(buf + O_U_LOG_SIZE), sb.unit.log_size);
	assert_int_equal(rd64(buf + O_U_DATA_OFF), sb.unit.data_offset);
	assert_int_equal(rd64(buf + O_U_DATA_SIZE), sb.unit.data_size);
	for (unsigned i = 0; i < RT_MAX_UNITS; i++) {
		const uint8_t *e = buf + O_SLOTS + i * SLOT_SIZE;

		assert_memory_equal(e + S_UUID, sb.slots[i].uuid, 16);
		assert_int_equal(rd32(e + S_HASH), sb.slots[i].hashcode);
		assert_int_equal(rd32(e + S_STATE), sb.slots[i].state);
		assert_int_equal(rd64(e + S_DATA_SIZE), sb.slots[i].data_size);
		assert_int_equal(rd64(e + S_RECOVERY), sb.slots[i].recovery_offset);
	}
	assert_int_equal(rd32(buf + O_CRC), sb_crc32c(buf, 4092));

	/* Reserved ranges are zero. */
	static const struct { unsigned from, to; } reserved[] = {
		{ 64, 128 }, { 364, 368 }, { 392, 512 }, { 600, 1024 }, { 3584, 4092 },
	};
	for (size_t r = 0; r < sizeof(reserved) / sizeof(reserved[0]); r++)
		for (unsigned i = reserved[r].from; i < reserved[r].to; i++)
			assert_int_equal(buf[i], 0);

	/* Linear is -1, stored as two's complement. */
	sb.array.level = RT_LEVEL_LINEAR;
	encode_ok(&sb, 0, buf);
	assert_int_equal(rd32(buf + O_LEVEL), 0xffffffffu);
	assert_int_equal(rd32(buf + O_COPY), 0);
}

static void test_copies_differ_only_in_index(void **state UNUSED)
{
	struct rt_sb sb;
	uint8_t b0[RT_SB_SIZE], b1[RT_SB_SIZE];

	make_sb(&sb);
	encode_ok(&sb, 0, b0);
	encode_ok(&sb, 1, b1);
	for (unsigned i = 0; i < RT_SB_SIZE; i++)
		if (i != O_COPY && (i < O_CRC))
			assert_int_equal(b0[i], b1[i]);
	assert_int_not_equal(rd32(b0 + O_CRC), rd32(b1 + O_CRC));
}

static void test_every_byte_flip_detected(void **state UNUSED)
{
	struct rt_sb sb, out;
	uint8_t good[RT_SB_SIZE], buf[RT_SB_SIZE];

	make_sb(&sb);
	encode_ok(&sb, 0, good);
	for (unsigned i = 0; i < RT_SB_SIZE; i++) {
		for (unsigned bit = 0; bit < 8; bit += 7) {
			memcpy(buf, good, sizeof(buf));
			buf[i] ^= (uint8_t)(1u << bit);
			/* A damaged magic no longer claims to be raidtool at all. */
			assert_int_equal(sb_decode(buf, sizeof(buf), &out), i < 8 ? -ENODATA : -EBADMSG);
		}
	}
}

static void test_zero_and_foreign_block(void **state UNUSED)
{
	struct rt_sb out;
	uint8_t buf[RT_SB_SIZE];

	memset(buf, 0, sizeof(buf));
	assert_int_equal(sb_decode(buf, sizeof(buf), &out), -ENODATA);
	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(sb_decode(buf, sizeof(buf), &out), -ENODATA);
	memset(buf, 0, sizeof(buf));
	memcpy(buf, "RAIDTOOl", 8);
	assert_int_equal(sb_decode(buf, sizeof(buf), &out), -ENODATA);
	/* The magic alone, checksum wrong. */
	memcpy(buf, "RAIDTOOL", 8);
	assert_int_equal(sb_decode(buf, sizeof(buf), &out), -EBADMSG);
}

static void test_truncated(void **state UNUSED)
{
	struct rt_sb sb, out;
	uint8_t buf[RT_SB_SIZE + 100];

	make_sb(&sb);
	encode_ok(&sb, 0, buf);
	assert_int_equal(sb_decode(buf, RT_SB_SIZE - 1, &out), -EINVAL);
	assert_int_equal(sb_decode(buf, 8, &out), -EINVAL);
	assert_int_equal(sb_decode(buf, 0, &out), -EINVAL);
	/* Extra bytes after the block are not part of it. */
	memset(buf + RT_SB_SIZE, 0xee, 100);
	assert_int_equal(sb_decode(buf, sizeof(buf), &out), 0);
	assert_sb_equal(&sb, &out);
}

static void test_version(void **state UNUSED)
{
	static const uint32_t versions[] = { 0, 2, 0x01000000 };
	struct rt_sb sb, out;
	uint8_t buf[RT_SB_SIZE];

	make_sb(&sb);
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		encode_ok(&sb, 0, buf);
		wr32(buf + O_VERSION, versions[i]);
		fix_crc(buf);
		assert_int_equal(sb_decode(buf, sizeof(buf), &out), -EPROTONOSUPPORT);
		/* Without a fixed CRC the damage is reported first. */
		wr32(buf + O_CRC, rd32(buf + O_CRC) ^ 1);
		assert_int_equal(sb_decode(buf, sizeof(buf), &out), -EBADMSG);
	}
	sb.version = 2;
	assert_int_equal(sb_encode(&sb, 0, buf), -EPROTONOSUPPORT);
}

static void test_feature_flags(void **state UNUSED)
{
	struct rt_sb sb, out;
	uint8_t buf[RT_SB_SIZE];

	make_sb(&sb);
	for (unsigned bit = 0; bit < 64; bit += 21) {
		encode_ok(&sb, 0, buf);
		wr64(buf + O_INCOMPAT, 1ull << bit);
		fix_crc(buf);
		assert_int_equal(sb_decode(buf, sizeof(buf), &out), -EOPNOTSUPP);
	}

	/* Unknown ro_compat: readable, but this build refuses to write it back. */
	encode_ok(&sb, 0, buf);
	wr64(buf + O_RO_COMPAT, 1ull << 63);
	fix_crc(buf);
	assert_int_equal(sb_decode(buf, sizeof(buf), &out), 0);
	assert_int_equal(out.feature_ro_compat, 1ull << 63);
	assert_int_equal(sb_encode(&out, 0, buf), -EROFS);

	/* Unknown compat: readable and writable, and kept (IO_FAILED follows its field). */
	sb.feature_compat = ~0ull;
	encode_ok(&sb, 0, buf);
	assert_int_equal(sb_decode(buf, sizeof(buf), &out), 0);
	assert_int_equal(out.feature_compat, ~0ull & ~RT_FEATURE_COMPAT_IO_FAILED);
	sb.feature_compat = 0;

	sb.feature_incompat = 1;
	assert_int_equal(sb_encode(&sb, 0, buf), -EOPNOTSUPP);
}

/*
 * io_failed: header bytes 64-71, announced by compat bit 0, which the
 * encoder sets exactly when the field is not zero; without the bit the
 * bytes are reserved and ignored.
 */
static void test_io_failed(void **state UNUSED)
{
	struct rt_sb sb, out;
	uint8_t buf[RT_SB_SIZE];

	make_sb(&sb);
	sb.feature_compat = 0;
	encode_ok(&sb, 0, buf);
	assert_int_equal(rd64(buf + O_COMPAT), 0);
	assert_int_equal(rd64(buf + 64), 0);
	sb.io_failed = 1ull << 2 | 1ull << 63;
	encode_ok(&sb, 0, buf);
	assert_int_equal(rd64(buf + O_COMPAT), RT_FEATURE_COMPAT_IO_FAILED);
	assert_int_equal(rd64(buf + 64), sb.io_failed);
	assert_int_equal(sb_decode(buf, sizeof(buf), &out), 0);
	assert_int_equal(out.io_failed, sb.io_failed);
	assert_int_equal(out.feature_compat, RT_FEATURE_COMPAT_IO_FAILED);
	/* The field without its flag (a writer that zeroed the flag): not read. */
	wr64(buf + O_COMPAT, 0);
	fix_crc(buf);
	assert_int_equal(sb_decode(buf, sizeof(buf), &out), 0);
	assert_int_equal(out.io_failed, 0);
	/* Cleared again: the flag goes with it. */
	sb.io_failed = 0;
	sb.feature_compat = RT_FEATURE_COMPAT_IO_FAILED;
	encode_ok(&sb, 0, buf);
	assert_int_equal(rd64(buf + O_COMPAT), 0);
	/* The flag over a zero field (found by the fuzzer): decoded as no flag, so
	 * that decode, encode, decode gives the same superblock. */
	wr64(buf + O_COMPAT, RT_FEATURE_COMPAT_IO_FAILED);
	fix_crc(buf);
	assert_int_equal(sb_decode(buf, sizeof(buf), &out), 0);
	assert_int_equal(out.io_failed, 0);
	assert_int_equal(out.feature_compat, 0);
}

/* A later version may put compat fields into reserved space: readers ignore it. */
static void test_reserved_ignored(void **state UNUSED)
{
	struct rt_sb sb, out;
	uint8_t buf[RT_SB_SIZE];

	make_sb(&sb);
	encode_ok(&sb, 0, buf);
	buf[64] = 1;
	buf[1023] = 2;
	buf[4091] = 3;
	fix_crc(buf);
	assert_int_equal(sb_decode(buf, sizeof(buf), &out), 0);
	assert_sb_equal(&sb, &out);
}

struct field {
	unsigned off;
	unsigned width;		/* 4 or 8; 0 ends the list */
	uint64_t value;
};

/* Up to three fields changed together, then the CRC fixed. */
struct patch {
	const char *what;
	struct field f[3];
};

/* make_sb's unit: length 10 GiB + 12345, 64 KiB chunk, slot 3 of 7, raid5 on 5. */
static const struct patch unclean[] = {
	{ "header size", { { O_SB_SIZE, 4, 8192 } } },
	{ "copy index", { { O_COPY, 4, 2 } } },
	{ "array state", { { O_STATE, 4, 2 } } },
	{ "level 2", { { O_LEVEL, 4, 2 } } },
	{ "level 6", { { O_LEVEL, 4, 6 } } },
	{ "level -2", { { O_LEVEL, 4, 0xfffffffe } } },
	{ "layout", { { O_LAYOUT, 4, 1 } } },
	{ "chunk 0", { { O_CHUNK, 4, 0 } } },
	{ "chunk not 2^n", { { O_CHUNK, 4, 12288 } } },
	{ "chunk too small", { { O_CHUNK, 4, 2048 } } },
	{ "chunk too big", { { O_CHUNK, 4, 128u << 20 } } },
	{ "blocksize 1024", { { O_BLOCKSIZE, 4, 1024 } } },
	{ "blocksize 0", { { O_BLOCKSIZE, 4, 0 } } },
	{ "n_devices below raid5 minimum", { { O_NDEV, 4, 2 } } },
	{ "n_devices 65", { { O_NDEV, 4, 65 } } },
	{ "n_slots < n_devices", { { O_NSLOTS, 4, 4 } } },
	{ "n_slots 65", { { O_NSLOTS, 4, 65 } } },
	{ "region not 2^n", { { O_REGION, 8, 3 * MiB } } },
	{ "region < chunk", { { O_REGION, 8, 32 * KiB } } },
	{ "region 0", { { O_REGION, 8, 0 } } },
	{ "nblocks 0", { { O_NBLOCKS, 8, 0 } } },
	{ "nblocks beyond capacity", { { O_NBLOCKS, 8, 11 * GiB * 4 / 512 } } },
	{ "nblocks overflows", { { O_NBLOCKS, 8, UINT64_MAX / 256 } } },
	{ "slot index >= n_slots", { { O_U_SLOT, 4, 7 } } },
	{ "slot index huge", { { O_U_SLOT, 4, 0xffffffff } } },
	{ "start + length overflow", { { O_U_START, 8, UINT64_MAX - 4096 } } },
	{ "sb0 offset", { { O_U_SB0, 8, 0 } } },
	{ "sb1 past the end", { { O_U_SB1, 8, 10 * GiB + 12288 } } },
	{ "sb1 unaligned", { { O_U_SB1, 8, 10 * GiB + 4096 + 512 } } },
	{ "sb1 inside the data", { { O_U_SB1, 8, 5 * GiB } } },
	{ "sb1 before data", { { O_U_SB1, 8, 4096 } } },
	{ "length too small", { { O_U_LENGTH, 8, 4096 } } },
	{ "length 0", { { O_U_LENGTH, 8, 0 } } },
	{ "log over copy 0", { { O_U_LOG_OFF, 8, 4096 } } },
	{ "log unaligned", { { O_U_LOG_OFF, 8, 8192 + 512 } } },
	{ "log after data", { { O_U_LOG_OFF, 8, 2 * MiB } } },
	{ "log into data", { { O_U_LOG_SIZE, 8, 1 * MiB } } },
	{ "log size huge", { { O_U_LOG_SIZE, 8, UINT64_MAX } } },
	{ "data offset unaligned", { { O_U_DATA_OFF, 8, 1 * MiB + 4096 } } },
	{ "data offset 0", { { O_U_DATA_OFF, 8, 0 } } },
	{ "data offset past the end", { { O_U_DATA_OFF, 8, 11 * GiB } } },
	{ "data offset huge", { { O_U_DATA_OFF, 8, UINT64_MAX & ~(1 * MiB - 1) } } },
	{ "data size 0", { { O_U_DATA_SIZE, 8, 0 }, { O_SLOTS + 3 * SLOT_SIZE + S_DATA_SIZE, 8, 0 } } },
	{ "data size not whole chunks", { { O_U_DATA_SIZE, 8, 1 * GiB + 4096 },
					  { O_SLOTS + 3 * SLOT_SIZE + S_DATA_SIZE, 8, 1 * GiB + 4096 } } },
	{ "data size over copy 1", { { O_U_DATA_SIZE, 8, 10 * GiB }, { O_SLOTS + 3 * SLOT_SIZE + S_DATA_SIZE, 8, 10 * GiB } } },
	{ "data size huge", { { O_U_DATA_SIZE, 8, UINT64_MAX & ~(64 * KiB - 1) },
			      { O_SLOTS + 3 * SLOT_SIZE + S_DATA_SIZE, 8, UINT64_MAX & ~(64 * KiB - 1) } } },
	{ "role slot empty", { { O_SLOTS + 0 * SLOT_SIZE + S_STATE, 4, RT_SLOT_EMPTY } } },
	{ "role slot spare", { { O_SLOTS + 1 * SLOT_SIZE + S_STATE, 4, RT_SLOT_SPARE } } },
	{ "spare slot active", { { O_SLOTS + 5 * SLOT_SIZE + S_STATE, 4, RT_SLOT_ACTIVE } } },
	{ "spare slot rebuilding", { { O_SLOTS + 6 * SLOT_SIZE + S_STATE, 4, RT_SLOT_REBUILDING } } },
	{ "unused slot in use", { { O_SLOTS + 7 * SLOT_SIZE + S_STATE, 4, RT_SLOT_SPARE } } },
	{ "last slot in use", { { O_SLOTS + 63 * SLOT_SIZE + S_STATE, 4, RT_SLOT_ACTIVE } } },
	{ "slot state unknown", { { O_SLOTS + 2 * SLOT_SIZE + S_STATE, 4, 6 } } },
	{ "slot state huge", { { O_SLOTS + 2 * SLOT_SIZE + S_STATE, 4, 0xffffffff } } },
	{ "recovery past data", { { O_SLOTS + 4 * SLOT_SIZE + S_RECOVERY, 8, 11 * GiB } } },
	{ "own slot missing", { { O_SLOTS + 3 * SLOT_SIZE + S_STATE, 4, RT_SLOT_MISSING } } },
	{ "own slot other unit", { { O_SLOTS + 3 * SLOT_SIZE + S_UUID, 4, 0 } } },
	{ "own slot size differs", { { O_SLOTS + 3 * SLOT_SIZE + S_DATA_SIZE, 8, 1 * GiB } } },
};

static void patch(uint8_t *buf, const struct patch *p)
{
	for (unsigned i = 0; i < 3 && p->f[i].width; i++) {
		if (p->f[i].width == 4)
			wr32(buf + p->f[i].off, (uint32_t)p->f[i].value);
		else
			wr64(buf + p->f[i].off, p->f[i].value);
	}
	fix_crc(buf);
}

static void test_unclean_fields(void **state UNUSED)
{
	struct rt_sb sb, out;
	uint8_t good[RT_SB_SIZE], buf[RT_SB_SIZE];

	make_sb(&sb);
	encode_ok(&sb, 0, good);
	for (size_t i = 0; i < sizeof(unclean) / sizeof(unclean[0]); i++) {
		int r;

		memcpy(buf, good, sizeof(buf));
		patch(buf, &unclean[i]);
		r = sb_decode(buf, sizeof(buf), &out);
		if (r != -EUCLEAN)
			fail_msg("%s: sb_decode returned %d, expected -EUCLEAN", unclean[i].what, r);
	}
}

/* The same offsets accept other consistent values: the checks are not too strict. */
static void test_clean_variations(void **state UNUSED)
{
	static const struct patch ok[] = {
		{ "linear", { { O_LEVEL, 4, 0xffffffff } } },
		{ "raid0", { { O_LEVEL, 4, 0 } } },
		{ "raid1", { { O_LEVEL, 4, 1 }, { O_NBLOCKS, 8, 1000 } } },
		{ "blocksize 4096", { { O_BLOCKSIZE, 4, 4096 }, { O_NBLOCKS, 8, 1000 } } },
		{ "copy 1", { { O_COPY, 4, 1 } } },
		{ "clean", { { O_STATE, 4, RT_ARRAY_CLEAN } } },
		{ "data at 2 MiB", { { O_U_DATA_OFF, 8, 2 * MiB }, { O_U_DATA_SIZE, 8, 10 * GiB - 2 * MiB },
				     { O_SLOTS + 3 * SLOT_SIZE + S_DATA_SIZE, 8, 10 * GiB - 2 * MiB } } },
		{ "small log", { { O_U_LOG_SIZE, 8, 0 } } },
		{ "spare removed", { { O_SLOTS + 6 * SLOT_SIZE + S_STATE, 4, RT_SLOT_EMPTY } } },
		{ "own slot faulty", { { O_SLOTS + 3 * SLOT_SIZE + S_STATE, 4, RT_SLOT_FAULTY } } },
		{ "no spares", { { O_NSLOTS, 4, 5 } } },
		{ "events 0", { { O_EVENTS, 8, 0 } } },
		{ "region = chunk", { { O_REGION, 8, 64 * KiB } } },
		{ "nblocks 1", { { O_NBLOCKS, 8, 1 } } },
	};
	struct rt_sb sb, out;
	uint8_t good[RT_SB_SIZE], buf[RT_SB_SIZE];

	make_sb(&sb);
	sb.unit.slot = 3;
	encode_ok(&sb, 0, good);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int r;

		memcpy(buf, good, sizeof(buf));
		if (!strcmp(ok[i].what, "no spares")) {
			/* entries beyond n_slots must then be empty */
			memset(buf + O_SLOTS + 5 * SLOT_SIZE, 0, 2 * SLOT_SIZE);
		}
		patch(buf, &ok[i]);
		r = sb_decode(buf, sizeof(buf), &out);
		if (r != 0)
			fail_msg("%s: sb_decode returned %d, expected 0", ok[i].what, r);
		/* and what was decoded encodes back to the same struct */
		assert_int_equal(sb_encode(&out, 1, buf), 0);
		assert_int_equal(sb_decode(buf, sizeof(buf), &sb), 0);
		assert_sb_equal(&sb, &out);
		make_sb(&sb);
	}
}

static void test_unclean_strings(void **state UNUSED)
{
	static const char *bad_names[] = { "", "a b", "-x", ".x", "a/b", "caf\xc3\xa9", "tab\t" };
	struct rt_sb sb, out;
	uint8_t good[RT_SB_SIZE], buf[RT_SB_SIZE];

	make_sb(&sb);
	encode_ok(&sb, 0, good);

	/* Fields that fill their whole width have no terminating NUL. */
	memcpy(buf, good, sizeof(buf));
	memset(buf + O_NAME, 'n', 64);
	fix_crc(buf);
	assert_int_equal(sb_decode(buf, sizeof(buf), &out), -EUCLEAN);
	memcpy(buf, good, sizeof(buf));
	memset(buf + O_DESC, 'd', 128);
	fix_crc(buf);
	assert_int_equal(sb_decode(buf, sizeof(buf), &out), -EUCLEAN);

	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		memcpy(buf, good, sizeof(buf));
		memset(buf + O_NAME, 0, 64);
		memcpy(buf + O_NAME, bad_names[i], strlen(bad_names[i]));
		fix_crc(buf);
		assert_int_equal(sb_decode(buf, sizeof(buf), &out), -EUCLEAN);
	}

	/* Longest name; junk after a NUL is dropped rather than carried along. */
	memcpy(buf, good, sizeof(buf));
	memset(buf + O_NAME, 'n', 63);
	buf[O_NAME + 63] = 0;
	memcpy(buf + O_DESC, "hi\0junk", 7);
	fix_crc(buf);
	assert_int_equal(sb_decode(buf, sizeof(buf), &out), 0);
	assert_int_equal(strlen(out.array.name), 63);
	assert_string_equal(out.array.desc, "hi");
	for (unsigned i = 2; i < sizeof(out.array.desc); i++)
		assert_int_equal(out.array.desc[i], 0);
}

/* Each field that makes no sense is named by sb_validate_explain. */
static void test_validate_names_the_field(void **state UNUSED)
{
	static const char *const want[] = {
		"unit length", "data offset", "data", "log offset", "log size", "chunk size",
		"level", "n_devices", "nblocks", "unit slot", "slot 3: the same unit as slot",
		"recovery offset",
	};
	struct rt_sb sb, bad;
	char why[256];

	make_sb(&sb);
	assert_int_equal(sb_validate_explain(&sb, why, sizeof(why)), 0);
	assert_string_equal(why, "");
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		bad = sb;
		switch (i) {
		case 0: bad.unit.length = RT_SB_SIZE; break;
		case 1: bad.unit.data_offset += RT_DATA_ALIGN * 1024; break;
		case 2: bad.unit.data_size = bad.unit.sb_offset[1] + CHUNK; break;
		case 3: bad.unit.log_offset = 0; break;
		case 4: bad.unit.log_size = bad.unit.data_offset; break;
		case 5: bad.array.chunk_size = 3000; break;
		case 6: bad.array.level = 7; break;
		case 7: bad.array.n_devices = 2; break;
		case 8: bad.array.nblocks = UINT64_MAX / 2; break;
		case 9: bad.unit.slot = 60; break;
		case 10:	/* the unit in use in slot 3 and in slot 0 */
			memcpy(bad.slots[0].uuid, bad.unit.uuid, RT_UUID_SIZE);
			break;
		case 11: bad.slots[0].recovery_offset = bad.slots[0].data_size + 1; break;
		}
		assert_int_equal(sb_validate_explain(&bad, why, sizeof(why)), -EUCLEAN);
		if (!strstr(why, want[i]))
			fail_msg("mutation %zu: '%s' does not name '%s'", i, why, want[i]);
		assert_int_equal(sb_validate(&bad), -EUCLEAN);
	}
}

static void test_validate_and_encode_refuse(void **state UNUSED)
{
	struct rt_sb sb;
	uint8_t buf[RT_SB_SIZE];

	make_sb(&sb);
	assert_int_equal(sb_encode(&sb, 2, buf), -EINVAL);
	assert_int_equal(sb_encode(NULL, 0, buf), -EINVAL);
	assert_int_equal(sb_encode(&sb, 0, NULL), -EINVAL);
	assert_int_equal(sb_validate(NULL), -EINVAL);

	memset(sb.array.name, 'x', sizeof(sb.array.name));	/* no NUL in the struct */
	assert_int_equal(sb_validate(&sb), -EUCLEAN);
	assert_int_equal(sb_encode(&sb, 0, buf), -EUCLEAN);
	make_sb(&sb);
	memset(sb.array.desc, 'x', sizeof(sb.array.desc));
	assert_int_equal(sb_validate(&sb), -EUCLEAN);
	make_sb(&sb);
	sb.array.n_devices = 0;
	assert_int_equal(sb_encode(&sb, 0, buf), -EUCLEAN);
	make_sb(&sb);
	sb.array.level = 6;
	assert_int_equal(sb_validate(&sb), -EUCLEAN);
	assert_int_equal(sb_decode(NULL, RT_SB_SIZE, &sb), -EINVAL);
}

/* What create writes for the smallest possible linear and raid1 arrays is valid. */
static void test_minimal_arrays(void **state UNUSED)
{
	struct rt_geometry g;
	struct rt_sb sb, out;
	uint8_t buf[RT_SB_SIZE];
	uint64_t len = RT_DATA_ALIGN + RT_MIN_CHUNK + RT_SB_SIZE;

	assert_int_equal(sb_geometry(len, RT_MIN_CHUNK, &g), 0);
	for (int level = 0; level < 2; level++) {
		memset(&sb, 0, sizeof(sb));
		sb.version = RT_SB_VERSION;
		sb.events = 1;
		strcpy(sb.array.name, "m");
		sb.array.level = level ? RT_LEVEL_1 : RT_LEVEL_LINEAR;
		sb.array.chunk_size = RT_MIN_CHUNK;
		sb.array.blocksize = 4096;
		sb.array.n_devices = sb.array.n_slots = level ? 2 : 1;
		sb.array.nblocks = 1;
		sb.array.region_size = RT_MIN_CHUNK;
		sb.unit.length = len;
		sb.unit.sb_offset[0] = g.sb_offset[0];
		sb.unit.sb_offset[1] = g.sb_offset[1];
		sb.unit.log_offset = g.log_offset;
		sb.unit.log_size = g.log_size;
		sb.unit.data_offset = g.data_offset;
		sb.unit.data_size = g.data_size;
		for (uint32_t i = 0; i < sb.array.n_devices; i++) {
			sb.slots[i].state = RT_SLOT_ACTIVE;
			sb.slots[i].data_size = g.data_size;
		}
		encode_ok(&sb, 0, buf);
		assert_int_equal(sb_decode(buf, sizeof(buf), &out), 0);
		assert_sb_equal(&sb, &out);
		/* one block more than the data area holds */
		sb.array.nblocks = 2;
		assert_int_equal(sb_validate(&sb), -EUCLEAN);
	}
}

/*
 * The building blocks of choosing a copy (which unit.c does): a torn copy
 * is recognised as damaged while the other one still decodes.
 */
static void test_one_copy_damaged(void **state UNUSED)
{
	struct rt_sb sb, out0, out1;
	uint8_t c0[RT_SB_SIZE], c1[RT_SB_SIZE];

	make_sb(&sb);
	encode_ok(&sb, 0, c0);
	sb.events++;
	encode_ok(&sb, 1, c1);

	/* copy 1 torn halfway: second half still holds the previous contents */
	memset(c1 + 2048, 0, 2048);
	assert_int_equal(sb_decode(c0, sizeof(c0), &out0), 0);
	assert_int_equal(sb_decode(c1, sizeof(c1), &out1), -EBADMSG);
	assert_int_equal(out0.events, sb.events - 1);

	/* both bad */
	c0[100] ^= 0x40;
	assert_int_equal(sb_decode(c0, sizeof(c0), &out0), -EBADMSG);

	/* copy 0 overwritten by something else entirely, copy 1 good */
	memset(c0, 0, sizeof(c0));
	encode_ok(&sb, 1, c1);
	assert_int_equal(sb_decode(c0, sizeof(c0), &out0), -ENODATA);
	assert_int_equal(sb_decode(c1, sizeof(c1), &out1), 0);
	assert_int_equal(out1.events, sb.events);

	/* a unit cut short: only part of the block could be read */
	assert_int_equal(sb_decode(c1, 1000, &out1), -EINVAL);
}

/* ---- names and parsing ---- */

static void test_levels(void **state UNUSED)
{
	static const struct { const char *s; int32_t level; } good[] = {
		{ "linear", -1 }, { "LINEAR", -1 }, { "none", -1 }, { "None", -1 },
		{ "0", 0 }, { "raid0", 0 }, { "RAID0", 0 }, { "1", 1 }, { "raid1", 1 },
		{ "5", 5 }, { "raid5", 5 }, { "Raid5", 5 },
	};
	static const char *bad[] = { "", "2", "6", "10", "raid", "raid6", "-1", " 0", "0 ",
				     "linear0", "raid 5", "05", "r5" };
	int32_t level;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		level = 99;
		assert_int_equal(sb_level_parse(good[i].s, &level), 0);
		assert_int_equal(level, good[i].level);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sb_level_parse(bad[i], &level), -EINVAL);
	assert_int_equal(sb_level_parse(NULL, &level), -EINVAL);

	assert_string_equal(sb_level_name(RT_LEVEL_LINEAR), "linear");
	assert_string_equal(sb_level_name(RT_LEVEL_0), "raid0");
	assert_string_equal(sb_level_name(RT_LEVEL_1), "raid1");
	assert_string_equal(sb_level_name(RT_LEVEL_5), "raid5");
	assert_non_null(sb_level_name(7));

	assert_int_equal(sb_min_units(RT_LEVEL_LINEAR), 1);
	assert_int_equal(sb_min_units(RT_LEVEL_0), 1);
	assert_int_equal(sb_min_units(RT_LEVEL_1), 2);
	assert_int_equal(sb_min_units(RT_LEVEL_5), 3);
	assert_int_equal(sb_min_units(6), -EINVAL);
	assert_int_equal(sb_min_units(-2), -EINVAL);
}

static void test_state_names(void **state UNUSED)
{
	assert_string_equal(sb_slot_state_name(RT_SLOT_EMPTY), "empty");
	assert_string_equal(sb_slot_state_name(RT_SLOT_ACTIVE), "active");
	assert_string_equal(sb_slot_state_name(RT_SLOT_SPARE), "spare");
	assert_string_equal(sb_slot_state_name(RT_SLOT_FAULTY), "faulty");
	assert_string_equal(sb_slot_state_name(RT_SLOT_MISSING), "missing");
	assert_string_equal(sb_slot_state_name(RT_SLOT_REBUILDING), "rebuilding");
	assert_string_equal(sb_slot_state_name(RT_SLOT_REPLACING), "replacing");
	assert_string_equal(sb_slot_state_name(RT_SLOT_REPLACED), "replaced");
	assert_non_null(sb_slot_state_name(8));
	assert_string_equal(sb_array_state_name(RT_ARRAY_CLEAN), "clean");
	assert_string_equal(sb_array_state_name(RT_ARRAY_DIRTY), "dirty");
	assert_non_null(sb_array_state_name(2));
}

/*
 * Hot replace: one replacing entry past the roles, with the role it is to
 * take in the header (bytes 72-75); replaced entries past the roles.
 */
/*
 * Each role's share of the array comes from the array's size, not from the
 * smallest slot: after a bigger unit took the smallest one's role, the
 * array (and what a unit must hold to join it) stays as it was.
 */
static void test_role_sizes(void **state UNUSED)
{
	uint64_t sizes[RT_MAX_UNITS];
	struct rt_sb sb;

	make_sb(&sb);
	sb.array.blocksize = 4096;
	for (unsigned i = 0; i < sb.array.n_devices; i++)
		sb.slots[i].data_size = 64 * CHUNK;
	sb.slots[2].data_size = 100 * CHUNK;	/* took the role of a unit of 40 chunks */
	sb.array.nblocks = 4 * 40 * (uint64_t)CHUNK / 4096;	/* raid5 of 5: 4 data roles */
	sb_role_sizes(&sb, sizes);
	for (unsigned i = 0; i < sb.array.n_devices; i++)
		assert_int_equal(sizes[i], 40 * CHUNK);
	sb.array.level = RT_LEVEL_1;
	sb.array.nblocks = 40 * (uint64_t)CHUNK / 4096;
	sb_role_sizes(&sb, sizes);
	assert_int_equal(sizes[4], 40 * CHUNK);
	sb.array.level = RT_LEVEL_0;
	sb.array.nblocks = 5 * 40 * (uint64_t)CHUNK / 4096;
	sb_role_sizes(&sb, sizes);
	assert_int_equal(sizes[0], 40 * CHUNK);
	/* Not whole chunks per role (no array is made so): the slots' sizes. */
	sb.array.nblocks += 1;
	sb_role_sizes(&sb, sizes);
	assert_int_equal(sizes[2], 100 * CHUNK);
	/* Linear: every role its own. */
	sb.array.level = RT_LEVEL_LINEAR;
	sb_role_sizes(&sb, sizes);
	assert_int_equal(sizes[0], 64 * CHUNK);
	assert_int_equal(sizes[2], 100 * CHUNK);
}

static void test_replacing(void **state UNUSED)
{
	struct rt_sb sb, out;
	uint8_t buf[RT_SB_SIZE];

	make_sb(&sb);
	assert_int_equal(sb_replacing_slot(&sb), -1);
	encode_ok(&sb, 0, buf);
	assert_int_equal(rd32(buf + 72), 0);
	sb.slots[5].state = RT_SLOT_REPLACING;
	sb.slots[5].recovery_offset = 3 * CHUNK;
	sb.slots[6].state = RT_SLOT_REPLACED;
	sb.replace_role = 2;
	assert_int_equal(sb_replacing_slot(&sb), 5);
	encode_ok(&sb, 0, buf);
	assert_int_equal(rd32(buf + 72), 2);
	assert_int_equal(sb_decode(buf, sizeof(buf), &out), 0);
	assert_sb_equal(&sb, &out);
	/* Without a replacing entry the field is not kept. */
	sb.slots[5].state = RT_SLOT_SPARE;
	encode_ok(&sb, 0, buf);
	assert_int_equal(rd32(buf + 72), 0);
	assert_int_equal(sb_decode(buf, sizeof(buf), &out), 0);
	assert_int_equal(out.replace_role, 0);
	/* A role that does not exist, a second replacing entry, one in a role. */
	sb.slots[5].state = RT_SLOT_REPLACING;
	sb.replace_role = 5;
	assert_int_equal(sb_validate(&sb), -EUCLEAN);
	sb.replace_role = 4;
	assert_int_equal(sb_validate(&sb), 0);
	sb.slots[6].state = RT_SLOT_REPLACING;
	assert_int_equal(sb_validate(&sb), -EUCLEAN);
	sb.slots[6].state = RT_SLOT_REPLACED;
	sb.slots[4].state = RT_SLOT_REPLACED;
	assert_int_equal(sb_validate(&sb), -EUCLEAN);
}

/* A new spare takes the first slot past the roles a removed spare left empty. */
static void test_spare_slot(void **state UNUSED)
{
	struct rt_sb sb;

	memset(&sb, 0, sizeof(sb));
	sb.array.n_devices = 2;
	sb.array.n_slots = 2;
	for (unsigned i = 0; i < 2; i++)
		sb.slots[i].state = RT_SLOT_ACTIVE;
	assert_int_equal(sb_spare_slot(&sb), 2);	/* none past the roles: a new one */
	sb.array.n_slots = 5;
	sb.slots[2].state = RT_SLOT_FAULTY;
	sb.slots[3].state = RT_SLOT_EMPTY;		/* a removed spare's */
	sb.slots[4].state = RT_SLOT_SPARE;
	assert_int_equal(sb_spare_slot(&sb), 3);
	sb.slots[3].state = RT_SLOT_SPARE;
	assert_int_equal(sb_spare_slot(&sb), 5);
	sb.slots[1].state = RT_SLOT_EMPTY;		/* a role is never a spare's */
	assert_int_equal(sb_spare_slot(&sb), 5);
	sb.array.n_slots = RT_MAX_UNITS;
	for (unsigned i = 5; i < RT_MAX_UNITS; i++)
		sb.slots[i].state = RT_SLOT_SPARE;
	assert_int_equal(sb_spare_slot(&sb), RT_MAX_UNITS);	/* full */
}

static void test_hashcodes(void **state UNUSED)
{
	static const char *bad[] = { "", "1234567", "123456789", "0x123456", "0x12345678",
				     "1234567g", " 12345678", "12345678 ", "-1234567", "+1234567" };
	static const uint8_t uuid[RT_UUID_SIZE] = { 0x9b, 0x2e, 0x01, 0xf0, 0xaa };
	uint32_t h;

	assert_int_equal(sb_hashcode_parse("deadBEEF", &h), 0);
	assert_int_equal(h, 0xdeadbeef);
	assert_int_equal(sb_hashcode_parse("00000000", &h), 0);
	assert_int_equal(h, 0);
	assert_int_equal(sb_hashcode_parse("ffffffff", &h), 0);
	assert_int_equal(h, 0xffffffff);
	h = 42;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sb_hashcode_parse(bad[i], &h), -EINVAL);
		assert_int_equal(h, 42);
	}
	assert_int_equal(sb_hashcode_parse(NULL, &h), -EINVAL);

	/* Reads like the start of the printed UUID "9b2e01f0-aa00-...". */
	assert_int_equal(sb_hashcode_from_uuid(uuid), 0x9b2e01f0);
}

static void test_names(void **state UNUSED)
{
	char longest[64], toolong[65];

	memset(longest, 'a', 63);
	longest[63] = 0;
	memset(toolong, 'a', 64);
	toolong[64] = 0;
	assert_int_equal(sb_name_check("data"), 0);
	assert_int_equal(sb_name_check("A_b-c.9"), 0);
	assert_int_equal(sb_name_check("0"), 0);
	assert_int_equal(sb_name_check("a-"), 0);
	assert_int_equal(sb_name_check(longest), 0);
	assert_int_equal(sb_name_check(toolong), -ENAMETOOLONG);
	assert_int_equal(sb_name_check(""), -EINVAL);
	assert_int_equal(sb_name_check(NULL), -EINVAL);
	assert_int_equal(sb_name_check("-a"), -EINVAL);
	assert_int_equal(sb_name_check(".a"), -EINVAL);
	assert_int_equal(sb_name_check("."), -EINVAL);
	assert_int_equal(sb_name_check(".."), -EINVAL);
	assert_int_equal(sb_name_check("a b"), -EINVAL);
	assert_int_equal(sb_name_check("a/b"), -EINVAL);
	assert_int_equal(sb_name_check("a:b"), -EINVAL);
	assert_int_equal(sb_name_check("a\nb"), -EINVAL);
	assert_int_equal(sb_name_check("\xc3\xa9t\xc3\xa9"), -EINVAL);
}

static void test_sizes(void **state UNUSED)
{
	static const struct { const char *s; uint64_t v; } good[] = {
		{ "0", 0 }, { "512", 512 }, { "512B", 512 }, { "64K", 64 * KiB },
		{ "64k", 64 * KiB }, { "64KiB", 64 * KiB }, { "64kib", 64 * KiB },
		{ "64KB", 64 * KiB }, { "1M", MiB }, { "1m", MiB }, { "1MiB", MiB },
		{ "2G", 2 * GiB }, { "2g", 2 * GiB }, { "3T", 3 * GiB * 1024 },
		{ "007", 7 }, { "18446744073709551615", UINT64_MAX },
		{ "16777215T", 16777215ull << 40 },
	};
	static const char *bad[] = { "", "K", "B", "-1", "+1", " 1", "1 ", "1.5G", "1X",
				     "1KK", "1Ki", "1iB", "0x10", "1KBB", "1Gb2", "1e3" };
	static const char *range[] = { "18446744073709551616", "99999999999999999999999",
				       "16777216T", "17179869184G", "18014398509481984K" };
	uint64_t v;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 1;
		if (sb_size_parse(good[i].s, &v) != 0)
			fail_msg("'%s' not accepted", good[i].s);
		assert_int_equal(v, good[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sb_size_parse(bad[i], &v) != -EINVAL)
			fail_msg("'%s' not refused with -EINVAL", bad[i]);
	for (size_t i = 0; i < sizeof(range) / sizeof(range[0]); i++)
		if (sb_size_parse(range[i], &v) != -ERANGE)
			fail_msg("'%s' not refused with -ERANGE", range[i]);
	assert_int_equal(sb_size_parse(NULL, &v), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_check_value),
		cmocka_unit_test(test_geometry_sizes),
		cmocka_unit_test(test_geometry_minimal),
		cmocka_unit_test(test_geometry_bad_chunk),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_documented_offsets),
		cmocka_unit_test(test_copies_differ_only_in_index),
		cmocka_unit_test(test_every_byte_flip_detected),
		cmocka_unit_test(test_zero_and_foreign_block),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_feature_flags),
		cmocka_unit_test(test_io_failed),
		cmocka_unit_test(test_reserved_ignored),
		cmocka_unit_test(test_unclean_fields),
		cmocka_unit_test(test_clean_variations),
		cmocka_unit_test(test_unclean_strings),
		cmocka_unit_test(test_validate_and_encode_refuse),
		cmocka_unit_test(test_validate_names_the_field),
		cmocka_unit_test(test_minimal_arrays),
		cmocka_unit_test(test_one_copy_damaged),
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_state_names),
		cmocka_unit_test(test_spare_slot),
		cmocka_unit_test(test_role_sizes),
		cmocka_unit_test(test_replacing),
		cmocka_unit_test(test_hashcodes),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_sizes),
	};

	return cmocka_run_group_tests_name("format", tests, NULL, NULL);
}
