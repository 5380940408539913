/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_UTIL_H
#define RAIDTOOL_UTIL_H

/* Small helpers shared by the library's modules and the CLI. */

/* Sleep @ms milliseconds, the whole of them even when a signal interrupts. */
void rt_sleep_ms(long ms);

/*
 * The reason a message gives for the negative errno @err: strerror's, but
 * one wording for a permission refused (EACCES, EPERM) to a user other than
 * root, saying what to do: "permission denied (raidtool must run as root)".
 */
const char *rt_strerror(int err);

#endif
