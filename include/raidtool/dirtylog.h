/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_DIRTYLOG_H
#define RAIDTOOL_DIRTYLOG_H

/*
 * The write-intent (dirty-region) log, pure part: bitmaps, idle ageing and
 * the on-disk block encoding (man/raidtool-format.5, "DIRTY-REGION LOG").
 * No file descriptors; lib/engine/intent-log.c does the I/O.
 *
 * Region i covers bytes [i * region_size, (i + 1) * region_size) of every
 * role's data area. Three bitmaps per region:
 *   live   writers may go ahead without touching the log (a lock-free test)
 *   disk   the image on (or being written to) the units
 *   pinned dirty from the last run: kept until resynced (never aged out)
 * Marking and sweeping run under the caller's mutex; dirtylog_covered is
 * lock-free.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <raidtool/format.h>

#define RT_DLOG_MAGIC "RTDLOG01"	/* 8 bytes, no NUL */
#define RT_DLOG_VERSION 1u
#define RT_DLOG_HEADER 64u
#define RT_DLOG_BLOCK 4096u

struct rt_dirtylog;

struct rt_dlog_header {
	uint32_t version;
	uint64_t events;		/* superblock events of the run that wrote it */
	uint64_t seq;			/* +1 on every write of the log */
	uint64_t region_size;
	uint64_t n_regions;
	/*
	 * The log holds every region written since the superblock events
	 * reached this value (md's events_cleared): bits are cleared only
	 * while the array is whole, and this is then set to its events.
	 * 0: not known (a log from before the field existed).
	 */
	uint64_t events_cleared;
};

int dirtylog_create(uint64_t n_regions, uint64_t region_size, struct rt_dirtylog **out);
void dirtylog_destroy(struct rt_dirtylog *dl);
uint64_t dirtylog_regions(const struct rt_dirtylog *dl);
uint64_t dirtylog_region_size(const struct rt_dirtylog *dl);

/* Lock-free: are regions [first, last] all live? Notes them as written. */
bool dirtylog_covered(struct rt_dirtylog *dl, uint64_t first, uint64_t last);

/*
 * Make [first, last] dirty in the disk image; true when it changed (write
 * it out). They become live only with dirtylog_publish, once the image
 * is on stable storage.
 */
bool dirtylog_mark(struct rt_dirtylog *dl, uint64_t first, uint64_t last);
void dirtylog_publish(struct rt_dirtylog *dl, uint64_t first, uint64_t last);

/*
 * Sweep, step 1: age every dirty region; those not written for @idle_sweeps
 * sweeps lose their live bit and become pending. Returns how many are.
 */
uint64_t dirtylog_sweep_begin(struct rt_dirtylog *dl, unsigned idle_sweeps);
bool dirtylog_pending(const struct rt_dirtylog *dl, uint64_t region);
/*
 * Step 2, once no write that saw them live is in flight and the data is
 * flushed: pending regions still not live leave the disk image. True
 * when it changed.
 */
bool dirtylog_sweep_commit(struct rt_dirtylog *dl);
/*
 * Step 2 instead, when the regions must stay dirty after all (the array
 * lost a role meanwhile): the pending regions stay in the disk image.
 */
void dirtylog_sweep_abort(struct rt_dirtylog *dl);
/* Clean shutdown (nothing in flight, data flushed): everything not pinned. */
bool dirtylog_clear_all(struct rt_dirtylog *dl);

/* Regions dirty from a previous run: dirty, live and not aged out. */
void dirtylog_load(struct rt_dirtylog *dl, const uint8_t *bits);
void dirtylog_unpin(struct rt_dirtylog *dl, uint64_t region);
/* Regions [first, last] are owed a resync: dirty, live and pinned like loaded ones. */
void dirtylog_pin(struct rt_dirtylog *dl, uint64_t first, uint64_t last);
/* How many regions are pinned; their bits into @out (bit i = byte i / 8) when not NULL. */
uint64_t dirtylog_pinned(const struct rt_dirtylog *dl, uint8_t *out);
/* Dirty from a previous run, but not owed a resync (it stopped cleanly). */
void dirtylog_unpin_all(struct rt_dirtylog *dl);

bool dirtylog_test(const struct rt_dirtylog *dl, uint64_t region);	/* disk bit */
uint64_t dirtylog_count(const struct rt_dirtylog *dl);			/* disk bits set */
/* The disk image as bytes, bit i = byte i / 8, bit i % 8. */
void dirtylog_bitmap(const struct rt_dirtylog *dl, uint8_t *out);

/*
 * The log's geometry for roles of @role_bytes data bytes and a log area of
 * @log_size bytes: @region_size (the superblock's) doubled until the
 * encoded bitmap fits. What the engine uses, and what create writes.
 */
void dirtylog_geometry(uint64_t role_bytes, uint64_t region_size, uint64_t log_size,
		       uint64_t *region_out, uint64_t *n_regions_out);

/* Lock-free: is any of regions [first, last] pinned (still owed a resync)? */
bool dirtylog_pinned_any(const struct rt_dirtylog *dl, uint64_t first, uint64_t last);

/* Bytes of the encoded log for @n_regions (whole 4 KiB blocks). */
size_t dirtylog_encoded_size(uint64_t n_regions);
int dirtylog_encode(const struct rt_dirtylog *dl, uint64_t events, uint64_t seq,
		    uint64_t events_cleared, uint8_t *buf, size_t len);
/*
 * Check and decode; @bits gets ceil(n_regions / 8) bytes when @bits_len
 * allows. -ENODATA no magic, -EINVAL too short, -EBADMSG CRC mismatch,
 * -EPROTONOSUPPORT version, -EUCLEAN fields out of range, -ENOSPC @bits_len.
 */
int dirtylog_decode(const uint8_t *buf, size_t len, struct rt_dlog_header *h,
		    uint8_t *bits, size_t bits_len);

/*
 * Re-adding a unit that left the array: may it be rebuilt only in the
 * regions the log holds dirty (md's bitmap-based re-add), or must it be
 * rebuilt in full? @array is the running array's superblock, @unit the
 * unit's own, @events_cleared the array's log (0: no usable log).
 * RT_READD_OK sets @role to the role it takes back. All other answers
 * mean a full rebuild, except RT_READD_NEWER and RT_READD_RAN_APART: the
 * unit may hold writes the array lacks (the two ran apart), and must not be
 * overwritten at all.
 */
enum rt_readd {
	RT_READD_OK = 0,
	RT_READD_FOREIGN,	/* a unit of another array, or none */
	RT_READD_NO_ROLE,	/* it held no role with all its data (a spare, or mid-rebuild) */
	RT_READD_ROLE_TAKEN,	/* its role is working, or was given to another unit since */
	RT_READD_IO_FAILED,	/* a unit of that role failed an I/O: the media is suspect */
	RT_READD_NO_LOG,	/* the array keeps no usable log */
	RT_READD_TOO_OLD,	/* it left before the log was last cleared */
	RT_READD_NEWER,		/* its events are not older than the array's */
	RT_READD_RAN_APART,	/* it ran without a role the array has active, same unit */
};
int dirtylog_readd_check(const struct rt_sb *array, const struct rt_sb *unit,
			 uint64_t events_cleared, uint32_t *role);
const char *dirtylog_readd_reason(int why);

#endif
