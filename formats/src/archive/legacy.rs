//! Chunks of older formats, read by converting them to this build's format:
//! - format 3 process records lack the task and container facts that format 4 added, so each
//!   is rebuilt with those facts unknown;
//! - format 4 chunks lack the resolved host names that format 5 added: none were resolved.
//!
//! Everything else (strings, paths, event columns) is carried over as it was.

use rkyv::{Archive, Deserialize, Serialize};

use crate::event::{stored, Chunk, ContainerFacts, EventColumns, PathTable, Process, TaskFacts};

/// A chunk of format 3 (with [`ProcessV3`] records) or 4 (with [`Process`] records): [`Chunk`]
/// without `resolved` and `accounts`, which format 5 added.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ChunkBeforeV5<P> {
    /// As [`Chunk::strings`].
    pub strings: Vec<String>,
    /// As [`Chunk::paths`].
    pub paths: PathTable,
    /// The process records of that format.
    pub processes: Vec<P>,
    /// As [`Chunk::events`].
    #[rkyv(with = stored::Encoded)]
    pub events: EventColumns,
    /// As [`Chunk::drops`].
    pub drops: u64,
}

/// A format 3 chunk.
pub type ChunkV3 = ChunkBeforeV5<ProcessV3>;
/// A format 4 chunk.
pub type ChunkV4 = ChunkBeforeV5<Process>;

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

/// This build's bytes for the chunk `raw` of format `major` (3 or 4), validated as that format
/// first.
pub fn upgrade(raw: &[u8], major: u16) -> Result<rkyv::util::AlignedVec<16>, String> {
    let chunk = match major {
        3 => convert::<ProcessV3>(raw, major)?,
        4 => convert::<Process>(raw, major)?,
        _ => return Err(format!("format {major} chunks are not converted")),
    };
    rkyv::to_bytes::<rkyv::rancor::BoxedError>(&chunk).map_err(|e| format!("converting a format {major} chunk: {e}"))
}

/// Reads `raw` as a chunk with `P` process records and converts it.
fn convert<P>(raw: &[u8], major: u16) -> Result<Chunk, String>
where
    P: Archive + Into<Process>,
    P::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rkyv::rancor::BoxedError>>
        + Deserialize<P, rkyv::api::high::HighDeserializer<rkyv::rancor::BoxedError>>,
{
    let old = rkyv::from_bytes::<ChunkBeforeV5<P>, rkyv::rancor::BoxedError>(raw)
        .map_err(|e| format!("invalid format {major} chunk data: {e}"))?;
    Ok(Chunk {
        strings: old.strings,
        paths: old.paths,
        processes: old.processes.into_iter().map(Into::into).collect(),
        events: old.events,
        drops: old.drops,
        resolved: Vec::new(),
        accounts: Vec::new(),
    })
}
