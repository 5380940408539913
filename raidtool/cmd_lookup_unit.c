/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <raidtool/unit.h>
#include "cli.h"
#include "commands.h"
#include "describe.h"
#include <raidtool/json.h>

/* The driver's lookup.unit: one unit's descriptor. */
int cmd_lookup_unit(int argc, const char **argv)
{
	int as_json = 0;
	struct poptOption opts[] = {
		{ "json", 0, POPT_ARG_NONE, &as_json, 0, "print JSON", NULL },
		POPT_AUTOHELP
		POPT_TABLEEND
	};
	const char **args;
	struct rt_sb sb;
	poptContext pc;
	int n, r;

	r = cli_parse("lookup-unit", "UNIT", argc, argv, opts, 1, 1, &pc, &args, &n);
	if (r >= 0)
		return r;
	r = cli_read_unit(args[0], &sb, NULL, false, NULL);
	if (r >= 0)
		goto out;
	if (as_json) {
		struct json j;

		json_init(&j, stdout);
		json_object_begin(&j, NULL);
		json_str(&j, "unit", args[0]);
		describe_unit_json(&j, &sb);
		json_object_end(&j);
		json_finish(&j);
	} else {
		printf("%s:\n", args[0]);
		describe_unit_text(stdout, &sb);
	}
	r = EXIT_OK;
out:
	poptFreeContext(pc);
	return r;
}
