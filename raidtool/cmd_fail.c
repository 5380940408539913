/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <raidtool/control.h>
#include <raidtool/scan.h>
#include "cli.h"
#include "commands.h"


/* Mark a unit of a running array faulty, as if it had failed an I/O. */
int cmd_fail(int argc, const char **argv)
{
	struct poptOption opts[] = {
		POPT_AUTOHELP
		POPT_TABLEEND
	};
	const char **args;
	poptContext pc;
	int n, r;

	r = cli_parse("fail", "NAME|HASHCODE ROLE|UNIT-HASHCODE|DEVICE", argc, argv, opts, 2, 2,
		      &pc, &args, &n);
	if (r >= 0)
		return r;
	r = cli_control_command(args[0], "cannot fail the unit", "fail", args[1]);
	poptFreeContext(pc);
	return r;
}
