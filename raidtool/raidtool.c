/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * raidtool: software RAID without md or device-mapper.
 * Dispatches to one command per file; see raidtool(8).
 */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "commands.h"

#ifndef RAIDTOOL_VERSION
#define RAIDTOOL_VERSION "0.1.0"
#endif

static const struct cli_command commands[] = {
	{ "create", cmd_create, "write superblocks to units, making a new array" },
	{ "add", cmd_add, "add units to an array (missing roles first, then spares)" },
	{ "list", cmd_list, "list the arrays found on this machine, or one array's units" },
	{ "lookup", cmd_lookup, "show one array's descriptor" },
	{ "lookup-unit", cmd_lookup_unit, "show one unit's descriptor" },
	{ "examine", cmd_examine, "dump a unit's superblocks" },
	{ "rename", cmd_rename, "change an array's name" },
	{ "rehash", cmd_rehash, "change an array's hashcode" },
	{ "zero", cmd_zero, "wipe raidtool's superblocks from a unit" },
	{ "activate", cmd_activate, "start an array and show it as /dev/raidtool/NAME" },
	{ "deactivate", cmd_deactivate, "stop a running array (or clean up after a dead engine)" },
	{ "status", cmd_status, "show an array's state, units, block device and I/O counters" },
	{ "fail", cmd_fail, "mark a unit of a running array faulty" },
	{ "remove", cmd_remove, "take a faulty unit or a spare out of a running array" },
	{ "tune", cmd_tune, "change how a running array treats unit I/O errors" },
	{ "check", cmd_check, "verify (or --repair) parity and mirrors of a running array" },
	{ "monitor", cmd_monitor, "report failures, rebuilds and checks of running arrays "
	  "(stdout, syslog, a program)" },
	{ "wait", cmd_wait, "wait for a running array's rebuild, resync or check to end" },
	{ "incremental", cmd_incremental, "record a unit that appeared (udev); start its array "
	  "once complete" },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fprintf(f, "Usage: raidtool [--verbose] COMMAND [OPTIONS] [ARGS]\n\n"
		"Software RAID (linear, 0, 1, 5) without md or device-mapper.\n\n"
		"Commands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nArrays are named by NAME or by their 8-hex-digit HASHCODE.\n"
		"Run 'raidtool COMMAND --help' for a command's options; see raidtool(8).\n");
}

int main(int argc, const char **argv)
{
	int i = 1;

	while (i < argc && argv[i][0] == '-') {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return EXIT_OK;
		} else if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-V")) {
			printf("raidtool %s\n", RAIDTOOL_VERSION);
			return EXIT_OK;
		} else if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v")) {
			cli_verbose = true;
		} else {
			fprintf(stderr, "raidtool: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		}
		i++;
	}
	if (i >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (size_t c = 0; c < N_COMMANDS; c++)
		if (!strcmp(argv[i], commands[c].name))
			return commands[c].run(argc - i, argv + i);
	fprintf(stderr, "raidtool: '%s' is not a raidtool command; see 'raidtool --help'\n", argv[i]);
	return EXIT_USAGE;
}
