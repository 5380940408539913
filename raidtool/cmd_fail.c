/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <raidtool/control.h>
#include <raidtool/scan.h>
#include "cli.h"
#include "commands.h"


/* Mark a unit of a running array faulty, as if it had failed an I/O. */
int cmd_fail(int argc, const char **argv)
{
	int force = 0;
	struct poptOption opts[] = {
		{ "force", 'f', POPT_ARG_NONE, &force, 0,
		  "fail it even when the array cannot take writes without it", NULL },
		POPT_AUTOHELP
		POPT_TABLEEND
	};
	char arg[PATH_MAX + 16];
	const char **args;
	poptContext pc;
	int n, r;

	r = cli_parse("fail", "NAME|HASHCODE ROLE|UNIT-HASHCODE|DEVICE", argc, argv,
		      opts, 2, 2, &pc, &args, &n);
	if (r >= 0)
		return r;
	snprintf(arg, sizeof(arg), "%s%s", force ? "--force " : "", args[1]);
	r = cli_control_command(args[0], "cannot fail the unit", "fail", arg);
	poptFreeContext(pc);
	return r;
}
