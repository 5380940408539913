/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_UTIL_H
#define RAIDTOOL_UTIL_H

/* Small helpers shared by the library's modules and the CLI. */

/* Sleep @ms milliseconds, the whole of them even when a signal interrupts. */
void rt_sleep_ms(long ms);

#endif
