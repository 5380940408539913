/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_UNIT_H
#define RAIDTOOL_UNIT_H

/*
 * A member of an array: open it, size it, read and write its superblocks.
 * Every access to a member device goes through here.
 */
#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>
#include <stdbool.h>
#include <raidtool/format.h>

struct rt_unit;

#define RT_UNIT_WRITE  0x1u	/* open read-write (default read-only) */
#define RT_UNIT_EXCL   0x2u	/* O_EXCL: refuse a device someone else holds */
#define RT_UNIT_DIRECT 0x4u	/* O_DIRECT (the engine's data path) */
#define RT_UNIT_ATTACH 0x8u	/* a regular file is attached to a loop device */

/* Why unit_open failed with @err, for a message ("in use (...)"). */
const char *unit_open_error(int err);

/*
 * Log (error) why @path could not be opened as a unit, for @err from
 * unit_open or stat(2): "'PATH': cannot open: REASON", the one wording of
 * a missing or unusable file or device everywhere.
 */
void unit_log_open_error(const char *path, int err);

/* The same for a unit of array @array: "'ARRAY': 'PATH': cannot open: REASON". */
void unit_log_open_error_in(const char *array, const char *path, int err);

/*
 * Open @path. A block device is opened as is; a regular file is attached to
 * a loop device (reusing one already backed by it) when RT_UNIT_ATTACH is
 * given, else refused with -ENOTBLK. -EBUSY when RT_UNIT_EXCL and held.
 */
int unit_open(const char *path, unsigned flags, struct rt_unit **out);

/*
 * unit_open, for a unit a scan found with superblock @seen: the device must
 * still carry it (same array and unit UUID, same events), or it changed
 * between the scan and the open (detached, another file attached to its
 * loop device, written meanwhile), or its superblocks cannot be read now
 * (an I/O error, named as such): -ESTALE, logged with the device's name,
 * and nothing is opened.
 */
int unit_open_seen(const char *path, unsigned flags, const struct rt_sb *seen,
		   struct rt_unit **out);

/*
 * Close. A loop device this open attached is detached again unless
 * unit_keep_loop() was called (create/add keep theirs so scanning finds them).
 */
void unit_close(struct rt_unit *u);
void unit_keep_loop(struct rt_unit *u);

const char *unit_path(const struct rt_unit *u);	/* as given by the caller */
const char *unit_devname(const struct rt_unit *u);	/* the block device used */
int unit_fd(const struct rt_unit *u);
uint64_t unit_size(const struct rt_unit *u);	/* bytes */
dev_t unit_devno(const struct rt_unit *u);

/* Status of each copy after unit_read_sb: 0 valid, else sb_decode's error. */
struct rt_sb_status {
	int copy_err[2];
	uint64_t copy_events[2];	/* valid copies only */
	int chosen;			/* copy used, -1 when none was valid */
	/*
	 * -EUCLEAN from unit_read_sb: the copies have good checksums but a
	 * field makes no sense; the fresher one is in *sb, the field and reason here.
	 */
	char why[160];
};

/*
 * Read both copies; @sb gets the valid one with the higher events.
 * -ENODATA when neither copy has the magic, else the first copy's error when
 * neither is valid. @st may be NULL.
 */
int unit_read_sb(struct rt_unit *u, struct rt_sb *sb, struct rt_sb_status *st);

/*
 * Is @err (from unit_read_sb) a superblock found damaged (checksum, version,
 * feature, fields), rather than the device failing the read (-EIO, ...)?
 */
bool unit_sb_damaged(int err);

/*
 * The same, with copy problems logged at debug level only: for scanning,
 * where most devices are none of the caller's business (the status says it all).
 */
int unit_read_sb_quiet(struct rt_unit *u, struct rt_sb *sb, struct rt_sb_status *st);

/*
 * Would @sb make sense on this device? sb_validate's field checks, then
 * the checks that need the device's size (copies where unit_read_sb looks
 * for them, the unit within the device). 0, or -EUCLEAN (a field), -EINVAL (the device), -ENOSPC, with the
 * field and the reason in @why.
 */
int unit_check_sb(const struct rt_unit *u, const struct rt_sb *sb, char *why, size_t len);

/* Write both copies (copy 0 first, each flushed before the next). */
int unit_write_sb(struct rt_unit *u, const struct rt_sb *sb);

/* Overwrite both superblock copies and the log area with zeros. */
int unit_wipe_sb(struct rt_unit *u);

/*
 * Look for a foreign signature (filesystem, partition table, other RAID)
 * with libblkid's safe probe. 1 and its type in @type when found, 0 when
 * clean, negative errno on error.
 */
int unit_probe_signature(struct rt_unit *u, char *type, size_t typelen);

/* The same for the image open at @fd (a copy of an array's head and tail, say). */
int unit_probe_signature_fd(int fd, char *type, size_t typelen);

/*
 * Erase the magic of every foreign signature libblkid finds (as wipefs -a),
 * so that a unit overwritten with --force is no longer taken for what it held.
 */
int unit_wipe_signatures(struct rt_unit *u);

struct rt_dlog_header;

/*
 * Read and check this unit's dirty-region log (its area from @sb): the
 * header, and the bitmap into @bits (ceil(n_regions / 8) bytes, at most
 * RT_DATA_ALIGN). dirtylog_decode's errors; -ENODATA when the unit has no
 * log area or the log was never written (a linear/raid0 unit, a new array).
 */
int unit_read_dirtylog(struct rt_unit *u, const struct rt_sb *sb, struct rt_dlog_header *h,
		       uint8_t *bits, size_t bits_len);

/*
 * Write @dl as this unit's dirty-region log (its area from @sb, events and
 * events_cleared from @sb's events) and flush it: what a new array starts
 * with. -ENOSPC when the log does not fit the area.
 */
struct rt_dirtylog;
int unit_write_dirtylog(struct rt_unit *u, const struct rt_sb *sb, const struct rt_dirtylog *dl);

/* Plain positioned I/O, whole buffer or an error (-EIO for a short transfer). */
int unit_pread(struct rt_unit *u, void *buf, size_t len, uint64_t off);
int unit_pwrite(struct rt_unit *u, const void *buf, size_t len, uint64_t off);
int unit_flush(struct rt_unit *u);

/*
 * Make [off, off + len) (absolute, aligned to the logical block size) read
 * back as zeros, without writing them where the device can: a punched hole
 * (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) in a regular file or a block
 * device that guarantees zeros after it (a loop device punches its file);
 * else BLKZEROOUT on a block device (the kernel writes zeros or has the
 * device do it). -EOPNOTSUPP for a file that cannot punch: write zeros.
 */
int unit_zero_range(struct rt_unit *u, uint64_t off, uint64_t len);

/*
 * Ask the kernel for a "change" uevent on the unit's block device, as
 * `udevadm trigger` does, so that udev reads what was just written: its own
 * close-after-write watch misses writes made while it was still busy with
 * the device (a loop device just attached). Harmless without udev.
 */
int unit_notify_udev(struct rt_unit *u);

#endif
