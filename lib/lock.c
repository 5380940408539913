/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Admin locks under the run directory (include/raidtool/lock.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>
#include <raidtool/control.h>
#include <raidtool/lock.h>
#include <raidtool/log.h>
#include <raidtool/util.h>

#define LOCK_DIR "lock"
#define LOCK_POLL_MS 50

/*
 * RAIDTOOL_LOCK_TIMEOUT in ms, or -EINVAL: a typo there is refused, not
 * read as the default, which would wait a minute the admin did not ask for.
 */
static long wait_ms(void)
{
	const char *t = getenv("RAIDTOOL_LOCK_TIMEOUT");
	char *end;
	long secs;

	if (!t || !*t)
		return RT_LOCK_WAIT_MS_DEFAULT;
	errno = 0;
	secs = strtol(t, &end, 10);
	if (errno || *end || secs < 0 || secs > 24 * 3600) {
		rt_log(RT_LOG_ERROR, "RAIDTOOL_LOCK_TIMEOUT='%s': not a number of seconds from 0 "
		       "to 86400", t);
		return -EINVAL;
	}
	return secs * 1000;
}

/* The holder writes its pid into the file: for the message of whoever waits in vain. */
static void note_holder(int fd)
{
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());

	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		rt_log(RT_LOG_DEBUG, "lock: cannot record our pid: %s", strerror(errno));
}

/* The pid the holder wrote, if that process still lives (0: unknown). */
static int holder_pid(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	int pid;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = (int)strtol(buf, NULL, 10);
	return pid > 0 && kill(pid, 0) == 0 ? pid : 0;
}

int lock_take(const char *key, int *out)
{
	long limit = wait_ms();

	*out = -1;
	return limit < 0 ? (int)limit : lock_take_within(key, limit, out);
}

int lock_take_within(const char *key, long limit, int *out)
{
	char path[PATH_MAX];
	long waited = 0;
	int fd, r, n;

	*out = -1;
	r = control_make_rundir();
	if (r < 0)
		return r;
	n = snprintf(path, sizeof(path), "%s/" LOCK_DIR, control_rundir());
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		rt_log(RT_LOG_ERROR, "'%s': cannot create the lock directory: %s", path,
		       rt_strerror(r));
		return r;
	}
	n = snprintf(path, sizeof(path), "%s/" LOCK_DIR "/%s", control_rundir(), key);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = -errno;
		rt_log(RT_LOG_ERROR, "'%s': cannot open the lock: %s", path, rt_strerror(r));
		return r;
	}
	/* Polled, not blocking: the wait is bounded and a signal still ends us. */
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			r = -errno;
			close(fd);
			return r;
		}
		/*
		 * flock conflicts between two open files of one process too: a
		 * command that asks again for a lock it holds would wait out the
		 * whole limit for itself (a pool view once did, 60 s a call).
		 * Admin locks are taken by one thread of a command, so our own
		 * pid in the file means that wait could never end.
		 */
		if (holder_pid(fd) == (int)getpid()) {
			rt_log(RT_LOG_ERROR, "lock '%s': this process holds it already", key);
			close(fd);
			return -EDEADLK;
		}
		if (waited >= limit) {
			int pid = holder_pid(fd);

			const char *what = !strcmp(key, RT_LOCK_NAMES) ?
					   "the array names" : "this array";

			if (pid > 0)
				rt_log(RT_LOG_ERROR, "busy: another raidtool command (pid %d) has been "
				       "working on %s for %ld s", pid, what, limit / 1000);
			else
				rt_log(RT_LOG_ERROR, "busy: another raidtool command has been working "
				       "on %s for %ld s", what, limit / 1000);
			close(fd);
			return -EBUSY;
		}
		rt_sleep_ms(LOCK_POLL_MS);
		waited += LOCK_POLL_MS;
	}
	note_holder(fd);
	*out = fd;
	return 0;
}

int lock_take_array(const uint8_t uuid[RT_UUID_SIZE], int *fd)
{
	long limit = wait_ms();

	*fd = -1;
	return limit < 0 ? (int)limit : lock_take_array_within(uuid, limit, fd);
}

int lock_take_array_within(const uint8_t uuid[RT_UUID_SIZE], long limit_ms, int *fd)
{
	char key[37];

	uuid_unparse_lower(uuid, key);
	return lock_take_within(key, limit_ms, fd);
}

long lock_wait_ms(void)
{
	return wait_ms();
}

void lock_release(int fd)
{
	if (fd < 0)
		return;
	/* The next holder need not be one that writes its pid. */
	if (ftruncate(fd, 0) < 0)
		rt_log(RT_LOG_DEBUG, "lock: cannot clear our pid: %s", strerror(errno));
	close(fd);
}
