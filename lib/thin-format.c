// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The thin pool's on-disk structures, encoded and decoded explicitly
 * (little-endian, no struct casts): B-tree nodes, pool superblocks, area
 * blocks, volume records. Pure: buffers in, results out (fuzzed).
 */
#include <errno.h>
#include <string.h>
#include <raidtool/format.h>
#include "thin-internal.h"

#define NODE_MAGIC 0x4e485452u		/* "RTHN" */
#define NODE_OFF_CRC 4
#define NODE_OFF_BLOCK 8
#define NODE_OFF_FLAGS 16
#define NODE_OFF_N 20
#define NODE_OFF_KEYS 32
#define NODE_OFF_VALS (NODE_OFF_KEYS + 8 * THIN_NODE_MAX)
#define NODE_FLAG_LEAF 1u

#define MSNAP_MAGIC 0x534d5452u		/* "RTMS" */
#define MSNAP_OFF_TABLE 64
#define MSNAP_OFF_BITMAP (MSNAP_OFF_TABLE + 8 * THIN_VOLTAB_BLOCKS)

#define SB_MAGIC 0x42534e4948545452ull	/* "RTTHINSB" */
#define SB_VERSION 1u
#define SB_OFF_CRC 12
#define SB_CRC_FROM 16

/* Bounds that keep every product below 2^64 (2^40 blocks of 1 MiB: an exabyte). */
#define MAX_BLOCKS (1ull << 40)

_Static_assert(NODE_OFF_VALS + 8 * THIN_NODE_MAX == THIN_META_BLOCK, "node fills a block");
_Static_assert(THIN_SB_SLOTS * THIN_META_BLOCK <= RT_DATA_WIPE_BYTES,
	       "create wipes the pool's superblocks");
_Static_assert(MSNAP_OFF_BITMAP + 8 * THIN_MSNAP_BITMAP_MAX <= THIN_META_BLOCK, "snapshot header");
_Static_assert(THIN_VOLTAB_BLOCKS * THIN_VOLS_PER_BLOCK == THIN_MAX_VOLUMES, "volume table");

/* A checksum that also names the block, so a misdirected write does not pass. */
static uint32_t block_crc(const uint8_t *buf, size_t len, uint64_t blocknr)
{
	uint8_t seed[8];

	thin_put_le64(seed, blocknr);
	return sb_crc32c(buf, len) ^ sb_crc32c(seed, sizeof(seed));
}

void thin_node_encode(const struct thin_node *n, uint64_t blocknr, uint8_t *buf)
{
	memset(buf, 0, THIN_META_BLOCK);
	thin_put_le32(buf, NODE_MAGIC);
	thin_put_le64(buf + NODE_OFF_BLOCK, blocknr);
	thin_put_le32(buf + NODE_OFF_FLAGS, n->leaf ? NODE_FLAG_LEAF : 0);
	thin_put_le32(buf + NODE_OFF_N, n->n);
	for (uint32_t i = 0; i < n->n && i < THIN_NODE_MAX; i++) {
		thin_put_le64(buf + NODE_OFF_KEYS + 8 * i, n->key[i]);
		thin_put_le64(buf + NODE_OFF_VALS + 8 * i, n->val[i]);
	}
	thin_put_le32(buf + NODE_OFF_CRC,
		      block_crc(buf + NODE_OFF_BLOCK, THIN_META_BLOCK - NODE_OFF_BLOCK, blocknr));
}

int thin_node_decode(const uint8_t *buf, size_t len, uint64_t blocknr, struct thin_node *n)
{
	uint32_t flags;

	if (len < THIN_META_BLOCK)
		return -EUCLEAN;
	if (thin_get_le32(buf) != NODE_MAGIC)
		return -ENODATA;
	if (thin_get_le32(buf + NODE_OFF_CRC) !=
	    block_crc(buf + NODE_OFF_BLOCK, THIN_META_BLOCK - NODE_OFF_BLOCK, blocknr))
		return -EBADMSG;
	if (thin_get_le64(buf + NODE_OFF_BLOCK) != blocknr)
		return -EUCLEAN;
	flags = thin_get_le32(buf + NODE_OFF_FLAGS);
	if (flags & ~NODE_FLAG_LEAF)
		return -EUCLEAN;
	n->leaf = flags & NODE_FLAG_LEAF;
	n->n = thin_get_le32(buf + NODE_OFF_N);
	/* Only a root may be empty, and an empty root is a leaf. */
	if (n->n > THIN_NODE_MAX || (!n->leaf && n->n == 0))
		return -EUCLEAN;
	for (uint32_t i = 0; i < n->n; i++) {
		n->key[i] = thin_get_le64(buf + NODE_OFF_KEYS + 8 * i);
		n->val[i] = thin_get_le64(buf + NODE_OFF_VALS + 8 * i);
		if (i > 0 && n->key[i] <= n->key[i - 1])
			return -EUCLEAN;
	}
	return 0;
}

uint64_t thin_area_blocks(uint64_t node_blocks, uint64_t data_blocks_max)
{
	return THIN_VOLTAB_BLOCKS + (node_blocks + THIN_RC_PER_BLOCK - 1) / THIN_RC_PER_BLOCK +
	       (data_blocks_max + THIN_RC_PER_BLOCK - 1) / THIN_RC_PER_BLOCK;
}

void thin_sb_encode(const struct thin_sb *sb, uint8_t *buf)
{
	memset(buf, 0, THIN_META_BLOCK);
	thin_put_le64(buf, SB_MAGIC);
	thin_put_le32(buf + 8, SB_VERSION);
	thin_put_le64(buf + 16, sb->seq);
	thin_put_le64(buf + 24, sb->transaction_id);
	thin_put_le64(buf + 32, sb->created);
	thin_put_le32(buf + 40, sb->flags);
	thin_put_le32(buf + 44, sb->block_size);
	thin_put_le32(buf + 48, sb->when_full);
	thin_put_le32(buf + 52, sb->low_water);
	thin_put_le64(buf + 56, sb->pool_bytes);
	thin_put_le64(buf + 64, sb->data_offset);
	thin_put_le64(buf + 72, sb->data_blocks);
	thin_put_le64(buf + 80, sb->data_blocks_max);
	thin_put_le64(buf + 88, sb->node_start);
	thin_put_le64(buf + 96, sb->node_blocks);
	thin_put_le64(buf + 104, sb->area_blocks);
	thin_put_le32(buf + 112, sb->next_volume_id);
	thin_put_le32(buf + 116, 0);	/* incompatible features: none yet */
	thin_put_le64(buf + 120, sb->metadata_snap);
	thin_put_le32(buf + SB_OFF_CRC, sb_crc32c(buf + SB_CRC_FROM, THIN_META_BLOCK - SB_CRC_FROM));
}

static bool power_of_two(uint64_t v)
{
	return v && !(v & (v - 1));
}

int thin_sb_decode(const uint8_t *buf, size_t len, struct thin_sb *sb)
{
	uint64_t meta_end;

	if (len < THIN_META_BLOCK)
		return -EUCLEAN;
	if (thin_get_le64(buf) != SB_MAGIC)
		return -ENODATA;
	if (thin_get_le32(buf + SB_OFF_CRC) !=
	    sb_crc32c(buf + SB_CRC_FROM, THIN_META_BLOCK - SB_CRC_FROM))
		return -EBADMSG;
	if (thin_get_le32(buf + 8) != SB_VERSION)
		return -EPROTONOSUPPORT;
	if (thin_get_le32(buf + 116) != 0)
		return -EOPNOTSUPP;
	sb->seq = thin_get_le64(buf + 16);
	sb->transaction_id = thin_get_le64(buf + 24);
	sb->created = thin_get_le64(buf + 32);
	sb->flags = thin_get_le32(buf + 40);
	sb->block_size = thin_get_le32(buf + 44);
	sb->when_full = thin_get_le32(buf + 48);
	sb->low_water = thin_get_le32(buf + 52);
	sb->pool_bytes = thin_get_le64(buf + 56);
	sb->data_offset = thin_get_le64(buf + 64);
	sb->data_blocks = thin_get_le64(buf + 72);
	sb->data_blocks_max = thin_get_le64(buf + 80);
	sb->node_start = thin_get_le64(buf + 88);
	sb->node_blocks = thin_get_le64(buf + 96);
	sb->area_blocks = thin_get_le64(buf + 104);
	sb->next_volume_id = thin_get_le32(buf + 112);
	sb->metadata_snap = thin_get_le64(buf + 120);

	if (sb->seq == 0 || sb->next_volume_id == 0 || (sb->flags & ~THIN_SB_FLAGS_KNOWN))
		return -EUCLEAN;
	if (!power_of_two(sb->block_size) || sb->block_size < THIN_BLOCK_MIN ||
	    sb->block_size > THIN_BLOCK_MAX)
		return -EUCLEAN;
	if (sb->when_full > THIN_WHEN_FULL_QUEUE || sb->low_water > 100)
		return -EUCLEAN;
	if (sb->node_blocks == 0 || sb->node_blocks > MAX_BLOCKS ||
	    sb->data_blocks_max > MAX_BLOCKS || sb->data_blocks > sb->data_blocks_max)
		return -EUCLEAN;
	if (sb->area_blocks != thin_area_blocks(sb->node_blocks, sb->data_blocks_max) ||
	    sb->node_start != THIN_AREA_START + 2 * sb->area_blocks)
		return -EUCLEAN;
	if (sb->metadata_snap && (sb->metadata_snap < sb->node_start ||
				  sb->metadata_snap - sb->node_start >= sb->node_blocks))
		return -EUCLEAN;
	meta_end = (sb->node_start + sb->node_blocks) * THIN_META_BLOCK;
	if (sb->data_offset < meta_end || sb->data_offset % sb->block_size ||
	    sb->data_offset > sb->pool_bytes ||
	    sb->data_blocks > (sb->pool_bytes - sb->data_offset) / sb->block_size)
		return -EUCLEAN;
	return 0;
}

void thin_msnap_encode(const struct thin_msnap *m, uint64_t blocknr, uint8_t *buf)
{
	memset(buf, 0, THIN_META_BLOCK);
	thin_put_le32(buf, MSNAP_MAGIC);
	thin_put_le64(buf + 8, blocknr);
	thin_put_le64(buf + 16, m->seq);
	thin_put_le64(buf + 24, m->transaction_id);
	thin_put_le64(buf + 32, m->data_blocks);
	thin_put_le64(buf + 40, m->free_data_blocks);
	thin_put_le64(buf + 48, m->free_metadata_blocks);
	thin_put_le32(buf + 56, m->n_bitmap);
	for (unsigned i = 0; i < THIN_VOLTAB_BLOCKS; i++)
		thin_put_le64(buf + MSNAP_OFF_TABLE + 8 * i, m->table[i]);
	for (uint32_t i = 0; i < m->n_bitmap && i < THIN_MSNAP_BITMAP_MAX; i++)
		thin_put_le64(buf + MSNAP_OFF_BITMAP + 8 * i, m->bitmap[i]);
	thin_put_le32(buf + 4, block_crc(buf + 8, THIN_META_BLOCK - 8, blocknr));
}

int thin_msnap_decode(const uint8_t *buf, size_t len, uint64_t blocknr, struct thin_msnap *m)
{
	if (len < THIN_META_BLOCK)
		return -EUCLEAN;
	if (thin_get_le32(buf) != MSNAP_MAGIC)
		return -ENODATA;
	if (thin_get_le32(buf + 4) != block_crc(buf + 8, THIN_META_BLOCK - 8, blocknr))
		return -EBADMSG;
	if (thin_get_le64(buf + 8) != blocknr)
		return -EUCLEAN;
	memset(m, 0, sizeof(*m));
	m->seq = thin_get_le64(buf + 16);
	m->transaction_id = thin_get_le64(buf + 24);
	m->data_blocks = thin_get_le64(buf + 32);
	m->free_data_blocks = thin_get_le64(buf + 40);
	m->free_metadata_blocks = thin_get_le64(buf + 48);
	m->n_bitmap = thin_get_le32(buf + 56);
	if (m->n_bitmap == 0 || m->n_bitmap > THIN_MSNAP_BITMAP_MAX ||
	    m->free_data_blocks > m->data_blocks || m->data_blocks > MAX_BLOCKS)
		return -EUCLEAN;
	for (unsigned i = 0; i < THIN_VOLTAB_BLOCKS; i++)
		m->table[i] = thin_get_le64(buf + MSNAP_OFF_TABLE + 8 * i);
	for (uint32_t i = 0; i < m->n_bitmap; i++)
		m->bitmap[i] = thin_get_le64(buf + MSNAP_OFF_BITMAP + 8 * i);
	return 0;
}

void thin_area_seal(uint8_t *buf, uint64_t blocknr)
{
	thin_put_le32(buf + THIN_AREA_PAYLOAD, block_crc(buf, THIN_AREA_PAYLOAD, blocknr));
}

int thin_area_verify(const uint8_t *buf, uint64_t blocknr)
{
	return thin_get_le32(buf + THIN_AREA_PAYLOAD) == block_crc(buf, THIN_AREA_PAYLOAD, blocknr)
		       ? 0 : -EBADMSG;
}

void thin_vol_rec_encode(const struct thin_vol_rec *v, uint8_t *rec)
{
	memset(rec, 0, THIN_VOL_RECORD);
	if (!v->id)
		return;
	thin_put_le32(rec, v->id);
	thin_put_le32(rec + 4, v->origin);
	thin_put_le64(rec + 8, v->size);
	thin_put_le64(rec + 16, v->root);
	thin_put_le64(rec + 24, v->mapped);
	thin_put_le64(rec + 32, v->created_txn);
	memcpy(rec + 40, v->name, strnlen(v->name, THIN_NAME_MAX));
}

int thin_vol_rec_decode(const uint8_t *rec, struct thin_vol_rec *v)
{
	memset(v, 0, sizeof(*v));
	v->id = thin_get_le32(rec);
	if (!v->id)
		return 0;
	v->origin = thin_get_le32(rec + 4);
	v->size = thin_get_le64(rec + 8);
	v->root = thin_get_le64(rec + 16);
	v->mapped = thin_get_le64(rec + 24);
	v->created_txn = thin_get_le64(rec + 32);
	memcpy(v->name, rec + 40, THIN_NAME_MAX + 1);
	if (v->name[THIN_NAME_MAX] != '\0' || thin_name_check(v->name) < 0)
		return -EUCLEAN;
	return 0;
}

int thin_name_check(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > THIN_NAME_MAX || name[0] == '.' || name[0] == '-')
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return -EINVAL;
	}
	return 0;
}
