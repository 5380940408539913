/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_FUSE_KERNEL_H
#define RAIDTOOL_FUSE_KERNEL_H

/*
 * The FUSE kernel ABI as lib/fuse.c speaks it (protocol 7.42).
 *
 * Everything up to 7.38 comes from the system's <linux/fuse.h> (Debian
 * bookworm's linux-libc-dev). What is newer is declared here, with the
 * layout of the kernel's include/uapi/linux/fuse.h (protocol 7.42, Linux
 * 6.14, FUSE over io_uring; the same in libfuse 3.18's fuse_kernel.h):
 * the FUSE_OVER_IO_URING init flag and the io_uring command structures.
 * These are ABI facts, fixed once released: keep them in step with the
 * kernel header, never change a layout here.
 */
#include <stddef.h>
#include <stdint.h>
#include <linux/fuse.h>

/* The protocol version we answer INIT with. */
#define RT_FUSE_KERNEL_MINOR 42

#ifndef FUSE_OVER_IO_URING
#define FUSE_OVER_IO_URING (1ULL << 41)		/* 7.42; bit 9 of init flags2 */
#endif

#ifndef FUSE_URING_IN_OUT_HEADER_SZ
#define FUSE_URING_IN_OUT_HEADER_SZ 128
#define FUSE_URING_OP_IN_OUT_SZ 128

/* Part of fuse_uring_req_header: filled by the kernel with each request. */
struct fuse_uring_ent_in_out {
	uint64_t flags;
	uint64_t commit_id;		/* to quote in the reply's COMMIT_AND_FETCH */
	uint32_t payload_sz;		/* request: bytes in the payload buffer; reply: ours */
	uint32_t padding;
	uint64_t reserved;
};

/* An entry's header buffer (the first iovec of REGISTER). */
struct fuse_uring_req_header {
	char in_out[FUSE_URING_IN_OUT_HEADER_SZ];	/* fuse_in_header, then fuse_out_header */
	char op_in[FUSE_URING_OP_IN_OUT_SZ];		/* the opcode's fixed argument */
	struct fuse_uring_ent_in_out ring_ent_in_out;
};

enum fuse_uring_cmd {
	FUSE_IO_URING_CMD_INVALID = 0,
	FUSE_IO_URING_CMD_REGISTER = 1,		/* hand the kernel an entry's buffers */
	FUSE_IO_URING_CMD_COMMIT_AND_FETCH = 2,	/* reply, and take the next request */
};

/* In the 80-byte command area of a 128-byte SQE (IORING_SETUP_SQE128). */
struct fuse_uring_cmd_req {
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid;			/* the queue: the CPU number */
	uint8_t padding[6];
};
#endif

_Static_assert(sizeof(struct fuse_uring_req_header) == 288, "FUSE ring header layout");
_Static_assert(sizeof(struct fuse_init_out) == 64, "FUSE init_out layout");

#endif
