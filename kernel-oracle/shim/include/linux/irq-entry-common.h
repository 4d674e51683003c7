/* SPDX-License-Identifier: GPL-2.0-only */
/* Shadow of <linux/irq-entry-common.h>: the shim, and the rseq entry code the real
 * header pulls in for the exit loop. */
#include <shim.h>
#include <linux/rseq_entry.h>
