// SPDX-License-Identifier: GPL-2.0-only
/*
 * kernel/entry/common.c, unmodified, built without RSEQ_BUILD_SLOW_PATH as the kernel
 * builds it (rseq_entry.h's fast path inlined), plus entry points for the harness.
 * OracleRt is the same file again with CONFIG_PREEMPT_RT (wrap_common_rt.c).
 */
#include <shim.h>
#include "kernel/entry/common.c"

#ifndef ORACLE_PREFIX
#define ORACLE_PREFIX(name) oracle_##name
#endif

/* The grant decision as the exit loop makes it, with the kernel's own deny mask. */
bool ORACLE_PREFIX(grant)(unsigned long ti_work)
{
	return rseq_grant_slice_extension(ti_work, TIF_SLICE_EXT_DENY);
}

unsigned long ORACLE_PREFIX(slice_ext_deny)(void)
{
	return TIF_SLICE_EXT_DENY;
}

bool ORACLE_PREFIX(exit_restart)(struct pt_regs *regs, unsigned long ti_work)
{
	return rseq_exit_to_user_mode_restart(regs, ti_work);
}

unsigned long ORACLE_PREFIX(exit_loop)(struct pt_regs *regs, unsigned long ti_work)
{
	return exit_to_user_mode_loop(regs, ti_work);
}

void ORACLE_PREFIX(irqentry_exit_cond_resched)(void)
{
	raw_irqentry_exit_cond_resched();
}

unsigned long ORACLE_PREFIX(exit_to_user_mode_work)(void)
{
	return EXIT_TO_USER_MODE_WORK;
}
