/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_LOOPDEV_H
#define RAIDTOOL_LOOPDEV_H

#include <stddef.h>
#include <stdint.h>

#define RT_LOOP_DIRECT_IO 0x1u
#define RT_LOOP_READ_ONLY 0x2u

/*
 * Attach @file to a free loop device (LOOP_CTL_GET_FREE + LOOP_CONFIGURE),
 * retrying when another process takes the same device first. @blocksize 0
 * keeps the kernel's default. The device path goes to @dev.
 */
int loopdev_attach(const char *file, unsigned flags, uint32_t blocksize,
		   char *dev, size_t devlen);

/* Detach a loop device (LOOP_CLR_FD). */
int loopdev_detach(const char *dev);

/*
 * Detach the loop device open as @fd, but only if @fd is its one opener:
 * then (0) the device is in rundown, every later open fails with ENXIO, and
 * closing @fd detaches it (before Linux 6.11: detached at once). With
 * another opener the kernel would detach it on that opener's last close,
 * at a time nobody chose: the request is taken back and -EBUSY returned,
 * the device bound as before. The kernel counts an opener only once its
 * open has returned: one in the middle of its open is missed, and holds a
 * device in rundown until it closes.
 */
int loopdev_clear_sole(int fd);

/*
 * The backing file's size changed: the device takes it (LOOP_SET_CAPACITY;
 * the same device, open descriptors and mounts stay).
 */
int loopdev_set_capacity(const char *dev);

/* The loop device already backed by @file, or -ENOENT. */
int loopdev_find_by_backing(const char *file, char *dev, size_t devlen);

/* The backing file of loop device @dev, or -ENOENT if it is not a bound loop. */
int loopdev_backing_file(const char *dev, char *file, size_t len);

#endif
