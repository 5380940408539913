/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <raidtool/control.h>
#include <raidtool/scan.h>
#include "cli.h"
#include "commands.h"


static int force = 0, as_json = 0;

static const struct poptOption fail_opts[] = {
	{ "force", 'f', POPT_ARG_NONE, &force, 0,
	  "fail it even when the array cannot take writes without it", NULL },
	{ "json", 0, POPT_ARG_NONE, &as_json, 0, "print what was done as JSON", NULL },
	POPT_TABLEEND
};

/* Mark a unit of a running array faulty, as if it had failed an I/O. */
static int run_fail(int n, const char **args)
{
	char unit[PATH_MAX];
	const struct rt_control_req rq = { .verb = RT_VERB_FAIL, .force = force,
					   .arg = cli_unit_arg(args[1], unit, sizeof(unit)) };

	return cli_unit_command(args[0], "cannot fail the unit", &rq, as_json);
}

const struct cli_command cmd_fail = {
	.name = "fail", .run = run_fail, .opts = fail_opts,
	.args = "NAME|HASHCODE ROLE|UNIT-HASHCODE|DEVICE", .min_args = 2, .max_args = 2,
	.summary = "mark a unit of a running array faulty",
	.flags = CLI_NEEDS_RUNNING,
};
