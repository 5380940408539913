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
	int n, r, array_fd = -1, names_fd = -1;

	r = cli_parse("rename", "NAME|HASHCODE NEWNAME", argc, argv, opts, 2, 2, &pc, &args, &n);
	if (r >= 0)
		return r;
	/* The new name is checked and written under the lock create takes too. */
	r = cli_lock_array_and_names(args[0], &array_fd, &names_fd);
	if (r >= 0)
		goto out;
	r = array_rename(args[0], args[1]);
	lock_release(names_fd);
	lock_release(array_fd);
	if (r < 0) {
		r = cli_fail(r, "'%s': cannot rename", args[0]);
	} else {
		printf("renamed array '%s' to '%s'\n", args[0], args[1]);
		r = EXIT_OK;
	}
out:
	poptFreeContext(pc);
	return r;
}
