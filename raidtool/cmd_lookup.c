/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <raidtool/scan.h>
#include "cli.h"
#include "commands.h"
#include "describe.h"
#include <raidtool/json.h>

/* The driver's lookup.device: one array's descriptor. */
int cmd_lookup(int argc, const char **argv)
{
	int as_json = 0;
	struct poptOption opts[] = {
		{ "json", 0, POPT_ARG_NONE, &as_json, 0, "print JSON", NULL },
		POPT_AUTOHELP
		POPT_TABLEEND
	};
	const struct rt_scan_array *a;
	struct rt_scan *s = NULL;
	const char **args;
	poptContext pc;
	int n, r;

	r = cli_parse("lookup", "NAME|HASHCODE", argc, argv, opts, 1, 1, &pc, &args, &n);
	if (r >= 0)
		return r;
	r = cli_scan_lookup(args[0], &s, &a);
	if (r >= 0)
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
	poptFreeContext(pc);
	return r;
}
