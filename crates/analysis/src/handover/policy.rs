//! The policies: when the aligned side's token is taken over the base's.
//! (A leaf: the settings name a policy, the decoder asks it each step.)

/// Who writes each token of a handover answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Policy {
    /// The aligned side alone.
    Aligned,
    /// The base side alone.
    Base,
    /// The aligned side for the first N tokens, then the base side.
    First(usize),
    /// The aligned side where the base side's top-1 probability is below G.
    Uncertain(f64),
    /// The aligned side where the base side ranks the aligned side's token
    /// beyond the marginal bar; else the base side's.
    Shifted,
    /// The aligned side where KL(aligned || base) at the step exceeds T.
    Kl(f64),
}

impl Policy {
    /// One policy per arm from `name` or `name:v1,v2,...` (`first:5`,
    /// `uncertain:0.1,0.4`, `kl:0.5`), or why not.
    pub fn parse_arms(text: &str) -> Result<Vec<Policy>, String> {
        let (name, values) = match text.split_once(':') {
            Some((n, v)) => (n.trim(), Some(v)),
            None => (text.trim(), None),
        };
        let list = |what: &str| -> Result<Vec<&str>, String> {
            let v = values.ok_or_else(|| {
                format!(
                    "`{name}` needs {what} after a colon, e.g. {}",
                    example(name)
                )
            })?;
            let parts: Vec<&str> = v.split(',').map(str::trim).collect();
            if parts.iter().any(|p| p.is_empty()) {
                return Err(format!(
                    "`{text}` has an empty value; e.g. {}",
                    example(name)
                ));
            }
            Ok(parts)
        };
        let number = |p: &str| -> Result<f64, String> {
            p.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| format!("`{p}` in `{text}` is not a number of at least 0"))
        };
        let plain = |p: Policy| match values {
            None => Ok(vec![p]),
            Some(_) => Err(format!("`{name}` takes no value")),
        };
        match name {
            "aligned" => plain(Policy::Aligned),
            "base" => plain(Policy::Base),
            "shifted" => plain(Policy::Shifted),
            "first" => list("a token count")?
                .into_iter()
                .map(|p| {
                    p.parse::<usize>()
                        .map(Policy::First)
                        .map_err(|_| format!("`{p}` in `{text}` is not a token count"))
                })
                .collect(),
            "uncertain" => list("a probability")?
                .into_iter()
                .map(|p| {
                    let g = number(p)?;
                    if g > 1.0 {
                        return Err(format!("`{p}` in `{text}` is a probability above 1"));
                    }
                    Ok(Policy::Uncertain(g))
                })
                .collect(),
            "kl" => list("a divergence in nats")?
                .into_iter()
                .map(|p| number(p).map(Policy::Kl))
                .collect(),
            _ => Err(format!(
                "`{name}` is not a policy: use aligned, base, first:N, uncertain:G, shifted or kl:T"
            )),
        }
    }

    /// The arm's name as written (`first:5`).
    pub fn label(&self) -> String {
        match self {
            Policy::Aligned => "aligned".into(),
            Policy::Base => "base".into(),
            Policy::Shifted => "shifted".into(),
            Policy::First(n) => format!("first:{n}"),
            Policy::Uncertain(g) => format!("uncertain:{g}"),
            Policy::Kl(t) => format!("kl:{t}"),
        }
    }

    /// The arm's folder name: the label with `:` made file-safe (`first-5`).
    pub fn folder(&self) -> String {
        self.label().replace(':', "-")
    }

    /// Whether the policy needs both sides' whole distributions (KL), which
    /// a side on servers does not give.
    pub fn needs_full_rows(&self) -> bool {
        matches!(self, Policy::Kl(_))
    }

    /// Whether the aligned side takes step `t`, from what the step offers:
    /// the base side's top-1 probability, its rank of the aligned side's
    /// token and the KL of the aligned from the base distribution (asked for
    /// only where needed).
    pub fn aligned_takes<E>(
        &self,
        t: usize,
        marginal_max: u32,
        step: &mut dyn Step<Error = E>,
    ) -> Result<bool, E> {
        Ok(match *self {
            Policy::Aligned => true,
            Policy::Base => false,
            Policy::First(n) => t < n,
            Policy::Uncertain(g) => step.base_top1_prob()? < g,
            Policy::Shifted => step.base_rank_of_aligned()? > marginal_max,
            Policy::Kl(limit) => step.kl_aligned_base()? > limit,
        })
    }
}

/// What a policy may ask of one step.
pub trait Step {
    type Error;
    fn base_top1_prob(&mut self) -> Result<f64, Self::Error>;
    fn base_rank_of_aligned(&mut self) -> Result<u32, Self::Error>;
    fn kl_aligned_base(&mut self) -> Result<f64, Self::Error>;
}

fn example(name: &str) -> &'static str {
    match name {
        "first" => "first:5",
        "uncertain" => "uncertain:0.4",
        _ => "kl:0.5",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arms_parse_with_their_values_and_file_safe_names() {
        assert_eq!(Policy::parse_arms("aligned"), Ok(vec![Policy::Aligned]));
        assert_eq!(
            Policy::parse_arms("uncertain:0.1,0.4"),
            Ok(vec![Policy::Uncertain(0.1), Policy::Uncertain(0.4)])
        );
        assert_eq!(Policy::parse_arms("first:5"), Ok(vec![Policy::First(5)]));
        let names: Vec<String> = Policy::parse_arms("kl:0.5,2")
            .unwrap()
            .iter()
            .map(Policy::folder)
            .collect();
        assert_eq!(names, ["kl-0.5", "kl-2"]);
        for bad in [
            "first",
            "first:x",
            "uncertain:1.5",
            "kl:-1",
            "base:3",
            "nudge",
            "first:5,",
        ] {
            assert!(Policy::parse_arms(bad).is_err(), "{bad}");
        }
    }

    struct Fixed(f64, u32, f64);
    impl Step for Fixed {
        type Error = ();
        fn base_top1_prob(&mut self) -> Result<f64, ()> {
            Ok(self.0)
        }
        fn base_rank_of_aligned(&mut self) -> Result<u32, ()> {
            Ok(self.1)
        }
        fn kl_aligned_base(&mut self) -> Result<f64, ()> {
            Ok(self.2)
        }
    }

    const A: bool = true;
    const B: bool = false;

    #[test]
    fn each_policy_hands_over_where_its_rule_says() {
        let pick = |p: Policy, t: usize, mut s: Fixed| p.aligned_takes(t, 3, &mut s).unwrap();
        assert_eq!(pick(Policy::First(2), 1, Fixed(0.9, 1, 0.0)), A);
        assert_eq!(pick(Policy::First(2), 2, Fixed(0.1, 9, 9.0)), B);
        // Nudging: the base hands over where it is unsure (top-1 below 0.4).
        assert_eq!(pick(Policy::Uncertain(0.4), 7, Fixed(0.39, 1, 0.0)), A);
        assert_eq!(pick(Policy::Uncertain(0.4), 7, Fixed(0.4, 9, 9.0)), B);
        // Shifted: the base ranks the aligned token beyond the marginal bar (3).
        assert_eq!(pick(Policy::Shifted, 0, Fixed(0.9, 4, 0.0)), A);
        assert_eq!(pick(Policy::Shifted, 0, Fixed(0.1, 3, 9.0)), B);
        assert_eq!(pick(Policy::Kl(0.5), 0, Fixed(0.9, 1, 0.51)), A);
        assert_eq!(pick(Policy::Kl(0.5), 0, Fixed(0.1, 9, 0.5)), B);
    }
}
