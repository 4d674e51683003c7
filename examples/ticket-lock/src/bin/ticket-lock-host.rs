//! `ticket-lock-host [ITERATIONS] [--revision 7.0|7.2]`: the same ticket lock on the host's
//! kernel, through `rseq_abi::linux` — two threads, one platform each, sharing the lock's
//! words. In the fidelity VM, beside the probes:
//!
//! ```text
//! cargo build --release --target x86_64-unknown-linux-musl -p ticket-lock --bin ticket-lock-host
//! cargo run -p slicesim-vm -- run --extra target/x86_64-unknown-linux-musl/release/ticket-lock-host
//! ```
//!
//! On a kernel without the extension (before 7.0, `rseq_slice_ext=0`, or glibc holding the
//! thread's rseq registration) the lock runs without it and says so: the same code
//! degrades cleanly.

#[cfg(target_os = "linux")]
fn main() {
    use rseq_abi::linux::{LinuxPlatform, SharedMem, POST_MERGE_RSEQ_LEN};
    use rseq_abi::Revision;
    use ticket_lock::{ticket_lock, Mistake, TicketParams};

    let iterations: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    // 7.2 offers the extension to registrations of more than 32 bytes (ABI v2), as the
    // fidelity probes register; `--revision 7.0` registers 32 bytes.
    let revision = std::env::args()
        .skip_while(|a| a != "--revision")
        .nth(1)
        .and_then(|r| Revision::from_name(&r))
        .unwrap_or(Revision::PostMerge);
    let params = TicketParams {
        iterations,
        hold_ns: 200,
        think_ns: 200,
        ..TicketParams::default()
    };
    let shared = SharedMem::new(3);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (shared, params) = (shared.clone(), params.clone());
            std::thread::spawn(move || {
                let len = if revision == Revision::PostMerge {
                    POST_MERGE_RSEQ_LEN
                } else {
                    32
                };
                let mut p = LinuxPlatform::new(shared)
                    .with_rseq_len(len)
                    .with_revision(revision);
                ticket_lock(&mut p, &params, Mistake::None)
            })
        })
        .collect();
    let mut acquired = 0;
    for (i, t) in threads.into_iter().enumerate() {
        let counters = t.join().expect("a lock thread panicked");
        let get = |k: &str| counters.iter().find(|(n, _)| *n == k).map_or(0, |c| c.1);
        acquired += get("acquired");
        println!(
            "thread {i}: acquired={} yielded={} raced={} extension {}",
            get("acquired"),
            get("yielded"),
            get("raced"),
            if get("ext") == 1 {
                "in use"
            } else {
                "not offered by this kernel (the lock ran without it)"
            }
        );
    }
    let counter = shared
        .word(params.counter_word())
        .load(std::sync::atomic::Ordering::SeqCst);
    println!("counter = {counter} (acquisitions: {acquired})");
    assert_eq!(i64::from(counter), acquired, "mutual exclusion failed");
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("ticket-lock-host needs Linux (rseq)");
}
