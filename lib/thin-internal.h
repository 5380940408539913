/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_THIN_INTERNAL_H
#define RAIDTOOL_THIN_INTERNAL_H

/*
 * What lib/thin-format.c (pure encode/decode) shares with lib/thin-pool.c:
 * the space-map areas and the volume records. raidtool-format(5) has the
 * byte layout.
 */
#include <stdint.h>
#include <raidtool/thin.h>

/* Metadata blocks 0 and 1: the superblock slots; the areas start at block 2. */
#define THIN_SB_SLOTS 2u
#define THIN_AREA_START 2u

/* Each area block: payload, then the CRC32C of payload and block number. */
#define THIN_AREA_PAYLOAD (THIN_META_BLOCK - 4u)
#define THIN_RC_PER_BLOCK (THIN_AREA_PAYLOAD / 4u)	/* 1023 u32 counts */

#define THIN_VOL_RECORD 128u
#define THIN_VOLS_PER_BLOCK (THIN_AREA_PAYLOAD / THIN_VOL_RECORD)	/* 31 */
#define THIN_VOLTAB_BLOCKS (THIN_MAX_VOLUMES / THIN_VOLS_PER_BLOCK)	/* 16 */

struct thin_vol_rec {
	uint32_t id;			/* 0: free slot */
	uint32_t origin;
	uint64_t size;
	uint64_t root;			/* metadata block of its mapping tree's root */
	uint64_t mapped;
	uint64_t created_txn;
	char name[THIN_NAME_MAX + 1];
};

/*
 * The metadata snapshot (dm's reserve_metadata_snap): a header block, a
 * copy of the volume table (THIN_VOLTAB_BLOCKS blocks in area format) and
 * a bitmap of the node blocks it holds (area format, one bit per node
 * block), all in the node area. raidtool-format(5), Metadata snapshot.
 */
#define THIN_HELD_PER_BLOCK (THIN_AREA_PAYLOAD * 8u)
#define THIN_MSNAP_BITMAP_MAX 488u
struct thin_msnap {
	uint64_t seq;			/* the commit it copies */
	uint64_t transaction_id;
	uint64_t data_blocks, free_data_blocks, free_metadata_blocks;
	uint32_t n_bitmap;
	uint64_t table[THIN_VOLTAB_BLOCKS];
	uint64_t bitmap[THIN_MSNAP_BITMAP_MAX];
};
void thin_msnap_encode(const struct thin_msnap *m, uint64_t blocknr, uint8_t *buf);
int thin_msnap_decode(const uint8_t *buf, size_t len, uint64_t blocknr, struct thin_msnap *m);

/* Seal / verify an area block (@blocknr: its metadata block number). */
void thin_area_seal(uint8_t *buf, uint64_t blocknr);
int thin_area_verify(const uint8_t *buf, uint64_t blocknr);

void thin_vol_rec_encode(const struct thin_vol_rec *v, uint8_t *rec);
int thin_vol_rec_decode(const uint8_t *rec, struct thin_vol_rec *v);

/* Area geometry from the superblock: blocks of the volume table, metadata counts, data counts. */
uint64_t thin_area_blocks(uint64_t node_blocks, uint64_t data_blocks_max);

static inline void thin_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void thin_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t thin_get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline uint64_t thin_get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#endif
