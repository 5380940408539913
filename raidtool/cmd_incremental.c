/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <raidtool/incremental.h>
#include "json-out.h"
#include "cli.h"
#include "commands.h"

#define DEFAULT_TIMEOUT 30	/* seconds, as mdadm's last-resort timer */

enum output { OUT_TEXT, OUT_EXPORT, OUT_JSON };

static void print_export(const struct rt_incremental_result *res)
{
	char uuid[37];

	cli_format_uuid(res->uuid, uuid);
	printf("RAIDTOOL_NAME=%s\n", res->name);
	printf("RAIDTOOL_UUID=%s\n", uuid);
	printf("RAIDTOOL_HASHCODE=%08x\n", res->hashcode);
	printf("RAIDTOOL_STARTED=%s\n", incremental_started_name(res->started));
	printf("RAIDTOOL_UNITS_PRESENT=%u\n", res->n_present);
	printf("RAIDTOOL_UNITS_EXPECTED=%u\n", res->n_expected);
	if (res->link[0])
		printf("RAIDTOOL_ARRAY_DEVICE=%s\n", res->link);
	if (res->readded)
		printf("RAIDTOOL_READDED=yes\n");
}

static void print_json(const struct rt_incremental_result *res)
{
	struct json j;

	json_init(&j, stdout);
	json_object_begin(&j, NULL);
	json_str(&j, "name", res->name);
	json_uuid(&j, "uuid", res->uuid);
	json_hash(&j, "hashcode", res->hashcode);
	json_str(&j, "started", incremental_started_name(res->started));
	json_u64(&j, "units_present", res->n_present);
	json_u64(&j, "units_expected", res->n_expected);
	json_u64(&j, "n_devices", res->n_devices);
	json_bool(&j, "waiting", res->waiter);
	json_bool(&j, "readded", res->readded);
	json_str(&j, "message", res->msg[0] ? res->msg : NULL);
	json_str(&j, "device", res->link[0] ? res->link : NULL);
	json_object_end(&j);
	json_finish(&j);
}

static void print_text(const struct rt_incremental_result *res, const struct rt_incremental_opts *o)
{
	switch (res->started) {
	case RT_INC_ALREADY:
		printf("'%s': already active%s%s\n", res->name, res->link[0] ? " on " : "",
		       res->link);
		if (res->readded)
			printf("'%s': %s\n", res->name, res->msg);
		break;
	case RT_INC_YES:
		if (o->no_start)
			printf("'%s': %u of %u roles present: ready to start\n", res->name,
			       res->n_present, res->n_devices);
		else
			printf("'%s': %u of %u roles present: active on %s\n", res->name,
			       res->n_present, res->n_devices, res->link);
		break;
	case RT_INC_UNSAFE:
		printf("'%s': %u of %u roles present: enough to run degraded, waiting for the rest",
		       res->name, res->n_present, res->n_devices);
		if (res->waiter)
			printf(" (starts degraded in %u s unless they appear)", o->timeout);
		printf("; '--run' starts it now\n");
		break;
	default:
		if (res->name[0])
			printf("'%s': %u of %u roles present: not enough to start\n", res->name,
			       res->n_present, res->n_devices);
	}
}

static void print_result(const struct rt_incremental_result *res,
			 const struct rt_incremental_opts *o, enum output out)
{
	if (out == OUT_EXPORT)
		print_export(res);
	else if (out == OUT_JSON)
		print_json(res);
	else
		print_text(res, o);
}

struct scan_ctx {
	const struct rt_incremental_opts *o;
	enum output out;
	int failed;
};

static void scan_report(const struct rt_incremental_result *res, int err, void *arg)
{
	struct scan_ctx *c = arg;

	if (err < 0) {
		c->failed = cli_fail(err, "'%s': cannot start", res->name[0] ? res->name : "?");
		return;
	}
	if (c->out == OUT_TEXT)
		print_text(res, c->o);
}

static int parse_timeout(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > 24 * 3600)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

static int as_export = 0, as_json = 0, run = 0, no_start = 0, remove_unit = 0, scan = 0;
static char *timeout_arg = NULL;

static const struct poptOption incremental_opts[] = {
	{ "export", 0, POPT_ARG_NONE, &as_export, 0,
	  "print RAIDTOOL_*=value lines for udev", NULL },
	{ "json", 0, POPT_ARG_NONE, &as_json, 0, "print JSON", NULL },
	{ "run", 'R', POPT_ARG_NONE, &run, 0,
	  "start the array now, degraded if units are missing", NULL },
	{ "no-start", 0, POPT_ARG_NONE, &no_start, 0,
	  "record and decide only; something else (systemd) starts the array", NULL },
	{ "timeout", 't', POPT_ARG_STRING, &timeout_arg, 0,
	  "start a degraded array after SECONDS without its last units (default 30, "
	  "$RAIDTOOL_INCREMENTAL_TIMEOUT; 0: never)", "SECONDS" },
	{ "remove", 'r', POPT_ARG_NONE, &remove_unit, 0,
	  "the device went away: fail and remove its unit from a running array", NULL },
	{ "scan", 's', POPT_ARG_NONE, &scan, 0,
	  "start every recorded array that can run (with --run: degraded too)", NULL },
	POPT_TABLEEND
};

/* Incremental assembly: what the udev rule runs for every unit that appears or goes. */
static int run_incremental(int n, const char **args)
{
	struct rt_incremental_opts o = { 0 };
	struct rt_incremental_result res;
	enum output out;
	const char *env;
	int r;

	if (as_export && as_json) {
		r = cli_usage_error("incremental", "--json and --export exclude each other");
		goto out;
	}
	if (remove_unit && (scan || run || no_start)) {
		r = cli_usage_error("incremental", "--remove takes none of --scan, --run, --no-start");
		goto out;
	}
	if (scan ? n != 0 : n != 1) {
		r = cli_usage_error("incremental", scan ? "--scan takes no DEVICE"
						       : "exactly one DEVICE is needed");
		goto out;
	}
	out = as_export ? OUT_EXPORT : as_json ? OUT_JSON : OUT_TEXT;
	o.run = run;
	o.no_start = no_start;
	o.timeout = DEFAULT_TIMEOUT;
	env = getenv("RAIDTOOL_INCREMENTAL_TIMEOUT");
	if (!timeout_arg && env && *env && parse_timeout(env, &o.timeout) < 0) {
		cli_error("RAIDTOOL_INCREMENTAL_TIMEOUT='%s': not a number of seconds", env);
		o.timeout = DEFAULT_TIMEOUT;
	}
	if (timeout_arg && parse_timeout(timeout_arg, &o.timeout) < 0) {
		r = cli_usage_error("incremental", "--timeout '%s': not a number of seconds",
				    timeout_arg);
		goto out;
	}

	if (scan) {
		struct scan_ctx c = { &o, out, EXIT_OK };

		r = incremental_start_waiting(&o, scan_report, &c);
		r = r < 0 && c.failed == EXIT_OK ? cli_fail(r, "cannot read the map") : c.failed;
		goto out;
	}
	if (remove_unit) {
		r = incremental_remove(args[0], &res);
		if (r == -ENOENT) {
			r = as_export ? EXIT_OK : cli_fail(r, "'%s': not a recorded unit", args[0]);
			goto out;
		}
		if (r < 0) {
			r = cli_fail(r, "'%s': cannot remove unit %08x from '%s'", args[0],
				     res.unit_hashcode, res.name);
			goto out;
		}
		if (out == OUT_TEXT && res.msg[0])
			printf("'%s': %s\n", res.name, res.msg);
		else if (out == OUT_TEXT)
			printf("'%s': unit %08x forgotten (the array is not running)\n", res.name,
			       res.unit_hashcode);
		else
			print_result(&res, &o, out);
		r = EXIT_OK;
		goto out;
	}

	r = incremental_add(args[0], &o, &res);
	if (r == -ENODATA) {
		/* For udev, a device that is not a unit is simply not ours. */
		r = as_export ? EXIT_OK : cli_fail(-ENOENT, "'%s': no raidtool superblock", args[0]);
		goto out;
	}
	if (r == -ENOTBLK) {
		r = cli_fail(r, "'%s': not a block device (attach a file with losetup first)",
			     args[0]);
		goto out;
	}
	if (r < 0) {
		r = cli_fail(r, res.name[0] ? "'%s': cannot start" : "'%s': cannot record the unit",
			     res.name[0] ? res.name : args[0]);
		/* udev imports nothing from a program that fails: say "no" and succeed. */
		if (as_export && res.name[0]) {
			print_export(&res);
			r = EXIT_OK;
		}
		goto out;
	}
	print_result(&res, &o, out);
	r = EXIT_OK;
out:
	return r;
}

const struct cli_command cmd_incremental = {
	.name = "incremental", .run = run_incremental, .opts = incremental_opts,
	.args = "DEVICE", .min_args = 0, .max_args = 1,
	.summary = "record a unit that appeared (udev); start its array " "once complete",
};
