//! JSON with trailing commas, as the pack.json examples in the vendor documentation are
//! written. Strict JSON parsers reject them; pack authors copy those examples, so Strata
//! accepts them and reports each one so it can be fixed.

/// Removes commas that are directly followed (after whitespace) by `}` or `]`, outside
/// strings. Returns the cleaned text and the 1-based line of every comma removed.
/// Line and column numbers of the cleaned text match the original's, because only the
/// comma character itself is replaced (by a space).
pub fn strip_trailing_commas(text: &str) -> (String, Vec<usize>) {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut lines = Vec::new();
    let mut line = 1;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &c) in chars.iter().enumerate() {
        if c == '\n' {
            line += 1;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            out.push(c);
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            ',' if next_significant(&chars[i + 1..]).is_some_and(|n| n == '}' || n == ']') => {
                lines.push(line);
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    (out, lines)
}

fn next_significant(rest: &[char]) -> Option<char> {
    rest.iter().copied().find(|c| !c.is_whitespace())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn removes_trailing_commas_and_reports_their_lines() {
        let text = "{\n\"a\": [1, 2,],\n\"b\": {\"c\": \"x\",\n},\n}";
        let (clean, lines) = strip_trailing_commas(text);
        assert_eq!(lines, vec![2, 3, 4]);
        let value: serde_json::Value = serde_json::from_str(&clean).unwrap();
        assert_eq!(value["a"][1], 2);
        assert_eq!(clean.lines().count(), text.lines().count());
    }

    #[test]
    fn leaves_commas_inside_strings_alone() {
        let text = r#"{"a": "x,]", "b": "q\",}"}"#;
        let (clean, lines) = strip_trailing_commas(text);
        assert!(lines.is_empty());
        assert_eq!(clean, text);
    }

    #[test]
    fn keeps_separating_commas() {
        let (clean, lines) = strip_trailing_commas(r#"{"a": 1, "b": [1, 2]}"#);
        assert!(lines.is_empty());
        assert_eq!(clean, r#"{"a": 1, "b": [1, 2]}"#);
    }
}
