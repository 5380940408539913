/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef RAIDTOOL_ACTIVATE_SCAN_H
#define RAIDTOOL_ACTIVATE_SCAN_H

#include <stdbool.h>

/*
 * activate's words and options ask for something it does: 0, else -EINVAL
 * after a usage error (no name, several names without --scan, --scan's
 * options without it or with --foreground).
 */
int activate_scan_usage(bool scan, bool run, bool foreground, const char **names, int n);

/*
 * activate --scan [UNIT...]: attach the listed image files, then start
 * every array found that is not running: complete ones, degraded ones with
 * @run. With @units (devices or image files, attached), only those are scanned.
 */
int activate_scan(bool run, bool readonly, bool force, const char **units, int n_units);

#endif
