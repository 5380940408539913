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

/* The command table: the order of 'raidtool --help'. */
static const struct cli_command *const commands[] = {
	&cmd_create,
	&cmd_add,
	&cmd_list,
	&cmd_lookup,
	&cmd_lookup_unit,
	&cmd_examine,
	&cmd_rename,
	&cmd_rehash,
	&cmd_zero,
	&cmd_activate,
	&cmd_deactivate,
	&cmd_status,
	&cmd_fail,
	&cmd_remove,
	&cmd_replace,
	&cmd_tune,
	&cmd_check,
	&cmd_monitor,
	&cmd_wait,
	&cmd_incremental,
	&cmd_pool,
	&cmd_vol,
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fprintf(f, "Usage: raidtool [--verbose|--quiet] COMMAND [OPTIONS] [ARGS]\n\n"
		"Software RAID (linear, 0, 1, 5) without md or device-mapper.\n\n"
		"Commands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-12s %s\n", commands[i]->name, commands[i]->summary);
	fprintf(f, "\nArrays are named by NAME or by their 8-hex-digit HASHCODE.\n"
		"Run 'raidtool COMMAND --help' for a command's options; see raidtool(8).\n");
}

int main(int argc, const char **argv)
{
	int i = 1;

	while (i < argc && argv[i][0] == '-') {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return cli_check_stdout(EXIT_OK);
		} else if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-V")) {
			printf("raidtool %s\n", RAIDTOOL_VERSION);
			return cli_check_stdout(EXIT_OK);
		} else if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v")) {
			cli_verbose = 1;
		} else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) {
			cli_quiet = 1;
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
		if (!strcmp(argv[i], commands[c]->name))
			return cli_run(commands[c], argc - i, argv + i);
	fprintf(stderr, "raidtool: '%s' is not a raidtool command; see 'raidtool --help'\n", argv[i]);
	return EXIT_USAGE;
}
