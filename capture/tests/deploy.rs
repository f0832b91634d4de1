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
        let (binary, sub) = (command[0].as_str(), args.first().filter(|a| !a.starts_with('-')).map(String::as_str));
        let help = help(binary, if binary == "lanner-analyze" { sub } else { None });
        for flag in args.iter().filter(|a| a.starts_with("--")) {
            assert!(help.contains(flag.as_str()), "{name}: {binary} has no flag {flag}:\n{help}");
        }
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
