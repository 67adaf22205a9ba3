//! `net/http`: how its `ServeMux` canonicalises a request path.

/// The canonical form of a path as Go's `http.ServeMux` computes it before matching: rooted,
/// no empty, `.` or `..` elements, a trailing slash kept. A request whose path differs from its
/// canonical form is redirected there (301/307) by Go's mux.
pub fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = format!("/{}", parts.join("/"));
    if p.ends_with('/') && out != "/" {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_as_go_cleans_them() {
        assert_eq!(clean_path("/health"), "/health");
        assert_eq!(clean_path(""), "/");
        assert_eq!(clean_path("//health"), "/health");
        assert_eq!(clean_path("/a/./b/../health/"), "/a/health/");
        assert_eq!(clean_path("/../health"), "/health");
        assert_eq!(clean_path("/debug/pprof/"), "/debug/pprof/");
        assert_eq!(clean_path("/debug/x/../pprof/heap"), "/debug/pprof/heap");
    }
}
