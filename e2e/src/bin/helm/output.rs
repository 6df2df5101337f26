//! helm's output formats, built from the engine's Release JSON (Helm's `release/v1`
//! Release: name, namespace, version, info{first_deployed, last_deployed, description,
//! status, notes}, chart{metadata{name, version, appVersion}}, config, manifest, hooks).
//! The JSON shapes and texts follow helm's `pkg/cmd` printers so that a caller parsing
//! them can switch to a real helm unchanged.

use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot encode the output as {format}: {reason}")]
    Encode {
        format: &'static str,
        reason: String,
    },
    #[error("the engine returned {what} that is not {expected}")]
    Shape {
        what: &'static str,
        expected: &'static str,
    },
}

/// One row of `helm list -o json` (helm's `releaseElement`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListElement {
    pub name: String,
    pub namespace: String,
    /// A string, as in helm.
    pub revision: String,
    /// Go's `time.Time.String()` of the last deployment, "-" when there is none.
    pub updated: String,
    pub status: String,
    /// `name-version`, or "MISSING" when the release has no chart metadata.
    pub chart: String,
    pub app_version: String,
}

/// One row of `helm history -o json` (helm's `releaseInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryElement {
    pub revision: i64,
    /// RFC 3339, as Go encodes a `time.Time`; omitted when zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    pub status: String,
    pub chart: String,
    pub app_version: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub rollback_revision: i64,
    pub description: String,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A view of one Release JSON object.
pub struct Release<'a>(pub &'a Value);

impl<'a> Release<'a> {
    fn str_at(&self, pointer: &str) -> &'a str {
        self.0
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn name(&self) -> &'a str {
        self.str_at("/name")
    }

    pub fn namespace(&self) -> &'a str {
        self.str_at("/namespace")
    }

    pub fn revision(&self) -> i64 {
        self.0
            .pointer("/version")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }

    pub fn status(&self) -> &'a str {
        self.str_at("/info/status")
    }

    pub fn description(&self) -> &'a str {
        self.str_at("/info/description")
    }

    pub fn notes(&self) -> &'a str {
        self.str_at("/info/notes")
    }

    pub fn manifest(&self) -> &'a str {
        self.str_at("/manifest")
    }

    /// The last deployment time, `None` when absent or Go's zero time.
    pub fn last_deployed(&self) -> Option<Timestamp> {
        Timestamp::parse(self.str_at("/info/last_deployed")).filter(|t| !t.is_go_zero())
    }

    pub fn rollback_revision(&self) -> i64 {
        self.0
            .pointer("/info/rollback_revision")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }

    fn chart_metadata(&self) -> Option<&'a Map<String, Value>> {
        self.0.pointer("/chart/metadata").and_then(Value::as_object)
    }

    /// helm's `formatChartName`.
    pub fn chart(&self) -> String {
        match self.chart_metadata() {
            Some(meta) => format!(
                "{}-{}",
                meta.get("name").and_then(Value::as_str).unwrap_or(""),
                meta.get("version").and_then(Value::as_str).unwrap_or("")
            ),
            None => "MISSING".to_string(),
        }
    }

    /// helm's `formatAppVersion`.
    pub fn app_version(&self) -> String {
        match self.chart_metadata() {
            Some(meta) => meta
                .get("appVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            None => "MISSING".to_string(),
        }
    }

    pub fn list_element(&self) -> ListElement {
        ListElement {
            name: self.name().to_string(),
            namespace: self.namespace().to_string(),
            revision: self.revision().to_string(),
            updated: self
                .last_deployed()
                .map_or_else(|| "-".to_string(), |t| t.go_string()),
            status: self.status().to_string(),
            chart: self.chart(),
            app_version: self.app_version(),
        }
    }

    pub fn history_element(&self) -> HistoryElement {
        HistoryElement {
            revision: self.revision(),
            updated: self.last_deployed().map(|t| t.original),
            status: self.status().to_string(),
            chart: self.chart(),
            app_version: self.app_version(),
            rollback_revision: self.rollback_revision(),
            description: self.description().to_string(),
        }
    }
}

/// The engine's list result: an array of releases (or null for none, as Go encodes an
/// empty slice it never allocated).
pub fn releases(value: &Value) -> Result<&[Value], OutputError> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(&[]),
        _ => Err(OutputError::Shape {
            what: "a release list",
            expected: "an array",
        }),
    }
}

/// helm's default order for `list`: by name, then namespace (helm sorts by name only,
/// stably, over namespaces listed in order).
pub fn list_elements(releases: &[Value]) -> Vec<ListElement> {
    let mut elements: Vec<ListElement> =
        releases.iter().map(|r| Release(r).list_element()).collect();
    elements.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then_with(|| a.namespace.cmp(&b.namespace))
    });
    elements
}

/// helm's history: the latest `max` revisions, oldest first.
pub fn history_elements(revisions: &[Value], max: usize) -> Vec<HistoryElement> {
    let mut elements: Vec<HistoryElement> = revisions
        .iter()
        .map(|r| Release(r).history_element())
        .collect();
    elements.sort_by_key(|e| e.revision);
    let skip = elements.len().saturating_sub(max);
    elements.split_off(skip)
}

/// helm's `output.EncodeJSON`: compact JSON and a newline.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<String, OutputError> {
    serde_json::to_string(value)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| OutputError::Encode {
            format: "JSON",
            reason: e.to_string(),
        })
}

/// helm's `output.EncodeYAML`.
pub fn yaml<T: Serialize + ?Sized>(value: &T) -> Result<String, OutputError> {
    serde_yaml::to_string(value).map_err(|e| OutputError::Encode {
        format: "YAML",
        reason: e.to_string(),
    })
}

/// A table as helm's uitable prints it: columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let width = widths.get(i).copied().unwrap_or(0);
                line.push_str(&format!("{cell:<width$}\t"));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn list_table(elements: &[ListElement]) -> String {
    let rows: Vec<Vec<String>> = elements
        .iter()
        .map(|e| {
            vec![
                e.name.clone(),
                e.namespace.clone(),
                e.revision.clone(),
                e.updated.clone(),
                e.status.clone(),
                e.chart.clone(),
                e.app_version.clone(),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "NAMESPACE",
            "REVISION",
            "UPDATED",
            "STATUS",
            "CHART",
            "APP VERSION",
        ],
        &rows,
    )
}

pub fn history_table(elements: &[HistoryElement]) -> String {
    let rows: Vec<Vec<String>> = elements
        .iter()
        .map(|e| {
            let updated = e
                .updated
                .as_deref()
                .and_then(Timestamp::parse)
                .map(|t| t.ansic())
                .unwrap_or_default();
            vec![
                e.revision.to_string(),
                updated,
                e.status.clone(),
                e.chart.clone(),
                e.app_version.clone(),
                e.description.clone(),
            ]
        })
        .collect();
    table(
        &[
            "REVISION",
            "UPDATED",
            "STATUS",
            "CHART",
            "APP VERSION",
            "DESCRIPTION",
        ],
        &rows,
    )
}

/// helm's status printer, table format (what install, upgrade and status print).
pub fn status_table(release: &Value) -> String {
    let r = Release(release);
    let mut out = format!("NAME: {}\n", r.name());
    if let Some(t) = r.last_deployed() {
        out.push_str(&format!("LAST DEPLOYED: {}\n", t.ansic()));
    }
    out.push_str(&format!("NAMESPACE: {}\n", r.namespace()));
    out.push_str(&format!("STATUS: {}\n", r.status()));
    out.push_str(&format!("REVISION: {}\n", r.revision()));
    out.push_str(&format!("DESCRIPTION: {}\n", r.description()));
    out.push_str("TEST SUITE: None\n");
    let notes = r.notes().trim();
    if !notes.is_empty() {
        out.push_str(&format!("NOTES:\n{notes}\n"));
    }
    out
}

/// `helm status -o json|yaml` prints the release without its chart.
pub fn status_object(release: &Value) -> Value {
    let mut release = release.clone();
    if let Value::Object(map) = &mut release {
        map.remove("chart");
    }
    release
}

/// A timestamp as Go encodes `time.Time` in JSON (RFC 3339 with nanoseconds), kept in
/// its own UTC offset, the way Go keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    pub original: String,
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    /// Seconds east of UTC.
    offset: i32,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

impl Timestamp {
    pub fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        let num = |range: std::ops::Range<usize>| -> Option<u32> { text.get(range)?.parse().ok() };
        if b.len() < 20
            || b.get(4) != Some(&b'-')
            || b.get(7) != Some(&b'-')
            || !matches!(b.get(10), Some(b'T' | b't'))
        {
            return None;
        }
        let year = i64::from(num(0..4)?);
        let month = num(5..7)?;
        let day = num(8..10)?;
        let hour = num(11..13)?;
        let minute = num(14..16)?;
        let second = num(17..19)?;
        let mut rest = text.get(19..)?;
        let mut nanos = 0u32;
        if let Some(fraction) = rest.strip_prefix('.') {
            let digits = fraction
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(fraction.len());
            let mut padded: String = fraction[..digits].chars().take(9).collect();
            while padded.len() < 9 {
                padded.push('0');
            }
            nanos = padded.parse().ok()?;
            rest = &fraction[digits..];
        }
        let offset = match rest {
            "Z" | "z" => 0,
            _ => {
                let sign = match rest.as_bytes().first()? {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let hours: i32 = rest.get(1..3)?.parse().ok()?;
                let minutes: i32 = rest.get(4..6)?.parse().ok()?;
                if rest.len() != 6 {
                    return None;
                }
                sign * (hours * 3600 + minutes * 60)
            }
        };
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        Some(Self {
            original: text.to_string(),
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanos,
            offset,
        })
    }

    /// Go's zero `time.Time` (0001-01-01T00:00:00Z), which helm treats as "never".
    pub fn is_go_zero(&self) -> bool {
        self.year == 1
            && self.month == 1
            && self.day == 1
            && self.hour == 0
            && self.minute == 0
            && self.second == 0
    }

    fn weekday(&self) -> &'static str {
        // Days since 1970-01-01 (a Thursday), by Howard Hinnant's days_from_civil.
        let (y, m, d) = (self.year, i64::from(self.month), i64::from(self.day));
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        let index = (days + 4).rem_euclid(7) as usize;
        WEEKDAYS.get(index).copied().unwrap_or("???")
    }

    fn month_name(&self) -> &'static str {
        MONTHS
            .get(self.month as usize - 1)
            .copied()
            .unwrap_or("???")
    }

    /// Go's `time.ANSIC`: "Mon Jan _2 15:04:05 2006".
    pub fn ansic(&self) -> String {
        format!(
            "{} {} {:>2} {:02}:{:02}:{:02} {}",
            self.weekday(),
            self.month_name(),
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.year
        )
    }

    /// Go's `time.Time.String()`: "2006-01-02 15:04:05.999999999 -0700 MST". The zone
    /// abbreviation is "UTC" at offset zero; otherwise Go, knowing no name for a zone
    /// read from JSON, prints the offset again.
    pub fn go_string(&self) -> String {
        let mut fraction = String::new();
        if self.nanos != 0 {
            fraction = format!(".{:09}", self.nanos)
                .trim_end_matches('0')
                .to_string();
        }
        let sign = if self.offset < 0 { '-' } else { '+' };
        let abs = self.offset.unsigned_abs();
        let numeric = format!("{sign}{:02}{:02}", abs / 3600, (abs % 3600) / 60);
        let zone = if self.offset == 0 {
            "UTC".to_string()
        } else {
            numeric.clone()
        };
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}{} {} {}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            fraction,
            numeric,
            zone
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn release(name: &str, ns: &str, version: i64, status: &str) -> Value {
        json!({
            "name": name,
            "namespace": ns,
            "version": version,
            "info": {
                "first_deployed": "2026-11-21T05:40:01.5Z",
                "last_deployed": "2026-11-21T05:41:02.123456789Z",
                "deleted": "",
                "description": "Upgrade complete",
                "status": status,
                "notes": "hello\n"
            },
            "chart": {"metadata": {"name": "sprig-demo", "version": "0.1.0", "appVersion": "1.0.0"}},
            "config": {"greeting": "hi"},
            "manifest": "---\nkind: ConfigMap\n"
        })
    }

    #[test]
    fn timestamps_in_go_formats() {
        let t = Timestamp::parse("2026-11-21T05:41:02.123456789Z").unwrap();
        assert_eq!(t.go_string(), "2026-11-21 05:41:02.123456789 +0000 UTC");
        assert_eq!(t.ansic(), "Sat Nov 21 05:41:02 2026");
        let t = Timestamp::parse("2024-03-05T23:01:00.5+02:00").unwrap();
        assert_eq!(t.go_string(), "2024-03-05 23:01:00.5 +0200 +0200");
        assert_eq!(t.ansic(), "Tue Mar  5 23:01:00 2024");
        let t = Timestamp::parse("2000-01-01T00:00:00-05:30").unwrap();
        assert_eq!(t.go_string(), "2000-01-01 00:00:00 -0530 -0530");
        assert_eq!(t.ansic(), "Sat Jan  1 00:00:00 2000");
        assert!(
            Timestamp::parse("0001-01-01T00:00:00Z")
                .unwrap()
                .is_go_zero()
        );
        assert!(Timestamp::parse("").is_none());
        assert!(Timestamp::parse("yesterday").is_none());
    }

    #[test]
    fn list_json_like_helm() {
        let list = [
            release("zeta", "b", 2, "deployed"),
            release("alpha", "a", 1, "failed"),
        ];
        let out = json(&list_elements(&list)).unwrap();
        assert_eq!(
            out,
            "[{\"name\":\"alpha\",\"namespace\":\"a\",\"revision\":\"1\",\"updated\":\"2026-11-21 05:41:02.123456789 +0000 UTC\",\"status\":\"failed\",\"chart\":\"sprig-demo-0.1.0\",\"app_version\":\"1.0.0\"},\
{\"name\":\"zeta\",\"namespace\":\"b\",\"revision\":\"2\",\"updated\":\"2026-11-21 05:41:02.123456789 +0000 UTC\",\"status\":\"deployed\",\"chart\":\"sprig-demo-0.1.0\",\"app_version\":\"1.0.0\"}]\n"
        );
        assert_eq!(
            json(&list_elements(releases(&Value::Null).unwrap())).unwrap(),
            "[]\n"
        );
    }

    #[test]
    fn missing_chart_is_reported_like_helm() {
        let mut r = release("x", "d", 1, "deployed");
        r.as_object_mut().unwrap().remove("chart");
        let element = Release(&r).list_element();
        assert_eq!(element.chart, "MISSING");
        assert_eq!(element.app_version, "MISSING");
    }

    #[test]
    fn history_oldest_first_and_capped() {
        let revisions = [
            release("x", "d", 3, "deployed"),
            release("x", "d", 1, "superseded"),
            release("x", "d", 2, "superseded"),
        ];
        let all = history_elements(&revisions, 256);
        assert_eq!(
            all.iter().map(|e| e.revision).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        let last_two = history_elements(&revisions, 2);
        assert_eq!(
            last_two.iter().map(|e| e.revision).collect::<Vec<_>>(),
            [2, 3]
        );
        let out = json(&last_two[..1]).unwrap();
        assert_eq!(
            out,
            "[{\"revision\":2,\"updated\":\"2026-11-21T05:41:02.123456789Z\",\"status\":\"superseded\",\"chart\":\"sprig-demo-0.1.0\",\"app_version\":\"1.0.0\",\"description\":\"Upgrade complete\"}]\n"
        );
    }

    #[test]
    fn status_table_like_helm() {
        let out = status_table(&release("demo", "apps", 2, "deployed"));
        assert_eq!(
            out,
            "NAME: demo\nLAST DEPLOYED: Sat Nov 21 05:41:02 2026\nNAMESPACE: apps\nSTATUS: deployed\nREVISION: 2\nDESCRIPTION: Upgrade complete\nTEST SUITE: None\nNOTES:\nhello\n"
        );
    }

    #[test]
    fn status_object_drops_the_chart() {
        let object = status_object(&release("demo", "apps", 2, "deployed"));
        assert!(object.get("chart").is_none());
        assert_eq!(object["manifest"], "---\nkind: ConfigMap\n");
    }

    #[test]
    fn tables_pad_columns() {
        let out = table(&["A", "LONGER"], &[vec!["wide cell".into(), "x".into()]]);
        assert_eq!(out, "A        \tLONGER\nwide cell\tx\n");
    }
}
