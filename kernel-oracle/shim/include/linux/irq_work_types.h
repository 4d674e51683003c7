/* SPDX-License-Identifier: GPL-2.0-only */
/* Shadow of <linux/irq_work_types.h>: everything comes from the shim. */
#include <shim.h>
