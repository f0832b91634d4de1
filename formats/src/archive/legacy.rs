//! Format 3 chunks, read by converting them: their process records lack the task and container
//! facts that format 4 added, so each is rebuilt as a format 4 chunk with those facts unknown.
//! Everything else (strings, paths, event columns) is carried over as it was.

use rkyv::{Archive, Deserialize, Serialize};

use crate::event::{stored, Chunk, ContainerFacts, EventColumns, PathTable, Process, TaskFacts};

/// A format 3 chunk.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ChunkV3 {
    /// As [`Chunk::strings`].
    pub strings: Vec<String>,
    /// As [`Chunk::paths`].
    pub paths: PathTable,
    /// Format 3 process records.
    pub processes: Vec<ProcessV3>,
    /// As [`Chunk::events`].
    #[rkyv(with = stored::Encoded)]
    pub events: EventColumns,
    /// As [`Chunk::drops`].
    pub drops: u64,
}

/// A format 3 process record: [`Process`] without `task` and `container`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct ProcessV3 {
    pub pid: u32,
    pub ppid: u32,
    pub parent: u32,
    pub uid: u32,
    pub gid: u32,
    pub name: u32,
    pub exe: u32,
    pub exepath: u32,
    pub args: u32,
    pub cwd: u32,
    pub start_ns: u64,
    pub container_id: u32,
    pub tty: u32,
    pub loginuid: u32,
    pub container_name: u32,
    pub container_image: u32,
    pub k8s_pod: u32,
    pub k8s_ns: u32,
}

impl From<ProcessV3> for Process {
    fn from(p: ProcessV3) -> Self {
        Process {
            pid: p.pid,
            ppid: p.ppid,
            parent: p.parent,
            uid: p.uid,
            gid: p.gid,
            name: p.name,
            exe: p.exe,
            exepath: p.exepath,
            args: p.args,
            cwd: p.cwd,
            start_ns: p.start_ns,
            container_id: p.container_id,
            tty: p.tty,
            loginuid: p.loginuid,
            container_name: p.container_name,
            container_image: p.container_image,
            k8s_pod: p.k8s_pod,
            k8s_ns: p.k8s_ns,
            task: TaskFacts::UNKNOWN,
            container: ContainerFacts::UNKNOWN,
        }
    }
}

/// The format 4 bytes of the format 3 chunk `raw` (validated as format 3 first).
pub fn upgrade_v3(raw: &[u8]) -> Result<rkyv::util::AlignedVec<16>, String> {
    let old = rkyv::from_bytes::<ChunkV3, rkyv::rancor::BoxedError>(raw)
        .map_err(|e| format!("invalid format 3 chunk data: {e}"))?;
    let chunk = Chunk {
        strings: old.strings,
        paths: old.paths,
        processes: old.processes.into_iter().map(Process::from).collect(),
        events: old.events,
        drops: old.drops,
    };
    rkyv::to_bytes::<rkyv::rancor::BoxedError>(&chunk).map_err(|e| format!("converting a format 3 chunk: {e}"))
}
