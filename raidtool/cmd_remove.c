/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "cli.h"
#include "commands.h"

/* A faulty unit (or a spare) leaves a running array. */
int cmd_remove(int argc, const char **argv)
{
	struct poptOption opts[] = {
		POPT_AUTOHELP
		POPT_TABLEEND
	};
	const char **args;
	poptContext pc;
	int n, r;

	r = cli_parse("remove", "NAME|HASHCODE ROLE|UNIT-HASHCODE|DEVICE", argc, argv, opts, 2,
		      2, &pc, &args, &n);
	if (r >= 0)
		return r;
	r = cli_control_command(args[0], "cannot remove the unit", "remove", args[1]);
	poptFreeContext(pc);
	return r;
}
