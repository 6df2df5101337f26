//! The lines a benchmark prints for the table of `docs/benchmarks.md`: one per figure,
//! with what it is measured against and its goal. `scripts/bench.sh` runs every benchmark
//! and gathers them; a person reads the rest of each benchmark's output.

/// One figure of a benchmark, against a floor or a peer measured in the same run.
pub struct BenchRow<'a> {
    /// What is measured, e.g. `controller: 1000 WorkloadClusters → CAPI objects`.
    pub what: &'a str,
    /// Strata's figure, with its unit.
    pub figure: String,
    /// The floor or peer, e.g. `floor: the same writes as plain parallel calls`.
    pub against: &'a str,
    /// The floor's or peer's figure, with its unit.
    pub against_figure: String,
    /// figure / floor or peer: below 1, Strata is ahead.
    pub ratio: f64,
    /// The goal, e.g. `≤ 2.0×`, or empty.
    pub goal: &'a str,
}

/// The start of every table line, for `scripts/bench.sh` to find.
pub const MARK: &str = "bench-row";

impl BenchRow<'_> {
    /// The row as one tab-separated line starting with [`MARK`]; tabs and line breaks in
    /// the fields become spaces, so a field can never split the row.
    pub fn line(&self) -> String {
        let clean = |text: &str| text.replace(['\t', '\n', '\r'], " ");
        [
            MARK.to_string(),
            clean(self.what),
            clean(&self.figure),
            clean(self.against),
            clean(&self.against_figure),
            format!("{:.2}", self.ratio),
            clean(self.goal),
        ]
        .join("\t")
    }

    /// Prints [`Self::line`] on standard output.
    pub fn print(&self) {
        println!("{}", self.line());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_one_line_of_seven_fields() {
        let row = BenchRow {
            what: "move,\t10 machines",
            figure: "1.20 s".into(),
            against: "floor:\nplain calls",
            against_figure: "0.50 s".into(),
            ratio: 2.4,
            goal: "≤ floor + 1 s",
        };
        let line = row.line();
        assert!(!line.contains('\n'));
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(
            fields,
            [
                MARK,
                "move, 10 machines",
                "1.20 s",
                "floor: plain calls",
                "0.50 s",
                "2.40",
                "≤ floor + 1 s"
            ]
        );
    }
}
