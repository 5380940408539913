/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef RAIDTOOL_ACTIVATE_SCAN_H
#define RAIDTOOL_ACTIVATE_SCAN_H

#include <stdbool.h>

/* activate --scan's options are consistent: 0, or -EINVAL after a usage error. */
int activate_scan_usage(bool scan, bool run, bool foreground);

/*
 * activate --scan [UNIT...]: attach the listed image files, then start
 * every array found that is not running: complete ones, degraded ones with
 * @run. With @units (devices or image files, attached), only those are scanned.
 */
int activate_scan(bool run, bool readonly, bool force, const char **units, int n_units);

#endif
