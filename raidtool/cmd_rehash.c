/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <raidtool/array.h>
#include <raidtool/lock.h>
#include "cli.h"
#include "commands.h"


static const struct poptOption rehash_opts[] = {
	POPT_TABLEEND
};

static int run_rehash(int n, const char **args)
{
	uint32_t want, got = 0;
	int r, array_fd = -1, names_fd = -1;

	if (n == 2 && sb_hashcode_parse(args[1], &want) < 0) {
		r = cli_usage_error("rehash", "'%s': not a hashcode (exactly 8 hex digits)", args[1]);
		goto out;
	}
	/* The new hashcode is checked and written under the lock create takes too. */
	r = cli_exit_code(cli_lock_array_and_names(args[0], &array_fd, &names_fd));
	if (r != EXIT_OK)
		goto out;
	r = array_rehash(args[0], n == 2 ? &want : NULL, &got);
	lock_release(names_fd);
	lock_release(array_fd);
	if (r < 0) {
		r = cli_fail(r, "'%s': cannot change the hashcode", args[0]);
		goto out;
	}
	printf("%08x\n", got);
	r = EXIT_OK;
out:
	return r;
}

const struct cli_command cmd_rehash = {
	.name = "rehash", .run = run_rehash, .opts = rehash_opts,
	.args = "NAME|HASHCODE [NEWHASH]", .min_args = 1, .max_args = 2,
	.summary = "change an array's hashcode",
};
