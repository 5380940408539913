/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <raidtool/control.h>
#include <raidtool/util.h>
#include "json-out.h"
#include "cli.h"
#include "commands.h"
#include "describe.h"

#define POLL_MS 250
#define POLL_MS_MIN 10

/*
 * Until the next look: POLL_MS, or less when the walk should end sooner.
 * @at_end: the walk was at its end at the last look already (its outcome
 * being recorded, which may take a while): no need to hurry.
 */
static long poll_ms(const struct rt_control_status *st, bool at_end)
{
	const struct rt_control_walk w = control_status_walk(st);
	uint64_t left;

	if (!w.speed || (at_end && w.done >= w.total))
		return POLL_MS;
	if (w.done >= w.total)
		return POLL_MS_MIN;
	left = (w.total - w.done) * 1000 / w.speed;
	return left < POLL_MS_MIN ? POLL_MS_MIN : left > POLL_MS ? POLL_MS : (long)left;
}

static void draw_bar(const struct rt_control_status *st)
{
	const struct rt_control_walk w = control_status_walk(st);
	char speed[32];
	double frac = w.total ? (double)w.done / (double)w.total : 0;
	int width = 30, fill = (int)(frac * width + 0.5);

	cli_format_size(w.speed, speed, sizeof(speed));
	fprintf(stderr, "\r%-10s [", control_walk_name(w.kind));
	for (int i = 0; i < width; i++)
		fputc(i < fill ? '#' : '.', stderr);
	fprintf(stderr, "] %5.1f%% %s/s", frac * 100.0, speed);
	if (w.speed)
		fprintf(stderr, " %" PRIu64 " s left", (w.total - w.done) / w.speed);
	fputs("   ", stderr);
	fflush(stderr);
}

static const char *walk_result(const struct rt_control_status *st)
{
	const struct rt_control_walk w = control_status_walk(st);

	if (w.kind == RT_WALK_NONE)
		return "none";
	if (w.result == -ECANCELED)
		return "cancelled";
	return w.result < 0 ? "failed" : "done";
}

static void print_json(const char *name, const struct rt_control_status *st)
{
	const struct rt_control_walk w = control_status_walk(st);
	struct json j;

	json_init(&j, stdout);
	json_object_begin(&j, NULL);
	json_str(&j, "name", name);
	json_str(&j, "walk", w.kind != RT_WALK_NONE ? control_walk_name(w.kind) : NULL);
	json_str(&j, "result", walk_result(st));
	json_str(&j, "error", w.result < 0 && w.result != -ECANCELED ?
		 strerror(-w.result) : NULL);
	json_u64(&j, "done", w.done);
	json_u64(&j, "total", w.total);
	if (describe_walk_has_role(w.kind))
		json_u64(&j, "role", w.role);
	json_u64(&j, "mismatches", w.mismatches);
	json_u64(&j, "repaired", w.repaired);
	if (w.kind == RT_WALK_REPAIR)
		describe_repair_json(&j, st);
	json_u64(&j, "regions", w.regions);
	json_u64(&j, "regions_total", w.regions_total);
	json_str(&j, "health", control_health_name(control_status_health(st)));
	json_object_end(&j);
	json_finish(&j);
}

static int progress = 0, as_json = 0;

static const struct poptOption wait_opts[] = {
	{ "progress", 'p', POPT_ARG_NONE, &progress, 0,
	  "show a progress bar on stderr (on a terminal only)", NULL },
	{ "json", 0, POPT_ARG_NONE, &as_json, 0, "print the result as JSON", NULL },
	POPT_TABLEEND
};

/* Block until the running array's current walk ends; print its result. */
static int run_wait(int n, const char **args)
{
	/* CLI_NEEDS_RUNNING: cli_run found the array, running. */
	const char *name = cli_target()->name;
	const uint8_t *uuid = cli_target()->uuid;
	struct rt_control_status *st;
	struct rt_control_walk w = { 0 };
	bool bar, drew = false, at_end = false;
	int r;

	st = control_status_new();
	if (!st) {
		r = cli_fail(-ENOMEM, "wait");
		goto out;
	}
	bar = progress && isatty(STDERR_FILENO);
	for (;;) {
		r = control_status(uuid, name, st);
		if (r < 0) {
			if (drew)
				fputc('\n', stderr);
			r = cli_fail_engine(r, name, uuid);
			goto out;
		}
		w = control_status_walk(st);
		if (!w.running)
			break;
		if (bar) {
			draw_bar(st);
			drew = true;
		}
		rt_sleep_ms(poll_ms(st, at_end));
		at_end = w.done >= w.total;
	}
	if (drew)
		fputc('\n', stderr);
	r = EXIT_OK;
	if (as_json) {
		print_json(name, st);
		if (w.result < 0 && w.result != -ECANCELED)
			r = EXIT_FAIL;
	} else if (w.kind == RT_WALK_NONE) {
		printf("'%s': nothing to wait for (no rebuild, replace, resync or check ran)\n", name);
	} else if (w.result == -ECANCELED) {
		printf("'%s': %s cancelled at %" PRIu64 " of %" PRIu64 " bytes\n", name,
		       control_walk_name(w.kind), w.done, w.total);
	} else if (w.result < 0) {
		cli_error("'%s': %s failed: %s", name, control_walk_name(w.kind),
			  strerror(-w.result));
		r = EXIT_FAIL;
	} else if (w.kind == RT_WALK_CHECK || w.kind == RT_WALK_REPAIR) {
		printf("'%s': %s done: %" PRIu64 " mismatches%s", name,
		       w.kind == RT_WALK_CHECK ? "check" : "repair", w.mismatches,
		       w.kind == RT_WALK_REPAIR ? "" : "\n");
		if (w.kind == RT_WALK_REPAIR) {
			printf(", %" PRIu64 " repaired", w.repaired);
			describe_repair_text(stdout, st);
			putchar('\n');
		}
	} else if (w.kind == RT_WALK_RESYNC) {
		printf("'%s': resync done: %" PRIu64 " of %" PRIu64 " regions\n", name,
		       w.regions, w.regions_total);
	} else if (w.kind == RT_WALK_REPLACE) {
		printf("'%s': replace of role %u done: the new unit took its place; the array is "
		       "%s\n", name, w.role, control_health_name(control_status_health(st)));
	} else {
		if (w.regions_total)
			printf("'%s': rebuild of role %u done: %" PRIu64 " of %" PRIu64 " regions "
			       "(re-added from the dirty-region log); the array is %s\n", name,
			       w.role, w.regions, w.regions_total,
			       control_health_name(control_status_health(st)));
		else
			printf("'%s': rebuild of role %u done; the array is %s\n", name,
			       w.role, control_health_name(control_status_health(st)));
	}
out:
	control_status_free(st);
	return r;
}

const struct cli_command cmd_wait = {
	.name = "wait", .run = run_wait, .opts = wait_opts,
	.args = "NAME|HASHCODE", .min_args = 1, .max_args = 1,
	.summary = "wait for a running array's rebuild, resync or check to end",
	.flags = CLI_NEEDS_RUNNING,
};
