/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_BOOTUNITS_H
#define RAIDTOOL_BOOTUNITS_H

/*
 * Image files to attach at boot where no udev does it (containers,
 * microVMs): one path per line in /etc/raidtool/units ($RAIDTOOL_UNITS
 * overrides it), '#' starts a comment. `activate --scan` attaches each to
 * a loop device (unless one is already attached) before it scans.
 */
#include <stddef.h>

#define RT_BOOTUNITS_DEFAULT "/etc/raidtool/units"

/* The list's path (never NULL). */
const char *bootunits_path(void);

/*
 * The block device of @path: @path itself for a block device, else the
 * loop device attached to the image file (attached now if none was: 1).
 * 0 or 1, or a negative errno (not a file or device, cannot attach).
 */
int bootunits_attach_file(const char *path, char *dev, size_t devlen);

/*
 * Attach every file the list names. No list is not an error (0). A file
 * that cannot be attached is logged (warning) and the others go on;
 * *@attached and *@failed count them (may be NULL).
 */
int bootunits_attach(size_t *attached, size_t *failed);

#endif
