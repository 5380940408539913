/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_FORMAT_H
#define RAIDTOOL_FORMAT_H

/*
 * The on-disk superblock: encode, decode, validate, checksum.
 * A pure module: buffers in, structs out, never a file descriptor.
 * Byte layout: man/raidtool-format.5.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define RT_SB_MAGIC "RAIDTOOL"	/* 8 bytes at offset 0, no NUL */
#define RT_SB_VERSION 1
#define RT_SB_SIZE 4096u
#define RT_MAX_UNITS 64u	/* RAID.MAX.UNITS: role table entries */
#define RT_NAME_MAX 63u
#define RT_DESC_MAX 127u
#define RT_UUID_SIZE 16u
#define RT_DATA_ALIGN (1u << 20)	/* data area starts on a 1 MiB boundary */
#define RT_SB0_OFFSET 4096u	/* first copy; the first 4 KiB stay untouched */
#define RT_LOG_OFFSET 8192u	/* dirty-region log area follows copy 0 */
#define RT_DEFAULT_CHUNK (512u * 1024u)
#define RT_DEFAULT_BLOCKSIZE 4096u
#define RT_MIN_CHUNK 4096u
#define RT_MAX_CHUNK (64u << 20)
#define RT_DEFAULT_REGION (64ull << 20)
/*
 * create zeroes the first bytes of every unit's data area: array bytes 0 to
 * 8 KiB lie there at every level, and a thin pool keeps its two superblocks
 * there (thin.h), so no former array's pool comes back in a new one.
 */
#define RT_DATA_WIPE_BYTES 8192u

/* Feature flags. Unknown incompatible flags make a superblock unreadable. */
/* io_failed (header bytes 64-71) is in use; set by sb_encode when it is not 0. */
#define RT_FEATURE_COMPAT_IO_FAILED (1ull << 0)
/*
 * The array's redundancy (raid5 parity, raid1 copies) was never made
 * consistent: the initial sync has not finished. The regions the
 * dirty-region log holds dirty are the ones still to sync; an older build
 * that ignores the flag still resyncs them, as after an unclean stop.
 */
#define RT_FEATURE_COMPAT_UNSYNCED (1ull << 1)
#define RT_FEATURE_INCOMPAT_SUPPORTED 0ull
#define RT_FEATURE_RO_COMPAT_SUPPORTED 0ull

enum rt_level {
	RT_LEVEL_LINEAR = -1,	/* RAID.LEVEL.NONE: concatenation */
	RT_LEVEL_0 = 0,
	RT_LEVEL_1 = 1,
	RT_LEVEL_5 = 5,
};

/* md's default raid5 layout: parity rotates right to left, data follows parity. */
#define RT_LAYOUT_LEFT_SYMMETRIC 0u

enum rt_slot_state {
	RT_SLOT_EMPTY = 0,	/* table entry not in use */
	RT_SLOT_ACTIVE = 1,	/* holds valid data for its role */
	RT_SLOT_SPARE = 2,	/* member without a role yet */
	RT_SLOT_FAULTY = 3,	/* failed an I/O; not read from */
	RT_SLOT_MISSING = 4,	/* role known, no unit present */
	RT_SLOT_REBUILDING = 5,	/* role assigned, data valid below recovery_offset */
	/*
	 * Beyond the roles: a unit being filled to take role replace_role's
	 * place (raidtool replace), its data valid below recovery_offset.
	 * At most one.
	 */
	RT_SLOT_REPLACING = 6,
	/* Beyond the roles: a unit whose role a replacement took; never assembled. */
	RT_SLOT_REPLACED = 7,
};

enum rt_array_state {
	RT_ARRAY_CLEAN = 0,
	RT_ARRAY_DIRTY = 1,
};

/* Role table: entries [0, n_devices) are the roles in order; spares follow. */
struct rt_slot {
	uint8_t uuid[RT_UUID_SIZE];	/* unit UUID; zero for a missing role */
	uint32_t hashcode;
	uint32_t state;			/* enum rt_slot_state */
	uint64_t data_size;		/* bytes of data area this unit offers */
	uint64_t recovery_offset;	/* bytes of the role rebuilt so far */
};

/* The array (device) descriptor. */
struct rt_array_desc {
	char name[RT_NAME_MAX + 1];
	char desc[RT_DESC_MAX + 1];
	uint8_t uuid[RT_UUID_SIZE];
	uint32_t hashcode;
	int32_t level;			/* enum rt_level */
	uint32_t layout;
	uint32_t chunk_size;		/* bytes, power of two */
	uint32_t blocksize;		/* 512 or 4096 */
	uint32_t n_devices;		/* roles */
	uint32_t n_slots;		/* role table entries in use: roles + spares */
	uint64_t nblocks;		/* array size in blocksize units */
	uint64_t ctime;			/* seconds since the epoch */
	uint64_t region_size;		/* dirty-region log granularity, bytes */
};

/* This unit's own descriptor. Offsets are bytes from the unit's start. */
struct rt_unit_desc {
	uint8_t uuid[RT_UUID_SIZE];
	uint32_t hashcode;
	uint32_t slot;			/* index into the role table */
	uint64_t start;			/* where the unit begins on its device */
	uint64_t length;		/* unit length in bytes */
	uint64_t sb_offset[2];		/* the two superblock copies */
	uint64_t log_offset;		/* dirty-region log area */
	uint64_t log_size;
	uint64_t data_offset;		/* 1 MiB aligned */
	uint64_t data_size;
};

struct rt_sb {
	uint32_t version;
	uint64_t feature_compat;
	uint64_t feature_incompat;
	uint64_t feature_ro_compat;
	uint64_t events;		/* +1 on every superblock update */
	uint32_t state;			/* enum rt_array_state */
	uint64_t utime;			/* last update, seconds since the epoch */
	/*
	 * Bit r: a unit holding role r failed an I/O since the role was last
	 * fully in sync. Such a unit is rebuilt in full when it comes back,
	 * never from the dirty-region log alone (its media is suspect).
	 */
	uint64_t io_failed;
	/* The role the RT_SLOT_REPLACING unit is to take (meaningless without one). */
	uint32_t replace_role;
	struct rt_array_desc array;
	struct rt_unit_desc unit;
	struct rt_slot slots[RT_MAX_UNITS];
};

/* Where things go on a unit of a given length (what create writes). */
struct rt_geometry {
	uint64_t sb_offset[2];
	uint64_t log_offset, log_size;
	uint64_t data_offset, data_size;
};

/*
 * Fill @g for a unit of @length bytes whose data area is used in whole
 * @chunk units. -ENOSPC when the unit cannot hold the metadata plus one chunk.
 */
int sb_geometry(uint64_t length, uint32_t chunk, struct rt_geometry *g);

/* Encode @sb as copy @copy (0 or 1) into @buf (RT_SB_SIZE bytes), CRC included. */
int sb_encode(const struct rt_sb *sb, unsigned copy, uint8_t *buf);

/*
 * The same without any check: for tools that must write what raidtool
 * refuses (tests/helpers/rt-sbedit's crafted superblocks). Never in lib/.
 */
int sb_encode_unchecked(const struct rt_sb *sb, unsigned copy, uint8_t *buf);

/*
 * Decode and check one copy. Returns 0, or:
 *   -ENODATA     no raidtool magic (not a unit, or wiped)
 *   -EINVAL      @len shorter than RT_SB_SIZE (truncated)
 *   -EBADMSG     checksum mismatch
 *   -EPROTONOSUPPORT  format version not understood
 *   -EOPNOTSUPP  an incompatible feature flag this build does not know
 *   -EUCLEAN     fields out of range or inconsistent (see sb_validate)
 */
int sb_decode(const uint8_t *buf, size_t len, struct rt_sb *sb);

/* Semantic checks of a decoded or about-to-be-written superblock. */
int sb_validate(const struct rt_sb *sb);

/*
 * The same, saying which field is wrong and why in @why ("data offset:
 * 3 MiB is not ..."), for naming a suspect unit. @why may be NULL.
 */
int sb_validate_explain(const struct rt_sb *sb, char *why, size_t len);

/* CRC32C (Castagnoli), as stored in the superblock. */
uint32_t sb_crc32c(const void *buf, size_t len);

/* Names and parsing shared by the CLI and the library. */
const char *sb_level_name(int32_t level);	/* "linear", "raid0", ... */
int sb_level_parse(const char *s, int32_t *level);	/* linear|none|0|1|5|raid0.. */
const char *sb_slot_state_name(uint32_t state);
const char *sb_array_state_name(uint32_t state);
/* The initial sync has not finished (RT_FEATURE_COMPAT_UNSYNCED). */
bool sb_unsynced(const struct rt_sb *sb);
int sb_min_units(int32_t level);		/* 1, 1, 2, 3 */
/*
 * The role-table slot a new spare takes: the first one past the roles that a
 * removed spare left empty, else a new one (n_slots; RT_MAX_UNITS when full).
 */
uint32_t sb_spare_slot(const struct rt_sb *sb);
/* The slot of the unit being filled to replace role sb->replace_role, or -1. */
int sb_replacing_slot(const struct rt_sb *sb);
/*
 * The data bytes each role holds for the array (@sizes[0..n_devices)):
 * raid0/1/5 the array's own share of a role, from its size, the same on
 * every role; linear (or an array whose size says nothing) each slot's
 * data_size. Not the smallest slot's data_size: a unit that took a role
 * may be bigger than the one it replaced, and the array does not grow.
 */
void sb_role_sizes(const struct rt_sb *sb, uint64_t sizes[RT_MAX_UNITS]);
/* Roles the level runs without: raid1 all but one, raid5 one, others none. */
unsigned sb_max_missing(int32_t level, uint32_t n_devices);
int sb_hashcode_parse(const char *s, uint32_t *hash);	/* exactly 8 hex digits */
uint32_t sb_hashcode_from_uuid(const uint8_t uuid[RT_UUID_SIZE]);
int sb_name_check(const char *name);		/* -EINVAL empty/bad chars, -ENAMETOOLONG */
int sb_size_parse(const char *s, uint64_t *bytes);	/* 512, 64K, 1M, 2G */

#endif
