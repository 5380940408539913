/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <limits.h>
#include <raidtool/control.h>
#include "cli.h"
#include "commands.h"


static int as_json = 0;

static const struct poptOption remove_opts[] = {
	{ "json", 0, POPT_ARG_NONE, &as_json, 0, "print what was done as JSON", NULL },
	POPT_TABLEEND
};

/* A faulty unit (or a spare) leaves a running array. */
static int run_remove(int n, const char **args)
{
	char unit[PATH_MAX];
	const struct rt_control_req rq = { .verb = RT_VERB_REMOVE,
					   .arg = cli_unit_arg(args[1], unit, sizeof(unit)) };

	return cli_unit_command(args[0], "cannot remove the unit", &rq, as_json);
}

const struct cli_command cmd_remove = {
	.name = "remove", .run = run_remove, .opts = remove_opts,
	.args = "NAME|HASHCODE ROLE|UNIT-HASHCODE|DEVICE", .min_args = 2, .max_args = 2,
	.summary = "take a faulty unit or a spare out of a running array",
	.flags = CLI_NEEDS_RUNNING,
};
