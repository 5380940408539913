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
	struct rt_scan *s = NULL;
	int r;

	r = cli_exit_code(cli_scan_lookup(args[0], &s, &a));
	if (r != EXIT_OK)
		goto out;
	if (as_json) {
		struct json j;

		json_init(&j, stdout);
		json_object_begin(&j, NULL);
		describe_array_json(&j, &a->sb);
		json_u64(&j, "units_present", a->n_present_roles);
		json_object_end(&j);
		json_finish(&j);
	} else {
		describe_array_text(stdout, &a->sb);
		printf("     present: %u of %u units\n", a->n_present_roles, a->sb.array.n_devices);
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
