/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_EXPORT_H
#define RAIDTOOL_EXPORT_H

/*
 * Exposing a running array as a block device: a FUSE mount (lib/fuse.c:
 * FUSE over io_uring or /dev/fuse, direct I/O) holding one file of the
 * array's size, a loop device on that file (LOOP_CONFIGURE, direct I/O,
 * logical block size = the array's block size), and the symlink
 * /dev/raidtool/NAME (or /dev/raidtool/HASHCODE when another running array
 * has the name).
 */
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <raidtool/fuse.h>

struct rt_engine;
struct rt_export;

#define RT_DEV_DIR "/dev/raidtool"

struct rt_export_params {
	const char *name;		/* array name: the FUSE file's name */
	const char *link_name;		/* the symlink's name under RT_DEV_DIR */
	const char *mountpoint;		/* an existing empty directory */
	uint32_t blocksize;		/* the loop device's logical block size */
	unsigned threads;		/* FUSE worker threads; 0: the default */
	enum rt_fuse_transport transport;	/* RT_FUSE_AUTO: io_uring when possible */
	unsigned poll_us;		/* rt_fuse_params.poll_us */
	const struct rt_fuse_backend *backend;	/* serves the file instead of the engine */
	bool readonly;			/* a read-only loop device (activate --readonly) */
};

/*
 * Mount, serve, attach the loop device, make the symlink. @e may be NULL
 * when @p->backend serves the file.
 */
int export_start(struct rt_engine *e, const struct rt_export_params *p, struct rt_export **out);

const char *export_device(const struct rt_export *x);	/* "/dev/loopN" */
const char *export_link(const struct rt_export *x);	/* "/dev/raidtool/LINK_NAME" */
const char *export_file(const struct rt_export *x);	/* "<mountpoint>/NAME" */
const char *export_transport(const struct rt_export *x);	/* "io_uring", "/dev/fuse" */
void export_fuse_stats(const struct rt_export *x, struct rt_fuse_stats *st);

/*
 * Is the block device in use? 0 when not; -EBUSY with the reason in @why
 * ("mounted on /mnt", "held open by process 123 (dd)", ...) when it is.
 * With @excl_fd the device stays opened O_EXCL in *@excl_fd when free, so
 * that nobody mounts it, to be detached through it (loopdev_clear_sole).
 */
int export_dev_busy(const char *dev, int *excl_fd, char *why, size_t whylen);

/*
 * export_dev_busy on our loop device, and nobody has our FUSE file open
 * either. @why gets a whole phrase: "/dev/raidtool/NAME (/dev/loopN) is
 * mounted on /mnt", "its FUSE file ... is open in process 12 (cat)".
 */
int export_busy(const struct rt_export *x, int *excl_fd, char *why, size_t whylen);

/*
 * The stop's point of no return: export_busy, and when free, the loop
 * device put in rundown through *@excl_fd (loopdev_clear_sole), so that no
 * one opens it between this check and export_stop; an opener that came in
 * between makes it look again (-EBUSY with @why when it stays). A device
 * detached by hand meanwhile is left alone (*@excl_fd -1). Pass *@excl_fd
 * to export_stop.
 */
int export_claim(struct rt_export *x, int *excl_fd, char *why, size_t whylen);

/*
 * Tear down in reverse: the symlink, the loop device (detached by closing
 * @excl_fd from export_claim, else here), the FUSE mount and its workers. Frees @x.
 * Returns the first error; every step is tried regardless.
 */
int export_stop(struct rt_export *x, int excl_fd);

/*
 * Another file in @x's mount (a thin volume, lib/thin-run.c), served by
 * @be, with its own loop device and the symlink RT_DEV_DIR/@link_name.
 * export_file_busy as export_busy, for that file alone. export_remove_file:
 * the symlink and the loop device go (as export_stop), then the file, once
 * no request uses it; frees @xf. While the loop device cannot be detached
 * (-EBUSY: open still), the file stays in the mount. Remove every file
 * before export_stop.
 */
struct rt_export_file;
int export_add_file(struct rt_export *x, const char *name, const char *link_name,
		    const struct rt_fuse_backend *be, struct rt_export_file **out);
const char *export_file_device(const struct rt_export_file *xf);
int export_file_busy(const struct rt_export_file *xf, int *excl_fd, char *why, size_t whylen);
int export_remove_file(struct rt_export_file *xf, int excl_fd);
/*
 * The file's backend serves @size bytes now (grown before, shrunk after
 * this call): the file and its loop device take that size in place (the
 * same device; what holds it open or mounted stays).
 */
int export_resize_file(struct rt_export_file *xf, uint64_t size);

/*
 * Clean up after an engine that died: detach the loop device on a file
 * under @mountpoint (refused with -EBUSY and a reason while it is in use)
 * and every link to it under RT_DEV_DIR (the array's, its volumes'),
 * remove @link (a path under RT_DEV_DIR) when it dangles, lazily unmount
 * @mountpoint. @did gets a short human summary of what was done.
 */
int export_recover(const char *name, const char *link, const char *mountpoint,
		   const char *dev_hint, char *did, size_t didlen);

#endif
