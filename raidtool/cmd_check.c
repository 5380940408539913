/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "json-out.h"
#include <raidtool/control.h>
#include "cli.h"
#include "commands.h"

static int repair = 0, cancel = 0, as_json = 0, prefer = CLI_UNSET, speed = CLI_UNSET;

static const struct poptOption check_opts[] = {
	{ "repair", 'r', POPT_ARG_NONE, &repair, 0,
	  "rewrite parity/mirror copies that do not match", NULL },
	{ "prefer", 0, POPT_ARG_INT, &prefer, 0,
	  "raid1 repair: where mirrors tie, keep this role's copy", "ROLE" },
	{ "cancel", 0, POPT_ARG_NONE, &cancel, 0,
	  "stop the running check or repair", NULL },
	CLI_SPEED_LIMIT_OPT(speed),
	{ "json", 0, POPT_ARG_NONE, &as_json, 0, "print JSON", NULL },
	POPT_TABLEEND
};

/* The options on their own (run_named: before it looks for the array). */
static int check_options(void)
{
	char arg[32];

	if (repair && cancel)
		return cli_usage_error("check", "--repair and --cancel exclude each other");
	if (prefer != CLI_UNSET && !repair)
		return cli_usage_error("check", "--prefer needs --repair");
	if (prefer != CLI_UNSET && prefer < 0)
		return cli_usage_error("check", "--prefer: '%d' is not a role", prefer);
	if (speed != CLI_UNSET && cancel)
		return cli_usage_error("check", "--speed-limit and --cancel exclude each other");
	if (speed != CLI_UNSET && cli_speed_limit_arg("check", speed, arg, sizeof(arg)) < 0)
		return EXIT_USAGE;
	return EXIT_OK;
}

/* Start a check (or repair) walk over a running array, in the background. */
static int run_check(int n, const char **args)
{
	char name[RT_NAME_MAX + 1], msg[1024], arg[32] = "";
	struct rt_control_req rq;
	const char *what;
	struct json j;
	int r;

	if (prefer != CLI_UNSET)
		snprintf(arg, sizeof(arg), "prefer=%d", prefer);
	r = cli_exit_code(cli_send_speed_limit("check", args[0], speed));
	if (r != EXIT_OK)
		goto out;
	rq.verb = cancel ? RT_VERB_CANCEL : repair ? RT_VERB_REPAIR : RT_VERB_CHECK;
	rq.arg = arg;
	what = cancel ? "cannot cancel" : repair ? "cannot start a repair" : "cannot start a check";
	r = cli_exit_code(cli_control_send(args[0], what, &rq, name, sizeof(name), msg, sizeof(msg)));
	if (r != EXIT_OK)
		goto out;
	if (as_json) {
		json_init(&j, stdout);
		json_object_begin(&j, NULL);
		json_str(&j, "name", name);
		json_str(&j, "request", control_verb_name(rq.verb));
		json_str(&j, "message", msg);
		json_object_end(&j);
		json_finish(&j);
	} else if (msg[0]) {
		printf("'%s': %s\n", name, msg);
	}
	r = EXIT_OK;
out:
	return r;
}

const struct cli_command cmd_check = {
	.name = "check", .run = run_check, .opts = check_opts,
	.args = "NAME|HASHCODE", .min_args = 1, .max_args = 1,
	.summary = "verify (or --repair) parity and mirrors of a running array",
	.flags = CLI_NEEDS_RUNNING, .validate = check_options,
};
