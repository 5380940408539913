/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The array as a block device: a FUSE mount serving one file (lib/fuse.c),
 * a loop device on it, and /dev/raidtool/NAME.
 *
 * Ordering matters both ways. Up: the FUSE threads must already be serving
 * when the loop device is configured, because the kernel opens and reads
 * the file. Down: the loop device lets go of the file first; then the mount
 * is detached lazily, the kernel ends the connection once the last
 * reference to the file system is gone (/dev/fuse readers see ENODEV, ring
 * entries complete with -ENOTCONN), and the FUSE threads end.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <raidtool/engine.h>
#include <raidtool/export.h>
#include <raidtool/format.h>
#include <raidtool/fuse.h>
#include <raidtool/log.h>
#include <raidtool/loopdev.h>
#include <raidtool/util.h>

#define UNBIND_WAIT_MS 10000
#define SCANNER_WAIT_MS 50
#define SCANNER_WAIT_TRIES 60		/* 3 s for another command's scan to pass */
#define CLAIM_TRIES 3
#define FUSE_END_WAIT_MS 10000

struct rt_export {
	struct rt_engine *e;
	char name[RT_NAME_MAX + 1];
	char mnt[PATH_MAX];
	char file[PATH_MAX];
	char link[PATH_MAX];
	char dev[64];
	uint64_t size;
	uint32_t blocksize;
	time_t started;

	struct rt_fuse *fuse;		/* mounted and serving when not NULL */
	bool attached, linked;
};

/* Another file of the mount (export_add_file) with its loop device and link. */
struct rt_export_file {
	struct rt_export *x;
	char name[RT_NAME_MAX + 1];
	char file[PATH_MAX];
	char link[PATH_MAX];
	char dev[64];
	bool added, attached, linked;
};

/* ---- in use? ------------------------------------------------------------ */

/* Undo mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
	char *d = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)(((s[1] - '0') << 6) | ((s[2] - '0') << 3) | (s[3] - '0'));
			s += 4;
		} else {
			*d++ = *s++;
		}
	}
	*d = '\0';
}

/*
 * Look through /proc/self/mountinfo for a mount of device @devno (when
 * @devno is not 0) or on directory @dir (when not NULL). 1 when found.
 */
static int find_mount(dev_t devno, const char *dir, char *where, size_t len)
{
	char line[8192];
	FILE *f;
	int found = 0;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		char *save = NULL, *tok, *mp = NULL;
		int field = 0;

		for (tok = strtok_r(line, " ", &save); tok && field < 5;
		     tok = strtok_r(NULL, " ", &save), field++) {
			if (field == 2 && sscanf(tok, "%u:%u", &maj, &min) != 2)
				break;
			if (field == 4)
				mp = tok;
		}
		if (!mp)
			continue;
		unescape(mp);
		if ((devno && makedev(maj, min) == devno) || (dir && !strcmp(mp, dir))) {
			if (where)
				snprintf(where, len, "%s", mp);
			found = 1;
		}
	}
	fclose(f);
	return found;
}

/*
 * A process with a descriptor open on block device @devno (when not 0) or
 * on a file whose path starts with @prefix (when not NULL): its pid, or 0.
 */
static pid_t find_opener(dev_t devno, const char *prefix, char *comm, size_t commlen)
{
	pid_t self = getpid(), found = 0;
	struct dirent *de;
	DIR *proc;

	proc = opendir("/proc");
	if (!proc)
		return 0;
	while (!found && (de = readdir(proc))) {
		char path[64], link[PATH_MAX];
		struct dirent *fe;
		struct stat st;
		DIR *fds;
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0 || pid == self)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
		fds = opendir(path);
		if (!fds)
			continue;
		while (!found && (fe = readdir(fds))) {
			ssize_t n;

			if (fe->d_name[0] == '.')
				continue;
			n = readlinkat(dirfd(fds), fe->d_name, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = '\0';
			if (prefix && !strncmp(link, prefix, strlen(prefix))) {
				found = (pid_t)pid;
				break;
			}
			/*
			 * Only nodes under /dev are stat'ed: stat on a file in a hung
			 * FUSE mount (even ours, if the engine died) could block.
			 */
			if (!devno || strncmp(link, "/dev/", 5) || stat(link, &st) < 0)
				continue;
			if (S_ISBLK(st.st_mode) && st.st_rdev == devno)
				found = (pid_t)pid;
		}
		closedir(fds);
	}
	closedir(proc);
	if (found && comm) {
		char path[64];
		FILE *f;

		snprintf(comm, commlen, "?");
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)found);
		f = fopen(path, "re");
		if (f) {
			if (fgets(comm, (int)commlen, f))
				comm[strcspn(comm, "\n")] = '\0';
			fclose(f);
		}
	}
	return found;
}

/* The first holder in /sys/dev/block/M:m/holders (device-mapper, md, ...). */
static bool find_holder(dev_t devno, char *name, size_t len)
{
	char path[96];
	struct dirent *de;
	bool found = false;
	DIR *d;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/holders", major(devno), minor(devno));
	d = opendir(path);
	if (!d)
		return false;
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(name, len, "%s", de->d_name);
		found = true;
	}
	closedir(d);
	return found;
}

/* A process that opens block devices only to look at them. */
static bool is_scanner(const char *comm)
{
	return !strcmp(comm, "raidtool") || !strcmp(comm, "(udev-worker)") ||
	       !strcmp(comm, "systemd-udevd");
}

int export_dev_busy(const char *dev, int *excl_fd, char *why, size_t whylen)
{
	char where[PATH_MAX], comm[64];
	struct stat st;
	pid_t pid;
	int fd, r;

	if (excl_fd)
		*excl_fd = -1;
	if (why && whylen)
		why[0] = '\0';
	if (stat(dev, &st) < 0)
		return -errno;
	if (!S_ISBLK(st.st_mode))
		return -ENOTBLK;
	r = find_mount(st.st_rdev, NULL, where, sizeof(where));
	if (r > 0) {
		snprintf(why, whylen, "mounted on %s", where);
		return -EBUSY;
	}
	if (find_holder(st.st_rdev, where, sizeof(where))) {
		snprintf(why, whylen, "held by %s", where);
		return -EBUSY;
	}
	fd = open(dev, O_RDONLY | O_EXCL | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		if (r == -EBUSY)
			snprintf(why, whylen, "held exclusively (mounted in another namespace, "
				 "or opened with O_EXCL by a program)");
		return r;
	}
	/*
	 * Every raidtool command scans every block device, ours too: a
	 * `status` or `list` elsewhere holds it open for a moment, and so
	 * does udev probing it after a writer closed it. Such an opener is
	 * waited for (briefly), not taken for a user of the array.
	 */
	for (int tries = 0;; tries++) {
		pid = find_opener(st.st_rdev, NULL, comm, sizeof(comm));
		if (!pid || !is_scanner(comm) || tries >= SCANNER_WAIT_TRIES)
			break;
		rt_sleep_ms(SCANNER_WAIT_MS);
	}
	if (pid) {
		close(fd);
		snprintf(why, whylen, "open in process %d (%s)", (int)pid, comm);
		return -EBUSY;
	}
	if (excl_fd)
		*excl_fd = fd;
	else
		close(fd);
	return 0;
}

/*
 * Is the loop device @dev, linked as @link, in use, or a file whose path
 * starts with @prefix (our FUSE file, or every file of the mount)?
 */
static int file_busy(const char *dev, const char *link, const char *prefix, const char *file,
		     int *excl_fd, char *why, size_t whylen)
{
	char comm[64], reason[PATH_MAX];
	pid_t pid;
	int r;

	r = export_dev_busy(dev, excl_fd, reason, sizeof(reason));
	if (r == -EBUSY)
		snprintf(why, whylen, "%s (%s) is %s", link, dev, reason);
	if (r < 0)
		return r;
	/* Someone reading the FUSE file itself would lose it mid-way. */
	pid = find_opener(0, prefix, comm, sizeof(comm));
	if (pid) {
		if (excl_fd && *excl_fd >= 0) {
			close(*excl_fd);
			*excl_fd = -1;
		}
		snprintf(why, whylen, "its FUSE file %s is open in process %d (%s)", file,
			 (int)pid, comm);
		return -EBUSY;
	}
	return 0;
}

int export_busy(const struct rt_export *x, int *excl_fd, char *why, size_t whylen)
{
	char prefix[PATH_MAX + 2];

	snprintf(prefix, sizeof(prefix), "%s/", x->mnt);
	return file_busy(x->dev, x->link, prefix, x->file, excl_fd, why, whylen);
}

int export_file_busy(const struct rt_export_file *xf, int *excl_fd, char *why, size_t whylen)
{
	return file_busy(xf->dev, xf->link, xf->file, xf->file, excl_fd, why, whylen);
}

/* Is loop device @dev backed by a file of ours: under @mnt, or named "/NAME" (detached mount)? */
static bool loop_is_ours(const char *dev, const char *mnt, const char *name)
{
	char back[PATH_MAX], tail[RT_NAME_MAX + 2];
	size_t ml = strlen(mnt), bl;

	if (loopdev_backing_file(dev, back, sizeof(back)) < 0)
		return false;
	if (!strncmp(back, mnt, ml) && back[ml] == '/')
		return true;
	snprintf(tail, sizeof(tail), "/%s", name);
	bl = strlen(back);
	/* A detached or dead mount can show the path from its own root only. */
	return !strcmp(back, tail) || (bl > 10 && !strcmp(back + bl - 10, " (deleted)") &&
				       !strncmp(back, tail, strlen(tail)));
}

int export_claim(struct rt_export *x, int *excl_fd, char *why, size_t whylen)
{
	int r;

	for (int tries = 0;; tries++) {
		r = export_busy(x, excl_fd, why, whylen);
		if (r < 0)
			return r;
		if (x->attached && !loop_is_ours(x->dev, x->mnt, x->name)) {
			/* Detached by hand (losetup -d): nothing to detach, maybe another's now. */
			rt_log(RT_LOG_WARN, "'%s': %s is no longer on its FUSE file; it was "
			       "detached by someone else", x->name, x->dev);
			x->attached = false;
			close(*excl_fd);
			*excl_fd = -1;
			return 0;
		}
		r = loopdev_clear_sole(*excl_fd);
		if (r == 0)
			return 0;
		close(*excl_fd);
		*excl_fd = -1;
		if (r != -EBUSY)
			return r;
		/*
		 * Opened after export_busy looked (a writer, a udev probe):
		 * look again, to wait for a scanner or to name the opener.
		 */
		if (tries >= CLAIM_TRIES) {
			snprintf(why, whylen, "%s (%s) is opened again and again by another "
				 "process", x->link, x->dev);
			return -EBUSY;
		}
		rt_sleep_ms(SCANNER_WAIT_MS);
	}
}

/* ---- start / stop ------------------------------------------------------- */

/* Replace @link with a symlink to @target (atomically, through a temporary name). */
static int make_link(const char *target, const char *link)
{
	char tmp[PATH_MAX + 16];

	snprintf(tmp, sizeof(tmp), "%s.%d", link, (int)getpid());
	for (int tries = 0;; tries++) {
		if (mkdir(RT_DEV_DIR, 0755) < 0 && errno != EEXIST)
			return -errno;
		unlink(tmp);
		if (symlink(target, tmp) == 0)
			break;
		/* Another engine may remove the directory when its last link goes. */
		if (errno != ENOENT || tries == 3)
			return -errno;
	}
	if (rename(tmp, link) < 0) {
		int r = -errno;

		unlink(tmp);
		return r;
	}
	return 0;
}

/* Remove @link if it is a symlink to @target (or @target is NULL and it dangles). */
static bool remove_link(const char *link, const char *target)
{
	char cur[PATH_MAX];
	struct stat st;
	ssize_t n;

	n = readlink(link, cur, sizeof(cur) - 1);
	if (n < 0)
		return false;
	cur[n] = '\0';
	if (target ? strcmp(cur, target) != 0 : stat(link, &st) == 0)
		return false;
	if (unlink(link) < 0)
		return false;
	rmdir(RT_DEV_DIR);	/* only when empty */
	return true;
}

/*
 * Remove every symlink to @dev in RT_DEV_DIR and in its directories (a
 * thin pool's volumes: RT_DEV_DIR/ARRAY/VOL), and a directory it emptied
 * (not one a running pool keeps empty, its volumes' links go there): once
 * @dev is detached, the next loop device attached may take its number, and
 * a link left behind would name another device. Returns how many went.
 */
static unsigned remove_links_to(const char *dev)
{
	DIR *top = opendir(RT_DEV_DIR);
	struct dirent *de;
	unsigned n = 0;

	if (!top)
		return 0;
	while ((de = readdir(top))) {
		char path[PATH_MAX];
		struct dirent *ve;
		unsigned here = 0;
		DIR *sub;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), RT_DEV_DIR "/%s", de->d_name);
		if (de->d_type == DT_LNK) {
			n += remove_link(path, dev);
			continue;
		}
		if (de->d_type != DT_DIR || !(sub = opendir(path)))
			continue;
		while ((ve = readdir(sub))) {
			char vlink[PATH_MAX + NAME_MAX + 2];

			if (ve->d_type != DT_LNK)
				continue;
			snprintf(vlink, sizeof(vlink), "%s/%s", path, ve->d_name);
			here += remove_link(vlink, dev);
		}
		closedir(sub);
		if (here)
			rmdir(path);	/* only when empty */
		n += here;
	}
	closedir(top);
	rmdir(RT_DEV_DIR);	/* only when empty */
	return n;
}

static bool wait_unbound(const char *dev, long ms)
{
	char back[PATH_MAX];

	for (long waited = 0;; waited += 20) {
		if (loopdev_backing_file(dev, back, sizeof(back)) == -ENOENT)
			return true;
		if (waited >= ms)
			return false;
		rt_sleep_ms(20);
	}
}

static bool loop_dio_on(const char *dev)
{
	char path[128], v[8] = "";
	const char *base = strrchr(dev, '/');
	FILE *f;

	snprintf(path, sizeof(path), "/sys/block/%s/loop/dio", base ? base + 1 : dev);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (!fgets(v, sizeof(v), f))
		v[0] = '\0';
	fclose(f);
	return v[0] == '1';
}

/*
 * The loop device on FUSE file @file (of @size bytes), then the symlink
 * @link to it; @dev gets the device, *@attached and *@linked what was done.
 */
static int attach_file(const char *name, const char *file, uint64_t size, uint32_t blocksize,
		       bool readonly, const char *link, char *dev, size_t devlen, bool *attached,
		       bool *linked)
{
	struct stat st;
	int r;

	/* Answered by the FUSE threads: proves they serve before the loop device opens it. */
	if (stat(file, &st) < 0) {
		r = -errno;
		rt_log(RT_LOG_ERROR, "'%s': the FUSE file '%s' does not answer: %s", name, file,
		       strerror(-r));
		return r;
	}
	if ((uint64_t)st.st_size != size) {
		rt_log(RT_LOG_ERROR, "'%s': the FUSE file has %lld bytes, not %llu", name,
		       (long long)st.st_size, (unsigned long long)size);
		return -EIO;
	}
	r = loopdev_attach(file, RT_LOOP_DIRECT_IO | (readonly ? RT_LOOP_READ_ONLY : 0),
			   blocksize, dev, devlen);
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "'%s': cannot attach a loop device to '%s': %s", name, file,
		       strerror(-r));
		return r;
	}
	*attached = true;
	if (!loop_dio_on(dev))
		rt_log(RT_LOG_WARN, "'%s': %s runs without direct I/O (the kernel refused it)",
		       name, dev);
	/* Ours now: a link to it is one an engine that died left, naming another array. */
	r = (int)remove_links_to(dev);
	if (r > 0)
		rt_log(RT_LOG_WARN, "'%s': removed %d stale link%s to %s under " RT_DEV_DIR
		       " (left by an engine that died)", name, r, r == 1 ? "" : "s", dev);
	r = make_link(dev, link);
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "'%s': cannot create '%s': %s", name, link, strerror(-r));
		return r;
	}
	*linked = true;
	rt_log(RT_LOG_DEBUG, "'%s': %s on %s (%llu bytes, block size %u)", name, link, dev,
	       (unsigned long long)size, blocksize);
	return 0;
}

/*
 * The reverse of attach_file: the link, then the loop device (through
 * @excl_fd when not -1, closed here). The first error.
 */
static int detach_file(const char *name, const char *link, const char *dev, bool attached,
		       bool linked, int excl_fd)
{
	int r = 0, q;

	if (linked)
		remove_link(link, dev);
	if (attached) {
		if (excl_fd >= 0) {
			/*
			 * Through our exclusive descriptor, the only opener:
			 * claimed by export_claim, the device is in rundown
			 * already (ENXIO here) and our close detaches it.
			 * loopdev_detach would open it a second time.
			 */
			q = ioctl(excl_fd, LOOP_CLR_FD, 0) < 0 ? -errno : 0;
			close(excl_fd);
			excl_fd = -1;
		} else {
			q = loopdev_detach(dev);
		}
		if (q < 0 && q != -ENXIO) {
			rt_log(RT_LOG_ERROR, "'%s': cannot detach %s: %s", name, dev, strerror(-q));
			r = q;
		} else if (!wait_unbound(dev, UNBIND_WAIT_MS)) {
			rt_log(RT_LOG_ERROR, "'%s': %s is still open somewhere; the kernel "
			       "will detach it on its last close", name, dev);
			r = -EBUSY;
		}
	}
	if (excl_fd >= 0)
		close(excl_fd);
	return r;
}

int export_start(struct rt_engine *e, const struct rt_export_params *p, struct rt_export **out)
{
	struct rt_fuse_params fp;
	struct rt_export *x;
	int r;

	if (!p || (!e && !p->backend) || !p->name || !p->link_name || !p->mountpoint || !out)
		return -EINVAL;
	*out = NULL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->e = e;
	x->size = p->backend ? p->backend->size : engine_size(e);
	x->blocksize = p->blocksize;
	snprintf(x->name, sizeof(x->name), "%s", p->name);
	if ((size_t)snprintf(x->mnt, sizeof(x->mnt), "%s", p->mountpoint) >= sizeof(x->mnt) ||
	    (size_t)snprintf(x->file, sizeof(x->file), "%s/%s", p->mountpoint, p->name) >=
	    sizeof(x->file)) {
		r = -ENAMETOOLONG;
		goto fail;
	}
	snprintf(x->link, sizeof(x->link), RT_DEV_DIR "/%s", p->link_name);

	fp = (struct rt_fuse_params){
		.engine = e,
		.backend = p->backend,
		.name = p->name,
		.mountpoint = x->mnt,
		.blocksize = p->blocksize,
		.threads = p->threads,
		.transport = p->transport,
		.poll_us = p->poll_us,
	};
	r = rt_fuse_start(&fp, &x->fuse);
	if (r < 0)
		goto fail;
	r = attach_file(p->name, x->file, x->size, x->blocksize, p->readonly, x->link, x->dev,
			sizeof(x->dev), &x->attached, &x->linked);
	if (r < 0)
		goto fail;
	*out = x;
	return 0;
fail:
	export_stop(x, -1);
	return r;
}

const char *export_device(const struct rt_export *x)
{
	return x->dev;
}

const char *export_link(const struct rt_export *x)
{
	return x->link;
}

const char *export_file(const struct rt_export *x)
{
	return x->file;
}

const char *export_transport(const struct rt_export *x)
{
	return rt_fuse_transport_name(x->fuse);
}

void export_fuse_stats(const struct rt_export *x, struct rt_fuse_stats *st)
{
	rt_fuse_get_stats(x->fuse, st);
}

int export_stop(struct rt_export *x, int excl_fd)
{
	int r = 0, q;

	if (!x) {
		if (excl_fd >= 0)
			close(excl_fd);
		return 0;
	}
	r = detach_file(x->name, x->link, x->dev, x->attached, x->linked, excl_fd);
	if (x->fuse && umount2(x->mnt, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL) {
		q = -errno;
		rt_log(RT_LOG_ERROR, "'%s': cannot unmount '%s': %s", x->name, x->mnt,
		       strerror(-q));
		r = r ? r : q;
	}
	if (x->fuse) {
		if (!rt_fuse_wait_end(x->fuse, FUSE_END_WAIT_MS)) {
			rt_log(RT_LOG_WARN, "'%s': the FUSE file is still referenced; "
			       "aborting the connection", x->name);
			rt_fuse_abort(x->fuse);
			if (!rt_fuse_wait_end(x->fuse, FUSE_END_WAIT_MS)) {
				/* Cannot free what the FUSE threads still use: leave it to exit(). */
				rt_log(RT_LOG_ERROR, "'%s': FUSE threads do not stop", x->name);
				return r ? r : -ETIMEDOUT;
			}
		}
		rt_fuse_destroy(x->fuse);
	}
	free(x);
	return r;
}

/* ---- more files in the mount -------------------------------------------- */

int export_add_file(struct rt_export *x, const char *name, const char *link_name,
		    const struct rt_fuse_backend *be, struct rt_export_file **out)
{
	struct rt_export_file *xf;
	int r;

	if (!x || !name || !link_name || !be || !out)
		return -EINVAL;
	*out = NULL;
	xf = calloc(1, sizeof(*xf));
	if (!xf)
		return -ENOMEM;
	xf->x = x;
	snprintf(xf->name, sizeof(xf->name), "%s", name);
	if ((size_t)snprintf(xf->file, sizeof(xf->file), "%s/%s", x->mnt, name) >=
	    sizeof(xf->file)) {
		free(xf);
		return -ENAMETOOLONG;
	}
	snprintf(xf->link, sizeof(xf->link), RT_DEV_DIR "/%s", link_name);
	r = rt_fuse_add_file(x->fuse, name, be);
	if (r == 0) {
		xf->added = true;
		r = attach_file(name, xf->file, be->size, x->blocksize, false, xf->link, xf->dev,
				sizeof(xf->dev), &xf->attached, &xf->linked);
	}
	if (r < 0) {
		export_remove_file(xf, -1);
		return r;
	}
	*out = xf;
	return 0;
}

const char *export_file_device(const struct rt_export_file *xf)
{
	return xf->dev;
}

int export_resize_file(struct rt_export_file *xf, uint64_t size)
{
	struct stat st;
	int r = rt_fuse_resize_file(xf->x->fuse, xf->name, size);

	if (r < 0)
		return r;
	/* The kernel's size of the file, which the loop device takes, is fetched again here. */
	if (stat(xf->file, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size != size) {
		rt_log(RT_LOG_ERROR, "'%s': the FUSE file has %lld bytes after a resize, not %llu",
		       xf->name, (long long)st.st_size, (unsigned long long)size);
		return -EIO;
	}
	r = xf->attached ? loopdev_set_capacity(xf->dev) : 0;
	if (r < 0)
		rt_log(RT_LOG_ERROR, "'%s': %s cannot take its new size: %s", xf->name, xf->dev,
		       strerror(-r));
	return r;
}

int export_remove_file(struct rt_export_file *xf, int excl_fd)
{
	int r, q;

	if (!xf) {
		if (excl_fd >= 0)
			close(excl_fd);
		return 0;
	}
	r = detach_file(xf->name, xf->link, xf->dev, xf->attached, xf->linked, excl_fd);
	/* Not while the loop device still holds the file: it would fail its I/O. */
	if (xf->added && r == 0) {
		q = rt_fuse_remove_file(xf->x->fuse, xf->name);
		r = r ? r : q;
	}
	free(xf);
	return r;
}

/* ---- after a crash ------------------------------------------------------ */

static bool find_our_loop(const char *mnt, const char *name, char *dev, size_t len)
{
	struct dirent *de;
	bool found = false;
	DIR *d;

	d = opendir("/sys/block");
	if (!d)
		return false;
	while (!found && (de = readdir(d))) {
		char path[64];

		if (strncmp(de->d_name, "loop", 4) || !de->d_name[4] || strlen(de->d_name) > 32)
			continue;
		snprintf(path, sizeof(path), "/dev/%.32s", de->d_name);
		if (loop_is_ours(path, mnt, name)) {
			snprintf(dev, len, "%s", path);
			found = true;
		}
	}
	closedir(d);
	return found;
}

static void did_append(char *did, size_t len, const char *what)
{
	size_t used = strlen(did);

	if (used < len)
		snprintf(did + used, len - used, "%s%s", used ? "; " : "", what);
}

/* fusermount3 -uz: the fallback when umount2 itself fails. */
static int run_fusermount(const char *mnt)
{
	pid_t pid;
	int status;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);

		if (nul >= 0) {
			dup2(nul, 1);
			dup2(nul, 2);
		}
		execlp("fusermount3", "fusermount3", "-u", "-z", "--", mnt, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

int export_recover(const char *name, const char *link, const char *mountpoint,
		   const char *dev_hint, char *did, size_t didlen)
{
	char mnt[PATH_MAX], dir[PATH_MAX], dev[64] = "", why[PATH_MAX + 64];
	char msg[PATH_MAX + 128];
	const char *slash;
	unsigned links;
	int excl = -1, r;

	if (!name || !link || !mountpoint || !did)
		return -EINVAL;
	did[0] = '\0';
	/* Canonical form for comparisons; the mount point itself may not answer. */
	slash = strrchr(mountpoint, '/');
	if (slash && slash != mountpoint) {
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - mountpoint), mountpoint);
		if (realpath(dir, mnt))
			snprintf(mnt + strlen(mnt), sizeof(mnt) - strlen(mnt), "%s", slash);
		else
			snprintf(mnt, sizeof(mnt), "%s", mountpoint);
	} else {
		snprintf(mnt, sizeof(mnt), "%s", mountpoint);
	}

	if (dev_hint && dev_hint[0] && loop_is_ours(dev_hint, mnt, name))
		snprintf(dev, sizeof(dev), "%s", dev_hint);
	else
		find_our_loop(mnt, name, dev, sizeof(dev));
	/* Every loop device on a file of the mount: the array's, its thin volumes'. */
	for (; dev[0]; dev[0] = '\0', find_our_loop(mnt, name, dev, sizeof(dev))) {
		r = export_dev_busy(dev, &excl, why, sizeof(why));
		if (r == -EBUSY) {
			rt_log(RT_LOG_ERROR, "'%s': the engine died, but %s is still in use (%s); "
			       "stop using it first", name, dev, why);
			return r;
		}
		/* Before the detach: once detached, its number may name another device. */
		links = remove_links_to(dev);
		if (links) {
			snprintf(msg, sizeof(msg), "removed %u link%s to %s", links,
				 links == 1 ? "" : "s", dev);
			did_append(did, didlen, msg);
		}
		r = loopdev_detach(dev);
		if (excl >= 0)
			close(excl);
		if (r < 0 && r != -ENXIO) {
			rt_log(RT_LOG_ERROR, "'%s': cannot detach %s: %s", name, dev, strerror(-r));
			return r;
		}
		if (!wait_unbound(dev, UNBIND_WAIT_MS)) {
			rt_log(RT_LOG_ERROR, "'%s': %s is still open somewhere", name, dev);
			return -EBUSY;
		}
		snprintf(msg, sizeof(msg), "detached %s", dev);
		did_append(did, didlen, msg);
	}
	if (remove_link(link, NULL)) {
		snprintf(msg, sizeof(msg), "removed %s", link);
		did_append(did, didlen, msg);
	}
	if (find_mount(0, mnt, NULL, 0) > 0) {
		if (umount2(mnt, MNT_DETACH | UMOUNT_NOFOLLOW) < 0) {
			r = -errno;
			if (run_fusermount(mnt) < 0) {
				rt_log(RT_LOG_ERROR, "'%s': cannot unmount '%s': %s", name, mnt,
				       strerror(-r));
				return r;
			}
		}
		snprintf(msg, sizeof(msg), "unmounted %s", mnt);
		did_append(did, didlen, msg);
	}
	return 0;
}
