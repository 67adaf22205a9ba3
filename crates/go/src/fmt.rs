//! Go's `fmt`: the verbs ferrodns prints with that are not plain `Display`.

use crate::strconv::quote;

/// Go's `%q` of a `[]string`: each item as [`quote`] prints it, space-separated in brackets
/// (`["a" "b"]`).
pub fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// An error followed by its causes, `: `-separated, as Go prints an error that wraps others.
/// A cause whose text already ends the message is not repeated (Rust errors that print their
/// cause, and those that keep it out of their text, as hyper's do, read the same).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoted_lists() {
        assert_eq!(super::quote_list(&["a".into(), "b".into()]), r#"["a" "b"]"#);
        assert_eq!(super::quote_list(&[]), "[]");
    }
}
