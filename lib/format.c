/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The on-disk superblock. Every field is put and got byte by byte at a fixed
 * offset so that the layout does not depend on the compiler's struct layout
 * or the host's byte order. The byte map is documented in
 * man/raidtool-format.5; the SB_OFF_* constants below must agree with it.
 *
 * This module is pure: it never logs, prints or touches a file.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <isa-l/crc.h>

#include <raidtool/format.h>

/* Header. */
#define SB_OFF_MAGIC		0	/* 8  "RAIDTOOL" */
#define SB_OFF_VERSION		8	/* 4 */
#define SB_OFF_SB_SIZE		12	/* 4  bytes of the block, CRC included */
#define SB_OFF_COPY		16	/* 4  0 or 1: which copy this block is */
#define SB_OFF_STATE		20	/* 4 */
#define SB_OFF_COMPAT		24	/* 8 */
#define SB_OFF_INCOMPAT		32	/* 8 */
#define SB_OFF_RO_COMPAT	40	/* 8 */
#define SB_OFF_EVENTS		48	/* 8 */
#define SB_OFF_UTIME		56	/* 8 */
#define SB_OFF_IO_FAILED	64	/* 8  with RT_FEATURE_COMPAT_IO_FAILED */
#define SB_OFF_REPLACE_ROLE	72	/* 4  with a REPLACING slot */
					/* 76..127 reserved */
/* Array descriptor. */
#define SB_OFF_A_NAME		128	/* 64 */
#define SB_OFF_A_DESC		192	/* 128 */
#define SB_OFF_A_UUID		320	/* 16 */
#define SB_OFF_A_HASHCODE	336	/* 4 */
#define SB_OFF_A_LEVEL		340	/* 4, signed */
#define SB_OFF_A_LAYOUT		344	/* 4 */
#define SB_OFF_A_CHUNK		348	/* 4 */
#define SB_OFF_A_BLOCKSIZE	352	/* 4 */
#define SB_OFF_A_N_DEVICES	356	/* 4 */
#define SB_OFF_A_N_SLOTS	360	/* 4 */
					/* 364..367 reserved */
#define SB_OFF_A_NBLOCKS	368	/* 8 */
#define SB_OFF_A_CTIME		376	/* 8 */
#define SB_OFF_A_REGION		384	/* 8 */
					/* 392..511 reserved */
/* This unit's descriptor. */
#define SB_OFF_U_UUID		512	/* 16 */
#define SB_OFF_U_HASHCODE	528	/* 4 */
#define SB_OFF_U_SLOT		532	/* 4 */
#define SB_OFF_U_START		536	/* 8 */
#define SB_OFF_U_LENGTH		544	/* 8 */
#define SB_OFF_U_SB0		552	/* 8 */
#define SB_OFF_U_SB1		560	/* 8 */
#define SB_OFF_U_LOG_OFFSET	568	/* 8 */
#define SB_OFF_U_LOG_SIZE	576	/* 8 */
#define SB_OFF_U_DATA_OFFSET	584	/* 8 */
#define SB_OFF_U_DATA_SIZE	592	/* 8 */
					/* 600..1023 reserved */
/* Role table: RT_MAX_UNITS entries of SB_SLOT_SIZE bytes. */
#define SB_OFF_SLOTS		1024
#define SB_SLOT_SIZE		40
#define SB_SLOT_UUID		0	/* 16 */
#define SB_SLOT_HASHCODE	16	/* 4 */
#define SB_SLOT_STATE		20	/* 4 */
#define SB_SLOT_DATA_SIZE	24	/* 8 */
#define SB_SLOT_RECOVERY	32	/* 8 */
					/* 3584..4091 reserved */
#define SB_OFF_CRC		(RT_SB_SIZE - 4)

_Static_assert(SB_OFF_SLOTS + RT_MAX_UNITS * SB_SLOT_SIZE <= SB_OFF_CRC,
	       "role table overlaps the checksum");
_Static_assert(sizeof(RT_SB_MAGIC) - 1 == 8, "magic is 8 bytes");

#define SB_BLOCK 4096u	/* alignment of both copies and of the log area */

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* Two's complement on disk whatever the host does; no implementation-defined cast. */
static void put_les32(uint8_t *p, int32_t v)
{
	put_le32(p, v < 0 ? ~(uint32_t)(-(v + 1)) : (uint32_t)v);
}

static int32_t get_les32(const uint8_t *p)
{
	uint32_t u = get_le32(p);

	return u & 0x80000000u ? -(int32_t)(~u) - 1 : (int32_t)u;
}

/* Fixed-size string field: the bytes, then NUL padding to the end of the field. */
static void put_str(uint8_t *p, size_t field, const char *s)
{
	size_t n = strnlen(s, field - 1);

	memcpy(p, s, n);
	memset(p + n, 0, field - n);
}

/*
 * Copy a string field; -EUCLEAN when it has no NUL inside the field. Bytes
 * after the first NUL are not carried over, so what is decoded always
 * encodes back to the same struct.
 */
static int get_str(char *dst, const uint8_t *p, size_t field)
{
	const uint8_t *nul = memchr(p, 0, field);

	memset(dst, 0, field);
	if (!nul)
		return -EUCLEAN;
	memcpy(dst, p, (size_t)(nul - p));
	return 0;
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static bool chunk_ok(uint32_t chunk)
{
	return is_pow2(chunk) && chunk >= RT_MIN_CHUNK && chunk <= RT_MAX_CHUNK;
}

uint32_t sb_crc32c(const void *buf, size_t len)
{
	/* crc32_iscsi takes an int length and neither inverts in nor out. */
	const unsigned char *p = buf;
	uint32_t crc = 0xffffffffu;

	while (len) {
		size_t n = len > (size_t)INT_MAX ? (size_t)1 << 30 : len;

		crc = crc32_iscsi((unsigned char *)(uintptr_t)p, (int)n, crc);
		p += n;
		len -= n;
	}
	return ~crc;
}

int sb_geometry(uint64_t length, uint32_t chunk, struct rt_geometry *g)
{
	uint64_t sb1, avail;

	if (!g || !chunk_ok(chunk))
		return -EINVAL;
	length &= ~(uint64_t)(SB_BLOCK - 1);
	if (length < (uint64_t)RT_DATA_ALIGN + SB_BLOCK)
		return -ENOSPC;
	sb1 = length - SB_BLOCK;
	avail = sb1 - RT_DATA_ALIGN;
	if (avail < chunk)
		return -ENOSPC;
	memset(g, 0, sizeof(*g));
	g->sb_offset[0] = RT_SB0_OFFSET;
	g->sb_offset[1] = sb1;
	g->log_offset = RT_LOG_OFFSET;
	g->log_size = RT_DATA_ALIGN - RT_LOG_OFFSET;
	g->data_offset = RT_DATA_ALIGN;
	g->data_size = avail & ~((uint64_t)chunk - 1);
	return 0;
}

/* Largest array size in bytes the roles' data areas could back at this level. */
static bool capacity(const struct rt_sb *sb, uint64_t *cap)
{
	uint64_t sum = 0, max = 0;

	/*
	 * Deliberately generous (the largest role rather than the smallest), so
	 * that a missing role whose size was cleared does not fail the check;
	 * the exact size is layout's business.
	 */
	for (uint32_t i = 0; i < sb->array.n_devices; i++) {
		uint64_t s = sb->slots[i].data_size;

		if (__builtin_add_overflow(sum, s, &sum))
			sum = UINT64_MAX;
		if (s > max)
			max = s;
	}
	switch (sb->array.level) {
	case RT_LEVEL_LINEAR:
	case RT_LEVEL_0:
		*cap = sum;
		return true;
	case RT_LEVEL_1:
		*cap = max;
		return true;
	case RT_LEVEL_5:
		if (__builtin_mul_overflow(max, (uint64_t)sb->array.n_devices - 1, cap))
			*cap = UINT64_MAX;
		return true;
	default:
		return false;
	}
}

/* Say which field is wrong and why (when asked), and refuse. */
static int bad(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int bad(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (why && len) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return -EUCLEAN;
}

static int validate_array(const struct rt_sb *sb, char *why, size_t len)
{
	const struct rt_array_desc *a = &sb->array;
	uint64_t cap, bytes;
	int min;

	if (sb->state != RT_ARRAY_CLEAN && sb->state != RT_ARRAY_DIRTY)
		return bad(why, len, "state: %u is neither clean nor dirty", sb->state);
	if (strnlen(a->name, sizeof(a->name)) >= sizeof(a->name) || sb_name_check(a->name))
		return bad(why, len, "array name: not a valid name");
	if (strnlen(a->desc, sizeof(a->desc)) >= sizeof(a->desc))
		return bad(why, len, "description: not terminated");
	min = sb_min_units(a->level);
	if (min < 0)
		return bad(why, len, "level: %d is no known level", (int)a->level);
	/* Only one layout per level exists; another would need a feature flag. */
	if (a->layout != RT_LAYOUT_LEFT_SYMMETRIC)
		return bad(why, len, "layout: %u is no known layout", a->layout);
	if (!chunk_ok(a->chunk_size))
		return bad(why, len, "chunk size: %u is not a power of two from %u to %u",
			   a->chunk_size, RT_MIN_CHUNK, RT_MAX_CHUNK);
	if (a->blocksize != 512 && a->blocksize != 4096)
		return bad(why, len, "block size: %u is neither 512 nor 4096", a->blocksize);
	if (a->n_devices < (uint32_t)min || a->n_devices > RT_MAX_UNITS)
		return bad(why, len, "n_devices: %u roles, %s needs %d to %u", a->n_devices,
			   sb_level_name(a->level), min, RT_MAX_UNITS);
	if (a->n_slots < a->n_devices || a->n_slots > RT_MAX_UNITS)
		return bad(why, len, "n_slots: %u, not between n_devices (%u) and %u",
			   a->n_slots, a->n_devices, RT_MAX_UNITS);
	/* The dirty log tracks whole chunks: a region never splits one. */
	if (!is_pow2(a->region_size) || a->region_size < a->chunk_size)
		return bad(why, len, "region size: %llu is not a power of two of at least "
			   "one chunk", (unsigned long long)a->region_size);
	if (!a->nblocks || __builtin_mul_overflow(a->nblocks, (uint64_t)a->blocksize, &bytes))
		return bad(why, len, "nblocks: %llu is out of range",
			   (unsigned long long)a->nblocks);
	if (!capacity(sb, &cap) || bytes > cap)
		return bad(why, len, "nblocks: %llu blocks are more than the roles' data "
			   "areas hold", (unsigned long long)a->nblocks);
	return 0;
}

static int validate_unit(const struct rt_sb *sb, char *why, size_t len)
{
	const struct rt_unit_desc *u = &sb->unit;
	uint64_t end;

	if (__builtin_add_overflow(u->start, u->length, &end))
		return bad(why, len, "unit start/length: %llu + %llu overflows",
			   (unsigned long long)u->start, (unsigned long long)u->length);
	/*
	 * In on-disk order: copy 0, log area, data area, copy 1, end of unit.
	 * Each step is checked before the next sum so that none can overflow.
	 */
	if (u->sb_offset[0] != RT_SB0_OFFSET)
		return bad(why, len, "superblock copy 0 offset: %llu, not %u",
			   (unsigned long long)u->sb_offset[0], RT_SB0_OFFSET);
	if (u->log_offset < RT_SB0_OFFSET + RT_SB_SIZE || u->log_offset % SB_BLOCK)
		return bad(why, len, "log offset: %llu overlaps copy 0 or is not aligned",
			   (unsigned long long)u->log_offset);
	if (u->data_offset % RT_DATA_ALIGN || u->data_offset <= u->log_offset)
		return bad(why, len, "data offset: %llu is not 1 MiB aligned after the log",
			   (unsigned long long)u->data_offset);
	if (u->log_size > u->data_offset - u->log_offset)
		return bad(why, len, "log size: %llu bytes from %llu overlap the data area at %llu",
			   (unsigned long long)u->log_size, (unsigned long long)u->log_offset,
			   (unsigned long long)u->data_offset);
	if (u->data_size < sb->array.chunk_size || u->data_size % sb->array.chunk_size)
		return bad(why, len, "data size: %llu is not a whole number of chunks",
			   (unsigned long long)u->data_size);
	if (u->sb_offset[1] % SB_BLOCK || u->sb_offset[1] < u->data_offset ||
	    u->sb_offset[1] - u->data_offset < u->data_size)
		return bad(why, len, "data offset/size: %llu + %llu reach past superblock "
			   "copy 1 at %llu", (unsigned long long)u->data_offset,
			   (unsigned long long)u->data_size, (unsigned long long)u->sb_offset[1]);
	if (u->length < RT_SB_SIZE || u->sb_offset[1] > u->length - RT_SB_SIZE)
		return bad(why, len, "unit length: %llu bytes leave no room for copy 1 at %llu",
			   (unsigned long long)u->length, (unsigned long long)u->sb_offset[1]);
	return 0;
}

static bool slot_holds_unit(uint32_t state)
{
	return state != RT_SLOT_EMPTY && state != RT_SLOT_MISSING;
}

static bool slot_in_use(uint32_t state)
{
	return state == RT_SLOT_ACTIVE || state == RT_SLOT_REBUILDING || state == RT_SLOT_SPARE ||
	       state == RT_SLOT_REPLACING;
}

static bool uuid_is_zero(const uint8_t *uuid)
{
	static const uint8_t zero[RT_UUID_SIZE];

	return !memcmp(uuid, zero, RT_UUID_SIZE);
}

static int validate_slots(const struct rt_sb *sb, char *why, size_t len)
{
	const struct rt_slot *own;

	for (uint32_t i = 0; i < RT_MAX_UNITS; i++) {
		const struct rt_slot *s = &sb->slots[i];

		if (i < sb->array.n_devices) {
			if (s->state != RT_SLOT_ACTIVE && s->state != RT_SLOT_FAULTY &&
			    s->state != RT_SLOT_MISSING && s->state != RT_SLOT_REBUILDING)
				return bad(why, len, "slot %u state: %u (%s) in a role", i,
					   s->state, sb_slot_state_name(s->state));
		} else if (i < sb->array.n_slots) {
			/* A removed spare may leave its entry empty. */
			if (s->state != RT_SLOT_SPARE && s->state != RT_SLOT_FAULTY &&
			    s->state != RT_SLOT_EMPTY && s->state != RT_SLOT_REPLACING &&
			    s->state != RT_SLOT_REPLACED)
				return bad(why, len, "slot %u state: %u (%s) beyond the roles", i,
					   s->state, sb_slot_state_name(s->state));
		} else if (s->state != RT_SLOT_EMPTY) {
			return bad(why, len, "slot %u state: %s beyond n_slots (%u)", i,
				   sb_slot_state_name(s->state), sb->array.n_slots);
		}
		if (s->recovery_offset > s->data_size)
			return bad(why, len, "slot %u recovery offset: %llu beyond its data size",
				   i, (unsigned long long)s->recovery_offset);
		/* One unit in use in two slots: the table contradicts itself. */
		for (uint32_t j = 0; j < i && slot_in_use(s->state) && !uuid_is_zero(s->uuid); j++)
			if (slot_in_use(sb->slots[j].state) &&
			    !memcmp(sb->slots[j].uuid, s->uuid, RT_UUID_SIZE))
				return bad(why, len, "slot %u: the same unit as slot %u", i, j);
	}
	for (uint32_t i = 0, seen = 0; i < RT_MAX_UNITS; i++) {
		if (sb->slots[i].state != RT_SLOT_REPLACING)
			continue;
		if (seen++)
			return bad(why, len, "slot %u: a second replacing unit", i);
		if (sb->replace_role >= sb->array.n_devices)
			return bad(why, len, "replace role: %u, the array has %u roles",
				   sb->replace_role, sb->array.n_devices);
	}
	if (sb->unit.slot >= sb->array.n_slots)
		return bad(why, len, "unit slot: %u, the table has %u slots", sb->unit.slot,
			   sb->array.n_slots);
	/* The unit must be the one its own role table entry names. */
	own = &sb->slots[sb->unit.slot];
	if (!slot_holds_unit(own->state) || memcmp(own->uuid, sb->unit.uuid, RT_UUID_SIZE) ||
	    own->data_size != sb->unit.data_size)
		return bad(why, len, "unit slot: slot %u of its own role table does not name "
			   "this unit", sb->unit.slot);
	return 0;
}

int sb_validate_explain(const struct rt_sb *sb, char *why, size_t len)
{
	int r;

	if (!sb)
		return -EINVAL;
	if (why && len)
		why[0] = '\0';
	r = validate_array(sb, why, len);
	if (!r)
		r = validate_unit(sb, why, len);
	if (!r)
		r = validate_slots(sb, why, len);
	return r;
}

int sb_validate(const struct rt_sb *sb)
{
	return sb_validate_explain(sb, NULL, 0);
}

int sb_encode(const struct rt_sb *sb, unsigned copy, uint8_t *buf)
{
	int r;

	if (!sb || !buf || copy > 1)
		return -EINVAL;
	/* Never write a block that sb_decode of this build would refuse. */
	if (sb->version != RT_SB_VERSION)
		return -EPROTONOSUPPORT;
	if (sb->feature_incompat & ~RT_FEATURE_INCOMPAT_SUPPORTED)
		return -EOPNOTSUPP;
	/* An unknown ro_compat feature may be read but must not be updated. */
	if (sb->feature_ro_compat & ~RT_FEATURE_RO_COMPAT_SUPPORTED)
		return -EROFS;
	r = sb_validate(sb);
	if (r < 0)
		return r;
	return sb_encode_unchecked(sb, copy, buf);
}

int sb_encode_unchecked(const struct rt_sb *sb, unsigned copy, uint8_t *buf)
{
	if (!sb || !buf || copy > 1)
		return -EINVAL;
	memset(buf, 0, RT_SB_SIZE);
	memcpy(buf + SB_OFF_MAGIC, RT_SB_MAGIC, 8);
	put_le32(buf + SB_OFF_VERSION, sb->version);
	put_le32(buf + SB_OFF_SB_SIZE, RT_SB_SIZE);
	put_le32(buf + SB_OFF_COPY, copy);
	put_le32(buf + SB_OFF_STATE, sb->state);
	/* The flag says whether the field is in use, so it follows the field. */
	put_le64(buf + SB_OFF_COMPAT, (sb->feature_compat & ~RT_FEATURE_COMPAT_IO_FAILED) |
		 (sb->io_failed ? RT_FEATURE_COMPAT_IO_FAILED : 0));
	put_le64(buf + SB_OFF_INCOMPAT, sb->feature_incompat);
	put_le64(buf + SB_OFF_RO_COMPAT, sb->feature_ro_compat);
	put_le64(buf + SB_OFF_EVENTS, sb->events);
	put_le64(buf + SB_OFF_UTIME, sb->utime);
	put_le64(buf + SB_OFF_IO_FAILED, sb->io_failed);
	put_le32(buf + SB_OFF_REPLACE_ROLE, sb_replacing_slot(sb) >= 0 ? sb->replace_role : 0);

	put_str(buf + SB_OFF_A_NAME, RT_NAME_MAX + 1, sb->array.name);
	put_str(buf + SB_OFF_A_DESC, RT_DESC_MAX + 1, sb->array.desc);
	memcpy(buf + SB_OFF_A_UUID, sb->array.uuid, RT_UUID_SIZE);
	put_le32(buf + SB_OFF_A_HASHCODE, sb->array.hashcode);
	put_les32(buf + SB_OFF_A_LEVEL, sb->array.level);
	put_le32(buf + SB_OFF_A_LAYOUT, sb->array.layout);
	put_le32(buf + SB_OFF_A_CHUNK, sb->array.chunk_size);
	put_le32(buf + SB_OFF_A_BLOCKSIZE, sb->array.blocksize);
	put_le32(buf + SB_OFF_A_N_DEVICES, sb->array.n_devices);
	put_le32(buf + SB_OFF_A_N_SLOTS, sb->array.n_slots);
	put_le64(buf + SB_OFF_A_NBLOCKS, sb->array.nblocks);
	put_le64(buf + SB_OFF_A_CTIME, sb->array.ctime);
	put_le64(buf + SB_OFF_A_REGION, sb->array.region_size);

	memcpy(buf + SB_OFF_U_UUID, sb->unit.uuid, RT_UUID_SIZE);
	put_le32(buf + SB_OFF_U_HASHCODE, sb->unit.hashcode);
	put_le32(buf + SB_OFF_U_SLOT, sb->unit.slot);
	put_le64(buf + SB_OFF_U_START, sb->unit.start);
	put_le64(buf + SB_OFF_U_LENGTH, sb->unit.length);
	put_le64(buf + SB_OFF_U_SB0, sb->unit.sb_offset[0]);
	put_le64(buf + SB_OFF_U_SB1, sb->unit.sb_offset[1]);
	put_le64(buf + SB_OFF_U_LOG_OFFSET, sb->unit.log_offset);
	put_le64(buf + SB_OFF_U_LOG_SIZE, sb->unit.log_size);
	put_le64(buf + SB_OFF_U_DATA_OFFSET, sb->unit.data_offset);
	put_le64(buf + SB_OFF_U_DATA_SIZE, sb->unit.data_size);

	for (unsigned i = 0; i < RT_MAX_UNITS; i++) {
		uint8_t *e = buf + SB_OFF_SLOTS + i * SB_SLOT_SIZE;
		const struct rt_slot *s = &sb->slots[i];

		memcpy(e + SB_SLOT_UUID, s->uuid, RT_UUID_SIZE);
		put_le32(e + SB_SLOT_HASHCODE, s->hashcode);
		put_le32(e + SB_SLOT_STATE, s->state);
		put_le64(e + SB_SLOT_DATA_SIZE, s->data_size);
		put_le64(e + SB_SLOT_RECOVERY, s->recovery_offset);
	}

	put_le32(buf + SB_OFF_CRC, sb_crc32c(buf, SB_OFF_CRC));
	return 0;
}

int sb_decode(const uint8_t *buf, size_t len, struct rt_sb *sb)
{
	uint32_t copy;

	if (!buf || !sb || len < RT_SB_SIZE)
		return -EINVAL;
	memset(sb, 0, sizeof(*sb));
	if (memcmp(buf + SB_OFF_MAGIC, RT_SB_MAGIC, 8))
		return -ENODATA;
	/*
	 * The checksum comes before the version so that any damaged byte reads
	 * as damage; every version keeps magic, version and the CRC in the last
	 * four bytes of a 4 KiB block where version 1 has them.
	 */
	if (get_le32(buf + SB_OFF_CRC) != sb_crc32c(buf, SB_OFF_CRC))
		return -EBADMSG;
	sb->version = get_le32(buf + SB_OFF_VERSION);
	if (sb->version != RT_SB_VERSION)
		return -EPROTONOSUPPORT;
	sb->feature_incompat = get_le64(buf + SB_OFF_INCOMPAT);
	if (sb->feature_incompat & ~RT_FEATURE_INCOMPAT_SUPPORTED)
		return -EOPNOTSUPP;
	if (get_le32(buf + SB_OFF_SB_SIZE) != RT_SB_SIZE)
		return -EUCLEAN;
	/* Where the block claims to be is not kept; it only has to be a real copy. */
	copy = get_le32(buf + SB_OFF_COPY);
	if (copy > 1)
		return -EUCLEAN;

	sb->state = get_le32(buf + SB_OFF_STATE);
	sb->feature_compat = get_le64(buf + SB_OFF_COMPAT);
	sb->feature_ro_compat = get_le64(buf + SB_OFF_RO_COMPAT);
	sb->events = get_le64(buf + SB_OFF_EVENTS);
	sb->utime = get_le64(buf + SB_OFF_UTIME);
	if (sb->feature_compat & RT_FEATURE_COMPAT_IO_FAILED)
		sb->io_failed = get_le64(buf + SB_OFF_IO_FAILED);
	sb->replace_role = get_le32(buf + SB_OFF_REPLACE_ROLE);
	/* The flag means "io_failed is in use": sb_encode sets it from the field alone. */
	if (!sb->io_failed)
		sb->feature_compat &= ~RT_FEATURE_COMPAT_IO_FAILED;

	if (get_str(sb->array.name, buf + SB_OFF_A_NAME, RT_NAME_MAX + 1) ||
	    get_str(sb->array.desc, buf + SB_OFF_A_DESC, RT_DESC_MAX + 1))
		return -EUCLEAN;
	memcpy(sb->array.uuid, buf + SB_OFF_A_UUID, RT_UUID_SIZE);
	sb->array.hashcode = get_le32(buf + SB_OFF_A_HASHCODE);
	sb->array.level = get_les32(buf + SB_OFF_A_LEVEL);
	sb->array.layout = get_le32(buf + SB_OFF_A_LAYOUT);
	sb->array.chunk_size = get_le32(buf + SB_OFF_A_CHUNK);
	sb->array.blocksize = get_le32(buf + SB_OFF_A_BLOCKSIZE);
	sb->array.n_devices = get_le32(buf + SB_OFF_A_N_DEVICES);
	sb->array.n_slots = get_le32(buf + SB_OFF_A_N_SLOTS);
	sb->array.nblocks = get_le64(buf + SB_OFF_A_NBLOCKS);
	sb->array.ctime = get_le64(buf + SB_OFF_A_CTIME);
	sb->array.region_size = get_le64(buf + SB_OFF_A_REGION);

	memcpy(sb->unit.uuid, buf + SB_OFF_U_UUID, RT_UUID_SIZE);
	sb->unit.hashcode = get_le32(buf + SB_OFF_U_HASHCODE);
	sb->unit.slot = get_le32(buf + SB_OFF_U_SLOT);
	sb->unit.start = get_le64(buf + SB_OFF_U_START);
	sb->unit.length = get_le64(buf + SB_OFF_U_LENGTH);
	sb->unit.sb_offset[0] = get_le64(buf + SB_OFF_U_SB0);
	sb->unit.sb_offset[1] = get_le64(buf + SB_OFF_U_SB1);
	sb->unit.log_offset = get_le64(buf + SB_OFF_U_LOG_OFFSET);
	sb->unit.log_size = get_le64(buf + SB_OFF_U_LOG_SIZE);
	sb->unit.data_offset = get_le64(buf + SB_OFF_U_DATA_OFFSET);
	sb->unit.data_size = get_le64(buf + SB_OFF_U_DATA_SIZE);

	for (unsigned i = 0; i < RT_MAX_UNITS; i++) {
		const uint8_t *e = buf + SB_OFF_SLOTS + i * SB_SLOT_SIZE;
		struct rt_slot *s = &sb->slots[i];

		memcpy(s->uuid, e + SB_SLOT_UUID, RT_UUID_SIZE);
		s->hashcode = get_le32(e + SB_SLOT_HASHCODE);
		s->state = get_le32(e + SB_SLOT_STATE);
		s->data_size = get_le64(e + SB_SLOT_DATA_SIZE);
		s->recovery_offset = get_le64(e + SB_SLOT_RECOVERY);
	}
	/* replace_role means something only with a replacing entry (sb_encode writes 0 else). */
	if (sb_replacing_slot(sb) < 0)
		sb->replace_role = 0;
	/* Reserved bytes are not checked: a later compat field may live there. */
	return sb_validate(sb);
}

const char *sb_level_name(int32_t level)
{
	switch (level) {
	case RT_LEVEL_LINEAR:
		return "linear";
	case RT_LEVEL_0:
		return "raid0";
	case RT_LEVEL_1:
		return "raid1";
	case RT_LEVEL_5:
		return "raid5";
	default:
		return "unknown";	/* callers print it straight away */
	}
}

int sb_level_parse(const char *s, int32_t *level)
{
	static const struct {
		const char *name;
		int32_t level;
	} names[] = {
		{ "linear", RT_LEVEL_LINEAR }, { "none", RT_LEVEL_LINEAR },
		{ "0", RT_LEVEL_0 }, { "raid0", RT_LEVEL_0 },
		{ "1", RT_LEVEL_1 }, { "raid1", RT_LEVEL_1 },
		{ "5", RT_LEVEL_5 }, { "raid5", RT_LEVEL_5 },
	};

	if (!s || !level)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcasecmp(s, names[i].name)) {
			*level = names[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

const char *sb_slot_state_name(uint32_t state)
{
	switch (state) {
	case RT_SLOT_EMPTY:
		return "empty";
	case RT_SLOT_ACTIVE:
		return "active";
	case RT_SLOT_SPARE:
		return "spare";
	case RT_SLOT_FAULTY:
		return "faulty";
	case RT_SLOT_MISSING:
		return "missing";
	case RT_SLOT_REBUILDING:
		return "rebuilding";
	case RT_SLOT_REPLACING:
		return "replacing";
	case RT_SLOT_REPLACED:
		return "replaced";
	default:
		return "unknown";
	}
}

bool sb_unsynced(const struct rt_sb *sb)
{
	return sb->feature_compat & RT_FEATURE_COMPAT_UNSYNCED;
}

uint32_t sb_spare_slot(const struct rt_sb *sb)
{
	for (uint32_t s = sb->array.n_devices; s < sb->array.n_slots && s < RT_MAX_UNITS; s++)
		if (sb->slots[s].state == RT_SLOT_EMPTY)
			return s;
	return sb->array.n_slots;
}

void sb_role_sizes(const struct rt_sb *sb, uint64_t sizes[RT_MAX_UNITS])
{
	uint32_t n = sb->array.n_devices, data = n;
	uint64_t bytes, share = 0;

	if (sb->array.level == RT_LEVEL_1)
		data = 1;
	else if (sb->array.level == RT_LEVEL_5)
		data = n - 1;
	if (sb->array.level != RT_LEVEL_LINEAR && data &&
	    !__builtin_mul_overflow(sb->array.nblocks, (uint64_t)sb->array.blocksize, &bytes) &&
	    bytes % data == 0 && sb->array.chunk_size && bytes / data % sb->array.chunk_size == 0)
		share = bytes / data;
	for (uint32_t i = 0; i < n && i < RT_MAX_UNITS; i++)
		sizes[i] = share ? share : sb->slots[i].data_size;
}

int sb_replacing_slot(const struct rt_sb *sb)
{
	for (uint32_t s = sb->array.n_devices; s < sb->array.n_slots && s < RT_MAX_UNITS; s++)
		if (sb->slots[s].state == RT_SLOT_REPLACING)
			return (int)s;
	return -1;
}

const char *sb_array_state_name(uint32_t state)
{
	switch (state) {
	case RT_ARRAY_CLEAN:
		return "clean";
	case RT_ARRAY_DIRTY:
		return "dirty";
	default:
		return "unknown";
	}
}

int sb_min_units(int32_t level)
{
	switch (level) {
	case RT_LEVEL_LINEAR:
	case RT_LEVEL_0:
		return 1;
	case RT_LEVEL_1:
		return 2;
	case RT_LEVEL_5:
		return 3;
	default:
		return -EINVAL;
	}
}

unsigned sb_max_missing(int32_t level, uint32_t n_devices)
{
	switch (level) {
	case RT_LEVEL_1:
		return n_devices ? n_devices - 1 : 0;
	case RT_LEVEL_5:
		return 1;
	default:
		return 0;
	}
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int sb_hashcode_parse(const char *s, uint32_t *hash)
{
	uint32_t v = 0;

	if (!s || !hash)
		return -EINVAL;
	for (int i = 0; i < 8; i++) {
		int d = hex_digit(s[i]);	/* stops at the NUL of a short string */

		if (d < 0)
			return -EINVAL;
		v = v << 4 | (uint32_t)d;
	}
	if (s[8])
		return -EINVAL;
	*hash = v;
	return 0;
}

uint32_t sb_hashcode_from_uuid(const uint8_t uuid[RT_UUID_SIZE])
{
	/* Big-endian, so the hashcode reads like the first 8 digits of the UUID. */
	return (uint32_t)uuid[0] << 24 | (uint32_t)uuid[1] << 16 | (uint32_t)uuid[2] << 8 |
	       (uint32_t)uuid[3];
}

int sb_name_check(const char *name)
{
	size_t n;

	if (!name || !*name)
		return -EINVAL;
	n = strnlen(name, RT_NAME_MAX + 1);
	if (n > RT_NAME_MAX)
		return -ENAMETOOLONG;
	/* A leading '-' reads as an option, a leading '.' hides it or means "." / "..". */
	if (name[0] == '-' || name[0] == '.')
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return -EINVAL;
	}
	return 0;
}

int sb_size_parse(const char *s, uint64_t *bytes)
{
	uint64_t v = 0;
	unsigned shift = 0;
	const char *p;

	if (!s || !bytes)
		return -EINVAL;
	/* Digits only: strtoull would take signs, spaces and hex. */
	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (p = s; *p >= '0' && *p <= '9'; p++) {
		if (__builtin_mul_overflow(v, 10u, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
			return -ERANGE;
	}
	switch (*p) {
	case 'k': case 'K':
		shift = 10;
		break;
	case 'm': case 'M':
		shift = 20;
		break;
	case 'g': case 'G':
		shift = 30;
		break;
	case 't': case 'T':
		shift = 40;
		break;
	}
	if (shift) {
		p++;
		if (*p == 'i' || *p == 'I') {
			p++;
			if (*p != 'b' && *p != 'B')
				return -EINVAL;
		}
	}
	if (*p == 'b' || *p == 'B')
		p++;
	if (*p)
		return -EINVAL;
	if (shift && v > UINT64_MAX >> shift)
		return -ERANGE;
	*bytes = v << shift;
	return 0;
}
