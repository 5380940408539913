/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <raidtool/activate.h>
#include <raidtool/control.h>
#include <raidtool/lock.h>
#include "cli.h"
#include "commands.h"
#include "activate_scan.h"
#include "describe.h"
#include "json-out.h"

/*
 * Under systemd (Type=notify) tell the service manager the device is ready:
 * one datagram to $NOTIFY_SOCKET, a path or, with '@', an abstract name.
 */
static void notify_systemd(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, strlen(path));
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, len) < 0 &&
	    cli_verbose)
		fprintf(stderr, "raidtool: cannot notify systemd: %s\n", strerror(errno));
	close(fd);
}

struct ready_ctx {
	int foreground;
	int as_json;
	int lock_fd;		/* the array's admin lock, held until the device is up */
};

/* The started array, from its engine (the control socket is up before it is ready). */
static void print_ready_json(const char *name, const char *link, const char *dev)
{
	struct rt_control_status *st = control_status_new();
	uint8_t uuid[RT_UUID_SIZE];
	char owner[RT_NAME_MAX + 1];
	bool have_st = false;
	struct json j;

	if (st && control_array_of_device(dev, owner, sizeof(owner), uuid) == 0)
		have_st = control_status(uuid, name, st) == 0;
	json_init(&j, stdout);
	json_object_begin(&j, NULL);
	if (have_st) {
		describe_array_id_json(&j, control_status_name(st), control_status_uuid(st),
				       control_status_hashcode(st));
	} else {
		json_str(&j, "name", name);
		json_str(&j, "uuid", NULL);
		json_str(&j, "hashcode", NULL);
	}
	json_str(&j, "device", link);
	json_str(&j, "loop_device", dev);
	json_str(&j, "state", have_st ? control_status_state(st) : "active");
	json_str(&j, "health", have_st && control_status_health(st) != RT_HEALTH_NONE ?
		 control_health_name(control_status_health(st)) : NULL);
	if (have_st)
		json_i64(&j, "pid", control_status_pid(st));
	else
		json_str(&j, "pid", NULL);
	json_object_end(&j);
	json_finish(&j);
	control_status_free(st);
}

static void print_ready(const char *name, const char *link, const char *dev, void *arg)
{
	struct ready_ctx *rc = arg;
	char state[512];

	/* Started: a deactivate waiting for us may go on (a foreground engine stays). */
	lock_release(rc->lock_fd);
	rc->lock_fd = -1;

	if (cli_verbose)
		fprintf(stderr, "raidtool: '%s': active on %s (%s)\n", name, link, dev);
	if (rc->as_json)
		print_ready_json(name, link, dev);
	else
		printf("%s\n", link);
	fflush(stdout);
	if (rc->foreground) {
		snprintf(state, sizeof(state), "READY=1\nSTATUS=active on %s (%s)", link, dev);
		notify_systemd(state);
	}
}

static int foreground = 0, force = 0, readonly = 0, scan = 0, run_degraded = 0, as_json = 0;

static const struct poptOption activate_opts[] = {
	{ "foreground", 'F', POPT_ARG_NONE, &foreground, 0,
	  "stay attached; stop cleanly on SIGTERM or SIGINT", NULL },
	{ "force", 'f', POPT_ARG_NONE, &force, 0,
	  "start a raid5 that is degraded and was not stopped cleanly; start an "
	  "array lacking too many roles from units marked faulty or behind "
	  "(forced assembly: see raidtool(8) for what can be lost)", NULL },
	{ "readonly", 'r', POPT_ARG_NONE, &readonly, 0,
	  "write nothing to the units: no superblock update, resync or walk; a "
	  "read-only block device", NULL },
	{ "scan", 's', POPT_ARG_NONE, &scan, 0,
	  "start every complete array found (after attaching the image files listed "
	  "in /etc/raidtool/units)", NULL },
	{ "run", 'R', POPT_ARG_NONE, &run_degraded, 0,
	  "with --scan: start degraded arrays too", NULL },
	{ "json", 0, POPT_ARG_NONE, &as_json, 0,
	  "print the started array (name, uuid, device, ...) as JSON; not with --scan", NULL },
	POPT_TABLEEND
};

/* The driver's activate: assemble, start the engine, show the block device. */
static int run_activate(int n, const char **args)
{
	struct rt_activate_opts o = { 0 };
	struct ready_ctx rc = { .lock_fd = -1 };
	int r;

	if (scan || run_degraded || n != 1) {
		if (as_json) {
			r = cli_usage_error("activate", "--json is for one array, not with --scan");
			goto out;
		}
		/* Boot without udev: activate_scan.c. */
		r = cli_exit_code(activate_scan_usage(scan, run_degraded, foreground, args, n));
		if (r == EXIT_OK)
			r = activate_scan(run_degraded, readonly, force, args, n);
		goto out;
	}
	r = cli_exit_code(cli_lock_array(args[0], &rc.lock_fd));
	if (r != EXIT_OK)
		goto out;
	rc.foreground = foreground;
	rc.as_json = as_json;
	o.id = args[0];
	o.foreground = foreground;
	o.force = force;
	o.readonly = readonly;
	o.ready = print_ready;
	o.arg = &rc;
	r = activate_array(&o);
	lock_release(rc.lock_fd);
	if (r == -EUCLEAN) {
		cli_fail(r, "'%s': cannot activate", args[0]);
		r = EXIT_REFUSED;
	} else if (r < 0) {
		r = cli_fail(r, "'%s': cannot activate", args[0]);
	} else {
		r = EXIT_OK;
	}
out:
	return r;
}

const struct cli_command cmd_activate = {
	.name = "activate", .run = run_activate, .opts = activate_opts,
	.args = "NAME|HASHCODE | --scan [UNIT...]", .min_args = 0, .max_args = -1,
	.summary = "start an array and show it as /dev/raidtool/NAME",
};
