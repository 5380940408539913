/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <raidtool/control.h>
#include "cli.h"
#include "commands.h"

static int tries = CLI_UNSET, window = CLI_UNSET, speed = CLI_UNSET;

static const struct poptOption tune_opts[] = {
	{ "io-retries", 0, POPT_ARG_INT, &tries, 0,
	  "try a failed unit read or write again up to N times before failing the unit", "N" },
	{ "io-retry-window", 0, POPT_ARG_INT, &window, 0,
	  "spread those tries over MS milliseconds", "MS" },
	CLI_SPEED_LIMIT_OPT(speed),
	POPT_TABLEEND
};

/* The options on their own (run_named: before it looks for the array). */
static int tune_options(void)
{
	char arg[32];

	if (tries == CLI_UNSET && window == CLI_UNSET && speed == CLI_UNSET)
		return cli_usage_error("tune", "give --io-retries, --io-retry-window, --speed-limit "
				       "or several");
	if ((tries != CLI_UNSET && tries < 0) || (window != CLI_UNSET && window < 0))
		return cli_usage_error("tune", "--io-retries and --io-retry-window take a number "
				       "of 0 or more");
	if (speed != CLI_UNSET && cli_speed_limit_arg("tune", speed, arg, sizeof(arg)) < 0)
		return EXIT_USAGE;
	return EXIT_OK;
}

/* Change how a running array treats unit I/O errors (tries before failing a unit). */
static int run_tune(int n, const char **args)
{
	struct rt_control_status *st = NULL;
	struct rt_control_req rq = { 0 };
	char name[RT_NAME_MAX + 1], arg[64];
	uint8_t uuid[RT_UUID_SIZE];
	int r;

	if (speed != CLI_UNSET) {
		r = cli_exit_code(cli_speed_limit_arg("tune", speed, arg, sizeof(arg)));
		if (r != EXIT_OK)
			goto out;
		rq.verb = RT_VERB_SPEED;
		rq.arg = arg;
		r = cli_control_command(args[0], "cannot set the speed limit", &rq);
		if (r != EXIT_OK || (tries == CLI_UNSET && window == CLI_UNSET))
			goto out;
	}
	if (tries == CLI_UNSET || window == CLI_UNSET) {
		/* Keep the setting not given as it is. */
		r = cli_exit_code(cli_running_name(args[0], name, sizeof(name), uuid));
		if (r != EXIT_OK)
			goto out;
		st = control_status_new();
		r = st ? control_status(uuid, name, st) : -ENOMEM;
		if (r < 0) {
			r = cli_fail_engine(r, name, uuid);
			goto out;
		}
		if (tries == CLI_UNSET)
			tries = (int)control_status_retry_count(st);
		if (window == CLI_UNSET)
			window = (int)control_status_retry_window_ms(st);
	}
	snprintf(arg, sizeof(arg), "%d %d", tries, window);
	rq.verb = RT_VERB_TUNE;
	rq.arg = arg;
	r = cli_control_command(args[0], "cannot change the error retries", &rq);
out:
	control_status_free(st);
	return r;
}

const struct cli_command cmd_tune = {
	.name = "tune", .run = run_tune, .opts = tune_opts,
	.args = "NAME|HASHCODE", .min_args = 1, .max_args = 1,
	.summary = "change how a running array treats unit I/O errors",
	.flags = CLI_NEEDS_RUNNING, .validate = tune_options,
};
