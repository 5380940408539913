/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * deactivate: ask the engine to stop, or clean up after one that died.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <raidtool/activate.h>
#include <raidtool/array.h>
#include <raidtool/assemble.h>
#include <raidtool/control.h>
#include <raidtool/log.h>
#include <raidtool/scan.h>
#include <raidtool/util.h>
#include "run-internal.h"
#include "scan-internal.h"

#define EXIT_WAIT_MS 10000		/* for the engine process to go after `stop` */

/* ---- deactivate --------------------------------------------------------- */

/* Alive and not a zombie (a background engine's reaper may take its time). */
static bool pid_alive(pid_t pid)
{
	char path[64], buf[256], *close_paren;
	ssize_t n;
	int fd;

	if (pid <= 0 || (kill(pid, 0) < 0 && errno != EPERM))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno != ENOENT;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	close_paren = strrchr(buf, ')');
	return !(close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z');
}

/* The engine has replied; give its process a moment to leave. */
static void wait_exit(pid_t pid)
{
	for (long waited = 0; pid_alive(pid) && waited < EXIT_WAIT_MS; waited += 20)
		rt_sleep_ms(20);
}

/* After a dead engine's cleanup: can the array be activated again, and how? */
static void verdict_of(const uint8_t uuid[RT_UUID_SIZE], struct rt_deactivate_result *res)
{
	const struct rt_scan_array *a = NULL;
	struct rt_scan *scan = NULL;

	res->verdict = scan_devices(&scan);
	if (res->verdict == 0) {
		a = scan_find_uuid(scan, uuid);
		res->verdict = a ? assemble_verdict(a, res->why, sizeof(res->why)) : -ENOENT;
	}
	if (!a)
		snprintf(res->why, sizeof(res->why), "its units were not found: %s",
			 strerror(-res->verdict));
	scan_free(scan);
}

static int deactivate_stale(const char *name, const uint8_t uuid[RT_UUID_SIZE],
			    struct rt_deactivate_result *res)
{
	struct run run;
	int r;

	run_init(&run);
	snprintf(run.name, sizeof(run.name), "%s", name);
	memcpy(run.uuid, uuid, RT_UUID_SIZE);
	r = control_lock(uuid, &run.lock_fd);
	if (r < 0)
		return r;	/* -EALREADY: an engine just started */
	r = run_recover_leftovers(name, uuid, res->did, sizeof(res->did));
	if (r < 0) {
		close(run.lock_fd);
		return r;
	}
	res->how = RT_DEACTIVATE_RECOVERED;
	run_remove_files(&run, true);
	verdict_of(uuid, res);
	return 0;
}

/*
 * The name and UUID of array @id (NAME or HASHCODE), from the scan; a name
 * several arrays share is refused (-ENOTUNIQ, logged). When no unit of it
 * is found, the by-name link of an engine (or of what a dead one left).
 */
static int resolve_array(const char *id, char *name, size_t len, uint8_t uuid[RT_UUID_SIZE])
{
	const struct rt_scan_array *a;
	struct rt_scan *scan = NULL;
	int r;

	r = scan_devices(&scan);
	if (r == 0) {
		r = scan_lookup(scan, id, &a);
		if (r == -ENOTUNIQ)
			scan_find(scan, id, &a);	/* it lists the arrays */
	}
	if (r == 0) {
		snprintf(name, len, "%s", a->sb.array.name);
		memcpy(uuid, a->sb.array.uuid, RT_UUID_SIZE);
	}
	scan_free(scan);
	if (r == 0 || r == -ENOTUNIQ)
		return r;
	if (sb_name_check(id) == 0 && control_name_lookup(id, uuid) == 0) {
		snprintf(name, len, "%s", id);
		return 0;
	}
	return -ENOENT;
}

int deactivate_array(const char *id, struct rt_deactivate_result *res)
{
	struct rt_control_probe p;
	char name[RT_NAME_MAX + 1], sock[PATH_MAX];
	uint8_t uuid[RT_UUID_SIZE];
	int r;

	if (!id || !res)
		return -EINVAL;
	memset(res, 0, sizeof(*res));
	r = array_check_name(id);
	if (r < 0)
		return r;
	r = resolve_array(id, name, sizeof(name), uuid);
	if (r == -ENOTUNIQ)
		return r;
	if (r == -ENOENT) {
		scan_log_no_such_array(id);
		return r;
	}
	if (r < 0)
		return r;
	r = control_probe(uuid, &p);
	if (r < 0)
		return r;
	snprintf(res->name, sizeof(res->name), "%s", name);
	memcpy(res->uuid, uuid, RT_UUID_SIZE);
	res->pid = p.pid;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (p.state == RT_CONTROL_INACTIVE) {
			control_log_not_running(name, NULL);
			return -ENXIO;
		}
		if (p.state == RT_CONTROL_STALE) {
			r = deactivate_stale(name, uuid, res);
			if (r != -EALREADY)
				return r;
			control_probe(uuid, &p);	/* it came alive meanwhile */
			continue;
		}
		r = control_stop(uuid, name, res->note, sizeof(res->note));
		if (r == 0) {
			res->how = RT_DEACTIVATE_STOPPED;
			wait_exit(p.pid);
			return 0;
		}
		if (r == -ENOENT || r == -ECONNREFUSED) {
			/* No socket (yet): starting, or died between probe and connect. */
			control_probe(uuid, &p);
			if (p.state == RT_CONTROL_ACTIVE) {
				control_log_no_answer(name, p.pid, r);
				return -EAGAIN;
			}
			continue;
		}
		if (r == -ETIMEDOUT || r == -EPROTO)
			rt_log(RT_LOG_ERROR, "'%s': the engine (pid %d) did not finish stopping: %s",
			       name, (int)p.pid, strerror(-r));
		/*
		 * A refusal leaves the engine running with its socket; an error
		 * of its run_teardown comes after it removed the socket: it is
		 * leaving, and is let go before returning, as after a clean stop.
		 */
		if (control_path(uuid, RT_CONTROL_SOCK, sock, sizeof(sock)) == 0 &&
		    access(sock, F_OK) < 0 && errno == ENOENT)
			wait_exit(p.pid);
		return r;
	}
	return r;
}
