/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A member of an array: open it (attaching a loop device for a file), size
 * it, read and write its two superblock copies, probe it for foreign
 * signatures. Every access to a member device goes through here.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <blkid.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <raidtool/dirtylog.h>
#include <raidtool/log.h>
#include <raidtool/loopdev.h>
#include <raidtool/unit.h>
#include <raidtool/util.h>

/* Superblock I/O uses whole 4 KiB blocks from a buffer fit for O_DIRECT. */
#define IO_ALIGN 4096u
/* Zeroing the log area goes in pieces of this size. */
#define WIPE_CHUNK (256u * 1024u)

struct rt_unit {
	char *path;			/* as the caller gave it */
	char devname[PATH_MAX];		/* the block device actually opened */
	int fd;
	unsigned flags;
	uint64_t size;
	dev_t devno;
	bool attached;			/* we attached devname's loop device */
	bool keep;			/* ... and leave it attached on close */
};

static void *alloc_io_buf(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, IO_ALIGN, len))
		return NULL;
	return p;
}

/*
 * Find the loop device of @file or attach one, under an flock on the file so
 * that two raidtool processes opening the same file at once end up on the
 * same loop device (and O_EXCL then really keeps one of them out).
 */
static int attach_file(const char *file, unsigned flags, char *dev, size_t devlen,
		       bool *attached)
{
	int lock, r;

	*attached = false;
	lock = open(file, O_RDONLY | O_CLOEXEC);
	if (lock >= 0 && flock(lock, LOCK_EX) < 0) {
		close(lock);
		lock = -1;
	}
	r = loopdev_find_by_backing(file, dev, devlen);
	if (r == -ENOENT) {
		r = loopdev_attach(file, (flags & RT_UNIT_WRITE) ? 0 : RT_LOOP_READ_ONLY, 0,
				   dev, devlen);
		if (r == 0)
			*attached = true;
		else
			rt_log(RT_LOG_DEBUG, "'%s': cannot attach a loop device: %s", file,
			       strerror(-r));
	} else if (r == 0) {
		rt_log(RT_LOG_DEBUG, "'%s': using its loop device %s", file, dev);
	}
	if (lock >= 0)
		close(lock);	/* releases the flock */
	return r;
}

static int open_flags(unsigned flags)
{
	int oflags = ((flags & RT_UNIT_WRITE) ? O_RDWR : O_RDONLY) | O_CLOEXEC;

	if (flags & RT_UNIT_EXCL)
		oflags |= O_EXCL;
	if (flags & RT_UNIT_DIRECT)
		oflags |= O_DIRECT;
	return oflags;
}

/* Is the loop device open on @fd bound to the file @st describes? */
static bool loop_backed_by(int fd, const struct stat *st)
{
	struct loop_info64 info;
	uint64_t d;

	if (ioctl(fd, LOOP_GET_STATUS64, &info) < 0)
		return false;
	/* lo_device is the kernel's new_encode_dev() of the file's device. */
	d = info.lo_device;
	return makedev((unsigned)((d & 0xfff00) >> 8),
		       (unsigned)((d & 0xff) | ((d >> 12) & 0xfff00))) == st->st_dev &&
	       (ino_t)info.lo_inode == st->st_ino;
}

/*
 * A regular file: open its loop device, attaching one if needed. A loop
 * device found already bound may be on its way out (detached by someone
 * while still open elsewhere) by the time it is opened; then look again.
 */
static int open_file_unit(struct rt_unit *u, const struct stat *file_st)
{
	int r = -EAGAIN;

	for (int attempt = 0; attempt < 3; attempt++) {
		r = attach_file(u->path, u->flags, u->devname, sizeof(u->devname), &u->attached);
		if (r < 0)
			return r;
		u->fd = open(u->devname, open_flags(u->flags));
		if (u->fd < 0) {
			r = -errno;
			if (u->attached || (r != -ENXIO && r != -ENOENT)) {
				rt_log(RT_LOG_DEBUG, "'%s': cannot open %s: %s", u->path,
				       u->devname, strerror(-r));
				return r;
			}
			continue;
		}
		/* Holding it open now, a binding we verify stays as it is. */
		if (u->attached || loop_backed_by(u->fd, file_st))
			return 0;
		close(u->fd);
		u->fd = -1;
		r = -EAGAIN;
	}
	rt_log(RT_LOG_DEBUG, "'%s': its loop device kept going away", u->path);
	return r;
}

const char *unit_open_error(int err)
{
	switch (err) {
	case -EBUSY:
		return "in use (mounted, held open by another program, or a unit of a running "
		       "array)";
	case -ENOTBLK:
		return "not a block device or a regular file";
	default:
		return rt_strerror(err);
	}
}

void unit_log_open_error_in(const char *array, const char *path, int err)
{
	rt_log(RT_LOG_ERROR, "%s%s%s'%s': cannot open: %s", array ? "'" : "", array ? array : "",
	       array ? "': " : "", path, unit_open_error(err));
}

void unit_log_open_error(const char *path, int err)
{
	unit_log_open_error_in(NULL, path, err);
}

int unit_open(const char *path, unsigned flags, struct rt_unit **out)
{
	struct rt_unit *u;
	struct stat st;
	int r;

	if (!path || !out)
		return -EINVAL;
	*out = NULL;
	if (stat(path, &st) < 0)
		return -errno;
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->fd = -1;
	u->flags = flags;
	u->path = strdup(path);
	if (!u->path) {
		r = -ENOMEM;
		goto fail;
	}

	if (S_ISBLK(st.st_mode)) {
		if ((size_t)snprintf(u->devname, sizeof(u->devname), "%s", path) >=
		    sizeof(u->devname)) {
			r = -ENAMETOOLONG;
			goto fail;
		}
	} else if (S_ISREG(st.st_mode) && (flags & RT_UNIT_ATTACH)) {
		r = open_file_unit(u, &st);
		if (r < 0)
			goto fail;
	} else {
		r = -ENOTBLK;
		goto fail;
	}
	if (u->fd < 0) {
		u->fd = open(u->devname, open_flags(flags));
		if (u->fd < 0) {
			r = -errno;
			rt_log(RT_LOG_DEBUG, "'%s': cannot open: %s", path, strerror(-r));
			goto fail;
		}
	}
	/* The node could have been replaced since stat(); trust the open file. */
	if (fstat(u->fd, &st) < 0) {
		r = -errno;
		goto fail;
	}
	if (!S_ISBLK(st.st_mode)) {
		r = -ENOTBLK;
		goto fail;
	}
	u->devno = st.st_rdev;
	if (ioctl(u->fd, BLKGETSIZE64, &u->size) < 0) {
		r = -errno;
		rt_log(RT_LOG_DEBUG, "'%s': cannot get the size: %s", path, strerror(-r));
		goto fail;
	}
	*out = u;
	return 0;
fail:
	unit_close(u);
	return r;
}

void unit_close(struct rt_unit *u)
{
	int r;

	if (!u)
		return;
	/* Our own descriptor must go first, or the detach would only be deferred. */
	if (u->fd >= 0)
		close(u->fd);
	if (u->attached && !u->keep) {
		r = loopdev_detach(u->devname);
		if (r < 0)
			rt_log(RT_LOG_DEBUG, "'%s': cannot detach %s: %s", u->path, u->devname,
			       strerror(-r));
	}
	free(u->path);
	free(u);
}

void unit_keep_loop(struct rt_unit *u)
{
	if (u)
		u->keep = true;
}

const char *unit_path(const struct rt_unit *u)
{
	return u->path;
}

const char *unit_devname(const struct rt_unit *u)
{
	return u->devname;
}

int unit_fd(const struct rt_unit *u)
{
	return u->fd;
}

uint64_t unit_size(const struct rt_unit *u)
{
	return u->size;
}

dev_t unit_devno(const struct rt_unit *u)
{
	return u->devno;
}

/* All @len bytes at @off, read or (@write) written, through short transfers and EINTR. */
static int unit_io(struct rt_unit *u, void *buf, size_t len, uint64_t off, bool write)
{
	uint8_t *p = buf;
	ssize_t n;

	while (len) {
		n = write ? pwrite(u->fd, p, len, (off_t)off) : pread(u->fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;	/* past the end of the device */
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int unit_pread(struct rt_unit *u, void *buf, size_t len, uint64_t off)
{
	return unit_io(u, buf, len, off, false);
}

int unit_pwrite(struct rt_unit *u, const void *buf, size_t len, uint64_t off)
{
	return unit_io(u, (void *)buf, len, off, true);	/* only read from */
}

int unit_flush(struct rt_unit *u)
{
	return fdatasync(u->fd) < 0 ? -errno : 0;
}

int unit_zero_range(struct rt_unit *u, uint64_t off, uint64_t len)
{
	uint64_t range[2] = { off, len };
	struct stat st;

	if (!u || off > INT64_MAX || len > INT64_MAX - off)
		return -EINVAL;
	if (len == 0)
		return 0;
	/*
	 * A hole punched in a file reads back zeros; on a block device the
	 * kernel punches only where the device guarantees zeros after (a loop
	 * device punches its file), else it refuses and the zeros are written.
	 */
	if (fallocate(u->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
		return -errno;
	if (fstat(u->fd, &st) < 0)
		return -errno;
	if (!S_ISBLK(st.st_mode))
		return -EOPNOTSUPP;
	return ioctl(u->fd, BLKZEROOUT, range) < 0 ? -errno : 0;
}

int unit_notify_udev(struct rt_unit *u)
{
	char path[96];
	dev_t d = unit_devno(u);
	int fd, r = 0;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/uevent", major(d), minor(d));
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, "change", 6) != 6)
		r = -errno;
	close(fd);
	return r;
}

/*
 * Where copy @c lives on a unit of @size bytes: copy 0 at a fixed offset,
 * copy 1 in the last whole 4 KiB block. False when the unit is too small to
 * hold that copy apart from the other.
 */
static bool copy_offset(uint64_t size, unsigned c, uint64_t *off)
{
	uint64_t aligned = size & ~(uint64_t)(RT_SB_SIZE - 1);

	if (c == 0) {
		*off = RT_SB0_OFFSET;
		return size >= (uint64_t)RT_SB0_OFFSET + RT_SB_SIZE;
	}
	if (aligned < (uint64_t)RT_SB0_OFFSET + 2 * RT_SB_SIZE)
		return false;
	*off = aligned - RT_SB_SIZE;
	return true;
}

/*
 * A device that grew since the unit was made on it (a disk copied to a
 * bigger one, an image file or volume extended): the unit keeps the length
 * it was made with, and copy 1 the place copy 0 records for it, inside that
 * length (sb_validate), not the new device end.
 */
static bool device_grew(uint64_t size, const struct rt_sb *sb)
{
	return sb->unit.start + sb->unit.length <= size;
}

static const char *copy_error_reason(int err)
{
	switch (err) {
	case -ENODATA:
		return "no superblock there";
	case -EINVAL:
		return "it lies beyond the end of the unit";
	case -EBADMSG:
		return "checksum mismatch";
	case -EPROTONOSUPPORT:
		return "unsupported format version";
	case -EOPNOTSUPP:
		return "unknown incompatible feature";
	case -EUCLEAN:
		return "inconsistent fields";
	default:
		return strerror(-err);
	}
}

bool unit_sb_damaged(int err)
{
	return err == -EBADMSG || err == -EPROTONOSUPPORT || err == -EOPNOTSUPP ||
	       err == -EUCLEAN;
}

/* Neither a superblock nor a trace of one: nothing there, or no room for it. */
static bool copy_absent(int err)
{
	return err == -ENODATA || err == -EINVAL;
}

/*
 * Two copies neither of which is valid: found damaged, or not read at all
 * (the device failed the reads: it may well hold intact ones).
 */
static const char *copies_verdict(const int err[2])
{
	bool damaged = false, unread = false;

	for (int c = 0; c < 2; c++) {
		damaged = damaged || unit_sb_damaged(err[c]);
		unread = unread || (!copy_absent(err[c]) && !unit_sb_damaged(err[c]));
	}
	return damaged && unread ? "damaged or unreadable" : unread ? "unreadable" : "damaged";
}

static int read_sb(struct rt_unit *u, struct rt_sb *out, struct rt_sb_status *st_out,
		   bool verbose)
{
	struct rt_sb_status st = { .copy_err = { 0, 0 }, .copy_events = { 0, 0 }, .chosen = -1 };
	struct rt_sb *s;
	uint64_t off[2] = { 0, 0 };
	uint8_t *buf;
	int wl = verbose ? RT_LOG_WARN : RT_LOG_DEBUG;
	int r, c, other, suspect = -1;

	s = malloc(2 * sizeof(*s));
	buf = alloc_io_buf(RT_SB_SIZE);
	if (!s || !buf) {
		r = -ENOMEM;
		goto out;
	}
	for (c = 0; c < 2; c++) {
		if (!copy_offset(u->size, (unsigned)c, &off[c])) {
			st.copy_err[c] = -EINVAL;
			continue;
		}
		if (c == 1 && st.copy_err[0] == 0 && s[0].unit.sb_offset[1] != off[1] &&
		    device_grew(u->size, &s[0]))
			off[1] = s[0].unit.sb_offset[1];
		r = unit_pread(u, buf, RT_SB_SIZE, off[c]);
		if (r == 0)
			r = sb_decode(buf, RT_SB_SIZE, &s[c]);
		/* Decoded with a good CRC, but a field makes no sense: keep it to name it. */
		if (r == -EUCLEAN && (suspect < 0 || s[c].events > s[suspect].events)) {
			suspect = c;
			sb_validate_explain(&s[c], st.why, sizeof(st.why));
		}
		/*
		 * A copy found where it does not say it belongs is not this unit's:
		 * e.g. the whole disk's last block holding a partition's copy 1.
		 */
		if (r == 0 && s[c].unit.sb_offset[c] != off[c]) {
			rt_log(RT_LOG_DEBUG, "'%s': superblock copy %d at offset %llu records "
			       "offset %llu", u->path, c, (unsigned long long)off[c],
			       (unsigned long long)s[c].unit.sb_offset[c]);
			r = -EUCLEAN;
		}
		st.copy_err[c] = r;
		if (r == 0)
			st.copy_events[c] = s[c].events;
	}

	if (st.copy_err[0] && st.copy_err[1]) {
		if (copy_absent(st.copy_err[0]) && copy_absent(st.copy_err[1]))
			r = -ENODATA;
		else	/* the copy that shows a trace of a superblock says more */
			r = copy_absent(st.copy_err[0]) ? st.copy_err[1] : st.copy_err[0];
		if (r != -ENODATA)
			rt_log(wl, "'%s': both superblock copies are %s: copy 0: %s; "
			       "copy 1: %s%s%s", u->path, copies_verdict(st.copy_err),
			       copy_error_reason(st.copy_err[0]),
			       copy_error_reason(st.copy_err[1]), suspect >= 0 ? "; " : "",
			       suspect >= 0 ? st.why : "");
		if (suspect >= 0) {
			/* The caller may name the unit as suspect: give it what was read. */
			*out = s[suspect];
			r = -EUCLEAN;
		}
		goto out;
	}

	if (st.copy_err[0] == 0 && st.copy_err[1] == 0)
		st.chosen = s[1].events > s[0].events ? 1 : 0;
	else
		st.chosen = st.copy_err[0] == 0 ? 0 : 1;
	c = st.chosen;
	other = 1 - c;
	if (st.copy_err[other]) {
		rt_log(wl, "'%s': superblock copy %d (offset %llu) is bad: %s; using copy %d",
		       u->path, other, (unsigned long long)off[other],
		       copy_error_reason(st.copy_err[other]), c);
	} else if (s[other].events != s[c].events) {
		/* An update interrupted between writing the two copies. */
		rt_log(wl, "'%s': superblock copy %d is stale (events %llu, copy %d has %llu); "
		       "using copy %d", u->path, other, (unsigned long long)s[other].events, c,
		       (unsigned long long)s[c].events, c);
	}
	if (s[c].unit.length > u->size)
		rt_log(wl, "'%s': unit is %llu bytes but its superblock records %llu: "
		       "truncated?", u->path, (unsigned long long)u->size,
		       (unsigned long long)s[c].unit.length);
	*out = s[c];
	r = 0;
out:
	if (st_out)
		*st_out = st;
	free(buf);
	free(s);
	return r;
}

int unit_read_sb(struct rt_unit *u, struct rt_sb *sb, struct rt_sb_status *st)
{
	return read_sb(u, sb, st, true);
}

int unit_read_sb_quiet(struct rt_unit *u, struct rt_sb *sb, struct rt_sb_status *st)
{
	return read_sb(u, sb, st, false);
}

int unit_open_seen(const char *path, unsigned flags, const struct rt_sb *seen,
		   struct rt_unit **out)
{
	struct rt_sb now;
	int r;

	r = unit_open(path, flags, out);
	if (r < 0)
		return r;
	r = read_sb(*out, &now, NULL, false);
	if (r < 0 && r != -ENODATA && !unit_sb_damaged(r)) {
		/* Not a change: the device fails the reads (for now, perhaps). */
		rt_log(RT_LOG_ERROR, "'%s': its superblocks cannot be read now: %s; not used, "
		       "nothing written", path, strerror(-r));
		unit_close(*out);
		*out = NULL;
		return -ESTALE;
	}
	if (r < 0 || memcmp(now.array.uuid, seen->array.uuid, RT_UUID_SIZE) ||
	    memcmp(now.unit.uuid, seen->unit.uuid, RT_UUID_SIZE) || now.events != seen->events) {
		rt_log(RT_LOG_ERROR, "'%s': the device changed since it was scanned (%s); not "
		       "used, nothing written", path, r < 0 ? "it holds no valid superblock now" :
		       now.events != seen->events && !memcmp(now.unit.uuid, seen->unit.uuid,
							      RT_UUID_SIZE) ?
		       "its superblock was updated meanwhile" : "it holds another unit now");
		unit_close(*out);
		*out = NULL;
		return -ESTALE;
	}
	return 0;
}

int unit_check_sb(const struct rt_unit *u, const struct rt_sb *sb, char *why, size_t len)
{
	uint64_t off, end;
	int r;

	r = sb_validate_explain(sb, why, len);
	if (r < 0)
		return r;
	/* Both copies where unit_read_sb will look. */
	for (unsigned c = 0; c < 2; c++) {
		if (!copy_offset(u->size, c, &off)) {
			snprintf(why, len, "superblock copy %u: no room for it on a %llu-byte "
				 "device", c, (unsigned long long)u->size);
			return -ENOSPC;
		}
		if (sb->unit.sb_offset[c] != off && !(c == 1 && device_grew(u->size, sb))) {
			snprintf(why, len, "superblock copy %u offset: %llu, but it belongs at "
				 "%llu on this %llu-byte device", c,
				 (unsigned long long)sb->unit.sb_offset[c], (unsigned long long)off,
				 (unsigned long long)u->size);
			return -EINVAL;
		}
	}
	/* sb_validate checked that start + length does not overflow. */
	end = sb->unit.start + sb->unit.length;
	if (end > u->size) {
		snprintf(why, len, "unit length: the superblock describes a %llu-byte unit "
			 "from %llu, the device has %llu bytes",
			 (unsigned long long)sb->unit.length, (unsigned long long)sb->unit.start,
			 (unsigned long long)u->size);
		return -EINVAL;
	}
	return 0;
}

int unit_write_sb(struct rt_unit *u, const struct rt_sb *sb)
{
	uint64_t off[2];
	uint8_t *buf = NULL;
	char why[192];
	int r;

	r = unit_check_sb(u, sb, why, sizeof(why));
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "'%s': refusing to write an invalid superblock: %s",
		       u->path, why);
		return r;
	}
	for (unsigned c = 0; c < 2; c++)
		off[c] = sb->unit.sb_offset[c];
	buf = alloc_io_buf(RT_SB_SIZE);
	if (!buf)
		return -ENOMEM;
	/* Copy 0 reaches the medium before copy 1 is touched: one always survives. */
	for (unsigned c = 0; c < 2; c++) {
		r = sb_encode(sb, c, buf);
		if (r < 0)
			goto out;
		r = unit_pwrite(u, buf, RT_SB_SIZE, off[c]);
		if (r == 0)
			r = unit_flush(u);
		if (r < 0) {
			rt_log(RT_LOG_DEBUG, "'%s': writing superblock copy %u: %s", u->path, c,
			       strerror(-r));
			goto out;
		}
	}
out:
	free(buf);
	return r;
}

static int zero_range(struct rt_unit *u, const uint8_t *zeros, uint64_t from, uint64_t to)
{
	int r;

	while (from < to) {
		size_t n = to - from < WIPE_CHUNK ? (size_t)(to - from) : WIPE_CHUNK;

		r = unit_pwrite(u, zeros, n, from);
		if (r < 0)
			return r;
		from += n;
	}
	return 0;
}

int unit_wipe_sb(struct rt_unit *u)
{
	struct rt_sb sb;
	uint64_t off, off1, end, grown_sb1 = 0;
	uint8_t *zeros;
	int r;

	zeros = alloc_io_buf(WIPE_CHUNK);
	if (!zeros)
		return -ENOMEM;
	memset(zeros, 0, WIPE_CHUNK);

	/* Copy 0, and with a readable superblock the log area that follows it. */
	if (copy_offset(u->size, 0, &off)) {
		end = off + RT_SB_SIZE;
		if (read_sb(u, &sb, NULL, false) == 0) {
			if (sb.unit.data_offset > end)
				end = sb.unit.data_offset;
			if (copy_offset(u->size, 1, &off1) && sb.unit.sb_offset[1] != off1 &&
			    device_grew(u->size, &sb))
				grown_sb1 = sb.unit.sb_offset[1];
		}
		if (copy_offset(u->size, 1, &off) && end > off)
			end = off;	/* never past copy 1, whatever the superblock says */
		if (end > u->size)
			end = u->size;
		r = zero_range(u, zeros, RT_SB0_OFFSET, end & ~(uint64_t)(IO_ALIGN - 1));
		if (r < 0)
			goto out;
	}
	if (copy_offset(u->size, 1, &off)) {
		r = unit_pwrite(u, zeros, RT_SB_SIZE, off);
		if (r < 0)
			goto out;
	}
	/* Copy 1 where a device that grew keeps it (read before copy 0 was wiped). */
	if (grown_sb1) {
		r = unit_pwrite(u, zeros, RT_SB_SIZE, grown_sb1);
		if (r < 0)
			goto out;
	}
	r = unit_flush(u);
out:
	if (r < 0)
		rt_log(RT_LOG_DEBUG, "'%s': wiping superblocks: %s", u->path, strerror(-r));
	free(zeros);
	return r;
}

/*
 * A libblkid probe over the unit. libblkid reads and wipes through unaligned
 * buffers, which an O_DIRECT descriptor refuses, so such a unit is reopened
 * through /proc for the probe; *own_fd is that descriptor, or -1.
 */
static int unit_probe_new(struct rt_unit *u, int mode, blkid_probe *out, int *own_fd)
{
	blkid_probe pr;
	char proc[64];
	int fd = u->fd;

	*own_fd = -1;
	if (u->flags & RT_UNIT_DIRECT) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", u->fd);
		*own_fd = open(proc, mode | O_CLOEXEC);
		if (*own_fd < 0)
			*own_fd = open(u->devname, mode | O_CLOEXEC);
		if (*own_fd < 0)
			return -errno;
		fd = *own_fd;
	}
	pr = blkid_new_probe();
	if (!pr)
		goto fail_nomem;
	errno = 0;
	if (blkid_probe_set_device(pr, fd, 0, 0) < 0) {
		int r = errno ? -errno : -EIO;

		blkid_free_probe(pr);
		if (*own_fd >= 0)
			close(*own_fd);
		return r;
	}
	*out = pr;
	return 0;
fail_nomem:
	if (*own_fd >= 0)
		close(*own_fd);
	return -ENOMEM;
}

int unit_wipe_signatures(struct rt_unit *u)
{
	blkid_probe pr;
	int own_fd, r;

	r = unit_probe_new(u, O_RDWR, &pr, &own_fd);
	if (r < 0)
		return r;
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_MAGIC | BLKID_SUBLKS_BADCSUM);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC);
	/* As wipefs does: each probe finds the next signature, each wipe erases its magic. */
	while ((r = blkid_do_probe(pr)) == 0) {
		if (blkid_do_wipe(pr, 0) < 0) {
			r = errno ? -errno : -EIO;
			goto out;
		}
	}
	r = r < 0 ? -EIO : 0;
	if (r == 0 && fsync(own_fd >= 0 ? own_fd : u->fd) < 0)
		r = -errno;
out:
	blkid_free_probe(pr);
	if (own_fd >= 0)
		close(own_fd);
	return r;
}

/* The first signature @pr finds, as unit_probe_signature answers. */
static int probe_first_signature(blkid_probe pr, char *type, size_t typelen)
{
	const char *val = NULL;
	char buf[64];
	int rc;

	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC);

	errno = 0;
	rc = blkid_do_safeprobe(pr);
	if (!type || !typelen) {
		type = buf;	/* the caller only wants to know whether */
		typelen = sizeof(buf);
	}
	if (rc == 1)
		return 0;
	if (rc == -2) {
		/* Several signatures at once: something is there, whatever it is. */
		snprintf(type, typelen, "%s", "ambiguous signatures");
		return 1;
	}
	if (rc < 0)
		return errno ? -errno : -EIO;
	if (blkid_probe_lookup_value(pr, "TYPE", &val, NULL) == 0 && val)
		snprintf(type, typelen, "%s", val);
	else if (blkid_probe_lookup_value(pr, "PTTYPE", &val, NULL) == 0 && val)
		snprintf(type, typelen, "partition table (%s)", val);
	else
		snprintf(type, typelen, "%s", "unknown signature");
	return 1;
}

int unit_probe_signature(struct rt_unit *u, char *type, size_t typelen)
{
	blkid_probe pr = NULL;
	int own_fd, r;

	r = unit_probe_new(u, O_RDONLY, &pr, &own_fd);
	if (r < 0)
		return r;
	r = probe_first_signature(pr, type, typelen);
	blkid_free_probe(pr);
	if (own_fd >= 0)
		close(own_fd);
	return r;
}

int unit_probe_signature_fd(int fd, char *type, size_t typelen)
{
	blkid_probe pr = blkid_new_probe();
	int r;

	if (!pr)
		return -ENOMEM;
	if (blkid_probe_set_device(pr, fd, 0, 0) < 0)
		r = -ENOMEM;
	else
		r = probe_first_signature(pr, type, typelen);
	blkid_free_probe(pr);
	return r;
}

int unit_write_dirtylog(struct rt_unit *u, const struct rt_sb *sb, const struct rt_dirtylog *dl)
{
	size_t len = dirtylog_encoded_size(dirtylog_regions(dl));
	uint8_t *buf;
	int r;

	if (len > sb->unit.log_size)
		return -ENOSPC;
	buf = alloc_io_buf(len);
	if (!buf)
		return -ENOMEM;
	r = dirtylog_encode(dl, sb->events, 1, sb->events, buf, len);
	if (r == 0)
		r = unit_pwrite(u, buf, len, sb->unit.log_offset);
	if (r == 0)
		r = unit_flush(u);
	free(buf);
	return r;
}

int unit_read_dirtylog(struct rt_unit *u, const struct rt_sb *sb, struct rt_dlog_header *h,
		       uint8_t *bits, size_t bits_len)
{
	uint64_t len = sb->unit.log_size;
	uint8_t *buf;
	int r;

	if (len < RT_DLOG_BLOCK || len > RT_DATA_ALIGN)
		return -ENODATA;
	len -= len % RT_DLOG_BLOCK;
	buf = alloc_io_buf(len);
	if (!buf)
		return -ENOMEM;
	r = unit_pread(u, buf, len, sb->unit.log_offset);
	if (r == 0)
		r = dirtylog_decode(buf, len, h, bits, bits_len);
	free(buf);
	return r;
}
