//! Run folders and report folders never mix results, across processes.

use std::process::Command;

use crate::common::{aligntds, pair_args, stderr, strs};

#[test]
fn a_second_process_on_the_same_folder_is_refused_naming_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let queries: String = (0..400)
        .map(|i| format!("Question number {i}?\n"))
        .collect();
    let data = tmp.path().join("q.txt");
    std::fs::write(&data, queries).unwrap();
    let out = tmp.path().join("run");
    let data = data.to_str().unwrap();
    let mut first = Command::new(env!("CARGO_BIN_EXE_aligntds"))
        .args(pair_args(data, &out, &["--max-new-tokens", "200"]))
        .spawn()
        .unwrap();
    // Wait until the first process holds the folder (its pid is in the lock file).
    let lock = out.join(".aligntds.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline
        && std::fs::read_to_string(&lock).unwrap_or_default() != first.id().to_string()
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let second = aligntds(&strs(&pair_args(
        data,
        &out,
        &["--max-new-tokens", "200", "--top-k", "3"],
    )));
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run must still be working for this test to mean anything"
    );
    assert_eq!(second.status.code(), Some(2));
    let message = stderr(&second);
    assert!(
        message.contains("in use") && message.contains(&first.id().to_string()),
        "{message}"
    );
    // Let the first run reach its work (its stamp written), then stop it.
    let stamp_file = out.join("fingerprint.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline && !stamp_file.exists() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = first.kill();
    let _ = first.wait();
    // The folder is still the first run's: its stamp, and no outputs of a finished run.
    let stamp = aligntds_analysis::study::folder::read_stamp(&out).unwrap();
    assert_eq!(stamp.settings["settings"]["top_k"], 10);
    assert!(!out.join("summary.json").exists());
}

#[test]
fn a_report_replaces_an_earlier_report_whole_and_refuses_other_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("q.txt");
    std::fs::write(&data, "One?\nTwo?\n").unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for run in [&a, &b] {
        let o = aligntds(&strs(&pair_args(
            data.to_str().unwrap(),
            run,
            &["--max-new-tokens", "4"],
        )));
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let site = tmp.path().join("site");
    let report = |runs: &[&std::path::Path], out: &std::path::Path| {
        let mut args = vec!["report".to_string()];
        args.extend(runs.iter().map(|r| r.to_string_lossy().into_owned()));
        args.extend(["--out".to_string(), out.to_string_lossy().into_owned()]);
        aligntds(&strs(&args))
    };
    assert!(report(&[&a, &b], &site).status.success());
    assert!(site.join("r1/e00001.html").exists());
    // One run now: the second run's pages of the earlier report are gone. (A report
    // from before the marker file existed is recognised by its own files.)
    std::fs::remove_file(site.join(".aligntds-report")).unwrap();
    let o = report(&[&a], &site);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(site.join("r0/e00001.html").exists());
    assert!(
        !site.join("r1").exists(),
        "stale pages of the earlier report"
    );
    // A folder that is not a report is never written into.
    let other = tmp.path().join("notes");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("mine.txt"), "keep").unwrap();
    let o = report(&[&a], &other);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not an aligntds report"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(other.join("mine.txt")).unwrap(),
        "keep"
    );
    // A failed build (a run folder that is not finished) leaves the earlier report as it was.
    let unfinished = tmp.path().join("unfinished");
    std::fs::create_dir(&unfinished).unwrap();
    let o = report(&[&unfinished], &site);
    assert_eq!(o.status.code(), Some(2));
    assert!(site.join("index.html").exists() && site.join("r0/e00001.html").exists());
}
