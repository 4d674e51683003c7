// SPDX-License-Identifier: GPL-2.0-only
/*
 * kernel/entry/common.c once more, as a PREEMPT_RT kernel builds it: only the grant's
 * deny mask differs (TIF_SLICE_EXT_SCHED). Its global functions are renamed so they do
 * not clash with the first copy.
 */
#define CONFIG_PREEMPT_RT 1
#define exit_to_user_mode_loop rt_exit_to_user_mode_loop
#define irqentry_enter rt_irqentry_enter
#define raw_irqentry_exit_cond_resched rt_raw_irqentry_exit_cond_resched
#define irqentry_exit rt_irqentry_exit
#define irqentry_nmi_enter rt_irqentry_nmi_enter
#define irqentry_nmi_exit rt_irqentry_nmi_exit
#define arch_do_signal_or_restart rt_arch_do_signal_or_restart
#define ORACLE_PREFIX(name) oracle_rt_##name
#include "wrap_common.c"
