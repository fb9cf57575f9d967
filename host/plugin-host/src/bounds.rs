//! Everything a plugin (or the container it looks at) says is bounded before
//! the agent keeps it: in events, statuses, logs and metric labels.

/// The kubelet keeps at most 10 KiB of a probe's output; the same holds for
/// every message a plugin gives.
pub const MAX_MESSAGE: usize = 10 * 1024;
/// Reasons are CamelCase words that also label metrics: short and plain.
pub const MAX_REASON: usize = 64;
/// Problems one snapshot may report.
pub const MAX_PROBLEMS: usize = 1000;

/// `text` cut to at most `max` bytes (at a character boundary, marked `…`).
pub fn bounded(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max.saturating_sub('…'.len_utf8());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// A message for people: bounded, one line, control characters escaped
/// (a log line or event can then never be forged by what a plugin prints).
pub fn message(text: String) -> String {
    let text = bounded(text, MAX_MESSAGE);
    if !text.chars().any(char::is_control) {
        return text;
    }
    let escaped: String = text.chars().flat_map(char::escape_debug).collect();
    bounded(escaped, MAX_MESSAGE)
}

/// A reason, also a metric label: ASCII letters and digits, and the `-`,
/// `.` and `/` of resource names (the kubelet's `OutOfephemeral-storage`,
/// `OutOfexample.com/gpu`), bounded; anything else is dropped, and nothing
/// left is `Rejected`.
pub fn reason(text: &str) -> String {
    let plain: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '/'))
        .take(MAX_REASON)
        .collect();
    if plain.is_empty() {
        "Rejected".into()
    } else {
        plain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_and_control_characters_escaped() {
        let long = "é".repeat(MAX_MESSAGE);
        let cut = message(long);
        assert!(
            cut.len() <= MAX_MESSAGE && cut.ends_with('…'),
            "{}",
            cut.len()
        );
        assert_eq!(message("a\nb\u{1b}[31m".into()), "a\\nb\\u{1b}[31m");
        assert_eq!(message("fine".into()), "fine");
        assert_eq!(reason("Out Of\ncpu{x=\"1\"}"), "OutOfcpux1");
        assert_eq!(reason("\n\n"), "Rejected");
        assert_eq!(reason("OutOfephemeral-storage"), "OutOfephemeral-storage");
        assert_eq!(reason(&"A".repeat(1000)).len(), MAX_REASON);
    }
}
