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

/* Until the next look: POLL_MS, or less when the walk should end sooner. */
static long poll_ms(const struct rt_control_status *st)
{
	uint64_t left;

	if (!st->walk_speed)
		return POLL_MS;
	if (st->walk_done >= st->walk_total)
		return POLL_MS_MIN;
	left = (st->walk_total - st->walk_done) * 1000 / st->walk_speed;
	return left < POLL_MS_MIN ? POLL_MS_MIN : left > POLL_MS ? POLL_MS : (long)left;
}

static void draw_bar(const struct rt_control_status *st)
{
	char speed[32];
	double frac = st->walk_total ? (double)st->walk_done / (double)st->walk_total : 0;
	int width = 30, fill = (int)(frac * width + 0.5);

	cli_format_size(st->walk_speed, speed, sizeof(speed));
	fprintf(stderr, "\r%-10s [", control_walk_name(st->walk));
	for (int i = 0; i < width; i++)
		fputc(i < fill ? '#' : '.', stderr);
	fprintf(stderr, "] %5.1f%% %s/s", frac * 100.0, speed);
	if (st->walk_speed)
		fprintf(stderr, " %" PRIu64 " s left", (st->walk_total - st->walk_done) /
			st->walk_speed);
	fputs("   ", stderr);
	fflush(stderr);
}

static const char *walk_result(const struct rt_control_status *st)
{
	if (st->walk == RT_WALK_NONE)
		return "none";
	if (st->walk_result == -ECANCELED)
		return "cancelled";
	return st->walk_result < 0 ? "failed" : "done";
}

static void print_json(const char *name, const struct rt_control_status *st)
{
	struct json j;

	json_init(&j, stdout);
	json_object_begin(&j, NULL);
	json_str(&j, "name", name);
	json_str(&j, "walk", st->walk != RT_WALK_NONE ? control_walk_name(st->walk) : NULL);
	json_str(&j, "result", walk_result(st));
	json_str(&j, "error", st->walk_result < 0 && st->walk_result != -ECANCELED ?
		 strerror(-st->walk_result) : NULL);
	json_u64(&j, "done", st->walk_done);
	json_u64(&j, "total", st->walk_total);
	if (describe_walk_has_role(st->walk))
		json_u64(&j, "role", st->walk_role);
	json_u64(&j, "mismatches", st->mismatches);
	json_u64(&j, "repaired", st->repaired);
	if (st->walk == RT_WALK_REPAIR)
		describe_repair_json(&j, st);
	json_u64(&j, "regions", st->regions);
	json_u64(&j, "regions_total", st->regions_total);
	json_str(&j, "health", control_health_name(st->health));
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
	bool bar, drew = false;
	int r;

	st = calloc(1, sizeof(*st));
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
		if (!st->walk_running)
			break;
		if (bar) {
			draw_bar(st);
			drew = true;
		}
		rt_sleep_ms(poll_ms(st));
	}
	if (drew)
		fputc('\n', stderr);
	r = EXIT_OK;
	if (as_json) {
		print_json(name, st);
		if (st->walk_result < 0 && st->walk_result != -ECANCELED)
			r = EXIT_FAIL;
	} else if (st->walk == RT_WALK_NONE) {
		printf("'%s': nothing to wait for (no rebuild, replace, resync or check ran)\n", name);
	} else if (st->walk_result == -ECANCELED) {
		printf("'%s': %s cancelled at %" PRIu64 " of %" PRIu64 " bytes\n", name,
		       control_walk_name(st->walk), st->walk_done, st->walk_total);
	} else if (st->walk_result < 0) {
		cli_error("'%s': %s failed: %s", name, control_walk_name(st->walk),
			  strerror(-st->walk_result));
		r = EXIT_FAIL;
	} else if (st->walk == RT_WALK_CHECK || st->walk == RT_WALK_REPAIR) {
		printf("'%s': %s done: %" PRIu64 " mismatches%s", name,
		       st->walk == RT_WALK_CHECK ? "check" : "repair", st->mismatches,
		       st->walk == RT_WALK_REPAIR ? "" : "\n");
		if (st->walk == RT_WALK_REPAIR) {
			printf(", %" PRIu64 " repaired", st->repaired);
			describe_repair_text(stdout, st);
			putchar('\n');
		}
	} else if (st->walk == RT_WALK_RESYNC) {
		printf("'%s': resync done: %" PRIu64 " of %" PRIu64 " regions\n", name,
		       st->regions, st->regions_total);
	} else if (st->walk == RT_WALK_REPLACE) {
		printf("'%s': replace of role %u done: the new unit took its place; the array is "
		       "%s\n", name, st->walk_role, control_health_name(st->health));
	} else {
		if (st->regions_total)
			printf("'%s': rebuild of role %u done: %" PRIu64 " of %" PRIu64 " regions "
			       "(re-added from the dirty-region log); the array is %s\n", name,
			       st->walk_role, st->regions, st->regions_total,
			       control_health_name(st->health));
		else
			printf("'%s': rebuild of role %u done; the array is %s\n", name,
			       st->walk_role, control_health_name(st->health));
	}
out:
	free(st);
	return r;
}

const struct cli_command cmd_wait = {
	.name = "wait", .run = run_wait, .opts = wait_opts,
	.args = "NAME|HASHCODE", .min_args = 1, .max_args = 1,
	.summary = "wait for a running array's rebuild, resync or check to end",
	.flags = CLI_NEEDS_RUNNING,
};
