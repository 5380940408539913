/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdio.h>
#include <raidtool/array.h>
#include <raidtool/lock.h>
#include "cli.h"
#include "commands.h"

static int force = 0;

static const struct poptOption zero_opts[] = {
	{ "force", 'f', POPT_ARG_NONE, &force, 0,
	  "wipe both superblock places even when they hold no valid superblock", NULL },
	CLI_BATCH_MODE_OPT,
	POPT_TABLEEND
};

static int run_zero(int n, const char **args)
{
	int r, rc = EXIT_OK, lock_fd = -1;

	/* Asked before the lock is taken: no other command waits on a person. */
	rc = cli_confirm_units(args, (size_t)n, false, "its raidtool superblocks are wiped");
	if (rc != 0)
		return rc;

	/* Not while a create or add checks what these units hold, and writes them. */
	r = lock_take(RT_LOCK_NAMES, &lock_fd);
	if (r < 0) {
		rc = cli_fail(r, "cannot take the lock of the array names");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		r = array_zero_unit(args[i], force);
		if (r < 0)
			rc = cli_fail(r, "'%s': cannot wipe", args[i]);
		else
			printf("wiped raidtool superblocks from '%s'\n", args[i]);
	}
	lock_release(lock_fd);
out:
	return rc;
}

const struct cli_command cmd_zero = {
	.name = "zero", .run = run_zero, .opts = zero_opts,
	.args = "UNIT...", .min_args = 1, .max_args = -1,
	.summary = "wipe raidtool's superblocks from a unit",
};
