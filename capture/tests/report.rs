//! `lanner-analyze report` of a real capture, opened in a real browser: headless Chromium
//! (Debian's `chromium`) loads the page, runs its script, and the DOM it leaves is checked.
//! Needs root (capture) and chromium; skips with a message elsewhere, fails under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;

use common::{analyze_bin, query, skip_or_fail, Capture};

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().map(PathBuf::from).find(|p| p.exists())
}

/// Headless chromium's arguments for a page that must load nothing from elsewhere.
const HEADLESS: [&str; 4] = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000"];

/// The DOM of `url` after its scripts ran.
fn dom(browser: &Path, url: &str) -> String {
    let out = Command::new(browser).args(HEADLESS).arg("--dump-dom").arg(url).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The alert table: from its start to the end of the page.
/// The URLs that `page` itself asked the network for, from Chromium's NetLog: requests whose
/// network isolation key is the page's `file://` site (the browser's own background requests
/// have other keys), other than `file:` and `data:` ones.
fn page_requests(browser: &Path, page: &str, log: &Path) -> Vec<String> {
    let out = Command::new(browser)
        .args(HEADLESS)
        .arg(format!("--log-net-log={}", log.display()))
        .arg("--dump-dom")
        .arg(page)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(log).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("NetLog {}: {e}", log.display()));
    let mut urls: Vec<String> = v["events"]
        .as_array()
        .expect("NetLog events")
        .iter()
        .filter(|e| e["params"]["network_isolation_key"].as_str().is_some_and(|k| k.starts_with("file://")))
        .filter_map(|e| e["params"]["url"].as_str())
        .filter(|u| !u.starts_with("file:") && !u.starts_with("data:"))
        .map(str::to_owned)
        .collect();
    urls.dedup();
    urls
}

fn alert_table(dom: &str) -> &str {
    &dom[dom.find("id=\"alert-table\"").expect("the alert table")..]
}

/// The alert-table row whose rule is `rule`, up to its rule cell.
fn alert_row<'a>(dom: &'a str, rule: &str) -> &'a str {
    let t = alert_table(dom);
    let at = t.find(&format!("<td>{rule}</td>")).unwrap_or_else(|| panic!("no alert row for {rule}"));
    &t[t[..at].rfind("<tr").unwrap()..at]
}

#[test]
#[ignore = "needs root and chromium: loads eBPF programs and opens the page (cargo xtask test runs it)"]
fn a_report_of_the_reference_threats_opens_in_a_browser_with_the_alerts_and_the_tree() {
    let Some(browser) = chromium() else {
        return skip_or_fail("chromium is not installed (cargo xtask setup installs it)");
    };
    let Some(cap) = Capture::start(&["--chunk-interval", "200ms"]) else { return };
    // The seed's three threats, from one shell.
    let tag = std::process::id();
    let (etc, bin) = (format!("/etc/lanner-report-{tag}"), format!("/bin/lanner-report-{tag}"));
    let script = format!("echo $$; cat /etc/shadow > /dev/null; touch {etc}; mkdir {bin}");
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    let _ = (std::fs::remove_file(&etc), std::fs::remove_dir(&bin));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sh: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (spool, _) = cap.stop();
    let cat =
        query(spool.path(), &format!("proc.ppid = {sh} and proc.name = cat and fd.name = /etc/shadow"), "%proc.pid");
    let cat: u32 = cat.first().expect("cat's read of /etc/shadow").parse().unwrap();

    let work = tempfile::tempdir().unwrap();
    let html = work.path().join("incident.html");
    let r = Command::new(analyze_bin())
        .args(["report", "--pid", &sh.to_string(), "-o"])
        .arg(&html)
        .arg(spool.path())
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let page = std::fs::read_to_string(&html).unwrap();
    // Self-contained: a policy that lets the page load nothing, and no address to load from.
    assert!(page.contains("content=\"default-src 'none';"));
    for from_elsewhere in ["src=\"http", "href=\"http", "url(http", "src=\"//", "@import"] {
        assert!(!page.contains(from_elsewhere), "{from_elsewhere}");
    }

    let url = format!("file://{}", html.display());
    let d = dom(&browser, &url);
    // The three alerts of the built-in rules, each with its process.
    let rules = ["Sensitive file read", "Write below etc", "Directory created below binary directory"];
    assert_eq!(d.matches("<tr class=\"alert\"").count(), 3, "{d}");
    for (rule, name) in rules.iter().zip(["cat", "touch", "mkdir"]) {
        assert!(alert_row(&d, rule).contains("data-pid="), "{rule}");
        let t = alert_table(&d);
        let at = t.find(&format!("<td>{rule}</td>")).unwrap();
        assert!(t[at..].starts_with(&format!("<td>{rule}</td><td>{name} (")), "{rule}: {}", &t[at..at + 200]);
    }
    // The tree: sh, with cat, touch and mkdir under it, each marked as alerted.
    let sh_at = d
        .find(&format!("data-pid=\"{sh}\"><details open=\"\"><summary><span class=\"name\">sh</span>"))
        .expect("sh in the tree");
    for name in ["cat", "touch", "mkdir"] {
        let at = d.find(&format!("<span class=\"name\">{name}</span>")).unwrap_or_else(|| panic!("{name} in the tree"));
        assert!(at > sh_at, "{name} is under sh");
        let li = &d[d[..at].rfind("<li").unwrap()..at];
        assert!(li.starts_with("<li class=\"alerted\""), "{name}: {li}");
    }
    // The drop count, shown (and no warning when it is zero).
    assert!(d.contains("<td id=\"drops\">0</td>"), "drops");
    assert!(!d.contains("id=\"drops-warning\""));
    assert!(d.contains("id=\"integrity-verdict\">All "), "integrity");

    // A link to cat's subtree hides the other processes' alerts (the page's own script ran).
    let d = dom(&browser, &format!("{url}#pid={cat}"));
    assert!(!alert_row(&d, rules[0]).contains("display: none"), "cat's alert stays");
    for rule in &rules[1..] {
        assert!(alert_row(&d, rule).contains("display: none"), "{rule} is hidden");
    }
    assert!(d.contains(&format!("Showing process {cat} and its descendants")));

    // No network request while the page loads and runs. The check itself is checked: a page
    // that does load an image over HTTP shows up in the same NetLog.
    let control = work.path().join("control.html");
    std::fs::write(&control, "<html><body><img src=\"http://127.0.0.1:9/probe.png\"></body></html>").unwrap();
    let seen = page_requests(&browser, &format!("file://{}", control.display()), &work.path().join("control.json"));
    assert_eq!(seen, ["http://127.0.0.1:9/probe.png"], "the NetLog check sees a page's requests");
    let requests = page_requests(&browser, &url, &work.path().join("netlog.json"));
    assert!(requests.is_empty(), "the report made network requests: {requests:?}");

    // A screenshot, kept as the test's artifact.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let out = Command::new(&browser)
        .args(HEADLESS)
        .args(["--hide-scrollbars", "--window-size=1400,1800"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let size = std::fs::metadata(&shot).map_or(0, |m| m.len());
    assert!(size > 20_000, "screenshot {} is {size} bytes", shot.display());
    eprintln!("screenshot: {}", shot.display());
}
