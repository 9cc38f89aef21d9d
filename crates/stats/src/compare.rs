//! Paired comparisons of two runs over the same queries: for each headline
//! statistic, the difference with a paired-bootstrap interval (the same
//! examples drawn for both runs) and a paired permutation p-value. Runs
//! whose queries differ are refused, unless only the shared ones are asked
//! for.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aligntds_formats::positions::PositionRecord;
use aligntds_formats::summary::Category;
use aligntds_formats::FormatError;

use crate::resampling::{paired_bootstrap, paired_permutation, ratio, Cluster, Interval};
use crate::resampling::{RESAMPLES, SEED};

/// The headline statistics, in the order [`clusters`] gives them.
pub const STATISTICS: [&str; 7] = [
    "unshifted",
    "marginal",
    "shifted",
    "kl_aligned_base",
    "kl_base_aligned",
    "same_top1_rate",
    "mean_base_prob",
];

/// One example's contribution to each headline statistic (a ratio of sums:
/// category shares over positions, means over the positions where the value
/// is known).
pub fn clusters(positions: &[PositionRecord]) -> [Cluster; 7] {
    let n = positions.len() as f64;
    let share = |pred: &dyn Fn(&PositionRecord) -> bool| {
        Cluster::new(positions.iter().filter(|p| pred(p)).count() as f64, n)
    };
    let mean = |value: &dyn Fn(&PositionRecord) -> Option<f64>| {
        let known: Vec<f64> = positions.iter().filter_map(value).collect();
        Cluster::new(known.iter().sum(), known.len() as f64)
    };
    [
        share(&|p| p.category == Category::Unshifted),
        share(&|p| p.category == Category::Marginal),
        share(&|p| p.category == Category::Shifted),
        mean(&|p| p.kl_aligned_base),
        mean(&|p| p.kl_base_aligned),
        share(&|p| p.top1_agree),
        mean(&|p| Some((p.base_logprob as f64).exp())),
    ]
}

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The runs hold different queries.
    #[error("{message}")]
    Mismatch { message: String, common: usize },
    #[error("run {run} has no side `{side}`; its sides: {sides}")]
    NoSide {
        run: String,
        side: String,
        sides: String,
    },
}

/// One statistic compared.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub statistic: &'static str,
    pub a: f64,
    pub b: f64,
    /// `a - b` with its paired-bootstrap interval.
    pub difference: Interval,
    pub p_value: f64,
    pub permutations: usize,
}

/// Two runs compared on the examples they share.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Comparison {
    /// `RUN` or `RUN@SIDE`.
    pub a: String,
    pub b: String,
    /// Examples compared (those both runs analyzed).
    pub examples: usize,
    /// Examples only one run holds (compared only with `common_only`).
    pub only_a: usize,
    pub only_b: usize,
    pub rows: Vec<Row>,
}

/// An example as runs are matched: its id and query.
/// An answer's id and query text: what pairs two runs' answers (the
/// id of a sampled answer holds its sample index, so answers pair by
/// query and sample).
type ExampleKey = (String, String);

/// What is compared: a run (its base side), or one reference side of a
/// run with several (`RUN@SIDE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operand {
    pub dir: PathBuf,
    pub side: Option<String>,
}

impl Operand {
    /// `RUN` or `RUN@SIDE`; a folder whose own name holds `@` is taken whole.
    pub fn parse(text: &str) -> Self {
        match text.rsplit_once('@') {
            Some((dir, side))
                if !side.is_empty() && !side.contains('/') && !Path::new(text).exists() =>
            {
                Self {
                    dir: PathBuf::from(dir),
                    side: Some(side.to_string()),
                }
            }
            _ => Self {
                dir: PathBuf::from(text),
                side: None,
            },
        }
    }

    /// A run folder's base side.
    pub fn run(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            side: None,
        }
    }
}

impl std::fmt::Display for Operand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.side {
            Some(side) => write!(f, "{}@{side}", self.dir.display()),
            None => write!(f, "{}", self.dir.display()),
        }
    }
}

/// An analyzed answer's query id and its clusters.
type Answer = (String, [Cluster; 7]);

/// A run's analyzed examples with their clusters (of its base side, or of
/// `side`), in examples.jsonl order.
fn read_run(run: &Operand) -> Result<Vec<(ExampleKey, Answer)>, CompareError> {
    let dir = run.dir.as_path();
    let lines = aligntds_formats::examples::read(dir)?;
    let wanted = run
        .side
        .as_deref()
        .unwrap_or(aligntds_formats::sides::BASE_SIDE);
    let mut by_id: HashMap<String, [Cluster; 7]> = HashMap::new();
    let mut seen: Vec<String> = Vec::new();
    aligntds_formats::positions::for_each_example_by_side(dir, |id, sides| {
        for s in sides {
            if s.side == wanted {
                by_id.insert(id.to_string(), clusters(&s.positions));
            } else if !seen.contains(&s.side) {
                seen.push(s.side);
            }
        }
        Ok(())
    })?;
    if by_id.is_empty() && !seen.is_empty() {
        return Err(CompareError::NoSide {
            run: dir.display().to_string(),
            side: wanted.to_string(),
            sides: seen.join(", "),
        });
    }
    Ok(lines
        .into_iter()
        .filter_map(|line| {
            let c = by_id.remove(&line.id)?;
            let query_id = line.query_key().to_string();
            Some(((line.id, line.query), (query_id, c)))
        })
        .collect())
}

/// Compares run `a` with run `b` example by example. Their analyzed examples
/// must be the same (same ids, same queries) unless `common_only`, which
/// compares those both hold.
pub fn compare(a: &Operand, b: &Operand, common_only: bool) -> Result<Comparison, CompareError> {
    let (ra, rb) = (read_run(a)?, read_run(b)?);
    let in_b: HashMap<&ExampleKey, &Answer> = rb.iter().map(|(k, c)| (k, c)).collect();
    let pairs: Vec<(&Answer, &Answer)> = ra
        .iter()
        .filter_map(|(k, ca)| in_b.get(k).map(|cb| (ca, *cb)))
        .collect();
    let (only_a, only_b) = (ra.len() - pairs.len(), rb.len() - pairs.len());
    if (only_a > 0 || only_b > 0) && !common_only {
        let first = ra
            .iter()
            .map(|(k, _)| k)
            .find(|k| !in_b.contains_key(k))
            .or_else(|| {
                let in_a: std::collections::HashSet<_> = ra.iter().map(|(k, _)| k).collect();
                rb.iter().map(|(k, _)| k).find(|k| !in_a.contains(k))
            });
        let example = first.map_or(String::new(), |(id, q)| {
            format!(" (first: example `{id}`, query {:?})", truncate(q))
        });
        return Err(CompareError::Mismatch {
            message: format!(
                "the runs hold different queries: {} shared, {only_a} only in {}, {only_b} only in {}{example}",
                pairs.len(),
                a,
                b
            ),
            common: pairs.len(),
        });
    }
    if pairs.is_empty() {
        return Err(CompareError::Mismatch {
            message: format!("{a} and {b} share no analyzed example"),
            common: 0,
        });
    }
    // One pair of clusters per query: the sampled answers of a query move
    // together, so the paired bootstrap and permutations resample queries.
    let queries = crate::resampling::by_query(
        pairs
            .iter()
            .map(|((q, ca), (_, cb))| (q.as_str(), (*ca, *cb))),
        |(ta, tb), (ma, mb)| {
            crate::resampling::add_clusters(ta, ma);
            crate::resampling::add_clusters(tb, mb);
        },
    );
    let rows = STATISTICS
        .iter()
        .enumerate()
        .map(|(s, &statistic)| {
            let xa: Vec<Cluster> = queries.iter().map(|(ca, _)| ca[s]).collect();
            let xb: Vec<Cluster> = queries.iter().map(|(_, cb)| cb[s]).collect();
            let (p_value, permutations) = paired_permutation(&xa, &xb, RESAMPLES * 10, SEED);
            Row {
                statistic,
                a: ratio(&xa),
                b: ratio(&xb),
                difference: paired_bootstrap(&xa, &xb, RESAMPLES, 0.95, SEED),
                p_value,
                permutations,
            }
        })
        .collect();
    Ok(Comparison {
        a: a.to_string(),
        b: b.to_string(),
        examples: pairs.len(),
        only_a,
        only_b,
        rows,
    })
}

fn truncate(text: &str) -> String {
    let cut: String = text.chars().take(60).collect();
    if cut.len() < text.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// The comparison as a table for a terminal.
pub fn render_text(c: &Comparison) -> String {
    let mut out = format!("A = {}\nB = {}\n{} examples compared", c.a, c.b, c.examples);
    if c.only_a + c.only_b > 0 {
        out.push_str(&format!(
            " (the shared ones; {} only in A, {} only in B left out)",
            c.only_a, c.only_b
        ));
    }
    out.push_str(&format!(
        "; paired bootstrap over examples ({RESAMPLES} resamples), paired permutation p\n"
    ));
    out.push_str(&format!(
        "{:<16} {:>10} {:>10} {:>10}  {:<24} {:>8}\n",
        "statistic", "A", "B", "A - B", "95 % interval", "p"
    ));
    for r in &c.rows {
        let percent = r.statistic != "kl_aligned_base" && r.statistic != "kl_base_aligned";
        let f = |x: f64| {
            if percent {
                format!("{:.2} %", x * 100.0)
            } else {
                format!("{x:.4}")
            }
        };
        let signed = |x: f64| {
            if percent {
                format!("{:+.2}", x * 100.0)
            } else {
                format!("{x:+.4}")
            }
        };
        out.push_str(&format!(
            "{:<16} {:>10} {:>10} {:>10}  {:<24} {:>8.4}\n",
            r.statistic,
            f(r.a),
            f(r.b),
            signed(r.difference.estimate),
            format!(
                "[{}, {}]",
                signed(r.difference.low),
                signed(r.difference.high)
            ),
            r.p_value
        ));
    }
    out
}
