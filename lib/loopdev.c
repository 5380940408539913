/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Loop devices: attach a file with LOOP_CTL_GET_FREE + LOOP_CONFIGURE, find
 * the loop device already backed by a file, detach.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <raidtool/log.h>
#include <raidtool/loopdev.h>
#include <raidtool/util.h>

#define LOOP_CONTROL "/dev/loop-control"
#define LOOP_MAJOR_NR 7
/* Another process may configure the free device we were handed; try again. */
#define ATTACH_TRIES 16
/* How long to wait for a freshly created /dev/loopN node to show up. */
#define NODE_WAIT_MS 2000
#define NODE_WAIT_STEP_MS 10
/* How long a detach waits for other openers to let go. */
#define DETACH_WAIT_MS 2000

/*
 * LOOP_CTL_GET_FREE may have just created the device; devtmpfs normally has
 * the node by the time the ioctl returns, but give it a moment anyway.
 */
static int open_loop_node(const char *dev, int flags)
{
	int waited = 0;
	int fd;

	for (;;) {
		fd = open(dev, flags | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno != ENOENT && errno != ENXIO)
			return -errno;
		if (waited >= NODE_WAIT_MS)
			return -errno;
		rt_sleep_ms(NODE_WAIT_STEP_MS);
		waited += NODE_WAIT_STEP_MS;
	}
}

static int open_backing(const char *file, unsigned flags)
{
	int mode = (flags & RT_LOOP_READ_ONLY) ? O_RDONLY : O_RDWR;
	int fd;

	/*
	 * With O_DIRECT on the backing file the kernel's loop driver does direct
	 * I/O from the start (losetup does the same); a file system that refuses
	 * O_DIRECT still gets LO_FLAGS_DIRECT_IO asked for.
	 */
	if (flags & RT_LOOP_DIRECT_IO) {
		fd = open(file, mode | O_DIRECT | O_CLOEXEC);
		if (fd >= 0 || errno != EINVAL)
			return fd >= 0 ? fd : -errno;
	}
	fd = open(file, mode | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

int loopdev_attach(const char *file, unsigned flags, uint32_t blocksize,
		   char *dev, size_t devlen)
{
	struct loop_config cfg;
	char path[64];
	int ctl = -1, bfd = -1, lfd = -1;
	int r, n;

	if (!file || !dev || !devlen)
		return -EINVAL;
	bfd = open_backing(file, flags);
	if (bfd < 0) {
		r = bfd;
		rt_log(RT_LOG_DEBUG, "'%s': cannot open for a loop device: %s", file, strerror(-r));
		goto out;
	}
	ctl = open(LOOP_CONTROL, O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		r = -errno;
		rt_log(RT_LOG_DEBUG, "'%s': %s", LOOP_CONTROL, strerror(-r));
		goto out;
	}

	memset(&cfg, 0, sizeof(cfg));
	cfg.fd = (uint32_t)bfd;
	cfg.block_size = blocksize;
	if (flags & RT_LOOP_DIRECT_IO)
		cfg.info.lo_flags |= LO_FLAGS_DIRECT_IO;
	if (flags & RT_LOOP_READ_ONLY)
		cfg.info.lo_flags |= LO_FLAGS_READ_ONLY;
	/* For information only (losetup -l shows it); sysfs has the real path. */
	snprintf((char *)cfg.info.lo_file_name, sizeof(cfg.info.lo_file_name), "%s", file);

	r = -EBUSY;
	for (int attempt = 0; attempt < ATTACH_TRIES; attempt++) {
		n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0) {
			r = -errno;
			rt_log(RT_LOG_DEBUG, "no free loop device: %s", strerror(-r));
			goto out;
		}
		snprintf(path, sizeof(path), "/dev/loop%d", n);
		lfd = open_loop_node(path, O_RDWR);
		if (lfd < 0) {
			r = lfd;
			rt_log(RT_LOG_DEBUG, "'%s': %s", path, strerror(-r));
			goto out;
		}
		if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0) {
			r = 0;
			break;
		}
		r = -errno;
		close(lfd);
		lfd = -1;
		if (r != -EBUSY) {
			rt_log(RT_LOG_DEBUG, "'%s': cannot attach '%s': %s", path, file,
			       strerror(-r));
			goto out;
		}
		/* Somebody else took it between GET_FREE and CONFIGURE. */
		rt_sleep_ms(1 + attempt);
	}
	if (r < 0) {
		rt_log(RT_LOG_DEBUG, "'%s': every free loop device was taken by someone else", file);
		goto out;
	}
	if ((size_t)snprintf(dev, devlen, "%s", path) >= devlen) {
		/* Caller cannot even learn the name: undo. */
		ioctl(lfd, LOOP_CLR_FD, 0);
		r = -ENAMETOOLONG;
		goto out;
	}
	rt_log(RT_LOG_DEBUG, "'%s': attached to %s", file, path);
out:
	/* The loop driver holds its own reference to the backing file. */
	if (lfd >= 0)
		close(lfd);
	if (bfd >= 0)
		close(bfd);
	if (ctl >= 0)
		close(ctl);
	return r;
}

/* Read a one-line sysfs attribute without its newline. */
static int read_attr(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len);
	r = n < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		return r;
	if ((size_t)n >= len)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return 0;
}

/*
 * LOOP_CLR_FD while somebody else has the device open (a concurrent scan, a
 * udev probe) only marks it for detaching on the last close. Wait a little
 * for that, so that a caller who detached does not find the device still
 * bound to the file right after; the kernel finishes the job in any case.
 */
static void wait_unbound(const char *attr, const char *was)
{
	char now[PATH_MAX + 32];

	for (int waited = 0; waited < DETACH_WAIT_MS; waited += NODE_WAIT_STEP_MS) {
		if (read_attr(attr, now, sizeof(now)) < 0 || strcmp(now, was))
			return;	/* unbound, or already bound to something else */
		rt_sleep_ms(NODE_WAIT_STEP_MS);
	}
	rt_log(RT_LOG_DEBUG, "'%s' is still held open; it detaches on its last close", was);
}

int loopdev_detach(const char *dev)
{
	char attr[128], was[PATH_MAX + 32] = "";
	struct stat st;
	int fd, r = 0;

	fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	attr[0] = '\0';
	if (fstat(fd, &st) == 0 && S_ISBLK(st.st_mode)) {
		snprintf(attr, sizeof(attr), "/sys/dev/block/%u:%u/loop/backing_file",
			 major(st.st_rdev), minor(st.st_rdev));
		if (read_attr(attr, was, sizeof(was)) < 0)
			attr[0] = '\0';
	}
	if (ioctl(fd, LOOP_CLR_FD, 0) < 0)
		r = -errno;
	close(fd);
	if (r == 0 && attr[0])
		wait_unbound(attr, was);
	if (r == 0)
		rt_log(RT_LOG_DEBUG, "'%s': detached", dev);
	return r;
}

int loopdev_clear_sole(int fd)
{
	struct loop_info64 was, now;
	int r;

	/* As it was, to restore (a failing status read after the clear, too). */
	if (ioctl(fd, LOOP_GET_STATUS64, &was) < 0)
		return -errno;
	if (ioctl(fd, LOOP_CLR_FD, 0) < 0)
		return -errno;
	/* In rundown (or detached, before 6.11) the device has no status: it was ours alone. */
	if (ioctl(fd, LOOP_GET_STATUS64, &now) < 0 && errno == ENXIO)
		return 0;
	/*
	 * Another opener: the kernel only marked the device to detach on the
	 * last close (AUTOCLEAR). Take the mark back, the device as it was.
	 */
	if (ioctl(fd, LOOP_SET_STATUS64, &was) == 0)
		return -EBUSY;
	r = -errno;
	if (r == -ENXIO)
		return 0;	/* gone to rundown meanwhile: ours alone after all */
	rt_log(RT_LOG_ERROR, "cannot take back the detach of a loop device open elsewhere: "
	       "%s; it detaches on its last close", strerror(-r));
	return r;
}

int loopdev_set_capacity(const char *dev)
{
	int fd, r = 0;

	fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, LOOP_SET_CAPACITY, 0) < 0)
		r = -errno;
	close(fd);
	return r;
}

int loopdev_backing_file(const char *dev, char *file, size_t len)
{
	char attr[128], buf[PATH_MAX + 32];
	struct stat st;
	int r;

	if (stat(dev, &st) < 0)
		return -errno;
	/* Only a loop device has a backing file; its major is fixed. */
	if (!S_ISBLK(st.st_mode) || major(st.st_rdev) != LOOP_MAJOR_NR)
		return -ENOENT;
	snprintf(attr, sizeof(attr), "/sys/dev/block/%u:%u/loop/backing_file",
		 major(st.st_rdev), minor(st.st_rdev));
	r = read_attr(attr, buf, sizeof(buf));
	if (r == -ENOENT || r == -ENOTDIR)
		return -ENOENT;	/* the loop/ directory exists only while bound */
	if (r < 0)
		return r;
	if ((size_t)snprintf(file, len, "%s", buf) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* The kernel reports lo_device with new_encode_dev(); decode it the same way. */
static dev_t decode_kernel_dev(uint64_t d)
{
	unsigned maj = (unsigned)((d & 0xfff00) >> 8);
	unsigned min = (unsigned)((d & 0xff) | ((d >> 12) & 0xfff00));

	return makedev(maj, min);
}

/*
 * Does loop device @n's backing file match? Device and inode decide when the
 * loop device can be asked (a path may be stale or say "(deleted)"); the
 * path comparison is the fallback for an unprivileged caller.
 */
static bool loop_matches(unsigned n, const struct stat *st, const char *real)
{
	struct loop_info64 info;
	char attr[128], path[64], buf[PATH_MAX + 32];
	int fd, r;

	snprintf(attr, sizeof(attr), "/sys/block/loop%u/loop/backing_file", n);
	if (read_attr(attr, buf, sizeof(buf)) < 0)
		return false;	/* not bound */
	snprintf(path, sizeof(path), "/dev/loop%u", n);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		r = ioctl(fd, LOOP_GET_STATUS64, &info);
		close(fd);
		if (r == 0)
			return decode_kernel_dev(info.lo_device) == st->st_dev &&
			       (ino_t)info.lo_inode == st->st_ino;
	}
	return real && !strcmp(buf, real);
}

int loopdev_find_by_backing(const char *file, char *dev, size_t devlen)
{
	char real[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *d;
	bool have_real;
	long best = -1;
	int r;

	if (stat(file, &st) < 0)
		return -errno;
	have_real = realpath(file, real) != NULL;
	d = opendir("/sys/block");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char *end;
		unsigned long n;

		if (strncmp(de->d_name, "loop", 4) || !de->d_name[4])
			continue;
		errno = 0;
		n = strtoul(de->d_name + 4, &end, 10);
		if (*end || errno || n > UINT_MAX)
			continue;
		/* Several loops on one file: take the lowest number, for a stable answer. */
		if (best >= 0 && (long)n >= best)
			continue;
		if (loop_matches((unsigned)n, &st, have_real ? real : NULL))
			best = (long)n;
	}
	closedir(d);
	if (best < 0)
		return -ENOENT;
	r = snprintf(dev, devlen, "/dev/loop%ld", best);
	return (size_t)r >= devlen ? -ENAMETOOLONG : 0;
}
