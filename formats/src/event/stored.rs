//! How a chunk's event columns are stored (format 3): each column transformed into bytes that
//! compress well, decoded while iterating.
//!
//! - times: zigzag differences between consecutive event times, divided by their greatest
//!   common divisor, as byte planes (all lowest bytes,
//!   then all second bytes, … up to the width the largest difference needs);
//! - tid and process index: little-endian, each value in the width (0 to 4 bytes) that the
//!   chunk's largest value needs (branch-free to read and to check);
//! - event type, flags, mode: LEB128 varints;
//! - return value and dirfd: zigzag LEB128 varints;
//! - path references: varints, see [`PathCoder`].

use rkyv::rancor::{Fallible, Source};
use rkyv::with::{ArchiveWith, DeserializeWith, SerializeWith};
use rkyv::{Archive, Deserialize, Place, Serialize};

use super::{Event, EventColumns, NONE};

/// The stored form of [`EventColumns`] (see the module documentation).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct StoredEvents {
    /// Number of events.
    pub count: u32,
    /// Time of the first event (unix ns).
    pub ts_base: u64,
    /// Unit of the time differences in nanoseconds (≥ 1): their greatest common divisor, so that
    /// times recorded in microseconds (imported captures) cost what microseconds need.
    pub ts_unit: u64,
    /// Zigzag time differences (in `ts_unit`s) as byte planes: `count × width` bytes, byte `p` of event `i` at
    /// `p × count + i`.
    pub ts: Vec<u8>,
    /// Thread ids: `count × width` bytes, each little-endian in `width` bytes.
    pub tid: Vec<u8>,
    /// Process indices: `count × width` bytes, each little-endian in `width` bytes.
    pub process: Vec<u8>,
    /// Event types (varints).
    pub etype: Vec<u8>,
    /// Return values (zigzag varints).
    pub ret: Vec<u8>,
    /// Flags (varints).
    pub flags: Vec<u8>,
    /// Modes (varints).
    pub mode: Vec<u8>,
    /// Directory fds (zigzag varints).
    pub dirfd: Vec<u8>,
    /// First-path references (varints, [`PathCoder`]).
    pub path: Vec<u8>,
    /// Second-path references (varints, [`PathCoder`]).
    pub path2: Vec<u8>,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends `v` as a LEB128 varint.
pub(crate) fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads one LEB128 varint at `*at`; `None` when the column ends first. Bits beyond 64 are
/// dropped (validation refuses such values before any iteration).
#[inline(always)]
pub(crate) fn get(b: &[u8], at: &mut usize) -> Option<u64> {
    let first = *b.get(*at)?;
    *at += 1;
    if first < 0x80 {
        return Some(first as u64);
    }
    let mut v = (first & 0x7f) as u64;
    let mut shift = 7u32;
    loop {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= ((byte & 0x7f) as u64).checked_shl(shift).unwrap_or(0);
        if byte < 0x80 {
            return Some(v);
        }
        shift += 7;
    }
}

/// `values` little-endian, each in the width the largest needs.
fn fixed_width(values: &[u32]) -> Vec<u8> {
    let width = values.iter().map(|&v| 4 - v.leading_zeros() as usize / 8).max().unwrap_or(0);
    values.iter().flat_map(|v| v.to_le_bytes().into_iter().take(width)).collect()
}

/// Width of a fixed-width column of `n` values, `None` when its length is not `n × width` with
/// `width` ≤ 4.
fn width_of(col: &[u8], n: usize) -> Option<usize> {
    let width = col.len().checked_div(n).unwrap_or(0);
    (col.len() == n * width && width <= 4).then_some(width)
}

/// Value `i` of a column of `width`-byte little-endian values (`width` ≤ 4; 0 reads 0).
#[inline(always)]
fn fixed(col: &[u8], width: usize, i: usize) -> u32 {
    let at = i * width;
    let b = |k: usize| col.get(at + k).map_or(0, |&b| b as u32);
    match width {
        0 => 0,
        1 => b(0),
        2 => b(0) | b(1) << 8,
        3 => b(0) | b(1) << 8 | b(2) << 16,
        _ => b(0) | b(1) << 8 | b(2) << 16 | b(3) << 24,
    }
}

/// True when `col` has `L` consecutive continuation bytes (a branch-free, vectorizable pass).
fn has_run<const L: usize>(col: &[u8]) -> bool {
    let mut acc = 0u8;
    for w in col.windows(L) {
        let w: &[u8; L] = w.try_into().expect("windows of L bytes");
        acc |= w.iter().fold(0x80, |a, &b| a & b);
    }
    acc != 0
}

/// Checks that `col` holds exactly `n` varints, each at most `max`: vectorizable passes count the
/// value ends and look for `L` consecutive continuation bytes (the shortest value that can exceed
/// `max`); only then is each value decoded and checked.
fn check_column<const L: usize>(name: &str, col: &[u8], n: usize, max: u64) -> Result<(), String> {
    let ends = col.iter().filter(|&&b| b < 0x80).count();
    if ends != n || col.last().is_some_and(|&b| b >= 0x80) || has_run::<L>(col) {
        return check_varints(name, col, n, max);
    }
    Ok(())
}

/// Checks that `col` holds exactly `n` varints, each at most `max`; `Err` says what is wrong.
fn check_varints(name: &str, col: &[u8], n: usize, max: u64) -> Result<(), String> {
    let (mut at, mut i) = (0usize, 0usize);
    while at < col.len() {
        if col[at] < 0x80 {
            at += 1;
        } else {
            let start = at;
            // At most 10 bytes: 64 bits in 7-bit groups.
            let end = col.len().min(at + 10);
            while at < end && col[at] >= 0x80 {
                at += 1;
            }
            if at == col.len() {
                return Err(format!("{name} column: value {i} at byte {start} is cut off by the end of the column"));
            }
            if at == end {
                return Err(format!("{name} column: value {i} at byte {start} is not terminated within 10 bytes"));
            }
            at += 1;
            let mut p = start;
            let v = get(col, &mut p).unwrap_or(u64::MAX);
            if v > max || (at - start == 10 && col[at - 1] > 1) {
                return Err(format!("{name} column: value {i} at byte {start} is out of range"));
            }
        }
        i += 1;
        if i > n {
            return Err(format!("{name} column has more than {n} values"));
        }
    }
    if i != n {
        return Err(format!("{name} column has {i} values for {n} events"));
    }
    Ok(())
}

/// Slots in the per-thread cache of [`PathCoder`] (a thread's slot is `tid % PATH_CACHE`).
const PATH_CACHE: usize = 64;

/// Path references, coded against the paths seen so far in the chunk:
/// 0 = no path; 1 = the next path not used before (ids are assigned in order of first use);
/// 2 = the last first-path of the event's thread (a per-thread cache of [`PATH_CACHE`] slots,
/// slot `tid % 64`, holding (tid, path id) and updated after each event with a first path);
/// n ≥ 3 = path `next − (n − 2)`, where `next` is the number of paths used so far.
#[derive(Debug, Clone)]
pub struct PathCoder {
    next_new: u32,
    cache: [(u32, u32); PATH_CACHE],
}

impl Default for PathCoder {
    fn default() -> Self {
        Self { next_new: 0, cache: [(u32::MAX, NONE); PATH_CACHE] }
    }
}

impl PathCoder {
    #[inline(always)]
    fn cached(&self, tid: u32) -> u32 {
        let (t, p) = self.cache[tid as usize % PATH_CACHE];
        if t == tid {
            p
        } else {
            NONE
        }
    }

    /// Codes `id`; `None` when it is neither a path used before nor the next new one (ids not
    /// assigned in order of first use).
    fn encode(&mut self, tid: u32, id: u32) -> Option<u64> {
        Some(if id == NONE {
            0
        } else if id == self.next_new {
            self.next_new += 1;
            1
        } else if id == self.cached(tid) {
            2
        } else {
            self.next_new.checked_sub(id).filter(|&back| back > 0)? as u64 + 2
        })
    }

    /// Decodes a reference; `None` for one that names no path seen so far.
    #[inline(always)]
    fn decode(&mut self, tid: u32, r: u64) -> Option<u32> {
        match r {
            0 => Some(NONE),
            1 => {
                let id = self.next_new;
                self.next_new = id.checked_add(1)?;
                Some(id)
            }
            2 => Some(self.cached(tid)).filter(|&p| p != NONE),
            n => {
                let back = u32::try_from(n - 2).ok()?;
                self.next_new.checked_sub(back)
            }
        }
    }

    #[inline(always)]
    fn seen(&mut self, tid: u32, path: u32) {
        if path != NONE {
            self.cache[tid as usize % PATH_CACHE] = (tid, path);
        }
    }
}

impl StoredEvents {
    /// Encodes `cols`, whose path ids must be assigned in order of first use, first path before
    /// second path ([`crate::archive::ChunkBuilder`] numbers them so); `Err` names the first
    /// event whose path id breaks that order.
    pub fn encode(cols: &EventColumns) -> Result<Self, String> {
        let n = cols.len();
        let ts_base = cols.ts_ns.first().copied().unwrap_or(0);
        let mut prev = ts_base;
        let diffs: Vec<i64> = cols
            .ts_ns
            .iter()
            .map(|&t| {
                let d = t.wrapping_sub(prev) as i64;
                prev = t;
                d
            })
            .collect();
        let unit = diffs.iter().fold(0u64, |g, d| gcd(g, d.unsigned_abs()));
        let unit = if unit == 0 || unit > i64::MAX as u64 { 1 } else { unit };
        let deltas: Vec<u64> = diffs.iter().map(|&d| zigzag(d / unit as i64)).collect();
        let width = deltas.iter().map(|&d| 8 - d.leading_zeros() as usize / 8).max().unwrap_or(0);
        let mut ts = vec![0u8; n * width];
        for (i, d) in deltas.iter().enumerate() {
            for p in 0..width {
                ts[p * n + i] = (d >> (8 * p)) as u8;
            }
        }
        let mut s = Self {
            count: n as u32,
            ts_base,
            ts_unit: unit,
            ts,
            tid: fixed_width(&cols.tid),
            process: fixed_width(&cols.process),
            ..Default::default()
        };
        let mut paths = PathCoder::default();
        for i in 0..n {
            let tid = cols.tid[i];
            put(&mut s.etype, cols.etype[i] as u64);
            put(&mut s.ret, zigzag(cols.ret[i]));
            put(&mut s.flags, cols.flags[i] as u64);
            put(&mut s.mode, cols.mode[i] as u64);
            put(&mut s.dirfd, zigzag(cols.dirfd[i] as i64));
            for (col, id) in [(&mut s.path, cols.path[i]), (&mut s.path2, cols.path2[i])] {
                let next = paths.next_new;
                let r = paths.encode(tid, id).ok_or_else(|| {
                    format!("event {i} uses path id {id} before path id {next}: ids must follow first use")
                })?;
                put(col, r);
            }
            paths.seen(tid, cols.path[i]);
        }
        Ok(s)
    }
}

impl ArchivedStoredEvents {
    /// Number of events.
    pub fn len(&self) -> usize {
        self.count.to_native() as usize
    }

    /// True when there are no events.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All events, in order (for a chunk that passed [`Self::validate`]; on damaged columns the
    /// iteration stops early).
    pub fn iter(&self) -> EventIter<'_> {
        let n = self.len();
        let width = self.ts.len().checked_div(n).unwrap_or(0).min(8);
        EventIter {
            s: self,
            n,
            i: 0,
            width,
            unit: self.ts_unit.to_native(),
            tid_width: width_of(&self.tid, n).unwrap_or(0),
            process_width: width_of(&self.process, n).unwrap_or(0),
            ts: self.ts_base.to_native(),
            at: [0; 9],
            paths: PathCoder::default(),
        }
    }

    /// Checks the columns against untrusted input: each holds exactly `count` values that fit
    /// their field, the time planes are whole, path references name one of `npaths` paths and
    /// process indices one of `nproc` processes. Iteration over a valid chunk yields `count`
    /// events.
    pub fn validate(&self, nproc: u32, npaths: u32) -> Result<(), String> {
        let n = self.len();
        if !self.ts.len().is_multiple_of(n.max(1)) || self.ts.len() > n * 8 {
            return Err(format!("time column has {} bytes for {n} events", self.ts.len()));
        }
        if self.ts_unit == 0 {
            return Err("time unit is 0".into());
        }
        let tid_width =
            width_of(&self.tid, n).ok_or_else(|| format!("tid column has {} bytes for {n} events", self.tid.len()))?;
        let process_width = width_of(&self.process, n)
            .ok_or_else(|| format!("process column has {} bytes for {n} events", self.process.len()))?;
        let max_process = (0..n).map(|i| fixed(&self.process, process_width, i)).max();
        if let Some(p) = max_process.filter(|&p| p >= nproc) {
            let i = (0..n).position(|i| fixed(&self.process, process_width, i) == p).unwrap_or(0);
            return Err(format!("event {i} references missing process {p}"));
        }
        let u32max = u32::MAX as u64;
        // Continuation bytes a value may have before it can exceed the field: 2 for 16 bits,
        // 4 for 32 bits, 9 for 64 bits.
        check_column::<2>("etype", &self.etype, n, u16::MAX as u64)?;
        check_column::<9>("ret", &self.ret, n, u64::MAX)?;
        check_column::<4>("flags", &self.flags, n, u32max)?;
        check_column::<4>("mode", &self.mode, n, u32max)?;
        check_column::<4>("dirfd", &self.dirfd, n, u32max)?;
        check_column::<9>("path", &self.path, n, u64::MAX)?;
        check_column::<9>("path2", &self.path2, n, u64::MAX)?;
        let (mut coder, mut at) = (PathCoder::default(), [0usize; 3]);
        for i in 0..n {
            let tid = fixed(&self.tid, tid_width, i);
            let mut ids = [NONE; 2];
            for (k, col) in [&self.path, &self.path2].into_iter().enumerate() {
                let r = get(col, &mut at[1 + k]).unwrap_or(u64::MAX);
                ids[k] = match coder.decode(tid, r) {
                    Some(id) if id == NONE || id < npaths => id,
                    Some(id) => return Err(format!("event {i} references missing path {id}")),
                    None => return Err(format!("event {i}: path reference {r} names no earlier path")),
                };
            }
            coder.seen(tid, ids[0]);
        }
        Ok(())
    }
}

/// Iterator over the events of [`ArchivedStoredEvents`].
pub struct EventIter<'a> {
    s: &'a ArchivedStoredEvents,
    n: usize,
    i: usize,
    width: usize,
    unit: u64,
    tid_width: usize,
    process_width: usize,
    ts: u64,
    at: [usize; 9],
    paths: PathCoder,
}

impl Iterator for EventIter<'_> {
    type Item = Event;

    #[inline]
    fn next(&mut self) -> Option<Event> {
        if self.i >= self.n {
            return None;
        }
        let s = self.s;
        let (i, n) = (self.i, self.n);
        let mut d = 0u64;
        for p in 0..self.width {
            d |= (s.ts[p * n + i] as u64) << (8 * p);
        }
        self.ts = self.ts.wrapping_add((unzigzag(d) as u64).wrapping_mul(self.unit));
        let at = &mut self.at;
        // Validation guarantees every value fits its field; the casts only matter for
        // unvalidated data, which yields wrong values but never a panic.
        let tid = fixed(&s.tid, self.tid_width, i);
        let process = fixed(&s.process, self.process_width, i);
        let etype = get(&s.etype, &mut at[2])? as u16;
        let ret = unzigzag(get(&s.ret, &mut at[3])?);
        let flags = get(&s.flags, &mut at[4])? as u32;
        let mode = get(&s.mode, &mut at[5])? as u32;
        let dirfd = unzigzag(get(&s.dirfd, &mut at[6])?) as i32;
        let path = self.paths.decode(tid, get(&s.path, &mut at[7])?)?;
        let path2 = self.paths.decode(tid, get(&s.path2, &mut at[8])?)?;
        self.paths.seen(tid, path);
        self.i += 1;
        Some(Event { ts_ns: self.ts, tid, process, etype, ret, flags, mode, dirfd, path, path2 })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.n - self.i))
    }
}

/// rkyv wrapper storing [`EventColumns`] as [`StoredEvents`].
pub struct Encoded;

impl ArchiveWith<EventColumns> for Encoded {
    type Archived = ArchivedStoredEvents;
    type Resolver = (StoredEvents, <StoredEvents as Archive>::Resolver);

    fn resolve_with(_: &EventColumns, (stored, resolver): Self::Resolver, out: Place<Self::Archived>) {
        stored.resolve(resolver, out);
    }
}

impl<S: Fallible + ?Sized> SerializeWith<EventColumns, S> for Encoded
where
    StoredEvents: Serialize<S>,
    S::Error: Source,
{
    fn serialize_with(field: &EventColumns, serializer: &mut S) -> Result<Self::Resolver, S::Error> {
        let stored = StoredEvents::encode(field).map_err(|e| S::Error::new(StoredError(e)))?;
        let resolver = stored.serialize(serializer)?;
        Ok((stored, resolver))
    }
}

impl<D: Fallible + ?Sized> DeserializeWith<ArchivedStoredEvents, EventColumns, D> for Encoded
where
    D::Error: Source,
{
    fn deserialize_with(field: &ArchivedStoredEvents, _: &mut D) -> Result<EventColumns, D::Error> {
        let events: Vec<Event> = field.iter().collect();
        if events.len() != field.len() {
            return Err(D::Error::new(StoredError("a column ends early".into())));
        }
        Ok(EventColumns::from_events(&events))
    }
}

/// Event columns that cannot be stored (path ids out of order) or read back (a damaged column
/// in unvalidated data).
#[derive(Debug)]
struct StoredError(String);

impl std::fmt::Display for StoredError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "event columns: {}", self.0)
    }
}

impl std::error::Error for StoredError {}
