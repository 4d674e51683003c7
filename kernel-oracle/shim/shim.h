/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The kernel-oracle shim: the few kernel facilities that kernel/rseq.c,
 * kernel/entry/common.c and include/linux/rseq_entry.h use, reduced to what a
 * single-threaded harness needs. Every shadow header under shim/include/ includes
 * this file and nothing else, so the kernel sources compile unmodified against it.
 *
 * Written for this harness (no kernel text): the definitions the kernel code depends
 * on for its behaviour (TIF bits, EXIT_TO_USER_MODE_WORK, syscall work bits,
 * need-resched helpers, access_ok, TASK_SIZE_MAX, syscall numbers) are not retyped here
 * but extracted from the source tree at build time into gen/extracted.h.
 *
 * Why each piece looks the way it does:
 *  - `current` is a pointer the harness sets before each call.
 *  - Per-CPU variables have one copy: the harness compares one decision at a time on
 *    one CPU and loads that CPU's slice timer and counters before the call.
 *  - Static keys are plain booleans the harness flips (boot switch, rseq_debug).
 *  - guard()/scoped_guard() are cleanup objects tracking irq/preempt/pagefault depths;
 *    leaving the last preempt guard with TIF_NEED_RESCHED set records a
 *    preempt_schedule, as preempt_enable() would call it.
 *  - Every user access goes through shim_uread()/shim_uwrite(), which the Rust side
 *    routes into the simulated task's memory; a fault is per access.
 */
#ifndef SLICESIM_KERNEL_ORACLE_SHIM_H
#define SLICESIM_KERNEL_ORACLE_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- compiler ------------------------------------------------------------------ */
/* The kernel builds with gnu_inline semantics: a non-static `inline` definition
 * (exit_to_user_mode_loop()) is an external definition. */
#define inline inline __attribute__((__gnu_inline__)) __attribute__((__unused__))
#define __inline__ inline
#undef __always_inline
#define __always_inline inline __attribute__((__always_inline__))
#define noinline __attribute__((__noinline__))
#define noinstr
#define notrace
#define __weak __attribute__((__weak__))
#define __init
#define __initdata
#define __read_mostly
#define __user
#define __force
#define __must_check
#define __percpu
#define ____cacheline_aligned
#define ____cacheline_aligned_in_smp
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define data_race(x) (x)
#define READ_ONCE(x) (*(volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))
#define barrier() __asm__ __volatile__("" ::: "memory")
#define smp_mb__after_atomic() barrier()
#define static_assert(expr, ...) _Static_assert(expr, #expr)
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define __PASTE2(a, b) a##b
#define __PASTE(a, b) __PASTE2(a, b)
#define __UNIQUE_ID(p) __PASTE(__shim_##p, __COUNTER__)
#define CALLER_ADDR0 ((unsigned long)__builtin_return_address(0))
#define fls(x) ((x) ? 32 - __builtin_clz(x) : 0)

/* ---- types --------------------------------------------------------------------- */
typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int8_t s8;
typedef int16_t s16;
typedef int32_t s32;
typedef int64_t s64;
typedef u8 __u8;
typedef u16 __u16;
typedef u32 __u32;
typedef u64 __u64;
typedef s32 __s32;
typedef s64 __s64;
typedef long ssize_t;
typedef long long loff_t;
typedef struct { long counter; } atomic_long_t;
struct hlist_node { struct hlist_node *next, **pprev; };
struct hlist_head { struct hlist_node *first; };
struct irq_work { int unused; };
struct work_struct { int unused; };
typedef struct { int unused; } raw_spinlock_t;
struct mutex { int unused; };

#define BIT(nr) (1UL << (nr))
#define IS_ALIGNED(x, a) (((x) & ((__typeof__(x))(a) - 1)) == 0)
#define NSEC_PER_USEC 1000L
#define PAGE_SIZE 4096UL
#define EINVAL 22
#define EPERM 1
#define EFAULT 14
#define EBUSY 16
#define ERANGE 34
#define ENXIO 6
#define ENOSYS 38
#define ENOTSUPP 524
#define SIGSEGV 11

/* The Kconfig answers (generated from vm/kernel.config) and IS_ENABLED(). */
#include <linux/kconfig.h>

/* ---- what the kernel defines in headers too heavy to compile whole ---------------- */
#include "extracted_pre.h"
#include <asm-generic/thread_info_tif.h>

/* The real rseq state types. */
#include <linux/rseq_types.h>

struct thread_info {
	unsigned long flags;
	unsigned long syscall_work;
};

#define PF_EXITING 0x00000004
#define CLONE_VM 0x00000100

struct task_struct {
	struct thread_info thread_info;
	unsigned int flags;
	int cpu;
	int mm_cid;
	struct rseq_data rseq;
};

extern struct task_struct *shim_current;
#define current shim_current
#define task_thread_info(t) (&(t)->thread_info)
#define task_cpu(t) ((t)->cpu)
#define task_mm_cid(t) ((t)->mm_cid)
#define cpu_to_node(cpu) 0

/* bit operations on the flags words (single-threaded: plain read-modify-write) */
#define set_bit(nr, addr) (*(addr) |= BIT(nr))
#define clear_bit(nr, addr) (*(addr) &= ~BIT(nr))
#define test_bit(nr, addr) (!!(*(addr) & BIT(nr)))
#define atomic_long_andnot(m, v) ((v)->counter &= ~(long)(m))
#define set_ti_thread_flag(ti, f) set_bit(f, &(ti)->flags)
#define clear_ti_thread_flag(ti, f) clear_bit(f, &(ti)->flags)
#define test_ti_thread_flag(ti, f) test_bit(f, &(ti)->flags)
#define set_tsk_thread_flag(t, f) set_ti_thread_flag(task_thread_info(t), f)
#define clear_tsk_thread_flag(t, f) clear_ti_thread_flag(task_thread_info(t), f)
#define test_tsk_thread_flag(t, f) test_ti_thread_flag(task_thread_info(t), f)
#define set_thread_flag(f) set_tsk_thread_flag(current, f)
#define clear_thread_flag(f) clear_tsk_thread_flag(current, f)
#define read_thread_flags() (current->thread_info.flags)
#define tracepoint_enabled(tp) 0
#define __trace_set_need_resched(t, f) do { } while (0)

/* ---- preemption, interrupts, guards --------------------------------------------- */
struct shim_state {
	int irq_disabled;
	int preempt_count;
	int pagefault_disabled;
	/* the preemption model: 0 none, 1 voluntary, 2 full, 3 lazy, 4 rt */
	int preempt_model;
	/* schedule() switches the task out and in (whole exit loops) or only records
	 * itself (one decision compared with the model, whose schedule() is its own). */
	int switch_on_schedule;
	/* what the kernel code asked of the scheduler during one call */
	int schedules;           /* schedule() from the exit loop */
	int preempt_schedules;   /* preempt_enable() with a reschedule pending */
	int cond_rescheds;       /* cond_resched() that would schedule */
	int signals;             /* force_sig() calls */
	int last_signal;
	int hrtimer_starts;
	int hrtimer_cancels;
	int hrtimer_rearms;
};
extern struct shim_state shim;

void shim_schedule(void);
void shim_preempt_schedule(void);
bool shim_need_resched(void);

#define preempt_count() (shim.preempt_count)
#define preempt_disable() (shim.preempt_count++)
#define preempt_enable()                                                    \
	do {                                                                \
		if (--shim.preempt_count == 0 && shim_need_resched())       \
			shim_preempt_schedule();                            \
	} while (0)
#define local_irq_enable() (shim.irq_disabled = 0)
#define local_irq_disable() (shim.irq_disabled = 1)
#define lockdep_assert_irqs_disabled() do { } while (0)
#define lockdep_assert_once(x) do { } while (0)
#define WARN_ON_ONCE(x) ({ int __w = !!(x); __w; })
#define set_preempt_need_resched() do { } while (0)
#define clear_preempt_need_resched() do { } while (0)
#define need_resched() shim_need_resched()
#define schedule() shim_schedule()
#define preempt_schedule_irq() shim_preempt_schedule()
int shim_cond_resched(void);
#define cond_resched() shim_cond_resched()

struct shim_guard { int kind; unsigned long saved; };
enum { SHIM_G_IRQ, SHIM_G_IRQSAVE, SHIM_G_PREEMPT, SHIM_G_PAGEFAULT };
struct shim_guard shim_guard_enter(int kind);
void shim_guard_exit(struct shim_guard *g);
#define shim_guard_enter_irq() shim_guard_enter(SHIM_G_IRQ)
#define shim_guard_enter_irqsave() shim_guard_enter(SHIM_G_IRQSAVE)
#define shim_guard_enter_preempt() shim_guard_enter(SHIM_G_PREEMPT)
#define shim_guard_enter_pagefault() shim_guard_enter(SHIM_G_PAGEFAULT)
#define guard(name)                                                          \
	struct shim_guard __UNIQUE_ID(guard) __attribute__((cleanup(shim_guard_exit))) = \
		shim_guard_enter_##name
#define scoped_guard(name, ...)                                              \
	for (struct shim_guard __sg __attribute__((cleanup(shim_guard_exit))) =  \
		     shim_guard_enter_##name(), *__sg_once = &__sg;                  \
	     __sg_once; __sg_once = NULL)

/* ---- user access ---------------------------------------------------------------- */
/* 0 = done, nonzero = fault. Implemented by the harness (Rust). */
int shim_uread(void *dst, unsigned long uaddr, unsigned long len);
int shim_uwrite(unsigned long uaddr, const void *src, unsigned long len);

#define TASK_SIZE TASK_SIZE_MAX
#define USER_PTR_MAX TASK_SIZE_MAX
#define runtime_const_ptr(x) (x)
#define access_ok(addr, size) likely(__access_ok(addr, size))

/* The masked user access sections of x86 cannot fail to open: the first access that
 * faults jumps to the label. `break` inside leaves the section, as in the kernel. */
#define scoped_user_read_access(uptr, elbl) \
	for (int __ua_once = 1; __ua_once; __ua_once = 0)
#define scoped_user_write_access(uptr, elbl) scoped_user_read_access(uptr, elbl)
#define scoped_user_rw_access(uptr, elbl) scoped_user_read_access(uptr, elbl)

#define unsafe_get_user(x, ptr, label)                                          \
	do {                                                                    \
		__typeof__(*(ptr)) __gu_v;                                      \
		if (shim_uread(&__gu_v, (unsigned long)(ptr), sizeof(__gu_v)))  \
			goto label;                                             \
		(x) = __gu_v;                                                   \
	} while (0)
#define unsafe_put_user(x, ptr, label)                                          \
	do {                                                                    \
		__typeof__(*(ptr)) __pu_v = (x);                                \
		if (shim_uwrite((unsigned long)(ptr), &__pu_v, sizeof(__pu_v))) \
			goto label;                                             \
	} while (0)
#define get_user(x, ptr)                                                        \
	({                                                                      \
		__typeof__(*(ptr)) __gu_v = 0;                                  \
		int __gu_e = shim_uread(&__gu_v, (unsigned long)(ptr), sizeof(__gu_v)) ? -EFAULT : 0; \
		(x) = __gu_v;                                                   \
		__gu_e;                                                         \
	})
#define put_user(x, ptr)                                                        \
	({                                                                      \
		__typeof__(*(ptr)) __pu_v = (x);                                \
		shim_uwrite((unsigned long)(ptr), &__pu_v, sizeof(__pu_v)) ? -EFAULT : 0; \
	})

/* ---- per-CPU, static keys -------------------------------------------------------- */
#define DEFINE_PER_CPU(type, name) __typeof__(type) name
#define DECLARE_PER_CPU(type, name) extern __typeof__(type) name
#define this_cpu_ptr(ptr) (ptr)
#define per_cpu_ptr(ptr, cpu) ((void)(cpu), (ptr))
#define per_cpu(var, cpu) ((void)(cpu), (var))
#define this_cpu_inc(x) ((x)++)
#define raw_cpu_inc(x) ((x)++)
#define for_each_possible_cpu(cpu) for ((cpu) = 0; (cpu) < 1; (cpu)++)

struct static_key { bool enabled; };
#define DEFINE_STATIC_KEY_TRUE(name) struct static_key name = { true }
#define DEFINE_STATIC_KEY_FALSE(name) struct static_key name = { false }
#define DEFINE_STATIC_KEY_MAYBE(cfg, name) struct static_key name = { IS_ENABLED(cfg) }
#define DECLARE_STATIC_KEY_TRUE(name) extern struct static_key name
#define DECLARE_STATIC_KEY_FALSE(name) extern struct static_key name
#define DECLARE_STATIC_KEY_MAYBE(cfg, name) extern struct static_key name
#define static_branch_likely(k) ((k)->enabled)
#define static_branch_unlikely(k) ((k)->enabled)
#define static_branch_enable(k) ((k)->enabled = true)
#define static_branch_disable(k) ((k)->enabled = false)

/* ---- hrtimers on the harness clock ------------------------------------------------ */
enum hrtimer_restart { HRTIMER_NORESTART, HRTIMER_RESTART };
enum { CLOCK_MONOTONIC = 1 };
enum { HRTIMER_MODE_ABS_PINNED_HARD = 1, HRTIMER_MODE_REL_PINNED_HARD = 2 };
struct hrtimer {
	u64 expires;
	bool armed;
	enum hrtimer_restart (*function)(struct hrtimer *);
};
void hrtimer_setup(struct hrtimer *t, enum hrtimer_restart (*fn)(struct hrtimer *),
		   int clock, int mode);
void hrtimer_start(struct hrtimer *t, u64 expires, int mode);
int hrtimer_try_to_cancel(struct hrtimer *t);
u64 ktime_get_mono_fast_ns(void);
extern u64 shim_fast_clock_ns;

/* ---- signals, syscalls, registers ------------------------------------------------- */
void force_sig(int sig);
#define force_sigsegv(sig) force_sig(SIGSEGV)
struct ksignal { int sig; };
struct pt_regs { unsigned long ip; int user; };
#define instruction_pointer(regs) ((regs)->ip)
#define instruction_pointer_set(regs, v) ((regs)->ip = (v))
#define user_mode(regs) ((regs)->user)
#define SYSCALL_DEFINE0(name) long sys_##name(void)
#define SYSCALL_DEFINE4(name, t1, a1, t2, a2, t3, a3, t4, a4) \
	long sys_##name(t1 a1, t2 a2, t3 a3, t4 a4)

/* ---- everything else rseq.c and common.c touch: inert ----------------------------- */
#define __setup(str, fn) static int (*__UNIQUE_ID(setup))(char *) __attribute__((unused)) = fn
#define __initcall(fn) static int (*__UNIQUE_ID(initcall))(void) __attribute__((unused)) = fn
#define device_initcall(fn) __initcall(fn)
int kstrtobool(const char *s, bool *res);
int kstrtobool_from_user(const char __user *s, size_t count, bool *res);
int kstrtouint_from_user(const char __user *s, size_t count, unsigned int base,
			 unsigned int *res);
struct seq_file { int unused; };
struct inode { void *i_private; };
struct file { int unused; };
struct dentry { int unused; };
struct file_operations {
	int (*open)(struct inode *, struct file *);
	ssize_t (*read)(struct file *, char __user *, size_t, loff_t *);
	ssize_t (*write)(struct file *, const char __user *, size_t, loff_t *);
	loff_t (*llseek)(struct file *, loff_t, int);
	int (*release)(struct inode *, struct file *);
};
ssize_t seq_read(struct file *, char __user *, size_t, loff_t *);
loff_t seq_lseek(struct file *, loff_t, int);
int single_release(struct inode *, struct file *);
int single_open(struct file *, int (*)(struct seq_file *, void *), void *);
void seq_printf(struct seq_file *m, const char *fmt, ...);
struct dentry *debugfs_create_dir(const char *name, struct dentry *parent);
struct dentry *debugfs_create_file(const char *name, unsigned short mode,
				   struct dentry *parent, void *data,
				   const struct file_operations *fops);

typedef struct { int exit_rcu; int lockdep; } irqentry_state_t;
void irqentry_enter_from_user_mode(struct pt_regs *regs);
irqentry_state_t irqentry_enter_from_kernel_mode(struct pt_regs *regs);
void irqentry_exit_to_user_mode(struct pt_regs *regs);
void irqentry_exit_to_kernel_mode(struct pt_regs *regs, irqentry_state_t state);
#define rcu_irq_exit_check_preempt() do { } while (0)
#define on_thread_stack() 1
/* the other exit work consumes its bit, as the real handlers do */
#define uprobe_notify_resume(regs) clear_thread_flag(TIF_UPROBE)
#define klp_update_patch_state(t) clear_tsk_thread_flag(t, TIF_PATCH_PENDING)
#define futex_fixup_robust_unlock(regs) do { } while (0)
void arch_do_signal_or_restart(struct pt_regs *regs);
#define arch_exit_to_user_mode_work(regs, ti_work) do { } while (0)
#define tick_nohz_user_enter_prepare() do { } while (0)
#define task_work_pending(t) 0
#define task_work_run() do { } while (0)
#define mem_cgroup_handle_over_high(gfp) do { } while (0)
#define blkcg_maybe_throttle_current() do { } while (0)
#define lockdep_hardirqs_enabled() 0
#define __nmi_enter() do { } while (0)
#define __nmi_exit() do { } while (0)
#define lockdep_hardirqs_off(a) do { } while (0)
#define lockdep_hardirqs_on(a) do { } while (0)
#define lockdep_hardirq_enter() do { } while (0)
#define lockdep_hardirq_exit() do { } while (0)
#define lockdep_hardirqs_on_prepare() do { } while (0)
#define ct_nmi_enter() do { } while (0)
#define ct_nmi_exit() do { } while (0)
#define instrumentation_begin() do { } while (0)
#define instrumentation_end() do { } while (0)
#define kmsan_unpoison_entry_regs(regs) do { } while (0)
#define trace_hardirqs_off_finish() do { } while (0)
#define trace_hardirqs_on_prepare() do { } while (0)
#define ftrace_nmi_enter() do { } while (0)
#define ftrace_nmi_exit() do { } while (0)
#define GFP_KERNEL 0

/* ---- the harness's view of one task (mirrored by src/ffi.rs, #[repr(C)]) ----------- */
struct oracle_task {
	u64 usrptr;
	u64 expires;
	u64 tif;
	u64 syscall_work;
	u32 len;
	u32 sig;
	u32 ids_cpu_id;
	u32 ids_mm_cid;
	u32 ids_node_id;
	s32 cpu;
	s32 mm_cid;
	u32 flags;
	u8 sched_switch;
	u8 ids_changed;
	u8 user_irq;
	u8 has_rseq;
	u8 fatal;
	u8 slowpath;
	u8 enabled;
	u8 granted;
	u8 yielded;
	u8 pad[7];
};

/* need-resched helpers, __access_ok, resume_user_mode_work(): extracted */
#include "extracted_post.h"

#endif /* SLICESIM_KERNEL_ORACLE_SHIM_H */
