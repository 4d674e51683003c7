//! A user's own program in scenario files: registered with its parameter type, named by
//! `program = "..."`, its `params` deserialized with the same precise errors the built-ins
//! get, and its parameters in the JSON schema.

use std::path::Path;

use rseq_abi::{Platform, SharedWord};
use slicesim::programs::Programs;
use slicesim::scenario;

/// `bump`'s parameters.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Bump {
    /// Additions to make.
    times: u32,
    /// Burn between additions, ns.
    #[serde(default)]
    gap_ns: u64,
}

fn programs() -> Programs {
    Programs::builtin().with("bump", |p, b: &Bump| {
        for _ in 0..b.times {
            p.shared_fetch_add(SharedWord(7), 1);
            p.burn(b.gap_ns);
        }
        vec![("bumps", i64::from(b.times))]
    })
}

fn scenario(task: &str) -> String {
    format!(
        "[scenario]\nname = \"bumps\"\nduration = \"1ms\"\n\n[machine]\ncpus = 1\n\n{task}\n[expect.task.b.counters]\nbumps = 3\n"
    )
}

fn parse(src: &str) -> Result<scenario::Loaded, String> {
    scenario::parse_with(Path::new("s.toml"), src, &[], &programs()).map_err(|e| e.to_string())
}

#[test]
fn a_registered_program_runs_with_its_params_from_an_inline_or_a_sub_table() {
    for task in [
        "[[task]]\nname = \"b\"\nprogram = \"bump\"\nparams = { times = 3, gap_ns = 100 }\n",
        "[[task]]\nname = \"b\"\nprogram = \"bump\"\n[task.params]\ntimes = 3\n",
    ] {
        let l = parse(&scenario(task)).unwrap();
        let r = scenario::run(&l, None, None).unwrap();
        assert!(r.passed(), "{:?}", r.checks);
        assert_eq!(r.sim.shared_word(SharedWord(7)), 3);
    }
}

#[test]
fn a_misspelt_param_names_its_line_column_and_the_closest_key() {
    let src = scenario(
        "[[task]]\nname = \"b\"\nprogram = \"bump\"\nparams = { times = 3, gap_nss = 1 }\n",
    );
    let e = parse(&src).unwrap_err();
    assert!(e.starts_with("s.toml:11:"), "{e}");
    assert!(e.contains("unknown field `gap_nss`"), "{e}");
    assert!(e.contains("did you mean `gap_ns`?"), "{e}");
    // In a sub-table, the offending line itself.
    let src = scenario(
        "[[task]]\nname = \"b\"\nprogram = \"bump\"\n[task.params]\ntimes = 3\ntmes = 4\n",
    );
    let e = parse(&src).unwrap_err();
    assert!(e.starts_with("s.toml:13:1: "), "{e}");
    assert!(e.contains("did you mean `times`?"), "{e}");
}

#[test]
fn a_wrong_type_or_a_missing_param_is_an_error_at_its_place() {
    let src =
        scenario("[[task]]\nname = \"b\"\nprogram = \"bump\"\nparams = { times = \"many\" }\n");
    let e = parse(&src).unwrap_err();
    assert!(e.starts_with("s.toml:11:20: "), "{e}");
    assert!(e.contains("invalid type"), "{e}");
    let src = scenario("[[task]]\nname = \"b\"\nprogram = \"bump\"\n");
    let e = parse(&src).unwrap_err();
    assert!(e.starts_with("s.toml:8:1: "), "{e}");
    assert!(
        e.contains("program `bump` needs `params`: missing field `times`"),
        "{e}"
    );
}

#[test]
fn program_names_and_their_params_are_checked_against_the_registry() {
    let src = scenario("[[task]]\nname = \"b\"\nprogram = \"bumq\"\n");
    let e = parse(&src).unwrap_err();
    assert!(e.starts_with("s.toml:10:"), "{e}");
    assert!(e.contains("did you mean `bump`?"), "{e}");
    // Without the registration, the same file names an unknown program.
    let e = scenario::parse(
        Path::new("s.toml"),
        &scenario("[[task]]\nname = \"b\"\nprogram = \"bump\"\n"),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("unknown variant `bump`"), "{e}");
    // A built-in's key on a registered program, and `params` on a built-in.
    let e = parse(&scenario(
        "[[task]]\nname = \"b\"\nprogram = \"bump\"\nhold = \"1us\"\nparams = { times = 3 }\n",
    ))
    .unwrap_err();
    assert!(e.contains("`hold` does not apply to program `bump`"), "{e}");
    let e = parse(&scenario(
        "[[task]]\nname = \"b\"\nprogram = \"spinner\"\nparams = { times = 3 }\n",
    ))
    .unwrap_err();
    assert!(e.contains("`params` is for registered programs"), "{e}");
}

#[test]
fn the_json_schema_has_the_registered_programs_and_their_params() {
    let schema: serde_json::Value =
        serde_json::from_str(&scenario::json_schema_with(&programs())).unwrap();
    let task = &schema["$defs"]["TaskDef"];
    let names = task["properties"]["program"]["enum"].as_array().unwrap();
    assert!(names.iter().any(|n| n == "bump") && names.iter().any(|n| n == "spinlock"));
    let rule = &task["allOf"][0];
    assert_eq!(rule["if"]["properties"]["program"]["const"], "bump");
    let params = &rule["then"]["properties"]["params"];
    assert_eq!(params["required"][0], "times");
    assert!(params["properties"]["gap_ns"].is_object(), "{params}");
    // The built-in schema names only built-ins.
    let plain: serde_json::Value = serde_json::from_str(&scenario::json_schema()).unwrap();
    let names = plain["$defs"]["TaskDef"]["properties"]["program"]["enum"]
        .as_array()
        .unwrap();
    assert!(!names.iter().any(|n| n == "bump"));
}
