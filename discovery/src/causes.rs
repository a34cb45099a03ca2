//! An error's text with its causes, for log lines and a cluster's one-line Offline
//! reason. A leaf: the registry and the cluster tasks both use it.

/// `e`'s message and its causes', joined by `: `. A cause whose text is already there is
/// left out, since some errors (kube's among them) repeat their source in their message.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    parts.join(": ")
}

/// The first line of `s`, for one-line reasons such as a cluster's Offline state.
pub(crate) fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_owned()
}
