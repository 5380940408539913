/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <raidtool/array.h>
#include <raidtool/lock.h>
#include "cli.h"
#include "commands.h"

int cmd_zero(int argc, const char **argv)
{
	int force = 0;
	struct poptOption opts[] = {
		{ "force", 'f', POPT_ARG_NONE, &force, 0,
		  "wipe both superblock places even when they hold no valid superblock", NULL },
		POPT_AUTOHELP
		POPT_TABLEEND
	};
	const char **args;
	poptContext pc;
	int n, r, rc = EXIT_OK, lock_fd = -1;

	r = cli_parse("zero", "UNIT...", argc, argv, opts, 1, -1, &pc, &args, &n);
	if (r >= 0)
		return r;
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
	poptFreeContext(pc);
	return rc;
}
