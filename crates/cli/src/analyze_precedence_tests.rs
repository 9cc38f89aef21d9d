//! Study-file precedence, key by key, through clap's own parser: a flag given
//! overrides the file's key (even when it equals the default), the key
//! overrides the default, and side flags beside --study are refused.

use std::path::Path;

use aligntds_analysis::settings::{FieldMap, ResponseSource, StudySettings, Thresholds};
use aligntds_engine::{DType, DTypeChoice};
use clap::{CommandFactory, FromArgMatches};

use crate::args::{Cli, Command};

fn parse(argv: &[&str]) -> anyhow::Result<StudySettings> {
    let matches =
        Cli::command().try_get_matches_from(["aligntds", "analyze"].iter().chain(argv).copied())?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    crate::args::note_given(&mut cli.command, &matches);
    let Command::Analyze(args) = cli.command else {
        unreachable!()
    };
    super::settings(&args)
}

const SIDES: &str = "[aligned]\nmodel = \"a\"\n[base]\nmodel = \"b\"\n";

const ALL_KEYS: &str = r##"
data = "q.jsonl"
out = "runs/x"
top_k = 5
unshifted_max = 2
marginal_max = 6
max_new_tokens = 64
response = "generate"
stops = ["<end>"]
limit = 7
batch = 3
dtype = "q"
curve_positions = 50
query_field = "question"
answer_field = "reference.text"
id_field = "uid"
"##;

fn study(dir: &Path, text: &str) -> String {
    let path = dir.join("study.toml");
    std::fs::write(&path, format!("{text}\n{SIDES}")).unwrap();
    path.to_string_lossy().into_owned()
}

/// What each key sets, read off the settings.
fn observed(s: &StudySettings) -> Vec<(&'static str, String)> {
    vec![
        ("top_k", s.top_k.to_string()),
        ("unshifted_max", s.thresholds.unshifted_max.to_string()),
        ("marginal_max", s.thresholds.marginal_max.to_string()),
        ("max_new_tokens", s.max_new_tokens.to_string()),
        ("response", format!("{:?}", s.response)),
        ("stops", format!("{:?}", s.stops)),
        ("limit", format!("{:?}", s.limit)),
        ("batch", format!("{:?}", s.runtime.batch)),
        ("dtype", format!("{:?}", s.runtime.dtype)),
        ("curve_positions", s.curve_positions.to_string()),
        ("query_field", format!("{:?}", s.fields.query)),
        ("answer_field", format!("{:?}", s.fields.answer)),
        ("id_field", format!("{:?}", s.fields.id)),
    ]
}

#[test]
fn every_key_of_the_file_overrides_the_default() {
    let tmp = tempfile::tempdir().unwrap();
    let s = parse(&["--study", &study(tmp.path(), ALL_KEYS)]).unwrap();
    assert_eq!(s.top_k, 5);
    assert_eq!(
        s.thresholds,
        Thresholds {
            unshifted_max: 2,
            marginal_max: 6
        }
    );
    assert_eq!(s.max_new_tokens, 64);
    assert_eq!(s.response, ResponseSource::Generate);
    assert_eq!(s.stops, ["<end>"]);
    assert_eq!(s.limit, Some(7));
    assert_eq!(s.runtime.batch, Some(3));
    assert_eq!(s.runtime.dtype, DTypeChoice::Quantized);
    assert_eq!(s.curve_positions, 50);
    assert_eq!(
        s.fields,
        FieldMap {
            query: Some("question".into()),
            answer: Some("reference.text".into()),
            id: Some("uid".into())
        }
    );
    // A file without keys: the defaults, as the flags' own.
    let plain = parse(&[
        "--study",
        &study(tmp.path(), "data = \"q.jsonl\"\nout = \"o\""),
    ])
    .unwrap();
    let flags = parse(&[
        "--aligned",
        "a",
        "--base",
        "b",
        "--data",
        "q.jsonl",
        "--out",
        "o",
    ])
    .unwrap();
    assert_eq!(observed(&plain), observed(&flags));
    assert_ne!(observed(&plain), observed(&s));
}

#[test]
fn each_flag_given_overrides_its_key_and_only_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let file = study(tmp.path(), ALL_KEYS);
    let from_file = observed(&parse(&["--study", &file]).unwrap());
    // Each flag with a value other than the file's; the first ones are the
    // defaults (a default and a given flag are told apart).
    let cases: [(&str, &[&str]); 13] = [
        ("top_k", &["--top-k", "10"]),
        ("unshifted_max", &["--unshifted-max", "1"]),
        ("marginal_max", &["--marginal-max", "3"]),
        ("max_new_tokens", &["--max-new-tokens", "512"]),
        ("response", &["--response", "auto"]),
        ("stops", &["--stop", "END"]),
        ("limit", &["--limit", "2"]),
        ("batch", &["--batch", "1"]),
        ("dtype", &["--dtype", "f32"]),
        ("curve_positions", &["--curve-positions", "200"]),
        ("query_field", &["--query-field", "turns.0"]),
        ("answer_field", &["--answer-field", "output"]),
        ("id_field", &["--id-field", "key"]),
    ];
    for (key, flag) in cases {
        let argv: Vec<&str> = ["--study", file.as_str()]
            .iter()
            .chain(flag)
            .copied()
            .collect();
        let got = observed(&parse(&argv).unwrap());
        for ((k, value), (_, file_value)) in got.iter().zip(&from_file) {
            if *k == key {
                assert_ne!(
                    value, file_value,
                    "{key}: the flag did not override the file"
                );
            } else {
                assert_eq!(value, file_value, "{flag:?} changed {k}");
            }
        }
    }
    let s = parse(&["--study", &file, "--dtype", "f32"]).unwrap();
    assert_eq!(s.runtime.dtype, DTypeChoice::Float(DType::F32));
    // Sources too: --data, --out and --group-by over the file's.
    let s = parse(&[
        "--study",
        &file,
        "--data",
        "other.csv",
        "--out",
        "elsewhere",
    ])
    .unwrap();
    assert_eq!(
        s.queries,
        aligntds_analysis::settings::Queries::File("other.csv".into())
    );
    assert_eq!(s.out, Path::new("elsewhere"));
}

#[test]
fn side_flags_beside_a_study_file_are_refused_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let file = study(tmp.path(), ALL_KEYS);
    for flag in [
        &["--aligned-context", "plain"][..],
        &["--base-context", "chat"],
        &["--system", "Be brief."],
        &["--enable-thinking", "false"],
        &["--aligned-server", "http://127.0.0.1:9"],
        &["--base-chat-template", "chatml"],
        &["--aligned-prefix", "p.txt"],
        &["--base-template", "Q: {query}"],
        &["--base-served-name", "m"],
        &["--compare-context", "sft=plain"],
    ] {
        let argv: Vec<&str> = ["--study", file.as_str()]
            .iter()
            .chain(flag)
            .copied()
            .collect();
        let e = parse(&argv).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("option `{}`", flag[0])) && e.contains("study file"),
            "{e}"
        );
    }
    // Not side flags: server tuning and the run's own switches.
    assert!(parse(&[
        "--study",
        &file,
        "--max-in-flight",
        "4",
        "--overwrite",
        "--quiet"
    ])
    .is_ok());
}

#[test]
fn a_bad_value_from_the_file_is_named_as_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let e = parse(&[
        "--study",
        &study(tmp.path(), "data = \"q\"\nout = \"o\"\ntop_k = 0"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("study.toml") && e.contains("`top_k`") && !e.contains("--top-k"),
        "{e}"
    );
    let e = parse(&[
        "--study",
        &study(tmp.path(), "data = \"q\"\nout = \"o\"\ntop_kk = 3"),
    ])
    .unwrap_err()
    .to_string();
    assert!(e.contains("top_kk") && e.contains("max_new_tokens"), "{e}");
    let e = parse(&[
        "--study",
        &study(tmp.path(), "data = \"q\"\nout = \"o\"\ndtype = \"f64\""),
    ])
    .unwrap_err()
    .to_string();
    assert!(e.contains("f64") && e.contains("bf16"), "{e}");
}
