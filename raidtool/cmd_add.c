/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <raidtool/array.h>
#include <raidtool/control.h>
#include <raidtool/lock.h>
#include <raidtool/scan.h>
#include "cli.h"
#include "commands.h"


/* A running array: one control request per unit, by absolute path (the engine's cwd is /). */
static int add_running(const char *id, const char *const *units, int n, bool force)
{
	struct rt_control_req rq = { .verb = RT_VERB_ADD, .force = force };
	char path[PATH_MAX], what[PATH_MAX + 32];
	int r;

	for (int i = 0; i < n; i++) {
		if (!realpath(units[i], path))
			return cli_fail(-errno, "'%s'", units[i]);
		rq.arg = path;
		snprintf(what, sizeof(what), "cannot add '%s'", units[i]);
		r = cli_control_command(id, what, &rq);
		if (r != EXIT_OK)
			return r;
	}
	return EXIT_OK;
}

static int force = 0, speed = -1;

static const struct poptOption add_opts[] = {
	{ "force", 'f', POPT_ARG_NONE, &force, 0,
	  "overwrite units that hold a filesystem, other signature or raidtool superblock", NULL },
	CLI_SPEED_LIMIT_OPT(speed),
	POPT_TABLEEND
};

static int run_add(int n, const char **args)
{
	char name[RT_NAME_MAX + 1];
	bool running;
	struct rt_sb sb;
	int r, array_fd = -1, names_fd = -1;

	/* Under the locks, so that no activate starts it meanwhile. */
	r = cli_lock_array_and_names(args[0], &array_fd, &names_fd);
	if (r >= 0)
		goto out;
	r = cli_find_running(args[0], name, sizeof(name), &running);
	if (r >= 0)
		goto out;
	if (running) {
		/* Each request to the engine takes the array's lock itself. */
		lock_release(names_fd);
		lock_release(array_fd);
		names_fd = array_fd = -1;
		r = cli_send_speed_limit("add", args[0], speed);
		if (r < 0)
			r = add_running(args[0], args + 1, n - 1, force);
		goto out;
	}
	if (speed != -1) {
		r = cli_usage_error("add", "--speed-limit: '%s' is not running (a rebuild starts "
				    "when it is activated; see RAIDTOOL_SYNC_SPEED_MAX)", args[0]);
		goto out;
	}
	r = array_add(args[0], args + 1, (size_t)(n - 1), force, &sb);
	if (r < 0) {
		r = cli_fail(r, "'%s': cannot add units", args[0]);
		goto out;
	}
	for (int i = 1; i < n; i++)
		printf("added '%s' to array '%s'\n", args[i], sb.array.name);
	r = EXIT_OK;
out:
	lock_release(names_fd);
	lock_release(array_fd);
	return r;
}

const struct cli_command cmd_add = {
	.name = "add", .run = run_add, .opts = add_opts,
	.args = "NAME|HASHCODE UNIT...", .min_args = 2, .max_args = -1,
	.summary = "add units to an array (missing roles first, then spares)",
};
