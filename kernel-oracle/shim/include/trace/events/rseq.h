/* SPDX-License-Identifier: GPL-2.0-only */
/* Shadow of <trace/events/rseq.h>: everything comes from the shim. */
#include <shim.h>
