/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * raidtool activate --scan: boot without udev (containers, microVMs).
 */
#include <errno.h>
#include <stdlib.h>
#include <raidtool/activate.h>
#include <raidtool/bootunits.h>
#include <raidtool/lock.h>
#include <raidtool/overview.h>
#include <raidtool/unit.h>
#include "activate_scan.h"
#include "cli.h"

int activate_scan_usage(bool scan, bool run, bool foreground, const char **names, int n)
{
	if (!scan && !run && n == 0)
		return cli_usage_error("activate", "name the array to start, or give --scan"),
		       -EINVAL;
	/* Without --scan the words are array names, and one start is one array. */
	if (!scan && !run)
		return cli_usage_error("activate", "one array at a time: %d names given ('%s', "
				       "'%s'%s); run activate once per array, or give --scan "
				       "to start every complete array", n, names[0], names[1],
				       n > 2 ? ", ..." : ""), -EINVAL;
	if (!scan)
		return cli_usage_error("activate", "--run goes with --scan"), -EINVAL;
	if (foreground)
		return cli_usage_error("activate", "--scan starts each array in the background: "
				       "--foreground is for one array"), -EINVAL;
	return 0;
}

static void print_link(const char *name, const char *link, const char *dev, void *arg)
{
	(void)name;
	(void)dev;
	(void)arg;
	printf("%s\n", link);
	fflush(stdout);
}

/* Start one array by its hashcode (a name may be shared). 0, or the exit code. */
static int start_one(const struct rt_control_status *st, bool readonly, bool force)
{
	struct rt_activate_opts o = { 0 };
	char id[16];
	int lock_fd = -1, r;

	snprintf(id, sizeof(id), "%08x", control_status_hashcode(st));
	r = cli_exit_code(cli_lock_array(id, &lock_fd));
	if (r != EXIT_OK)
		return r;
	o.id = id;
	o.force = force;
	o.readonly = readonly;
	o.ready = print_link;
	r = activate_array(&o);
	lock_release(lock_fd);
	if (r < 0)
		return cli_fail(r, "'%s' (%s): cannot activate", control_status_name(st), id);
	return 0;
}

/* The block devices of @units (image files attached): 0, or -errno (printed). */
static int attach_units(const char **units, int n, char (*devs)[64], const char **ptrs)
{
	for (int i = 0; i < n; i++) {
		int r = bootunits_attach_file(units[i], devs[i], sizeof(devs[i]));

		if (r == -ENOTBLK)
			return cli_usage_error("activate", "'%s': not a block device or image file",
					       units[i]), -EINVAL;
		if (r == -ENOENT || r == -EACCES || r == -ENOTDIR)
			unit_log_open_error(units[i], r);
		if (r < 0)
			return cli_report(r, "'%s': cannot attach", units[i]);
		ptrs[i] = devs[i];
	}
	return 0;
}

int activate_scan(bool run, bool readonly, bool force, const char **units, int n_units)
{
	struct rt_overview *o = NULL;
	size_t failed_attach = 0;
	char (*devs)[64] = NULL;
	const char **ptrs = NULL;
	int r, worst = EXIT_OK;

	bootunits_attach(NULL, &failed_attach);
	if (failed_attach)
		worst = EXIT_FAIL;
	if (n_units > 0) {
		devs = calloc((size_t)n_units, sizeof(*devs));
		ptrs = calloc((size_t)n_units, sizeof(*ptrs));
		if (!devs || !ptrs) {
			r = cli_fail(-ENOMEM, "activate --scan");
			goto out;
		}
		r = cli_exit_code(attach_units(units, n_units, devs, ptrs));
		if (r != EXIT_OK)
			goto out;
		r = overview_collect_list(ptrs, (size_t)n_units, &o);
	} else {
		r = overview_collect(&o);
	}
	if (r < 0) {
		r = cli_fail(r, "activate --scan: cannot scan for arrays");
		goto out;
	}
	for (size_t i = 0; i < o->n; i++) {
		const struct rt_overview_array *oa = &o->arrays[i];
		const struct rt_control_status *st = oa->st;
		const char *name = control_status_name(st);
		uint32_t hashcode = control_status_hashcode(st);

		if (oa->probe.state == RT_CONTROL_ACTIVE)
			continue;
		if (oa->probe.state == RT_CONTROL_STALE) {
			cli_error("'%s' (%08x): not started: its engine died; run 'raidtool "
				  "deactivate %08x' first", name, hashcode, hashcode);
			worst = EXIT_FAIL;
			continue;
		}
		if (oa->health == RT_HEALTH_FAILED) {
			cli_error("'%s' (%08x): not started: too many roles missing", name,
				  hashcode);
			continue;
		}
		if (oa->health == RT_HEALTH_DEGRADED && !run) {
			cli_error("'%s' (%08x): not started: degraded (roles missing); --run starts "
				  "it degraded", name, hashcode);
			continue;
		}
		r = start_one(st, readonly, force);
		if (r != 0)
			worst = r;
	}
	r = worst;
out:
	overview_free(o);
	free(devs);
	free(ptrs);
	return r;
}
