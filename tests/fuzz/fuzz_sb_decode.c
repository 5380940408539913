/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for sb_decode.
 *
 * Properties checked on every input:
 *  - sb_decode never reads outside the buffer or crashes (ASan/UBSan);
 *  - it returns 0 or one of the errors its header documents;
 *  - whatever it accepts encodes again and decodes to an equal struct.
 *
 * A random block almost never carries a valid CRC32C, which would leave
 * everything behind the checksum unexplored. So each input is tried three
 * ways: as it is; with its CRC recomputed (inputs of a whole block or more);
 * and, for shorter inputs, as a list of byte edits applied to a valid
 * superblock whose CRC is then recomputed. No seed corpus is needed.
 *
 * Run: make fuzz && ./build/fuzz/fuzz_sb_decode -max_total_time=60 -max_len=8192
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <raidtool/format.h>

#include "fuzz-check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_equal(const struct rt_sb *a, const struct rt_sb *b)
{
	CHECK(a->version == b->version);
	CHECK(a->feature_compat == b->feature_compat);
	CHECK(a->feature_incompat == b->feature_incompat);
	CHECK(a->feature_ro_compat == b->feature_ro_compat);
	CHECK(a->events == b->events);
	CHECK(a->state == b->state);
	CHECK(a->utime == b->utime);

	CHECK(!memcmp(a->array.name, b->array.name, sizeof(a->array.name)));
	CHECK(!memcmp(a->array.desc, b->array.desc, sizeof(a->array.desc)));
	CHECK(!memcmp(a->array.uuid, b->array.uuid, RT_UUID_SIZE));
	CHECK(a->array.hashcode == b->array.hashcode);
	CHECK(a->array.level == b->array.level);
	CHECK(a->array.layout == b->array.layout);
	CHECK(a->array.chunk_size == b->array.chunk_size);
	CHECK(a->array.blocksize == b->array.blocksize);
	CHECK(a->array.n_devices == b->array.n_devices);
	CHECK(a->array.n_slots == b->array.n_slots);
	CHECK(a->array.nblocks == b->array.nblocks);
	CHECK(a->array.ctime == b->array.ctime);
	CHECK(a->array.region_size == b->array.region_size);

	CHECK(!memcmp(a->unit.uuid, b->unit.uuid, RT_UUID_SIZE));
	CHECK(a->unit.hashcode == b->unit.hashcode);
	CHECK(a->unit.slot == b->unit.slot);
	CHECK(a->unit.start == b->unit.start);
	CHECK(a->unit.length == b->unit.length);
	CHECK(a->unit.sb_offset[0] == b->unit.sb_offset[0]);
	CHECK(a->unit.sb_offset[1] == b->unit.sb_offset[1]);
	CHECK(a->unit.log_offset == b->unit.log_offset);
	CHECK(a->unit.log_size == b->unit.log_size);
	CHECK(a->unit.data_offset == b->unit.data_offset);
	CHECK(a->unit.data_size == b->unit.data_size);

	for (unsigned i = 0; i < RT_MAX_UNITS; i++) {
		CHECK(!memcmp(a->slots[i].uuid, b->slots[i].uuid, RT_UUID_SIZE));
		CHECK(a->slots[i].hashcode == b->slots[i].hashcode);
		CHECK(a->slots[i].state == b->slots[i].state);
		CHECK(a->slots[i].data_size == b->slots[i].data_size);
		CHECK(a->slots[i].recovery_offset == b->slots[i].recovery_offset);
	}
}

static void decode_one(const uint8_t *buf, size_t len)
{
	static uint8_t again[RT_SB_SIZE];
	static struct rt_sb sb, sb2;
	int r;

	r = sb_decode(buf, len, &sb);
	CHECK(r == 0 || r == -ENODATA || r == -EINVAL || r == -EBADMSG ||
	      r == -EPROTONOSUPPORT || r == -EOPNOTSUPP || r == -EUCLEAN);
	if (r)
		return;
	CHECK(sb_validate(&sb) == 0);
	r = sb_encode(&sb, 0, again);
	if (r == -EROFS) {
		/* Readable but not writable by this build: an unknown ro_compat flag. */
		CHECK(sb.feature_ro_compat & ~RT_FEATURE_RO_COMPAT_SUPPORTED);
		return;
	}
	CHECK(r == 0);
	CHECK(sb_decode(again, sizeof(again), &sb2) == 0);
	check_equal(&sb, &sb2);
}

static void fix_crc(uint8_t *buf)
{
	uint32_t crc = sb_crc32c(buf, RT_SB_SIZE - 4);

	for (int i = 0; i < 4; i++)
		buf[RT_SB_SIZE - 4 + i] = (uint8_t)(crc >> (8 * i));
}

/* A valid raid5 unit superblock to apply edits to. */
static const uint8_t *valid_block(void)
{
	static uint8_t block[RT_SB_SIZE];
	static int done;
	struct rt_geometry g;
	struct rt_sb sb;

	if (done)
		return block;
	CHECK(sb_geometry(4ull << 30, 64 << 10, &g) == 0);
	memset(&sb, 0, sizeof(sb));
	sb.version = RT_SB_VERSION;
	sb.events = 7;
	strcpy(sb.array.name, "fuzz");
	strcpy(sb.array.desc, "a description");
	sb.array.uuid[0] = 0x12;
	sb.array.hashcode = 0x12000000;
	sb.array.level = RT_LEVEL_5;
	sb.array.chunk_size = 64 << 10;
	sb.array.blocksize = 4096;
	sb.array.n_devices = 3;
	sb.array.n_slots = 4;
	sb.array.nblocks = 2 * g.data_size / 4096;
	sb.array.region_size = RT_DEFAULT_REGION;
	sb.unit.uuid[0] = 0x34;
	sb.unit.hashcode = 0x34000000;
	sb.unit.slot = 1;
	sb.unit.length = 4ull << 30;
	sb.unit.sb_offset[0] = g.sb_offset[0];
	sb.unit.sb_offset[1] = g.sb_offset[1];
	sb.unit.log_offset = g.log_offset;
	sb.unit.log_size = g.log_size;
	sb.unit.data_offset = g.data_offset;
	sb.unit.data_size = g.data_size;
	for (unsigned i = 0; i < 4; i++) {
		sb.slots[i].uuid[0] = (uint8_t)(0x40 + i);
		sb.slots[i].state = i < 3 ? RT_SLOT_ACTIVE : RT_SLOT_SPARE;
		sb.slots[i].data_size = g.data_size;
	}
	memcpy(sb.slots[1].uuid, sb.unit.uuid, RT_UUID_SIZE);
	CHECK(sb_encode(&sb, 1, block) == 0);
	done = 1;
	return block;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	/* As it is: libFuzzer's buffer is exactly @size bytes, so overreads show. */
	decode_one(data, size);

	if (size >= RT_SB_SIZE) {
		copy = malloc(size);
		CHECK(copy);
		memcpy(copy, data, size);
		fix_crc(copy);
		decode_one(copy, size);
		free(copy);
	} else {
		/* Edits (2-byte little-endian offset, new byte) to a valid block. */
		copy = malloc(RT_SB_SIZE);
		CHECK(copy);
		memcpy(copy, valid_block(), RT_SB_SIZE);
		for (size_t i = 0; i + 3 <= size; i += 3)
			copy[(data[i] | data[i + 1] << 8) % RT_SB_SIZE] = data[i + 2];
		fix_crc(copy);
		decode_one(copy, RT_SB_SIZE);
		free(copy);
	}
	return 0;
}
