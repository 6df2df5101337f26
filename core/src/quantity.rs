//! Kubernetes resource quantities (`500m`, `1.5`, `512Mi`, `1G`, `2e3`), read as plain
//! numbers of their base unit (cores, bytes), so that two spellings of one amount compare
//! equal and an amount compares with a node's size.

/// The suffixes Kubernetes accepts and what each multiplies by. The binary ones first:
/// `Mi` must not be read as `M` with a stray `i`.
const SUFFIXES: [(&str, f64); 16] = [
    ("Ki", 1024.0),
    ("Mi", 1_048_576.0),
    ("Gi", 1_073_741_824.0),
    ("Ti", 1_099_511_627_776.0),
    ("Pi", 1_125_899_906_842_624.0),
    ("Ei", 1_152_921_504_606_846_976.0),
    ("n", 1e-9),
    ("u", 1e-6),
    ("m", 1e-3),
    ("k", 1e3),
    ("M", 1e6),
    ("G", 1e9),
    ("T", 1e12),
    ("P", 1e15),
    ("E", 1e18),
    ("", 1.0),
];

/// The amount `text` spells, in base units; `None` for anything that is not a quantity
/// (a negative one included: no resource is).
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, factor) = SUFFIXES
        .iter()
        .find_map(|(suffix, factor)| text.strip_suffix(suffix).map(|n| (n, *factor)))?;
    // Only digits, a point and an exponent: `f64::from_str` would also take "inf" and
    // "NaN". An `E` suffix was taken above, so an exponent here is lower case or signed.
    let plain = !number.is_empty()
        && number
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    let value: f64 = number.parse().ok().filter(|_| plain)?;
    (value.is_finite() && value >= 0.0).then_some(value * factor)
}

/// Whether two quantities are one amount (`1000m` and `1`, `1Gi` and `1024Mi`).
pub fn same_quantity(a: &str, b: &str) -> bool {
    match (parse_quantity(a), parse_quantity(b)) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-9),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_spelling_kubernetes_accepts() {
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("512Mi"), Some(512.0 * 1_048_576.0));
        assert_eq!(parse_quantity("1G"), Some(1e9));
        assert_eq!(parse_quantity("2e3"), Some(2000.0));
        assert_eq!(parse_quantity("1E"), Some(1e18));
        for bad in [
            "", "Mi", "lots", "inf", "NaN", "-1", "1.5.5Gi", "5 Gi", "1Xi",
        ] {
            assert_eq!(parse_quantity(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn one_amount_in_two_spellings_is_the_same() {
        assert!(same_quantity("1000m", "1"));
        assert!(same_quantity("100m", "0.1"));
        assert!(same_quantity("1Gi", "1024Mi"));
        assert!(!same_quantity("1G", "1Gi"));
        assert!(!same_quantity("1", "2"));
        assert!(
            !same_quantity("a", "a"),
            "not quantities: not judged equal here"
        );
    }
}
