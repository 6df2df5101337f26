//! `strata cluster describe`'s text: the tree as clusterctl draws it, one line per node
//! with its columns (READY, SEVERITY, REASON, SINCE, MESSAGE), notes as plain sentences.
//! Every cell is cleaned of control characters and cut to a width: the site writes much
//! of what is shown.

use k8s_openapi::jiff::Timestamp;

use crate::cluster_describe_command::Node;
use crate::cluster_view_commands::age;

/// The longest message a text cell shows, in characters, before `…`: the tree is for
/// reading, and `-o json` has the whole of it.
const MESSAGE_CHARS: usize = 160;

/// `text` on one line, without control characters (a site's words could carry terminal
/// escapes), cut to `limit` characters.
fn cell(text: &str, limit: usize) -> String {
    let plain: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let joined = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() <= limit {
        joined
    } else {
        let mut cut: String = joined.chars().take(limit.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// What the NAME column shows of a node.
fn label_of(node: &Node) -> String {
    if node.kind == "Note" {
        return node.message.clone().unwrap_or_default();
    }
    let mut label = node.kind.clone();
    if !node.name.is_empty() {
        label.push(' ');
        label.push_str(&node.name);
    }
    if let Some(detail) = &node.detail {
        label.push_str(&format!(" ({detail})"));
    }
    label
}

/// One line of the text: its tree-drawn name, and its columns unless it is a note.
struct Line {
    name: String,
    columns: Option<[String; 5]>,
}

fn lines_of(node: &Node, lead: &str, branch: &str, now: Timestamp, out: &mut Vec<Line>) {
    let name = format!("{lead}{branch}{}", cell(&label_of(node), usize::MAX));
    let columns = (node.kind != "Note").then(|| {
        let since = node
            .since
            .as_deref()
            .and_then(|s| s.parse::<Timestamp>().ok())
            .map(|at| age(Some(now.duration_since(at).as_secs())))
            .unwrap_or_default();
        let text =
            |value: &Option<String>| cell(value.as_deref().unwrap_or_default(), MESSAGE_CHARS);
        [
            text(&node.ready),
            text(&node.severity),
            text(&node.reason),
            since,
            match (&node.provider_id, &node.message) {
                (Some(id), Some(message)) => cell(&format!("{id}; {message}"), MESSAGE_CHARS),
                (Some(id), None) => cell(id, MESSAGE_CHARS),
                (None, message) => text(message),
            },
        ]
    });
    out.push(Line { name, columns });
    let inner = match branch {
        "├─" => format!("{lead}│ "),
        "└─" => format!("{lead}  "),
        _ => lead.to_string(),
    };
    for (i, child) in node.children.iter().enumerate() {
        let branch = if i + 1 == node.children.len() {
            "└─"
        } else {
            "├─"
        };
        lines_of(child, &inner, branch, now, out);
    }
}

/// The tree as text, its ages taken at `now`: a header and one line per node, notes as
/// sentences outside the columns.
pub fn text(root: &Node, now: Timestamp) -> String {
    const HEADER: [&str; 6] = ["NAME", "READY", "SEVERITY", "REASON", "SINCE", "MESSAGE"];
    let mut lines = Vec::new();
    lines_of(root, "", "", now, &mut lines);
    let mut widths = HEADER.map(|h| h.chars().count());
    for line in &lines {
        if let Some(columns) = &line.columns {
            widths[0] = widths[0].max(line.name.chars().count());
            for (width, column) in widths[1..].iter_mut().zip(columns) {
                *width = (*width).max(column.chars().count());
            }
        }
    }
    let render = |cells: Vec<&str>| {
        let mut row = String::new();
        for (cell, width) in cells.iter().zip(widths) {
            row.push_str(cell);
            row.push_str(&" ".repeat(width.saturating_sub(cell.chars().count()) + 2));
        }
        row.truncate(row.trim_end().len());
        row.push('\n');
        row
    };
    let mut out = render(HEADER.to_vec());
    for line in &lines {
        match &line.columns {
            Some(columns) => {
                let mut cells = vec![line.name.as_str()];
                cells.extend(columns.iter().map(String::as_str));
                out.push_str(&render(cells));
            }
            None => {
                out.push_str(&line.name);
                out.push('\n');
            }
        }
    }
    out
}
