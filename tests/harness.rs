//! The test harness (`slicesim::harness`) on its own: a user program that panics is that
//! task's fault, reported as a broken invariant; a predicate that panics is a broken
//! predicate; a bad machine key is a clear message.

use rseq_abi::{Platform, SharedWord};
use slicesim::harness::{Explore, Model, SimPlatform, TaskExit};

fn broken(p: &mut SimPlatform<'_>) {
    p.burn(1_000);
    panic!("my lock is broken");
}

#[test]
fn a_panicking_program_is_its_tasks_fault_and_the_other_tasks_go_on() {
    let f = Model::new()
        .spawn("bad", broken)
        .spawn("good", |p| {
            p.shared_store(SharedWord(3), 7);
        })
        .try_explore(Explore::exhaustive(0))
        .expect_err("the panic breaks an invariant");
    assert_eq!(f.violation.property, "correct-code-no-fault");
    assert!(f.report.contains("my lock is broken"), "{f}");
    // Run once, the same: the good task finished.
    let r = std::panic::catch_unwind(|| {
        Model::new()
            .spawn("bad", broken)
            .correct(&[])
            .run_once(|run| {
                assert!(matches!(run.exit("bad"), Some(TaskExit::Panicked(_))));
            })
    });
    assert!(r.is_ok(), "a task not claiming correctness may panic");
}

#[test]
fn a_predicate_that_fails_or_panics_is_a_named_violation() {
    let f = Model::new()
        .spawn("t", |p| {
            vec![("n", i64::from(p.shared_load(SharedWord(0))))]
        })
        .check("n is one", |run| match run.counter("t", "n") {
            Some(1) => Ok(()),
            other => Err(format!("n is {other:?}")),
        })
        .try_explore(Explore::exhaustive(0))
        .expect_err("n is 0");
    assert_eq!(f.violation.property, "n is one");
    assert!(f.violation.detail.contains("n is Some(0)"), "{f}");
    let f = Model::new()
        .spawn("t", |_| ())
        .check("panics", |run| {
            run.task("nobody");
            Ok(())
        })
        .try_explore(Explore::exhaustive(0))
        .expect_err("the predicate panics");
    assert!(f.violation.detail.contains("no task `nobody`"), "{f}");
}

#[test]
fn a_bad_machine_key_is_a_clear_message() {
    let r = std::panic::catch_unwind(|| {
        Model::new()
            .machine("cpuz", "2")
            .spawn("t", |_| ())
            .run_once(|_| ())
    });
    let msg = *r.expect_err("rejected").downcast::<String>().unwrap();
    assert!(
        msg.contains("unknown field `cpuz`") && msg.contains("did you mean `cpus`?"),
        "{msg}"
    );
}
