/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for the thin pool's decoders (lib/thin-format.c):
 * thin_sb_decode, thin_node_decode and thin_msnap_decode.
 *
 * Properties on every input:
 *  - the decoders never read outside the buffer or crash (ASan/UBSan);
 *  - they return 0 or one of the errors thin.h documents;
 *  - what they accept encodes again to a block that decodes to an equal struct.
 *
 * The first byte chooses the decoder; the rest is a block (zero-padded).
 * A random block never carries a valid checksum, so each input is also
 * tried with its checksum made right: encode what a lenient reading of
 * the bytes gives and apply the input as byte edits to that block.
 *
 * Run: make fuzz && ./build/fuzz/fuzz_thin_decode -max_total_time=60 -max_len=8192
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <raidtool/thin.h>

#include "fuzz-check.h"
#include "../../lib/thin-internal.h"	/* the metadata snapshot's header */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void try_sb(const uint8_t *buf)
{
	struct thin_sb a, b;
	uint8_t again[THIN_META_BLOCK];
	int r;

	/* Compared with memcmp: the padding too. */
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	r = thin_sb_decode(buf, THIN_META_BLOCK, &a);

	CHECK(r == 0 || r == -ENODATA || r == -EBADMSG || r == -EUCLEAN ||
	      r == -EPROTONOSUPPORT || r == -EOPNOTSUPP);
	if (r)
		return;
	thin_sb_encode(&a, again);
	CHECK(thin_sb_decode(again, sizeof(again), &b) == 0);
	CHECK(!memcmp(&a, &b, sizeof(a)));
}

static void try_node(const uint8_t *buf, uint64_t blocknr)
{
	static struct thin_node a, b;
	static uint8_t again[THIN_META_BLOCK];
	int r = thin_node_decode(buf, THIN_META_BLOCK, blocknr, &a);

	CHECK(r == 0 || r == -ENODATA || r == -EBADMSG || r == -EUCLEAN);
	if (r)
		return;
	CHECK(a.n <= THIN_NODE_MAX);
	thin_node_encode(&a, blocknr, again);
	CHECK(thin_node_decode(again, sizeof(again), blocknr, &b) == 0);
	CHECK(a.leaf == b.leaf && a.n == b.n);
	CHECK(!memcmp(a.key, b.key, a.n * sizeof(a.key[0])));
	CHECK(!memcmp(a.val, b.val, a.n * sizeof(a.val[0])));
}

static void try_msnap(const uint8_t *buf, uint64_t blocknr)
{
	static struct thin_msnap a, b;
	static uint8_t again[THIN_META_BLOCK];
	int r = thin_msnap_decode(buf, THIN_META_BLOCK, blocknr, &a);

	CHECK(r == 0 || r == -ENODATA || r == -EBADMSG || r == -EUCLEAN);
	if (r)
		return;
	CHECK(a.n_bitmap >= 1 && a.n_bitmap <= THIN_MSNAP_BITMAP_MAX);
	thin_msnap_encode(&a, blocknr, again);
	CHECK(thin_msnap_decode(again, sizeof(again), blocknr, &b) == 0);
	CHECK(!memcmp(&a, &b, sizeof(a)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[THIN_META_BLOCK];
	static struct thin_node n;
	struct thin_sb sb;

	if (size < 1)
		return 0;
	memset(buf, 0, sizeof(buf));
	memcpy(buf, data + 1, size - 1 < sizeof(buf) ? size - 1 : sizeof(buf));
	if (data[0] & 1) {
		try_sb(buf);
		/* The same bytes read as the superblock's fields, sealed with a right checksum. */
		memcpy(&sb.seq, buf + 16, 8);
		memcpy(&sb.transaction_id, buf + 24, 8);
		memcpy(&sb.created, buf + 32, 8);
		memcpy(&sb.flags, buf + 40, 4);
		memcpy(&sb.block_size, buf + 44, 4);
		memcpy(&sb.when_full, buf + 48, 4);
		memcpy(&sb.low_water, buf + 52, 4);
		memcpy(&sb.pool_bytes, buf + 56, 8);
		memcpy(&sb.data_offset, buf + 64, 8);
		memcpy(&sb.data_blocks, buf + 72, 8);
		memcpy(&sb.data_blocks_max, buf + 80, 8);
		memcpy(&sb.node_start, buf + 88, 8);
		memcpy(&sb.node_blocks, buf + 96, 8);
		memcpy(&sb.area_blocks, buf + 104, 8);
		memcpy(&sb.next_volume_id, buf + 112, 4);
		memcpy(&sb.metadata_snap, buf + 120, 8);
		thin_sb_encode(&sb, buf);
		try_sb(buf);
		return 0;
	}
	if ((data[0] & 3) == 2) {
		static struct thin_msnap m;

		try_msnap(buf, data[0] >> 2);
		/* The same bytes as a header with a right checksum. */
		memset(&m, 0, sizeof(m));
		memcpy(&m.seq, buf + 16, 8);
		memcpy(&m.transaction_id, buf + 24, 8);
		memcpy(&m.data_blocks, buf + 32, 8);
		memcpy(&m.free_data_blocks, buf + 40, 8);
		memcpy(&m.free_metadata_blocks, buf + 48, 8);
		m.n_bitmap = (uint32_t)(buf[56] | buf[57] << 8) % (THIN_MSNAP_BITMAP_MAX + 1);
		memcpy(m.table, buf + 64, sizeof(m.table));
		memcpy(m.bitmap, buf + 192, 8 * m.n_bitmap);
		thin_msnap_encode(&m, data[0] >> 2, buf);
		try_msnap(buf, data[0] >> 2);
		return 0;
	}
	try_node(buf, data[0] >> 1);
	/* The same bytes as a node with a right checksum. */
	n.leaf = buf[16] & 1;
	n.n = (uint32_t)(buf[20] | buf[21] << 8) % (THIN_NODE_MAX + 1);
	for (uint32_t i = 0; i < n.n; i++) {
		memcpy(&n.key[i], buf + 32 + 8 * i, 8);
		memcpy(&n.val[i], buf + 32 + 8 * THIN_NODE_MAX + 8 * i, 8);
	}
	thin_node_encode(&n, data[0] >> 1, buf);
	try_node(buf, data[0] >> 1);
	return 0;
}
