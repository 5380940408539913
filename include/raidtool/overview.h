/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_OVERVIEW_H
#define RAIDTOOL_OVERVIEW_H

/*
 * Every array the machine knows, running or not, in one shape: what its
 * engine reports when it runs, else what the scan finds on its units; and
 * its health (enum rt_health, control.h), which status --test turns into its
 * exit status (raidtool(8) EXIT STATUS).
 */
#include <stddef.h>
#include <raidtool/control.h>
#include <raidtool/scan.h>

/* An inactive array as the scan sees it, in the shape a running engine reports. */
void overview_status_from_scan(const struct rt_scan_array *a, struct rt_control_status *st);

/*
 * The health of @st, which came from the engine when @p says it runs, else
 * from the scan's @a (@a may be NULL for a running array).
 */
enum rt_health overview_health(const struct rt_scan_array *a, const struct rt_control_status *st,
			       const struct rt_control_probe *p);

/*
 * The health from the scan alone (no socket traffic: for `list`): the
 * freshest role table, which a running engine updates at every failure, and
 * the units present. @p says whether an engine runs or died.
 */
enum rt_health overview_scan_health(const struct rt_scan_array *a,
				    const struct rt_control_probe *p);

/* "clean", "degraded", "failed": control_health_name. */
const char *overview_health_name(enum rt_health h);

struct rt_overview_array {
	struct rt_control_probe probe;
	struct rt_control_status *st;
	enum rt_health health;
};

struct rt_overview {
	size_t n;
	struct rt_overview_array *arrays;	/* sorted by name, then hashcode */
};

/*
 * Scan and ask every running engine. An engine that does not answer
 * (starting, stopping) is shown as the scan sees its array.
 */
int overview_collect(struct rt_overview **out);

/* The same over just the block devices @devs (n > 0), as scan_devices_list. */
int overview_collect_list(const char *const *devs, size_t n, struct rt_overview **out);
void overview_free(struct rt_overview *o);

#endif
