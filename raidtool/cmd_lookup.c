/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <raidtool/scan.h>
#include "cli.h"
#include "commands.h"
#include "describe.h"
#include "json-out.h"

static int as_json = 0;

static const struct poptOption lookup_opts[] = {
	{ "json", 0, POPT_ARG_NONE, &as_json, 0, "print JSON", NULL },
	POPT_TABLEEND
};

/* The driver's lookup.device: one array's descriptor. */
static int run_lookup(int n, const char **args)
{
	const struct rt_scan_array *a;
	const struct rt_sb *sb;
	struct rt_scan *s = NULL;
	int r;

	r = cli_exit_code(cli_scan_lookup(args[0], &s, &a));
	if (r != EXIT_OK)
		goto out;
	sb = scan_array_sb(a);
	if (as_json) {
		struct json j;

		json_init(&j, stdout);
		json_object_begin(&j, NULL);
		describe_array_json(&j, sb);
		json_u64(&j, "units_present", scan_array_roles_present(a));
		json_object_end(&j);
		json_finish(&j);
	} else {
		describe_array_text(stdout, sb);
		printf("     present: %u of %u units\n", scan_array_roles_present(a),
		       sb->array.n_devices);
	}
	r = EXIT_OK;
out:
	scan_free(s);
	return r;
}

const struct cli_command cmd_lookup = {
	.name = "lookup", .run = run_lookup, .opts = lookup_opts,
	.args = "NAME|HASHCODE", .min_args = 1, .max_args = 1,
	.summary = "show one array's descriptor",
};
