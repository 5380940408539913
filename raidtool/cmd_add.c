/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <raidtool/admin.h>
#include "cli.h"
#include "commands.h"
#include "describe.h"
#include "json-out.h"

static int force = 0, speed = CLI_UNSET, as_json = 0;

static const struct poptOption add_opts[] = {
	{ "force", 'f', POPT_ARG_NONE, &force, 0,
	  "overwrite units that hold a filesystem, other signature or raidtool superblock", NULL },
	CLI_SPEED_LIMIT_OPT(speed),
	{ "json", 0, POPT_ARG_NONE, &as_json, 0, "print what was done as JSON", NULL },
	POPT_TABLEEND
};

/* What was added: also the units added before one failed. */
static void print_added(const struct rt_add_result *res)
{
	struct json j;

	if (!as_json) {
		for (size_t i = 0; i < res->n_added; i++) {
			if (res->running)
				printf("'%s': %s\n", res->name, res->added[i].msg);
			else
				printf("added '%s' to array '%s'\n", res->added[i].path, res->name);
		}
		return;
	}
	json_init(&j, stdout);
	json_object_begin(&j, NULL);
	describe_array_id_json(&j, res->name, res->uuid, res->hashcode);
	json_bool(&j, "running", res->running);
	json_array_begin(&j, "units");
	for (size_t i = 0; i < res->n_added; i++) {
		const struct rt_added_unit *a = &res->added[i];

		json_object_begin(&j, NULL);
		json_str(&j, "path", a->path);
		describe_unit_change_json(&j, "unit", res->n_devices, a->unit);
		json_str(&j, "message", a->msg[0] ? a->msg : NULL);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_object_end(&j);
	json_finish(&j);
}

/* The library finds out whether an engine runs the array, and asks it or writes itself. */
static int run_add(int n, const char **args)
{
	struct rt_add_opts o = { .force = force, .speed_limit = -1 };
	struct rt_add_result *res = NULL;
	char arg[32];
	int r;

	if (speed != CLI_UNSET) {
		r = cli_exit_code(cli_speed_limit_arg("add", speed, arg, sizeof(arg)));
		if (r != EXIT_OK)
			return r;
		o.speed_limit = strtoll(arg, NULL, 10);
	}
	r = admin_add_units(args[0], args + 1, (size_t)(n - 1), &o, &res);
	if (res && res->n_added)
		print_added(res);
	if (r < 0)
		r = cli_fail(r, "'%s': cannot add units", args[0]);
	else
		r = EXIT_OK;
	admin_add_result_free(res);
	return r;
}

const struct cli_command cmd_add = {
	.name = "add", .run = run_add, .opts = add_opts,
	.args = "NAME|HASHCODE UNIT...", .min_args = 2, .max_args = -1,
	.summary = "add units to an array (missing roles first, then spares)",
};
