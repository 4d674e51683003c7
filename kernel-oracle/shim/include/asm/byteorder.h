/* SPDX-License-Identifier: GPL-2.0-only */
/* Shadow of <asm/byteorder.h>: everything comes from the shim. */
#include <shim.h>
