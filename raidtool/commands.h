/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef RAIDTOOL_COMMANDS_H
#define RAIDTOOL_COMMANDS_H

/* One file per command: cmd_<name>.c. The table is in raidtool.c. */
int cmd_create(int argc, const char **argv);
int cmd_add(int argc, const char **argv);
int cmd_list(int argc, const char **argv);
int cmd_lookup(int argc, const char **argv);
int cmd_lookup_unit(int argc, const char **argv);
int cmd_examine(int argc, const char **argv);
int cmd_rename(int argc, const char **argv);
int cmd_rehash(int argc, const char **argv);
int cmd_zero(int argc, const char **argv);
int cmd_activate(int argc, const char **argv);
int cmd_deactivate(int argc, const char **argv);
int cmd_status(int argc, const char **argv);
int cmd_fail(int argc, const char **argv);
int cmd_remove(int argc, const char **argv);
int cmd_tune(int argc, const char **argv);
int cmd_check(int argc, const char **argv);
int cmd_wait(int argc, const char **argv);
int cmd_incremental(int argc, const char **argv);
int cmd_monitor(int argc, const char **argv);

#endif
