/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <raidtool/array.h>
#include <raidtool/lock.h>
#include "cli.h"
#include "commands.h"


static const struct poptOption rename_opts[] = {
	POPT_TABLEEND
};

static int run_rename(int n, const char **args)
{
	int r, array_fd = -1, names_fd = -1;

	/* The new name is checked and written under the lock create takes too. */
	r = cli_exit_code(cli_lock_array_and_names(args[0], &array_fd, &names_fd));
	if (r != EXIT_OK)
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
	return r;
}

const struct cli_command cmd_rename = {
	.name = "rename", .run = run_rename, .opts = rename_opts,
	.args = "NAME|HASHCODE NEWNAME", .min_args = 2, .max_args = 2,
	.summary = "change an array's name",
};
