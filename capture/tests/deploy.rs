//! The Kubernetes manifests and the container build file, checked without a cluster: they parse,
//! have what a DaemonSet needs, and every flag they pass exists in the binaries' `--help`.

use std::path::{Path, PathBuf};
use std::process::Command;

use marked_yaml::types::MarkedMappingNode;
use marked_yaml::Node;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn docs(text: &str) -> Vec<Node> {
    text.split("\n---\n").map(|d| marked_yaml::parse_yaml(0, d).unwrap_or_else(|e| panic!("{e}\n{d}"))).collect()
}

fn map<'a>(n: &'a MarkedMappingNode, key: &str) -> &'a MarkedMappingNode {
    n.get_mapping(key).unwrap_or_else(|| panic!("missing mapping '{key}'"))
}

fn strs(n: &MarkedMappingNode, key: &str) -> Vec<String> {
    n.get_sequence(key).map_or(Vec::new(), |s| s.iter().map(|x| x.as_scalar().unwrap().as_str().to_owned()).collect())
}

fn help(binary: &str, sub: Option<&str>) -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_lanner-capture")).with_file_name(binary);
    let mut cmd = Command::new(&bin);
    if let Some(s) = sub {
        cmd.arg(s);
    }
    let out =
        cmd.arg("--help").output().unwrap_or_else(|e| panic!("{}: {e} (build all binaries first)", bin.display()));
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts that every `--flag` (or `--flag=value`) in `args` is in the `--help` of the binary
/// `command` runs (of its subcommand, for lanner-analyze); returns the binary and that help.
fn assert_flags_exist<'a>(name: &str, command: &'a [String], args: &[String]) -> (&'a str, String) {
    let (binary, sub) = (command[0].as_str(), args.first().filter(|a| !a.starts_with('-')).map(String::as_str));
    let help = help(binary, if binary == "lanner-analyze" { sub } else { None });
    for arg in args.iter().filter(|a| a.starts_with("--")) {
        let flag = arg.split('=').next().unwrap();
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
            "{name}: {binary} has no flag {flag}:\n{help}"
        );
    }
    (binary, help)
}

#[test]
fn daemonset_is_complete_and_consistent_with_the_binaries() {
    let text = std::fs::read_to_string(root().join("deploy/daemonset.yaml")).unwrap();
    let docs = docs(&text);
    let kinds: Vec<String> =
        docs.iter().map(|d| d.as_mapping().unwrap().get_scalar("kind").unwrap().as_str().to_owned()).collect();
    assert_eq!(
        kinds,
        vec!["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet"]
    );
    let doc = |kind: &str| docs[kinds.iter().position(|k| k == kind).unwrap()].as_mapping().unwrap();
    // Pod metadata: the service account may read pods, and nothing else.
    let role = doc("ClusterRole");
    let rules: Vec<&MarkedMappingNode> =
        role.get_sequence("rules").unwrap().iter().map(|r| r.as_mapping().unwrap()).collect();
    assert_eq!(rules.len(), 1);
    assert_eq!((strs(rules[0], "apiGroups"), strs(rules[0], "resources")), (vec!["".into()], vec!["pods".into()]));
    assert_eq!(strs(rules[0], "verbs"), vec!["get", "list", "watch"]);
    let binding = doc("ClusterRoleBinding");
    assert_eq!(map(binding, "roleRef").get_scalar("name").unwrap().as_str(), "lanner-pod-reader");
    let subject = binding.get_sequence("subjects").unwrap().first().unwrap().as_mapping().unwrap();
    assert_eq!(
        (subject.get_scalar("name").unwrap().as_str(), subject.get_scalar("namespace").unwrap().as_str()),
        ("lanner", "lanner")
    );
    let sa = doc("ServiceAccount");
    assert_ne!(sa.get_scalar("automountServiceAccountToken").and_then(|b| b.as_bool()), Some(false), "token needed");
    let ds = doc("DaemonSet");
    let pod = map(map(map(ds, "spec"), "template"), "spec");
    assert_eq!(pod.get_scalar("hostPID").unwrap().as_bool(), Some(true));
    let tolerations: Vec<String> = pod
        .get_sequence("tolerations")
        .unwrap()
        .iter()
        .map(|t| t.as_mapping().unwrap().get_scalar("key").unwrap().as_str().to_owned())
        .collect();
    assert!(tolerations.contains(&"node-role.kubernetes.io/control-plane".to_owned()));
    let volumes: Vec<String> = pod
        .get_sequence("volumes")
        .unwrap()
        .iter()
        .map(|v| v.as_mapping().unwrap().get_scalar("name").unwrap().as_str().to_owned())
        .collect();
    let containers: Vec<&MarkedMappingNode> =
        pod.get_sequence("containers").unwrap().iter().map(|c| c.as_mapping().unwrap()).collect();
    assert_eq!(containers.len(), 2);
    let mut spool_mounts = 0;
    for c in &containers {
        let name = c.get_scalar("name").unwrap().as_str();
        let command = strs(c, "command");
        let args = strs(c, "args");
        let (binary, help) = assert_flags_exist(name, &command, &args);
        assert!(c.get_mapping("resources").is_some(), "{name}: resources");
        assert!(c.get_mapping("livenessProbe").is_some(), "{name}: liveness probe");
        let sc = map(c, "securityContext");
        assert_eq!(sc.get_scalar("privileged").unwrap().as_bool(), Some(false), "{name}");
        let caps = map(sc, "capabilities");
        assert_eq!(strs(caps, "drop"), vec!["ALL"], "{name}");
        let added = strs(caps, "add");
        if binary == "lanner-capture" {
            let env = c.get_sequence("env").expect("capture env");
            let node = env
                .iter()
                .map(|e| e.as_mapping().unwrap())
                .find(|e| e.get_scalar("name").unwrap().as_str() == "NODE_NAME")
                .expect("NODE_NAME for --k8s-node");
            let field = map(map(node, "valueFrom"), "fieldRef").get_scalar("fieldPath").unwrap();
            assert_eq!(field.as_str(), "spec.nodeName");
            assert!(help.contains("NODE_NAME") && help.contains("--k8s-api"), "{help}");
            assert!(added.contains(&"BPF".into()) && added.contains(&"PERFMON".into()), "{name}: {added:?}");
            assert!(!added.iter().any(|c| c == "SYS_ADMIN"), "capture does not need SYS_ADMIN");
        } else {
            assert!(added.is_empty(), "{name} runs without capabilities: {added:?}");
        }
        for m in c.get_sequence("volumeMounts").unwrap().iter() {
            let m = m.as_mapping().unwrap();
            let v = m.get_scalar("name").unwrap().as_str();
            assert!(volumes.iter().any(|x| x == v), "{name}: mount of undefined volume {v}");
            if v == "spool" {
                assert_eq!(m.get_scalar("mountPath").unwrap().as_str(), "/var/lib/lanner/spool");
                spool_mounts += 1;
            }
        }
        assert!(args.iter().any(|a| a.starts_with("/var/lib/lanner/spool")), "{name} uses the shared spool");
    }
    assert_eq!(spool_mounts, 2, "both containers share the spool");
    // The ConfigMap's rules load.
    let cm = doc("ConfigMap");
    let rules = map(cm, "data").get_scalar("custom_rules.yaml").unwrap().as_str().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("custom_rules.yaml");
    std::fs::write(&f, rules).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_lanner-capture")).with_file_name("lanner-analyze");
    let out = Command::new(bin).args(["rules", "check"]).arg(&f).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn container_build_file_ships_both_binaries() {
    let text = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    assert!(text.matches("FROM ").count() >= 2, "multi-stage");
    // The eBPF toolchain comes from its one pin, never from a version written here.
    assert!(text.contains("bpf/toolchain.env") && text.contains("$BPF_NIGHTLY") && text.contains("rust-src"));
    assert!(text.contains("bpf-linker@$BPF_LINKER_VERSION"), "bpf-linker's version from the pin");
    assert!(!text.contains("bpf-linker@0") && !text.contains("install nightly"), "no second pin in the Dockerfile");
    for b in ["lanner-capture", "lanner-analyze"] {
        assert!(text.contains(&format!("target/release/{b}")), "{b} copied into the image");
    }
}

/// The Kubernetes versions the chart's objects are validated against: 1.31 (the kubectl the tools
/// package carries, in EKS extended support) and 1.34 (in EKS standard support).
const KUBERNETES_VERSIONS: [&str; 2] = ["1.31.0", "1.34.0"];

/// `target/tools/bin/NAME` as `cargo xtask setup` installs it; `None` after a skip (a failure
/// under CI=true) when it is missing.
fn tool(name: &str) -> Option<PathBuf> {
    let p = root().join("target/tools/bin").join(name);
    if p.exists() {
        return Some(p);
    }
    let why = format!("{} is missing: run `cargo xtask setup`", p.display());
    assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{why} (CI=true: a skip is a failure)");
    eprintln!("SKIPPED: {why}");
    None
}

fn helm_template(helm: &Path, sets: &[&str]) -> String {
    let mut cmd = Command::new(helm);
    cmd.args(["template", "lanner"]).arg(root().join("deploy/helm/lanner")).args(["--namespace", "lanner"]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "helm template {sets:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Every setting on: shipping, file and CloudWatch alerts, IRSA, and the backtest Job.
const EVERYTHING: [&str; 9] = [
    "ship.enabled=true",
    "ship.url=s3://evidence/lanner",
    "ship.endpoint=https://s3.eu-west-1.amazonaws.com",
    "follow.outputs.file=/var/log/lanner/alerts.jsonl",
    "follow.outputs.cloudwatch.enabled=true",
    "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::111122223333:role/lanner-node",
    "backtest.enabled=true",
    "backtest.cloudwatch.group=/lanner/backtests",
    "backtest.since=2026-11-01T00:00:00Z",
];

#[test]
fn helm_chart_lints_and_renders_valid_objects_that_use_only_real_flags() {
    let Some(helm) = tool("helm") else { return };
    let lint = Command::new(&helm).arg("lint").arg(root().join("deploy/helm/lanner")).output().unwrap();
    let lint_out = String::from_utf8_lossy(&lint.stdout);
    eprintln!("{lint_out}");
    assert!(lint.status.success() && lint_out.contains("0 chart(s) failed"), "{lint_out}");
    let dir = tempfile::tempdir().unwrap();
    for (label, sets) in [("defaults", &[][..]), ("everything", &EVERYTHING[..])] {
        let text = helm_template(&helm, sets);
        let file = dir.path().join(format!("{label}.yaml"));
        std::fs::write(&file, &text).unwrap();
        // Schema validation of every rendered object, strict (unknown fields are errors).
        for k in KUBERNETES_VERSIONS {
            let v = Command::new("python3")
                .args(["-m", "kubernetes_validate", "--strict", "-k", k])
                .arg(&file)
                .output()
                .unwrap();
            let report = String::from_utf8_lossy(&v.stdout).into_owned() + &String::from_utf8_lossy(&v.stderr);
            eprintln!("{label}, Kubernetes {k}:\n{report}");
            assert!(v.status.success(), "{label}: {report}");
            assert!(!report.contains("ERROR") && report.contains("passed"), "{label}: {report}");
        }
        let docs: Vec<Node> = text
            .split("\n---\n")
            .filter(|d| d.lines().any(|l| !l.trim().is_empty() && !l.starts_with('#')))
            .map(|d| marked_yaml::parse_yaml(0, d).unwrap())
            .collect();
        let kinds: Vec<&str> =
            docs.iter().map(|d| d.as_mapping().unwrap().get_scalar("kind").unwrap().as_str()).collect();
        let mut want = vec!["ServiceAccount", "ConfigMap", "ClusterRole", "ClusterRoleBinding", "DaemonSet"];
        if label == "everything" {
            want.extend(["ServiceAccount", "Job"]);
        }
        let (mut have, mut want) = (kinds.clone(), want);
        have.sort();
        want.sort();
        assert_eq!(have, want, "{label}");
        // Every flag a container passes exists in that binary.
        for d in &docs {
            let d = d.as_mapping().unwrap();
            let Some(spec) = d.get_mapping("spec") else { continue };
            let pod = map(map(spec, "template"), "spec");
            for c in pod.get_sequence("containers").unwrap().iter().map(|c| c.as_mapping().unwrap()) {
                let args = strs(c, "args");
                assert_flags_exist(c.get_scalar("name").unwrap().as_str(), &strs(c, "command"), &args);
                if label == "everything" && c.get_scalar("name").unwrap().as_str() == "capture" {
                    assert!(args.contains(&"--ship=s3://evidence/lanner".to_owned()), "{args:?}");
                }
                if label == "everything" && c.get_scalar("name").unwrap().as_str() == "replay" {
                    assert!(args.contains(&"--shard=env/8".to_owned()), "{args:?}");
                    let job = map(d, "spec");
                    assert_eq!(job.get_scalar("completionMode").unwrap().as_str(), "Indexed");
                }
            }
        }
    }
    // The plain backtest manifest is the chart's rendering, as its header says.
    let plain = std::fs::read_to_string(root().join("deploy/backtest-job.yaml")).unwrap();
    let sets: Vec<String> = plain
        .lines()
        .take_while(|l| l.starts_with('#'))
        .flat_map(|l| {
            l.split("--set ").skip(1).map(|s| s.trim().trim_end_matches('\\').trim().trim_matches('\'').to_owned())
        })
        .collect();
    assert!(sets.len() >= 4, "{sets:?}");
    let mut cmd = Command::new(&helm);
    cmd.args(["template", "lanner"]).arg(root().join("deploy/helm/lanner"));
    cmd.args(["--namespace", "lanner", "--show-only", "templates/backtest-job.yaml"]);
    for s in &sets {
        cmd.args(["--set", s]);
    }
    let fresh = String::from_utf8(cmd.output().unwrap().stdout).unwrap();
    let body: String = plain.lines().skip_while(|l| l.starts_with('#')).map(|l| format!("{l}\n")).collect();
    assert_eq!(body, fresh, "deploy/backtest-job.yaml is stale: regenerate it with the command in its header");
}
