//! The eBPF programs' verifier budget: every call chain fits the classic 512-byte stack, and every
//! program verifies within its share of the 1M-instruction complexity limit.
//!
//! Kernels from 6.13 on may give a program a private stack and then accept deeper call chains, so
//! a too-deep chain loads on a new host and fails on every node kernel before it (the 6.1 of EKS
//! and Bottlerocket among them). This test therefore does not trust a successful load on the host
//! for the stack: it reads each function's frame and the calls between functions from the built
//! object's instructions, sums the frames along every call chain as the verifier does (each frame
//! rounded up to 32 bytes, the older kernels' rounding), and fails above 512 bytes. The
//! complexity comes from the kernel: `lanner-capture --probe` loads every program and reports
//! what the verifier processed. With `LANNER_WRITE_BUDGET=1` the test rewrites the budget table
//! in docs/KERNELS.md; otherwise it checks that the table's stack figures are current.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget, SectionKind, SymbolKind};

/// The stack every call chain must fit without a private stack (MAX_BPF_STACK).
const STACK_LIMIT: u32 = 512;
/// The verifier's limit on processed instructions per program (BPF_COMPLEXITY_LIMIT_INSNS).
const COMPLEXITY_LIMIT: u32 = 1_000_000;

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/lanner"));

/// One function of the object: its frame and the functions it calls.
#[derive(Debug, Default)]
struct Function {
    /// Bytes of stack below the frame pointer its instructions reach.
    frame: u32,
    /// Names of the functions it calls (bpf-to-bpf calls).
    calls: Vec<String>,
    /// Whether it is a program (an entry point in its own section) rather than a subprogram.
    program: bool,
}

/// The verifier's accounting of one frame: at least 1 byte, rounded up to 32.
fn rounded(frame: u32) -> u32 {
    frame.max(1).div_ceil(32) * 32
}

/// Reads every function's frame and calls from the object's instructions.
fn functions(obj: &object::File) -> BTreeMap<String, Function> {
    let mut out = BTreeMap::new();
    for sym in obj.symbols() {
        if sym.kind() != SymbolKind::Text || sym.size() == 0 {
            continue;
        }
        let (Ok(name), Some(index)) = (sym.name(), sym.section_index()) else { continue };
        let section = obj.section_by_index(index).unwrap();
        let data = section.data().unwrap();
        let start = (sym.address() - section.address()) as usize;
        let code = &data[start..start + sym.size() as usize];
        // Relocated calls (to functions in another section) name their target.
        let relocs: BTreeMap<u64, String> = section
            .relocations()
            .filter_map(|(off, r)| match r.target() {
                RelocationTarget::Symbol(i) => {
                    let t = obj.symbol_by_index(i).ok()?;
                    let name = match t.kind() {
                        SymbolKind::Section => {
                            // A call to a section symbol: the target is the function at the
                            // offset the instruction's immediate gives.
                            let imm = i32::from_le_bytes(data[off as usize + 4..off as usize + 8].try_into().ok()?);
                            let target_addr = ((imm as i64 + 1) * 8) as u64;
                            function_at(obj, t.section_index()?, target_addr)?
                        }
                        _ => t.name().ok()?.to_owned(),
                    };
                    Some((off, name))
                }
                _ => None,
            })
            .collect();
        let call_target = |i: usize, imm: i64| {
            relocs.get(&(section.address() + (start + i) as u64)).cloned().or_else(|| {
                let addr = section.address() as i64 + start as i64 + i as i64 + (imm + 1) * 8;
                function_at(obj, index, addr as u64)
            })
        };
        let mut f = scan(code, &call_target);
        f.program = section.name().is_ok_and(|n| n != ".text");
        out.insert(name.to_owned(), f);
    }
    out
}

/// Reads one function's frame and calls from its instructions; `call_target(byte offset, imm)`
/// names the function a bpf-to-bpf call at that offset reaches.
fn scan(code: &[u8], call_target: &dyn Fn(usize, i64) -> Option<String>) -> Function {
    let mut f = Function::default();
    // Registers known to hold the frame pointer plus an offset.
    let mut fp: [Option<i64>; 11] = [None; 11];
    fp[10] = Some(0);
    let mut deepest = 0i64;
    let mut i = 0;
    while i + 8 <= code.len() {
        let insn = &code[i..i + 8];
        let (op, dst, src) = (insn[0], (insn[1] & 0xf) as usize, (insn[1] >> 4) as usize);
        let off = i16::from_le_bytes([insn[2], insn[3]]) as i64;
        let imm = i32::from_le_bytes(insn[4..8].try_into().unwrap()) as i64;
        let class = op & 7;
        let mode = op & 0xe0;
        let mut touch = |base: Option<i64>, off: i64| {
            if let Some(b) = base {
                deepest = deepest.max(-(b + off));
            }
        };
        match (class, op) {
            // ld_imm64 takes two slots and writes its destination.
            (_, 0x18) => {
                fp[dst.min(10)] = None;
                i += 8;
            }
            // Loads from, and stores and atomics to, frame-relative addresses.
            (1, _) if mode == 0x60 => {
                touch(fp[src.min(10)], off);
                fp[dst.min(10)] = None;
            }
            (2 | 3, _) if mode == 0x60 || mode == 0xc0 => touch(fp[dst.min(10)], off),
            // r_dst = r_src (64-bit move) copies a frame pointer; r_dst += imm moves it.
            (_, 0xbf) => fp[dst.min(10)] = fp[src.min(10)],
            (_, 0x07) => {
                fp[dst.min(10)] = fp[dst.min(10)].map(|b| b + imm);
                touch(fp[dst.min(10)], 0);
            }
            (_, 0x85) => {
                if src == 1 {
                    f.calls.push(call_target(i, imm).unwrap_or_else(|| format!("<unresolved call at +{i}>")));
                }
                // A call clobbers r0-r5; a helper may have written below any pointer passed.
                (0..=5).for_each(|r| fp[r] = None);
            }
            // Any other ALU or load writes its destination with something that is not the
            // frame pointer.
            (4 | 7, _) | (0, _) => fp[dst.min(10)] = None,
            _ => {}
        }
        i += 8;
    }
    f.frame = deepest.max(0) as u32;
    f
}

/// The name of the function starting at `addr` in section `index`.
fn function_at(obj: &object::File, index: object::SectionIndex, addr: u64) -> Option<String> {
    obj.symbols()
        .find(|s| s.kind() == SymbolKind::Text && s.section_index() == Some(index) && s.address() == addr)
        .and_then(|s| s.name().ok().map(str::to_owned))
}

/// The deepest call chain from `name`: its functions and their summed rounded frames.
fn deepest_chain(funcs: &BTreeMap<String, Function>, name: &str, depth: usize) -> (u32, Vec<String>) {
    let f = &funcs[name];
    assert!(depth < 8, "call chain deeper than the verifier's 8 frames at {name}");
    let below = f
        .calls
        .iter()
        .map(|c| {
            assert!(funcs.contains_key(c), "{name} calls {c}, which is not a function of the object");
            deepest_chain(funcs, c, depth + 1)
        })
        .max_by_key(|(bytes, _)| *bytes)
        .unwrap_or_default();
    let mut chain = vec![format!("{name} ({})", rounded(f.frame))];
    chain.extend(below.1);
    (rounded(f.frame) + below.0, chain)
}

/// Each program's deepest call chain, from the built object.
fn stack_budget() -> BTreeMap<String, (u32, Vec<String>)> {
    let obj = object::File::parse(OBJECT).expect("the embedded eBPF object parses");
    assert!(obj.sections().any(|s| s.kind() == SectionKind::Text), "no code in the eBPF object");
    let funcs = functions(&obj);
    funcs.iter().filter(|(_, f)| f.program).map(|(n, _)| (n.clone(), deepest_chain(&funcs, n, 0))).collect()
}

#[test]
fn every_call_chain_fits_the_classic_512_byte_stack() {
    let budget = stack_budget();
    for p in ["lanner_raw_sys_exit", "lanner_exec", "lanner_fork", "lanner_exit", "lanner_sys_enter", "lanner_sys_exit"]
    {
        assert!(budget.contains_key(p), "program {p} not found in the object: {budget:?}");
    }
    let over: Vec<_> = budget.iter().filter(|(_, (bytes, _))| *bytes > STACK_LIMIT).collect();
    assert!(
        over.is_empty(),
        "call chains over {STACK_LIMIT} bytes of stack (loads only with a private stack, 6.13+): {over:?}"
    );
}

/// Encodes one eBPF instruction.
fn insn(op: u8, dst: u8, src: u8, off: i16, imm: i32) -> Vec<u8> {
    let mut v = vec![op, (src << 4) | dst];
    v.extend(off.to_le_bytes());
    v.extend(imm.to_le_bytes());
    v
}

#[test]
fn frames_and_calls_are_read_from_instructions() {
    let code: Vec<u8> = [
        insn(0x7b, 10, 1, -48, 0), // *(u64 *)(r10 - 48) = r1
        insn(0xbf, 2, 10, 0, 0),   // r2 = r10
        insn(0x07, 2, 0, 0, -200), // r2 += -200 (a buffer for a helper)
        insn(0x85, 0, 0, 0, 113),  // call bpf_probe_read_kernel (r2 is gone)
        insn(0x07, 2, 0, 0, -400), // r2 += -400: no longer the frame pointer
        insn(0xbf, 3, 10, 0, 0),   // r3 = r10
        insn(0x07, 3, 0, 0, -64),  // r3 += -64
        insn(0x79, 4, 3, -16, 0),  // r4 = *(u64 *)(r3 - 16): 80 bytes down
        insn(0x85, 0, 1, 0, 2),    // call a subprogram two instructions on
        insn(0x95, 0, 0, 0, 0),    // exit
    ]
    .concat();
    let f = scan(&code, &|at, imm| Some(format!("sub@{}", at / 8 + imm as usize + 1)));
    assert_eq!(f.frame, 200);
    assert_eq!(f.calls, vec!["sub@11".to_string()]);
    assert_eq!((rounded(0), rounded(1), rounded(32), rounded(33), rounded(464)), (32, 32, 32, 64, 480));
    let mut funcs = BTreeMap::new();
    funcs.insert("main".to_string(), Function { frame: 320, calls: vec!["compat".into()], program: true });
    funcs.insert("compat".to_string(), Function { frame: 464, calls: vec![], program: false });
    // The chain d8931a7 shipped: 320 + 464 bytes, which only a private stack accepts.
    assert_eq!(deepest_chain(&funcs, "main", 0).0, 800);
}

/// Runs `lanner-capture --probe EXTRA…` and returns each program's processed instructions and
/// budget (the loader owns the budget).
fn probe(extra: &[&str]) -> Option<BTreeMap<String, (u32, u32)>> {
    if !common::is_root() {
        common::skip_or_fail("loading eBPF programs needs root");
        return None;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_lanner-capture")).arg("--probe").args(extra).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "lanner-capture --probe failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let insns = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "program").then_some(())?;
            let name = w.next()?.to_owned();
            let n = l.split("verified, ").nth(1)?.split(' ').next()?.parse().ok()?;
            let budget = l.split("(budget ").nth(1)?.trim_end_matches(')').parse().ok()?;
            Some((name, (n, budget)))
        })
        .collect::<BTreeMap<_, _>>();
    assert!(!insns.is_empty(), "no program figures in the probe's output:\n{text}");
    Some(insns)
}

#[test]
#[ignore = "needs root: loads eBPF programs (cargo xtask test runs it)"]
fn every_program_verifies_within_its_complexity_budget() {
    let Some(btf) = probe(&[]) else { return };
    let Some(fallback) = probe(&["--btf", "/nonexistent/vmlinux"]) else { return };
    assert!(btf.contains_key("lanner_raw_sys_exit") && !fallback.contains_key("lanner_raw_sys_exit"));
    for (mode, figures) in [("BTF", &btf), ("no BTF", &fallback)] {
        for (p, (n, budget)) in figures {
            assert!(*budget <= COMPLEXITY_LIMIT / 4, "a budget of {budget} leaves too little of the 1M limit");
            assert!(n <= budget, "{p} ({mode}) processed {n} instructions, over its budget of {budget}");
        }
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap().trim().to_owned();
    let table = budget_table(&stack_budget(), &btf, &fallback, &release);
    eprintln!("{table}");
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/KERNELS.md");
    let text = std::fs::read_to_string(&doc).unwrap();
    let (begin, end) = ("<!-- budget table: begin -->\n", "<!-- budget table: end -->");
    let (a, b) =
        (text.find(begin).expect("budget table begin marker") + begin.len(), text.find(end).expect("end marker"));
    if std::env::var("LANNER_WRITE_BUDGET").is_ok_and(|v| v == "1") {
        std::fs::write(&doc, format!("{}{table}{}", &text[..a], &text[b..])).unwrap();
        return;
    }
    // The stack column comes from the object alone and must be current; the instruction counts
    // depend on the kernel the table was written on.
    let stack_cells = |t: &str| -> Vec<String> {
        t.lines().filter(|l| l.starts_with("| `")).map(|l| l.split('|').take(4).collect::<Vec<_>>().join("|")).collect()
    };
    assert_eq!(
        stack_cells(&text[a..b]),
        stack_cells(&table),
        "docs/KERNELS.md's budget table is out of date: run LANNER_WRITE_BUDGET=1 cargo test -p lanner-capture --test verifier_budget"
    );
}

/// The budget table of docs/KERNELS.md.
fn budget_table(
    stack: &BTreeMap<String, (u32, Vec<String>)>,
    btf: &BTreeMap<String, (u32, u32)>,
    fallback: &BTreeMap<String, (u32, u32)>,
    release: &str,
) -> String {
    let mut t = format!(
        "| program | stack (deepest chain, bytes of {STACK_LIMIT}) | call chain | instructions processed, BTF ({release}) | without BTF | budget |\n|---|---|---|---|---|---|\n"
    );
    for (p, (bytes, chain)) in stack {
        let cell = |m: &BTreeMap<String, (u32, u32)>| m.get(p).map_or("not loaded".to_owned(), |(n, _)| n.to_string());
        let budget = btf.get(p).or(fallback.get(p)).map_or("-".to_owned(), |(_, b)| b.to_string());
        t.push_str(&format!(
            "| `{p}` | {bytes} | {} | {} | {} | {budget} |\n",
            chain.join(" → "),
            cell(btf),
            cell(fallback)
        ));
    }
    t
}
