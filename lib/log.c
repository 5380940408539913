/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <raidtool/log.h>

static rt_log_fn log_fn;
static void *log_usrptr;

void rt_set_log(rt_log_fn fn, void *usrptr)
{
	log_fn = fn;
	log_usrptr = usrptr;
}

static __thread char last_error[1024];

const char *rt_log_last_error(void)
{
	return last_error;
}

void rt_log_clear_error(void)
{
	last_error[0] = '\0';
}

void rt_log(int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (level == RT_LOG_ERROR)
		memcpy(last_error, msg, sizeof(msg));
	if (log_fn)
		log_fn(level, msg, log_usrptr);
}
