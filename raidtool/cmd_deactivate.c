/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <raidtool/activate.h>
#include <raidtool/lock.h>
#include "cli.h"
#include "commands.h"
#include "json-out.h"

static int as_json = 0;

static const struct poptOption deactivate_opts[] = {
	{ "json", 0, POPT_ARG_NONE, &as_json, 0, "print what was done as JSON", NULL },
	POPT_TABLEEND
};

/* What verdict_of found for an array whose engine had died (RECOVERED). */
static const char *after_recovery(int verdict)
{
	return verdict == 0 ? "can-activate" : verdict == 1 ? "needs-force" : "cannot-activate";
}

static void print_json(const struct rt_deactivate_result *res)
{
	bool recovered = res->how == RT_DEACTIVATE_RECOVERED;
	struct json j;

	json_init(&j, stdout);
	json_object_begin(&j, NULL);
	json_str(&j, "name", res->name);
	json_uuid(&j, "uuid", res->uuid);
	json_str(&j, "result", recovered ? "recovered" : "stopped");
	json_i64(&j, "pid", res->pid);
	json_str(&j, "superblocks", recovered || res->note[0] ? "dirty" : "clean");
	json_str(&j, "message", !recovered && res->note[0] ? res->note : NULL);
	json_str(&j, "cleaned_up", recovered && res->did[0] ? res->did : NULL);
	json_str(&j, "activation", recovered ? after_recovery(res->verdict) : NULL);
	json_str(&j, "reason", recovered && res->verdict != 0 && res->why[0] ? res->why : NULL);
	json_object_end(&j);
	json_finish(&j);
}

/* Stop a running array, or clean up after an engine that died. */
static int run_deactivate(int n, const char **args)
{
	struct rt_deactivate_result res;
	int r, lock_fd = -1;

	/* After an activate, add, fail, ... of the array that is under way. */
	r = cli_exit_code(cli_lock_array(args[0], &lock_fd));
	if (r != EXIT_OK)
		goto out;
	r = deactivate_array(args[0], &res);
	lock_release(lock_fd);
	if (r < 0) {
		r = cli_fail(r, "'%s': cannot deactivate", args[0]);
	} else if (as_json) {
		print_json(&res);
		r = EXIT_OK;
	} else if (res.how == RT_DEACTIVATE_RECOVERED) {
		printf("'%s': the engine (pid %d) had died; cleaned up%s%s\n", res.name,
		       (int)res.pid, res.did[0] ? ": " : "", res.did);
		if (res.verdict == 0)
			printf("'%s': superblocks left dirty (unclean stop); the array can be "
			       "activated again (it resyncs)\n", res.name);
		else if (res.verdict == 1)
			printf("'%s': superblocks left dirty (unclean stop); the array is %s: "
			       "'raidtool activate --force %s' starts it, see raidtool(8) for "
			       "the risk\n", res.name, res.why, res.name);
		else
			printf("'%s': superblocks left dirty (unclean stop); the array cannot "
			       "be activated as it is: %s (see 'raidtool list --units %s' and "
			       "'activate --force' in raidtool(8))\n", res.name, res.why, res.name);
		r = EXIT_OK;
	} else {
		printf("'%s': stopped (engine pid %d); %s\n", res.name, (int)res.pid,
		       res.note[0] ? res.note : "superblocks marked clean");
		r = EXIT_OK;
	}
out:
	return r;
}

const struct cli_command cmd_deactivate = {
	.name = "deactivate", .run = run_deactivate, .opts = deactivate_opts,
	.args = "NAME|HASHCODE", .min_args = 1, .max_args = 1,
	.summary = "stop a running array (or clean up after a dead engine)",
};
