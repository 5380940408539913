/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_LOG_H
#define RAIDTOOL_LOG_H

/*
 * libraidtool never prints. It reports through a callback the caller
 * installs (cryptsetup's model); without one, messages are dropped.
 * Messages are complete sentences without the "raidtool: " prefix and
 * without a trailing newline, e.g. "'/dev/loop3': holds an ext4 signature".
 */
enum rt_log_level {
	RT_LOG_ERROR = 0,
	RT_LOG_WARN = 1,
	RT_LOG_INFO = 2,
	RT_LOG_DEBUG = 3,
};

typedef void (*rt_log_fn)(int level, const char *msg, void *usrptr);

void rt_set_log(rt_log_fn fn, void *usrptr);

/* Used by the library itself; exported so that every module shares it. */
void rt_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * The last RT_LOG_ERROR message of the calling thread ("" after
 * rt_log_clear_error): to hand a library refusal's reason to a remote
 * caller (the control socket) as well as to the log.
 */
const char *rt_log_last_error(void);
void rt_log_clear_error(void);

#endif
