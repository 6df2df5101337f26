//! Text that crosses the link (a site's report, a failure a rollout repeats) cut to a
//! bound, so that no one writer can bloat an object someone else reads.

/// `text` cut to at most `limit` bytes at a character boundary, marked `… (cut)` when cut.
pub fn cut(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… (cut)", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_stays_and_long_text_is_cut_at_a_character_boundary() {
        assert_eq!(cut("fine", 10), "fine");
        assert_eq!(cut("abcdef", 3), "abc… (cut)");
        // "é" is two bytes: a cut inside it moves back before it.
        assert_eq!(cut("aé", 2), "a… (cut)");
    }
}
