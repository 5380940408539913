/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef RAIDTOOL_STATUS_ALL_H
#define RAIDTOOL_STATUS_ALL_H

#include <stdbool.h>

/* status --test on an array that is not found (raidtool(8), EXIT STATUS). */
#define STATUS_TEST_MISSING 4

/* `status` without a name: every array the machine knows, one block each. */
int status_all(bool json);

#endif
