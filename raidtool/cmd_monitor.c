/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * raidtool monitor: report the events of running arrays (lib/monitor.c)
 * on stdout, to syslog and to the admin's program.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>
#include <raidtool/control.h>
#include <raidtool/log.h>
#include <raidtool/monitor.h>
#include "cli.h"
#include "commands.h"
#include "json-out.h"

struct monitor_out {
	bool json;
	bool syslog;
	const char *program;
	int failures;			/* program runs that failed */
};

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* Engines come and go under the monitor: their messages are noise unless -v. */
static void monitor_log(int level, const char *msg, void *usrptr)
{
	(void)usrptr;
	if (cli_verbose && level <= RT_LOG_INFO)
		fprintf(stderr, "raidtool: %s\n", msg);
}

/* The program's third argument: the unit, else a check's mismatch count. */
static const char *third_arg(const struct rt_monitor_event_info *ev)
{
	if (ev->unit[0])
		return ev->unit;
	if (ev->event == RT_MONITOR_CHECK_FINISHED)
		return ev->detail;
	return NULL;
}

static void set_env(const struct rt_monitor_event_info *ev)
{
	char hash[16], uuid[37], role[16];

	snprintf(hash, sizeof(hash), "%08x", ev->hashcode);
	uuid_unparse_lower(ev->uuid, uuid);
	snprintf(role, sizeof(role), "%d", (int)ev->role);
	setenv("RAIDTOOL_EVENT", monitor_event_name(ev->event), 1);
	setenv("RAIDTOOL_ARRAY", ev->array, 1);
	setenv("RAIDTOOL_HASHCODE", hash, 1);
	setenv("RAIDTOOL_UUID", uuid, 1);
	setenv("RAIDTOOL_UNIT", ev->unit, 1);
	setenv("RAIDTOOL_ROLE", ev->role >= 0 ? role : "", 1);
	setenv("RAIDTOOL_DETAIL", ev->detail, 1);
}

/* mdadm's PROGRAM: EVENT ARRAY [UNIT], waited for so that events stay in order. */
static void run_program(struct monitor_out *o, const struct rt_monitor_event_info *ev)
{
	const char *argv[5] = { o->program, monitor_event_name(ev->event), ev->array,
				third_arg(ev), NULL };
	int wstatus;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		cli_error("monitor: cannot run '%s': %s", o->program, strerror(errno));
		o->failures++;
		return;
	}
	if (pid == 0) {
		/* Its output never mixes with the events (a --json stream stays JSON). */
		dup2(STDERR_FILENO, STDOUT_FILENO);
		set_env(ev);
		execvp(o->program, (char *const *)argv);
		fprintf(stderr, "raidtool: monitor: cannot run '%s': %s\n", o->program,
			strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &wstatus, 0) < 0)
		if (errno != EINTR)
			return;
	if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
		cli_error("monitor: '%s %s %s' failed (%s %d)", o->program,
			  monitor_event_name(ev->event), ev->array,
			  WIFEXITED(wstatus) ? "exit status" : "signal",
			  WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : WTERMSIG(wstatus));
		o->failures++;
	}
}

static void print_json_line(const struct rt_monitor_event_info *ev, uint64_t now)
{
	char when[64];
	struct json j;

	cli_format_time(now, when, sizeof(when));
	json_init_compact(&j, stdout);
	json_object_begin(&j, NULL);
	json_str(&j, "time", when);
	json_str(&j, "event", monitor_event_name(ev->event));
	json_str(&j, "array", ev->array);
	json_hash(&j, "hashcode", ev->hashcode);
	json_uuid(&j, "uuid", ev->uuid);
	json_str(&j, "unit", ev->unit[0] ? ev->unit : NULL);
	if (ev->role >= 0)
		json_i64(&j, "role", ev->role);
	else
		json_str(&j, "role", NULL);
	json_str(&j, "walk", ev->walk[0] ? ev->walk : NULL);
	json_str(&j, "detail", ev->detail[0] ? ev->detail : NULL);
	json_object_end(&j);
	json_finish(&j);
}

/* "Fail array t1 unit /dev/loop3 (role 1)": one line for stdout and syslog. */
static void describe(const struct rt_monitor_event_info *ev, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "%s array %s", monitor_event_name(ev->event),
				    ev->array[0] ? ev->array : "?");

	if (n < len && ev->unit[0])
		n += (size_t)snprintf(buf + n, len - n, " unit %s", ev->unit);
	if (n < len && ev->role >= 0)
		n += (size_t)snprintf(buf + n, len - n, " (role %d)", (int)ev->role);
	if (n < len && ev->event == RT_MONITOR_CHECK_FINISHED)
		n += (size_t)snprintf(buf + n, len - n, ": %s, %s mismatches", ev->walk,
				      ev->detail);
	else if (n < len && ev->detail[0])
		n += (size_t)snprintf(buf + n, len - n, ": %s", ev->detail);
	if (n < len && ev->walk[0] && ev->event != RT_MONITOR_CHECK_FINISHED)
		snprintf(buf + n, len - n, " (%s)", ev->walk);
}

static void on_event(const struct rt_monitor_event_info *ev, void *arg)
{
	struct monitor_out *o = arg;
	char line[512], when[64];
	uint64_t now = (uint64_t)time(NULL);

	describe(ev, line, sizeof(line));
	if (o->json) {
		print_json_line(ev, now);
	} else {
		cli_format_time(now, when, sizeof(when));
		printf("%s %s\n", when, line);
	}
	fflush(stdout);
	if (o->syslog)
		syslog(monitor_event_critical(ev->event) ? LOG_CRIT : LOG_INFO, "%s", line);
	if (o->program)
		run_program(o, ev);
}

static void sleep_until_stopped(double seconds)
{
	struct timespec ts = { .tv_sec = (time_t)seconds,
			       .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9) };

	/* A stop signal ends the sleep (no SA_RESTART). */
	if (!stop_requested)
		nanosleep(&ts, NULL);
}

static int scan = 0, oneshot = 0, as_json = 0, use_syslog = 0;
static double delay = 1.0;
static const char *program = NULL;

static const struct poptOption monitor_opts[] = {
	{ "scan", 0, POPT_ARG_NONE, &scan, 0,
	  "follow every array on this machine, those started later too", NULL },
	{ "program", 0, POPT_ARG_STRING, &program, 0,
	  "run CMD EVENT ARRAY [UNIT] for every event", "CMD" },
	{ "oneshot", '1', POPT_ARG_NONE, &oneshot, 0,
	  "report what is true now (degraded arrays, rebuilds) and exit", NULL },
	{ "json", 0, POPT_ARG_NONE, &as_json, 0, "one JSON object per event and line", NULL },
	{ "syslog", 0, POPT_ARG_NONE, &use_syslog, 0, "send the events to syslog too", NULL },
	{ "delay", 'd', POPT_ARG_DOUBLE, &delay, 0,
	  "look at the arrays every SECONDS (default 1)", "SECONDS" },
	POPT_TABLEEND
};

static int run_monitor(int n, const char **args)
{
	struct monitor_out out = { 0 };
	struct rt_monitor *m = NULL;
	struct sigaction sa = { .sa_handler = on_stop_signal };
	int r;

	if (scan && n > 0) {
		r = cli_usage_error("monitor", "--scan follows every array: name none with it");
		goto out;
	}
	if (!scan && n == 0) {
		r = cli_usage_error("monitor", "name the arrays to follow, or give --scan");
		goto out;
	}
	if (!(delay >= 0.05 && delay <= 3600)) {
		r = cli_usage_error("monitor", "--delay: %g: not between 0.05 and 3600 seconds",
				    delay);
		goto out;
	}
	out.json = as_json;
	out.syslog = use_syslog;
	out.program = program;
	r = monitor_new(args, (size_t)n, &m);
	if (r < 0) {
		r = cli_fail(r, "monitor");
		goto out;
	}
	if (use_syslog)
		openlog("raidtool-monitor", LOG_PID, LOG_DAEMON);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	rt_set_log(monitor_log, NULL);
	while (!stop_requested) {
		r = monitor_poll(m, on_event, &out);
		if (r < 0 || oneshot)
			break;
		sleep_until_stopped(delay);
	}
	if (r < 0)
		r = cli_fail(r, "monitor: cannot read the run directory '%s'", control_rundir());
	else
		r = out.failures && oneshot ? EXIT_FAIL : EXIT_OK;
	if (use_syslog)
		closelog();
out:
	monitor_free(m);
	return r;
}

const struct cli_command cmd_monitor = {
	.name = "monitor", .run = run_monitor, .opts = monitor_opts,
	.args = "[--scan | NAME|HASHCODE...]", .min_args = 0, .max_args = -1,
	.summary = "report failures, rebuilds and checks of running arrays "
		   "(stdout, syslog, a program)",
};
