//! `docs/protocol.md` is the protocol reference every "§" in the project points into: every
//! section cited in the docs, the sources (and so `explain`'s output and the HTML legend)
//! and the scenario library must exist there, every revoke path R1..Rn cited must be a row
//! of its §5 table, and no document may send a user outside the repository for the spec.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if p.file_name()
                .is_some_and(|n| n == "target" || n == "snapshots")
            {
                continue;
            }
            files(&p, exts, out);
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| exts.contains(&e))
        {
            out.push(p);
        }
    }
}

/// Section numbers defined by headings of docs/protocol.md ("## 3. ...", "### 3.2 ...").
fn defined_sections(doc: &str) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for line in doc.lines() {
        let Some(rest) = line
            .strip_prefix("## ")
            .or_else(|| line.strip_prefix("### "))
        else {
            continue;
        };
        let num: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let num = num.trim_end_matches('.');
        if !num.is_empty() {
            set.insert(num.to_string());
        }
    }
    set
}

/// Revoke paths defined as rows of the §5 table ("| **R3** | ...").
fn defined_paths(doc: &str) -> BTreeSet<u32> {
    doc.lines()
        .filter_map(|l| l.strip_prefix("| **R"))
        .filter_map(|r| r.split("**").next()?.parse().ok())
        .collect()
}

/// Every "§N", "§N.M" in `text`; the forms "§13 qN" / "§12 item N" name §13.N / §12.N.
fn cited_sections(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('§') {
        rest = &rest[i + '§'.len_utf8()..];
        let num: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let num = num.trim_end_matches('.').to_string();
        if num.is_empty() {
            continue;
        }
        let after = &rest.trim_start()[num.len()..];
        let sub = ["q", "item ", "question "].iter().find_map(|p| {
            let d: String = after
                .strip_prefix(' ')?
                .strip_prefix(p)?
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            (!d.is_empty()).then_some(d)
        });
        match sub {
            Some(d) if !num.contains('.') => out.push(format!("{num}.{d}")),
            _ => out.push(num),
        }
    }
    out
}

/// Every revoke path "R<n>" cited as a word (R1..R99).
fn cited_paths(text: &str) -> Vec<u32> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    for i in 0..b.len() {
        if b[i] != b'R' || (i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) {
            continue;
        }
        let digits: String = text[i + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let end = i + 1 + digits.len();
        if digits.is_empty()
            || digits.len() > 2
            || b.get(end)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            continue;
        }
        out.push(digits.parse().unwrap());
    }
    out
}

fn protocol_doc() -> String {
    std::fs::read_to_string(root().join("docs/protocol.md")).expect("docs/protocol.md exists")
}

/// Where citations live: the docs, the sources (explain's sentences, the HTML legend and
/// its script), the scenario library.
fn cited_files() -> Vec<PathBuf> {
    let r = root();
    let mut v = vec![r.join("README.md"), r.join("ARCHITECTURE.md")];
    files(&r.join("docs"), &["md"], &mut v);
    for d in ["src", "sim/src", "abi/src"] {
        files(&r.join(d), &["rs", "js", "html", "css"], &mut v);
    }
    files(&r.join("scenarios"), &["toml"], &mut v);
    v
}

#[test]
fn protocol_doc_defines_the_sections_and_paths_everyone_cites() {
    let doc = protocol_doc();
    let sections = defined_sections(&doc);
    // The backbone: 1..13 with the subsections the code cites most.
    for s in [
        "1.2", "2.4", "3.2", "3.3", "4.3", "5", "6.1", "6.2", "7.3", "8.1", "8.3", "13.12",
    ] {
        assert!(sections.contains(s), "docs/protocol.md lacks §{s}");
    }
    let paths = defined_paths(&doc);
    assert_eq!(
        paths,
        (1..=10).collect(),
        "R1..R10 must be rows of §5's table"
    );
    assert!(
        doc.contains("**The grant/revoke race**"),
        "the grant/revoke race must be defined"
    );

    let mut bad = Vec::new();
    for f in cited_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        let rel = f.strip_prefix(root()).unwrap().display().to_string();
        for s in cited_sections(&text) {
            // "§1.1–§1.3" style ranges and "§3.2 step 4" resolve on their section.
            if !sections.contains(&s) {
                bad.push(format!("{rel}: §{s}"));
            }
        }
        for p in cited_paths(&text) {
            if !paths.contains(&p) {
                bad.push(format!("{rel}: R{p}"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "citations docs/protocol.md does not define:\n{}",
        bad.join("\n")
    );
}

#[test]
fn scenario_spec_fields_resolve() {
    let sections = defined_sections(&protocol_doc());
    let mut v = Vec::new();
    files(&root().join("scenarios"), &["toml"], &mut v);
    let mut bad = Vec::new();
    for f in v {
        let text = std::fs::read_to_string(&f).unwrap();
        let Some(line) = text.lines().find(|l| l.starts_with("spec = [")) else {
            continue;
        };
        for item in line["spec = [".len()..].split(',') {
            let item = item.trim().trim_end_matches(']').trim_matches('"');
            let Some(head) = item.split_whitespace().next() else {
                continue;
            };
            let q = item
                .split_whitespace()
                .nth(1)
                .and_then(|w| w.strip_prefix('q'));
            let s = match q {
                Some(n) => format!("{head}.{n}"),
                None => head.to_string(),
            };
            if !sections.contains(&s) {
                bad.push(format!("{}: \"{item}\"", f.display()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "scenario `spec` entries without a section:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_doc_sends_users_outside_the_repository() {
    let r = root();
    let mut v = vec![r.join("README.md"), r.join("ARCHITECTURE.md")];
    files(&r.join("docs"), &["md"], &mut v);
    files(&r.join("scenarios"), &["toml"], &mut v);
    files(&r.join("src"), &["rs", "js", "html"], &mut v);
    for f in v {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            !text.contains("../shared") && !text.contains("shared/spec"),
            "{} links outside the repository (use docs/protocol.md)",
            f.display()
        );
    }
}

#[test]
fn the_html_legend_cites_resolvable_paths() {
    // The legend is built from the lane model; its revoke entry names the paths of §5.
    let sections = defined_sections(&protocol_doc());
    let legend = slicesim::export::lanes::MARK_KINDS
        .iter()
        .map(|m| m.legend)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(legend.contains("R1..R10"), "{legend}");
    for s in cited_sections(&legend) {
        assert!(sections.contains(&s), "legend cites §{s}");
    }
    assert!(
        legend.contains("§5"),
        "the revoke legend points at §5: {legend}"
    );
}

#[test]
fn the_extractors_work() {
    assert_eq!(
        cited_sections("see §3.2 step 4, §13 q12 and §12 item 2; §5."),
        ["3.2", "13.12", "12.2", "5"]
    );
    assert_eq!(cited_paths("R2, (R10) not RR3 or R2x or FOR3"), [2, 10]);
}
