/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for dirtylog_decode (the dirty-region log read from every
 * unit at each start: whatever a unit holds there is untrusted).
 *
 * Properties checked on every input:
 *  - dirtylog_decode never reads outside the buffer or crashes (ASan/UBSan);
 *  - it returns 0 or one of the errors its header documents;
 *  - what it accepts is self-consistent: the bitmap of n_regions bits lies
 *    inside the encoded length, which lies inside the buffer;
 *  - a small enough accepted log loads into a dirty log, encodes again and
 *    decodes to the same header and the same region bits;
 *  - a too small @bits_len is refused with -ENOSPC, never written past.
 *
 * A random input almost never carries the magic and a valid CRC32C, which
 * would leave everything behind them unexplored. So each input is tried
 * two ways: as it is; and then, an input of a whole block or more with its
 * magic and CRC fixed up, a shorter one as a list of byte edits applied to a
 * valid encoded log whose CRC is then recomputed. No seed corpus is needed.
 *
 * Run: make fuzz && ./build/fuzz/fuzz_dirtylog_decode -max_total_time=60 -max_len=16384
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <raidtool/dirtylog.h>
#include <raidtool/format.h>

#include "fuzz-check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Regions up to which an accepted log is also loaded and encoded again. */
#define ROUNDTRIP_MAX_REGIONS (1u << 20)

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void roundtrip(const struct rt_dlog_header *h, const uint8_t *bits)
{
	size_t nbytes = (size_t)((h->n_regions + 7) / 8), len;
	struct rt_dlog_header h2;
	struct rt_dirtylog *dl;
	uint8_t *buf, *bits2;

	CHECK(dirtylog_create(h->n_regions, h->region_size, &dl) == 0);
	dirtylog_load(dl, bits);
	len = dirtylog_encoded_size(h->n_regions);
	buf = malloc(len);
	bits2 = malloc(nbytes);
	CHECK(buf && bits2);
	CHECK(dirtylog_encode(dl, h->events, h->seq, h->events_cleared, buf, len) == 0);
	CHECK(dirtylog_decode(buf, len, &h2, bits2, nbytes) == 0);
	CHECK(h2.version == h->version && h2.events == h->events && h2.seq == h->seq &&
	      h2.region_size == h->region_size && h2.n_regions == h->n_regions &&
	      h2.events_cleared == h->events_cleared);
	/* Region bits survive; the padding bits past n_regions are not data. */
	for (uint64_t i = 0; i < h->n_regions; i++)
		CHECK(!!(bits[i / 8] & (1u << (i % 8))) == !!(bits2[i / 8] & (1u << (i % 8))));
	CHECK(dirtylog_count(dl) <= h->n_regions);
	free(bits2);
	free(buf);
	dirtylog_destroy(dl);
}

static void decode_one(const uint8_t *buf, size_t len)
{
	struct rt_dlog_header h;
	uint8_t *bits;
	size_t bits_len = len;	/* more than any bitmap inside @len can need */
	uint64_t need;
	int r;

	bits = malloc(bits_len ? bits_len : 1);
	CHECK(bits);
	r = dirtylog_decode(buf, len, &h, bits, bits_len);
	CHECK(r == 0 || r == -ENODATA || r == -EINVAL || r == -EBADMSG ||
	      r == -EPROTONOSUPPORT || r == -EUCLEAN || r == -ENOMEM);
	if (r) {
		free(bits);
		return;
	}
	CHECK(h.version == RT_DLOG_VERSION);
	CHECK(h.region_size > 0 && h.n_regions > 0);
	/* The bitmap lies within the encoded length, and that within the buffer. */
	need = RT_DLOG_HEADER + (h.n_regions / 8) + (h.n_regions % 8 != 0);
	CHECK(h.n_regions <= (uint64_t)len * 8 && need <= get32(buf + 48) && get32(buf + 48) <= len);
	CHECK(dirtylog_encoded_size(h.n_regions) == get32(buf + 48));
	/* Headers alone (bits NULL) agree; a bitmap buffer one byte short is refused. */
	{
		struct rt_dlog_header h2;

		CHECK(dirtylog_decode(buf, len, &h2, NULL, 0) == 0);
		CHECK(h2.n_regions == h.n_regions && h2.seq == h.seq);
		CHECK(dirtylog_decode(buf, len, &h2, bits, (size_t)(need - RT_DLOG_HEADER) - 1) ==
		      -ENOSPC);
	}
	if (h.n_regions <= ROUNDTRIP_MAX_REGIONS)
		roundtrip(&h, bits);
	free(bits);
}

/* Magic, and the CRC over the length the header claims, when it fits. */
static void fix_up(uint8_t *buf, size_t len)
{
	uint32_t total;

	memcpy(buf, RT_DLOG_MAGIC, 8);
	total = get32(buf + 48);
	if (total < RT_DLOG_HEADER || total > len)
		return;
	put32(buf + 52, 0);
	put32(buf + 52, sb_crc32c(buf, total));
}

/* A valid log of 3000 regions (one 4 KiB block) to apply edits to. */
static const uint8_t *valid_log(size_t *len)
{
	static uint8_t *block;
	static size_t block_len;
	struct rt_dirtylog *dl;

	if (!block) {
		CHECK(dirtylog_create(3000, 1 << 20, &dl) == 0);
		dirtylog_mark(dl, 5, 17);
		dirtylog_mark(dl, 2999, 2999);
		block_len = dirtylog_encoded_size(3000);
		block = malloc(block_len);
		CHECK(block);
		CHECK(dirtylog_encode(dl, 9, 4, 8, block, block_len) == 0);
		dirtylog_destroy(dl);
	}
	*len = block_len;
	return block;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;
	size_t len;

	/* As it is: libFuzzer's buffer is exactly @size bytes, so overreads show. */
	decode_one(data, size);

	if (size >= RT_DLOG_BLOCK) {
		copy = malloc(size);
		CHECK(copy);
		memcpy(copy, data, size);
		fix_up(copy, size);
		decode_one(copy, size);
		free(copy);
	} else {
		/* Edits (2-byte little-endian offset, new byte) to a valid log. */
		const uint8_t *valid = valid_log(&len);

		copy = malloc(len);
		CHECK(copy);
		memcpy(copy, valid, len);
		for (size_t i = 0; i + 3 <= size; i += 3)
			copy[(data[i] | data[i + 1] << 8) % len] = data[i + 2];
		fix_up(copy, len);
		decode_one(copy, len);
		free(copy);
	}
	return 0;
}
