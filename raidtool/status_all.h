/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef RAIDTOOL_STATUS_ALL_H
#define RAIDTOOL_STATUS_ALL_H

#include <stdbool.h>

/*
 * status --test (raidtool(8), EXIT STATUS): failed, its engine dead or not
 * answering; an array that is not found.
 */
#define STATUS_TEST_FAILED 2
#define STATUS_TEST_MISSING 4

/* `status` without a name: every array the machine knows, one block each. */
int status_all(bool json);

#endif
