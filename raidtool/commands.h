/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef RAIDTOOL_COMMANDS_H
#define RAIDTOOL_COMMANDS_H

#include "cli.h"

/*
 * One file per command, cmd_<name>.c, defining its table entry; the table
 * is in raidtool.c. A new command: its file, a line here, a line there.
 */
extern const struct cli_command cmd_create;
extern const struct cli_command cmd_add;
extern const struct cli_command cmd_list;
extern const struct cli_command cmd_lookup;
extern const struct cli_command cmd_lookup_unit;
extern const struct cli_command cmd_examine;
extern const struct cli_command cmd_rename;
extern const struct cli_command cmd_rehash;
extern const struct cli_command cmd_zero;
extern const struct cli_command cmd_activate;
extern const struct cli_command cmd_deactivate;
extern const struct cli_command cmd_status;
extern const struct cli_command cmd_fail;
extern const struct cli_command cmd_remove;
extern const struct cli_command cmd_replace;
extern const struct cli_command cmd_tune;
extern const struct cli_command cmd_check;
extern const struct cli_command cmd_wait;
extern const struct cli_command cmd_incremental;
extern const struct cli_command cmd_pool;
extern const struct cli_command cmd_vol;
extern const struct cli_command cmd_monitor;

#endif
