//! Absolute path resolution: relative paths are joined to the cwd or the directory fd, then
//! `.` and `..` are resolved lexically (as libsinsp does; symlinks are not followed).

/// Joins `path` to `base` (when relative) and normalizes the result.
pub fn resolve(base: Option<&str>, path: &str) -> String {
    if path.starts_with('/') {
        return normalize(path);
    }
    match base {
        Some(b) if path.is_empty() => normalize(b),
        Some(b) => normalize(&format!("{b}/{path}")),
        None => path.to_owned(),
    }
}

/// Lexically normalizes an absolute path.
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut s = String::with_capacity(path.len());
    for p in &parts {
        s.push('/');
        s.push_str(p);
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_and_dotted_paths() {
        assert_eq!(resolve(Some("/root"), "x/../y/./z"), "/root/y/z");
        assert_eq!(resolve(Some("/"), "etc/shadow"), "/etc/shadow");
        assert_eq!(resolve(None, "/etc//passwd"), "/etc/passwd");
        assert_eq!(resolve(Some("/tmp"), ""), "/tmp");
        assert_eq!(resolve(None, "rel"), "rel");
        assert_eq!(normalize("/../.."), "/");
    }
}
