/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <raidtool/array.h>
#include <raidtool/lock.h>
#include "cli.h"
#include "commands.h"

int cmd_rename(int argc, const char **argv)
{
	struct poptOption opts[] = {
		POPT_AUTOHELP
		POPT_TABLEEND
	};
	const char **args;
	poptContext pc;
	int n, r, lock_fd = -1;

	r = cli_parse("rename", "NAME|HASHCODE NEWNAME", argc, argv, opts, 2, 2, &pc, &args, &n);
	if (r >= 0)
		return r;
	/* The new name is checked and written under the lock create takes too. */
	r = lock_take(RT_LOCK_NAMES, &lock_fd);
	if (r == 0)
		r = array_rename(args[0], args[1]);
	lock_release(lock_fd);
	if (r < 0) {
		r = cli_fail(r, "'%s': cannot rename", args[0]);
	} else {
		printf("renamed array '%s' to '%s'\n", args[0], args[1]);
		r = EXIT_OK;
	}
	poptFreeContext(pc);
	return r;
}
