/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * activate: in the foreground, or as a daemon. Background mode forks before
 * anything creates a thread. The child talks to the parent over a pipe:
 * "L<level> <message>\n" lines relay its log until it is ready, then one
 * "R<errno> <link> <dev> <name>\n" line ends it (R0 ready, else the errno
 * of the failure, with "- -" for link and device).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <raidtool/activate.h>
#include <raidtool/control.h>
#include <raidtool/export.h>
#include <raidtool/log.h>
#include "run-internal.h"

/* ---- the background child's log --------------------------------------- */

static int relay_fd = -1;		/* the pipe to the parent, until ready */
static int log_file_fd = -1;		/* <rundir>/<UUID>/log, once running */

static void log_to_pipe(int level, const char *msg, void *usrptr)
{
	char line[1100];
	int n;

	(void)usrptr;
	if (relay_fd < 0)
		return;
	n = snprintf(line, sizeof(line), "L%d %s", level, msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	for (int i = 0; i < n; i++)
		if (line[i] == '\n')
			line[i] = ' ';
	line[n++] = '\n';
	if (write(relay_fd, line, (size_t)n) < 0) {
		/* The parent is gone; nothing to tell. */
	}
}

static void log_to_file(int level, const char *msg, void *usrptr)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char line[1200], when[32];
	time_t now = time(NULL);
	struct tm tm;
	int n;

	(void)usrptr;
	if (log_file_fd < 0 || level > RT_LOG_INFO)
		return;
	if (!localtime_r(&now, &tm) || !strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm))
		when[0] = '\0';
	n = snprintf(line, sizeof(line), "%s raidtool[%d]: %s: %s\n", when, (int)getpid(),
		     names[level < 0 ? 0 : level > 3 ? 3 : level], msg);
	if (n > 0 && write(log_file_fd, line, (size_t)n < sizeof(line) ? (size_t)n :
			   sizeof(line) - 1) < 0) {
		/* Nowhere left to complain. */
	}
}

/* ---- foreground --------------------------------------------------------- */

static void fg_ready(struct run *run, void *arg)
{
	const struct rt_activate_opts *o = arg;

	if (o->ready)
		o->ready(run->name, export_link(run->x), export_device(run->x), o->arg);
}

/* ---- background --------------------------------------------------------- */

static void bg_ready(struct run *run, void *arg)
{
	char path[PATH_MAX], line[512];
	int n, fd;

	(void)arg;
	/* From now on messages go to the log file; the parent is about to leave. */
	if (control_path(run->uuid, RT_CONTROL_LOG, path, sizeof(path)) == 0) {
		log_file_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
				   0600);
		if (log_file_fd >= 0)
			rt_set_log(log_to_file, NULL);
	}
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
	n = snprintf(line, sizeof(line), "R0 %s %s %s\n", export_link(run->x), export_device(run->x),
		     run->name);
	if (write(relay_fd, line, (size_t)n) < 0) {
		/* The parent died: keep running; `deactivate` still works. */
	}
	close(relay_fd);
	relay_fd = -1;
	if (log_file_fd < 0)
		rt_set_log(NULL, NULL);
}

static void child_main(const struct rt_activate_opts *o, int wfd)
{
	struct run run;
	char line[32];
	int fd, r, n;

	setsid();
	/* A daemon keeps nothing of its caller's but the pipe (a test harness waits for EOF). */
	if (wfd > 3)
		close_range(3, (unsigned)wfd - 1, 0);
	close_range((unsigned)wfd + 1, ~0u, 0);
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		close(fd);
	}
	relay_fd = wfd;
	/* Pin no file system by our working directory; keep a relative run directory valid. */
	if (control_rundir()[0] != '/') {
		char abs[PATH_MAX];

		if (realpath(control_rundir(), abs))
			setenv("RAIDTOOL_RUNDIR", abs, 1);
		else if (getcwd(abs, sizeof(abs) - 1) &&
			 strlen(abs) + strlen(control_rundir()) + 2 < sizeof(abs)) {
			strcat(abs, "/");
			strcat(abs, control_rundir());
			setenv("RAIDTOOL_RUNDIR", abs, 1);
		}
	}
	if (chdir("/") < 0) {
		/* Harmless: only pins the directory we started in. */
	}
	rt_set_log(log_to_pipe, NULL);
	run_init(&run);
	run.force = o->force;
	run.readonly = o->readonly;
	r = run_array(o->id, bg_ready, NULL, &run);
	if (relay_fd >= 0) {
		/* Never got ready: report the error. */
		n = snprintf(line, sizeof(line), "R%d - -\n", r < 0 ? -r : EIO);
		if (write(relay_fd, line, (size_t)n) < 0) {
			/* Nobody to tell. */
		}
		close(relay_fd);
		relay_fd = -1;
	}
	if (log_file_fd >= 0)
		close(log_file_fd);
	_exit(r < 0 ? 1 : 0);
}

/* The parent: relay the child's messages, then its verdict. */
static int parent_wait(int rfd, const struct rt_activate_opts *o)
{
	char buf[8192], link[PATH_MAX], dev[64], name[RT_NAME_MAX + 1];
	size_t have = 0;
	int result = -EIO;
	bool done = false;

	while (!done) {
		ssize_t n = read(rfd, buf + have, sizeof(buf) - 1 - have);
		char *line, *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		line = buf;
		while (!done && (nl = strchr(line, '\n'))) {
			*nl = '\0';
			if (line[0] == 'L') {
				char *msg = strchr(line, ' ');

				rt_log((int)strtol(line + 1, NULL, 10), "%s", msg ? msg + 1 : "");
			} else if (line[0] == 'R') {
				int e = (int)strtol(line + 1, NULL, 10);

				if (e == 0 && sscanf(line + 1, "%*d %4095s %63s %63s", link, dev,
						     name) == 3) {
					if (o->ready)
						o->ready(name, link, dev, o->arg);
					result = 0;
				} else {
					result = e > 0 ? -e : -EIO;
				}
				done = true;
			}
			line = nl + 1;
		}
		have = strlen(line);
		memmove(buf, line, have + 1);
		if (have >= sizeof(buf) - 1)
			have = 0;	/* an absurd line: drop it */
	}
	if (!done)
		rt_log(RT_LOG_ERROR, "the engine exited before the array was ready");
	return result;
}

int activate_array(const struct rt_activate_opts *o)
{
	struct run run;
	int p[2], r;
	pid_t pid;

	if (!o || !o->id)
		return -EINVAL;
	if (o->foreground) {
		run_init(&run);
		run.force = o->force;
		run.readonly = o->readonly;
		return run_array(o->id, fg_ready, (void *)o, &run);
	}
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(p[0]);
		close(p[1]);
		return r;
	}
	if (pid == 0) {
		close(p[0]);
		child_main(o, p[1]);
		_exit(1);	/* not reached */
	}
	close(p[1]);
	r = parent_wait(p[0], o);
	close(p[0]);
	return r;
}
