/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <raidtool/unit.h>
#include "cli.h"
#include "commands.h"
#include "describe.h"
#include "json-out.h"

static int as_json = 0;

static const struct poptOption lookup_unit_opts[] = {
	{ "json", 0, POPT_ARG_NONE, &as_json, 0, "print JSON", NULL },
	POPT_TABLEEND
};

/* The driver's lookup.unit: one unit's descriptor. */
static int run_lookup_unit(int n, const char **args)
{
	struct rt_sb sb;
	int r;

	r = cli_exit_code(cli_read_unit(args[0], &sb, NULL, false, NULL));
	if (r != EXIT_OK)
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
	return r;
}

const struct cli_command cmd_lookup_unit = {
	.name = "lookup-unit", .run = run_lookup_unit, .opts = lookup_unit_opts,
	.args = "UNIT", .min_args = 1, .max_args = 1,
	.summary = "show one unit's descriptor",
};
