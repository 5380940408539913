/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <raidtool/util.h>

void rt_sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

const char *rt_strerror(int err)
{
	/* As root, a refusal has another cause (a container, a policy): strerror's words. */
	if ((err == -EACCES || err == -EPERM) && geteuid() != 0)
		return "permission denied (raidtool must run as root)";
	return strerror(-err);
}
