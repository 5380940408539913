/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "cli.h"
#include "commands.h"


static const struct poptOption remove_opts[] = {
	POPT_TABLEEND
};

/* A faulty unit (or a spare) leaves a running array. */
static int run_remove(int n, const char **args)
{
	int r;

	r = cli_control_command(args[0], "cannot remove the unit", "remove", args[1]);
	return r;
}

const struct cli_command cmd_remove = {
	.name = "remove", .run = run_remove, .opts = remove_opts,
	.args = "NAME|HASHCODE ROLE|UNIT-HASHCODE|DEVICE", .min_args = 2, .max_args = 2,
	.summary = "take a faulty unit or a spare out of a running array",
};
