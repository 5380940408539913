/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <raidtool/control.h>
#include <raidtool/unit.h>
#include "cli.h"
#include "commands.h"
#include "json-out.h"

static int force = 0, json = 0, speed = CLI_UNSET;
static const char *with = NULL;

static const struct poptOption replace_opts[] = {
	{ "with", 'w', POPT_ARG_STRING, &with, 0,
	  "the new unit (device or image file) that takes UNIT's place", "NEW" },
	{ "force", 'f', POPT_ARG_NONE, &force, 0,
	  "overwrite a NEW that holds a filesystem, other signature or raidtool superblock", NULL },
	{ "json", 0, POPT_ARG_NONE, &json, 0, "print the outcome as JSON", NULL },
	CLI_SPEED_LIMIT_OPT(speed),
	POPT_TABLEEND
};

/* The options on their own (run_named: before it looks for the array). */
static int replace_options(void)
{
	char arg[32];

	if (speed != CLI_UNSET && cli_speed_limit_arg("replace", speed, arg, sizeof(arg)) < 0)
		return EXIT_USAGE;
	return EXIT_OK;
}

/*
 * Hot replace on a running array: one request, "UNIT PATH" (PATH absolute:
 * the engine's cwd is /); the engine checks, writes and starts the copy.
 */
static int run_replace(int n, const char **args)
{
	struct rt_control_req rq = { .verb = RT_VERB_REPLACE, .force = force };
	char path[PATH_MAX], arg[2 * PATH_MAX + 2], name[RT_NAME_MAX + 1], msg[1024];
	char unit[PATH_MAX];
	struct json j;
	int r;

	if (!with || !*with)
		return cli_usage_error("replace", "give the new unit with --with NEW");
	if (strchr(args[1], ' '))
		return cli_usage_error("replace", "'%s': name the unit by role number, hashcode "
				       "or a device path without spaces", args[1]);
	if (!realpath(with, path)) {
		r = -errno;
		unit_log_open_error(with, r);
		return cli_fail(r, "'%s'", with);
	}
	snprintf(arg, sizeof(arg), "%s %s", cli_unit_arg(args[1], unit, sizeof(unit)), path);
	rq.arg = arg;
	r = cli_exit_code(cli_send_speed_limit("replace", args[0], speed));
	if (r != EXIT_OK)
		return r;
	if (!json)
		return cli_control_command(args[0], "cannot replace the unit", &rq);
	r = cli_exit_code(cli_control_send(args[0], "cannot replace the unit", &rq, name,
					   sizeof(name), msg, sizeof(msg)));
	if (r != EXIT_OK)
		return r;
	json_init(&j, stdout);
	json_object_begin(&j, NULL);
	json_str(&j, "array", name);
	json_str(&j, "unit", args[1]);
	json_str(&j, "with", path);
	json_str(&j, "message", msg);
	json_object_end(&j);
	json_finish(&j);
	return EXIT_OK;
}

const struct cli_command cmd_replace = {
	.name = "replace", .run = run_replace, .opts = replace_opts,
	.args = "NAME|HASHCODE ROLE|UNIT-HASHCODE|DEVICE --with NEW", .min_args = 2,
	.max_args = 2, .validate = replace_options,
	.summary = "copy a unit of a running array to a new one, then swap them (hot replace)",
};
