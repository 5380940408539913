/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <raidtool/log.h>

static rt_log_fn log_fn;
static void *log_usrptr;

void rt_set_log(rt_log_fn fn, void *usrptr)
{
	log_fn = fn;
	log_usrptr = usrptr;
}

void rt_log(int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!log_fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_fn(level, msg, log_usrptr);
}
