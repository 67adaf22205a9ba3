//! Go's `fmt`: the verbs ferrodns prints with that are not plain `Display`.

use crate::strconv::quote;

/// Go's `%q` of a `[]string`: each item as [`quote`] prints it, space-separated in brackets
/// (`["a" "b"]`).
pub fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoted_lists() {
        assert_eq!(super::quote_list(&["a".into(), "b".into()]), r#"["a" "b"]"#);
        assert_eq!(super::quote_list(&[]), "[]");
    }
}
