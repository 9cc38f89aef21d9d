//! Number formatting shared by the terminal summaries and the report's tables,
//! so a share reads the same wherever it is shown.

use aligntds_formats::sides::Estimate;

/// A share as a percentage with one decimal ("12.3 %"); None when not finite.
pub fn percent(share: f64) -> Option<String> {
    share.is_finite().then(|| format!("{:.1} %", share * 100.0))
}

/// A share with its interval ("12.3 % [10.1, 14.6]"); None when the share is
/// not finite.
pub fn percent_with_interval(e: &Estimate) -> Option<String> {
    percent(e.value).map(|p| format!("{p} [{:.1}, {:.1}]", e.low * 100.0, e.high * 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_read_as_percentages() {
        assert_eq!(percent(0.1234).as_deref(), Some("12.3 %"));
        assert_eq!(percent(f64::NAN), None);
        let e = Estimate {
            value: 0.078,
            low: 0.0612,
            high: 0.0951,
        };
        assert_eq!(
            percent_with_interval(&e).as_deref(),
            Some("7.8 % [6.1, 9.5]")
        );
    }
}
