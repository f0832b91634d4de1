//! Rule loading, errors and evaluation against synthetic events.

mod common;

use lanner_analyze::engine::{evaluate_chunk, ChunkStats};
use lanner_analyze::replay::Window;
use lanner_analyze::rules::{Code, RuleSet, RuleStatus, Source, DEFAULT_RULES};
use lanner_formats::archive::{ChunkBuilder, DecodedChunk};
use lanner_formats::event::{oflags, Chunk};
use lanner_formats::syscall::EventType;

fn alerts(rules: &RuleSet, chunks: &[Chunk]) -> Vec<lanner_formats::alert::Alert> {
    let mut out = Vec::new();
    let meta = lanner_formats::archive::SegmentMeta { hostname: "testhost".into(), ..Default::default() };
    let mut first_event = 0;
    for c in chunks {
        let d = DecodedChunk::from_chunk(c).unwrap();
        out.extend(evaluate_chunk(rules, &d, &meta, first_event, Window::default(), &mut ChunkStats::default()));
        first_event += c.events.len() as u64;
    }
    out
}

#[test]
fn default_rules_catch_the_reference_threats_with_the_right_fields() {
    let rules = RuleSet::from_yaml("<default>", DEFAULT_RULES).unwrap();
    assert!(rules.warnings.is_empty(), "{:?}", rules.warnings);
    let a = alerts(&rules, &common::threat_chunks());
    let got: Vec<(&str, &str)> = a.iter().map(|a| (a.rule.as_str(), a.priority.as_str())).collect();
    assert_eq!(
        got,
        vec![
            ("Sensitive file read", "Warning"),
            ("Write below etc", "Error"),
            ("Directory created below binary directory", "Error")
        ]
    );
    let f = &a[0].output_fields;
    assert_eq!(f["fd.name"], "/etc/shadow");
    assert_eq!(f["proc.name"], "cat");
    assert_eq!(f["proc.cmdline"], "cat /etc/shadow");
    assert_eq!(f["proc.pname"], "sh");
    assert_eq!(f["user.uid"], 0);
    assert_eq!(a[1].output_fields["user.uid"], 1000);
    assert_eq!(a[1].output_fields["evt.arg.flags"], "O_WRONLY|O_CREAT");
    assert_eq!(a[2].output_fields["evt.arg.path"], "/bin/dangerousfolder");
    assert_eq!(a[0].hostname, "testhost");
    assert_eq!(a[0].source, "syscall");
    assert_eq!(a[0].time, "2023-11-14T22:13:20.000000002Z");
    assert!(a[0].output.starts_with("22:13:20.000000002: Warning Sensitive file opened"), "{}", a[0].output);
    assert!(a[0].tags.contains(&"filesystem".to_owned()));
}

const MINI: &str = r#"
- list: shells
  items: [bash, sh]
- list: more_shells
  items: [shells, zsh]
- macro: spawned_by_shell
  condition: proc.pname in (more_shells)
- macro: is_open
  condition: evt.type in (open, openat)
- rule: Open by shell child
  desc: test
  condition: is_open and spawned_by_shell and not fd.name endswith hostname and evt.rawres >= 0
  output: "%proc.name opened %fd.name (missing=%evt.arg.newpath)"
  priority: info
  tags: [t]
- rule: Disabled
  desc: never loaded
  condition: evt.type = mkdir
  output: x
  priority: DEBUG
  enabled: false
"#;

#[test]
fn lists_of_lists_macros_and_negation() {
    let rules = RuleSet::from_yaml("mini.yaml", MINI).unwrap();
    assert_eq!(rules.rules.len(), 1, "disabled rule must not load");
    assert_eq!(rules.rules_for(EventType::Openat as u16), &[0]);
    assert!(rules.rules_for(EventType::Mkdir as u16).is_empty(), "indexed by event type");
    let a = alerts(&rules, &common::threat_chunks());
    assert_eq!(a.len(), 2, "shadow read and badconfigfile write, not hostname: {a:?}");
    assert_eq!(a[0].priority, "Informational");
    assert!(a[0].output.ends_with("cat opened /etc/shadow (missing=<NA>)"), "{}", a[0].output);
    assert!(a[0].output_fields["evt.arg.newpath"].is_null());
}

#[test]
fn operators_on_strings_numbers_and_booleans() {
    let sh = common::P { pid: 5, name: "bash", args: &[], uid: 0 };
    let child = common::P { pid: 6, name: "python3", args: &["-c", "x"], uid: 33 };
    let mut b = ChunkBuilder::new();
    let p = common::lineage(&mut b, &sh, &child);
    common::ev(&mut b, 10, (p, 6), EventType::Openat, "/var/www/html/index.PHP", oflags::O_RDWR, 4);
    common::ev(&mut b, 11, (p, 6), EventType::Openat, "/missing", oflags::O_RDONLY, -2);
    let chunk = b.take();
    let check = |cond: &str, expected: usize| {
        let yaml = format!("- rule: r\n  desc: d\n  condition: {cond}\n  output: o\n  priority: notice\n");
        let rules = RuleSet::from_yaml("t.yaml", &yaml).unwrap_or_else(|e| panic!("{cond}: {e:?}"));
        let n = alerts(&rules, std::slice::from_ref(&chunk)).len();
        assert_eq!(n, expected, "condition: {cond}");
    };
    check("evt.type=openat and fd.name icontains .php", 1);
    check("evt.type=openat and fd.name contains .php", 0);
    check("evt.type=openat and fd.name glob '/var/*/html/*.PHP'", 1);
    check("evt.type=openat and fd.name pmatch (/var/www, /srv)", 1);
    check("evt.type=openat and fd.name pmatch (/var/ww)", 0);
    check("evt.type=openat and fd.directory = /var/www/html", 1);
    check("evt.type=openat and fd.filename = index.PHP", 1);
    check("evt.type=openat and evt.res = ENOENT and evt.failed = true", 1);
    check("evt.type=openat and evt.res = SUCCESS and evt.is_open_read = true and evt.is_open_write = true", 1);
    check("evt.type=openat and user.uid > 32 and user.uid <= 33 and user.uid != 0", 2);
    check("evt.type=openat and proc.cmdline = \"python3 -c x\" and proc.args = '-c x'", 2);
    check("evt.type=openat and proc.aname[1] = bash and proc.pname startswith ba and proc.ppid = 5", 2);
    check("evt.type=openat and fd.name regex '^/var/.*PHP$'", 1);
    check("evt.type=openat and evt.arg.newpath exists", 0);
    check("evt.type=openat and not fd.name exists", 0);
    check("evt.type=openat and proc.aname[2] exists", 0);
}

fn load_err(yaml: &str) -> String {
    let e = RuleSet::from_yaml("bad.yaml", yaml).expect_err("must fail");
    e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
}

#[test]
fn errors_name_file_line_and_column() {
    let e = load_err("- rule: a\n  desc: d\n  condition: proc.name = cat and\n  output: o\n  priority: info\n");
    assert_eq!(
        e,
        "bad.yaml:3:14: LOAD_ERR_COMPILE_CONDITION (rule 'a'): unexpected end of condition (at the end of the condition)"
    );

    let e = load_err("- rule: a\n  desc: d\n  condition: proc.nam = cat\n  output: o\n  priority: info\n");
    assert_eq!(
        e,
        "bad.yaml:3:14: LOAD_ERR_COMPILE_CONDITION (rule 'a'): filter_check called with nonexistent field proc.nam"
    );

    let e = load_err("- rule: a\n  desc: d\n  condition: not_a_macro\n  output: o\n  priority: info\n");
    assert!(e.contains("LOAD_ERR_VALIDATE (rule 'a'): Undefined macro 'not_a_macro' used in filter."), "{e}");

    let e = load_err("- rule: a\n  desc: d\n  condition: evt.type=open\n  output: o\n  priority: loud\n");
    assert_eq!(e, "bad.yaml:5:13: LOAD_ERR_VALIDATE (rule 'a'): Invalid priority level: loud");

    let e = load_err("- rule: a\n  desc: [unclosed\n");
    assert!(e.starts_with("bad.yaml:3:"), "{e}");
    assert!(e.contains("LOAD_ERR_YAML_PARSE"), "{e}");

    let e = load_err("- rule: a\n  desc: d\n  condition: user.uid = root\n  output: o\n  priority: info\n");
    assert!(e.contains("'root' is not a number"), "{e}");

    let e =
        load_err("- macro: m\n  condition: m\n- rule: a\n  desc: d\n  condition: m\n  output: o\n  priority: info\n");
    assert!(e.contains("Macro 'm' refers to itself"), "{e}");

    let e = load_err("- frobnicate: x\n");
    assert_eq!(e, "bad.yaml:1:3: LOAD_ERR_YAML_VALIDATE (rules content item): Unknown top level object: frobnicate");

    let e = load_err("- list: l\n  items: [a]\n  append: true\n");
    assert!(
        e.contains("LOAD_ERR_VALIDATE (list 'l'): List has 'append' key but no list by that name already exists"),
        "{e}"
    );

    let e = load_err("- rule: a\n  desc: d\n  condition: evt.type=open\n  output: \"%nope\"\n  priority: info\n");
    assert_eq!(e, "bad.yaml:4:11: LOAD_ERR_COMPILE_OUTPUT (rule 'a'): invalid formatting token nope");
}

#[test]
fn exceptions_unknown_keys_and_sources() {
    let yaml = "- rule: a\n  desc: d\n  condition: evt.type=openat\n  output: o\n  priority: info\n  frobnicate: 1\n  exceptions:\n    - name: x\n      fields: [proc.name, fd.name]\n      values: [[cat, /etc/shadow]]\n\
                - rule: b\n  desc: d\n  condition: ka.verb=get\n  output: o\n  priority: info\n  source: k8s_audit\n";
    let rules = RuleSet::from_yaml("u.yaml", yaml).unwrap();
    assert_eq!(rules.rules.len(), 1);
    let w: Vec<String> = rules.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        w.contains(&"u.yaml:6:3: LOAD_UNKNOWN_KEY (rule 'a'): Unknown key 'frobnicate' is ignored".to_owned()),
        "{w:?}"
    );
    assert!(w.iter().any(|x| x.contains("(rule 'b'): event source 'k8s_audit' is not supported")), "{w:?}");
    assert_eq!(
        rules.statuses[1].2,
        RuleStatus::Skipped("event source 'k8s_audit' is not supported (only syscall)".into())
    );
    // The exception removes cat's read of /etc/shadow but keeps cat's read of /etc/hostname.
    let a = alerts(&rules, &common::threat_chunks());
    let names: Vec<_> = a.iter().map(|a| a.rule.as_str()).collect();
    assert_eq!(names, vec!["a", "a"], "hostname read and badconfigfile write remain: {a:?}");
}

#[test]
fn rules_without_event_type_get_falcos_warning_and_appends_apply() {
    let yaml = "- rule: any\n  desc: d\n  condition: proc.name = cat\n  output: o\n  priority: info\n\
                - rule: any\n  append: true\n  condition: and fd.name = /etc/shadow\n";
    let rules = RuleSet::from_yaml("w.yaml", yaml).unwrap();
    assert_eq!(rules.warnings[0].code, Code::NoEvttype, "{:?}", rules.warnings);
    assert_eq!(
        rules.warnings[0].message,
        "Rule matches too many evt.type values. This has a significant performance penalty."
    );
    let a = alerts(&rules, &common::threat_chunks());
    assert_eq!(a.len(), 1, "append narrowed the condition");
}

#[test]
fn rule_matching_first_or_all() {
    let yaml =
        "- rule: a\n  desc: d\n  condition: evt.type=openat and fd.name=/etc/shadow\n  output: o\n  priority: info\n\
                - rule: b\n  desc: d\n  condition: evt.type=openat and proc.name=cat\n  output: o\n  priority: info\n";
    let mut rules = RuleSet::from_yaml("m.yaml", yaml).unwrap();
    let names = |rs: &RuleSet| alerts(rs, &common::threat_chunks()).into_iter().map(|a| a.rule).collect::<Vec<_>>();
    assert_eq!(names(&rules), vec!["b", "a"], "hostname read: b; shadow read: a only (first match)");
    rules.rule_matching = lanner_analyze::rules::RuleMatching::All;
    assert_eq!(names(&rules), vec!["b", "a", "b"]);
}

#[test]
fn override_append_and_replace() {
    let yaml = "- list: l\n  items: [cat]\n- macro: m\n  condition: proc.name in (l)\n\
                - rule: r\n  desc: d\n  condition: evt.type = openat and m\n  output: o\n  priority: info\n\
                - list: l\n  items: [touch]\n  override:\n    items: append\n\
                - rule: r\n  condition: and fd.name startswith /etc/b\n  priority: error\n  override:\n    condition: append\n    priority: replace\n";
    let rules = RuleSet::from_yaml("o.yaml", yaml).unwrap();
    let a = alerts(&rules, &common::threat_chunks());
    assert_eq!(
        a.iter().map(|a| (a.output_fields.is_empty(), a.priority.as_str())).collect::<Vec<_>>(),
        vec![(true, "Error")]
    );
}

#[test]
fn a_bare_filter_compiles_against_the_macros_and_lists_of_rule_files() {
    let src = Source {
        name: "m.yaml".into(),
        text: "- list: shells\n  items: [sh, bash]\n- macro: spawned_shell\n  condition: evt.type = execve and proc.name in (shells)\n- rule: r\n  desc: d\n  condition: nonsense.field = 1\n  output: o\n  priority: debug\n".into(),
    };
    let f = RuleSet::compile_filter(std::slice::from_ref(&src), "<filter>", "spawned_shell and user.uid = 0");
    assert!(f.is_ok(), "the filter uses the file's macro and list; the file's broken rule is not compiled: {f:?}");
    let errs = RuleSet::compile_filter(&[], "<filter>", "proc.name = (").unwrap_err();
    assert!(errs[0].to_string().contains("<filter>") && errs[0].to_string().contains("offset"), "{}", errs[0]);
    let errs = RuleSet::compile_filter(&[], "<filter>", "spawned_shell").unwrap_err();
    assert!(errs[0].message.contains("spawned_shell"), "an undefined macro is named: {}", errs[0]);
}

#[test]
fn login_and_group_names_come_from_the_recording_hosts_tables() {
    use lanner_formats::event::{Process, NONE};
    let mut b = ChunkBuilder::new();
    let (name, empty) = (b.intern("cat"), b.intern(""));
    let host = b.intern("host");
    let p = b.add_process(Process {
        pid: 300,
        ppid: 1,
        parent: NONE,
        uid: 0,
        gid: 1000,
        name,
        exe: name,
        exepath: empty,
        args: empty,
        cwd: empty,
        start_ns: 0,
        container_id: host,
        tty: 0,
        loginuid: 1000,
        container_name: NONE,
        container_image: NONE,
        k8s_pod: NONE,
        k8s_ns: NONE,
        task: lanner_formats::event::TaskFacts::UNKNOWN,
        container: lanner_formats::event::ContainerFacts::UNKNOWN,
    });
    common::ev(&mut b, 1_700_000_000_000_000_000, (p, 300), EventType::Openat, "/etc/shadow", oflags::O_RDONLY, 3);
    let chunk = b.take();
    let rules = RuleSet::from_yaml(
        "names.yaml",
        "- rule: names\n  desc: d\n  condition: evt.type = openat and user.loginname = alice and group.name = staff\n  \
         output: '%user.loginname %group.name %user.name'\n  priority: info\n",
    )
    .unwrap();
    let d = DecodedChunk::from_chunk(&chunk).unwrap();
    let mut meta = lanner_formats::archive::SegmentMeta::default();
    let run = |meta: &lanner_formats::archive::SegmentMeta| {
        evaluate_chunk(&rules, &d, meta, 0, Window::default(), &mut ChunkStats::default())
    };
    // Without the tables (an archive from before them) the names are unknown: no match.
    assert!(run(&meta).is_empty());
    meta.users = [(0, "root".to_owned()), (1000, "alice".to_owned())].into();
    meta.groups = [(1000, "staff".to_owned())].into();
    let alerts = run(&meta);
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].output.ends_with("alice staff root"), "{}", alerts[0].output);
}
