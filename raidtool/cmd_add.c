/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <raidtool/array.h>
#include "cli.h"
#include "commands.h"

int cmd_add(int argc, const char **argv)
{
	int force = 0;
	struct poptOption opts[] = {
		{ "force", 'f', POPT_ARG_NONE, &force, 0,
		  "overwrite units that hold a filesystem, other signature or raidtool superblock", NULL },
		POPT_AUTOHELP
		POPT_TABLEEND
	};
	const char **args;
	poptContext pc;
	struct rt_sb sb;
	int n, r;

	r = cli_parse("add", "NAME|HASHCODE UNIT...", argc, argv, opts, 2, -1, &pc, &args, &n);
	if (r >= 0)
		return r;
	r = array_add(args[0], args + 1, (size_t)(n - 1), force, &sb);
	if (r < 0) {
		r = cli_fail(r, "'%s': cannot add units", args[0]);
		goto out;
	}
	for (int i = 1; i < n; i++)
		printf("added '%s' to array '%s'\n", args[i], sb.array.name);
	r = EXIT_OK;
out:
	poptFreeContext(pc);
	return r;
}
