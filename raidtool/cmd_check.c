/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "cli.h"
#include "commands.h"

/* Start a check (or repair) walk over a running array, in the background. */
int cmd_check(int argc, const char **argv)
{
	int repair = 0, cancel = 0;
	struct poptOption opts[] = {
		{ "repair", 'r', POPT_ARG_NONE, &repair, 0,
		  "rewrite parity/mirror copies that do not match", NULL },
		{ "cancel", 0, POPT_ARG_NONE, &cancel, 0,
		  "stop the running check or repair", NULL },
		POPT_AUTOHELP
		POPT_TABLEEND
	};
	const char **args;
	poptContext pc;
	int n, r;

	r = cli_parse("check", "NAME|HASHCODE", argc, argv, opts, 1, 1, &pc, &args, &n);
	if (r >= 0)
		return r;
	if (repair && cancel)
		r = cli_usage_error("check", "--repair and --cancel exclude each other");
	else if (cancel)
		r = cli_control_command(args[0], "cannot cancel", "cancel", "");
	else
		r = cli_control_command(args[0], repair ? "cannot start a repair" :
					"cannot start a check", repair ? "repair" : "check", "");
	poptFreeContext(pc);
	return r;
}
