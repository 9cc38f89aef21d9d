//! `aligntds handover`: analyze's settings plus the policies; one study per
//! arm through the library, then the curve as a table.

use std::io::Write;
use std::path::Path;

use aligntds_analysis::handover::policy::Policy;
use aligntds_formats::handover::HandoverFile;
use anyhow::Result;

use crate::analyze::{analyze_error, settings, Bar};
use crate::args::HandoverArgs;
use crate::errors::Flags;

pub fn handover(args: HandoverArgs) -> Result<()> {
    let study = &args.study;
    crate::runtime::threads(study.pair.runtime.threads)?;
    let mut policies = Vec::new();
    for text in &args.policies {
        let arms =
            Policy::parse_arms(text).map_err(|m| anyhow::anyhow!("option `--policy`: {m}"))?;
        policies.extend(arms);
    }
    let settings = settings(study)?;
    let out = settings.out.clone();
    let quiet = study.quiet;
    let mut current: Option<Policy> = None;
    let mut bar = Bar::new(true);
    let file = aligntds_analysis::handover::run(&settings, &policies, &mut |arm, p| {
        if current != Some(*arm) {
            bar.finish();
            if !quiet {
                eprintln!("== arm {}", arm.label());
            }
            bar = Bar::new(quiet);
            current = Some(*arm);
        }
        bar.update(p, &[])
    });
    bar.finish();
    let file = file.map_err(|e| analyze_error(study, e, Flags::Analyze(&[])))?;
    print_curve(&file, &out)
}

/// `aligntds merge` of a handover study's shards: each arm, then the curve.
pub fn merge(args: crate::args::MergeArgs) -> Result<()> {
    let file = aligntds_analysis::handover::merge(&args.dirs, &args.out, args.curve_positions)
        .map_err(|e| crate::errors::study_error(e, Flags::Merge))?;
    print_curve(&file, &args.out)
}

/// The curve as a table on stdout, and where the arms and the file are.
pub fn print_curve(file: &HandoverFile, out: &Path) -> Result<()> {
    let mut w = std::io::stdout().lock();
    writeln!(
        w,
        "{:<16} {:>8} {:>22} {:>22} {:>22} {:>8}",
        "arm", "examples", "aligned tokens", "agreement", "aligned mean logprob", "length"
    )?;
    let cell = |e: &aligntds_formats::sides::Estimate, digits: usize| {
        format!(
            "{:.d$} [{:.d$}, {:.d$}]",
            e.value,
            e.low,
            e.high,
            d = digits
        )
    };
    for arm in &file.arms {
        writeln!(
            w,
            "{:<16} {:>8} {:>22} {:>22} {:>22} {:>8.1}",
            arm.policy,
            arm.examples,
            cell(&arm.aligned_share, 3),
            cell(&arm.agreement, 3),
            cell(&arm.aligned_mean_logprob, 2),
            arm.length.value
        )?;
    }
    writeln!(
        w,
        "  (means with 95 % intervals over queries) arms in {}, curve in {}",
        out.join("arms").display(),
        out.join(aligntds_formats::handover::HANDOVER_FILE)
            .display()
    )?;
    Ok(())
}
