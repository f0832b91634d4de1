//! Splits a backtest across workers: each segment belongs to exactly one of N shards, decided
//! by its file name alone, so any worker computes the same split without talking to the others
//! (Kubernetes Indexed Jobs, AWS Batch array jobs, or N shells).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The environment variables an orchestrator sets to a worker's index: Kubernetes' Indexed Jobs,
/// then AWS Batch array jobs.
pub const INDEX_VARIABLES: [&str; 2] = ["JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"];

/// Shard `index` of `count` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This worker's shard, `0..count`.
    pub index: u32,
    /// How many shards the work is split into.
    pub count: u32,
}

impl Shard {
    /// Parses `K/N`, or `env/N` to take K from the first of [`INDEX_VARIABLES`] that `var` finds.
    pub fn parse(text: &str, var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let (k, n) = text.split_once('/').with_context(|| format!("--shard {text}: expected K/N (or env/N)"))?;
        let count: u32 = n
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .with_context(|| format!("--shard {text}: the shard count `{n}` is not a positive number"))?;
        let (index, from) = if k == "env" {
            let Some((name, v)) = INDEX_VARIABLES.iter().find_map(|name| var(name).map(|v| (*name, v))) else {
                bail!("--shard {text}: none of {} is set", INDEX_VARIABLES.join(", "));
            };
            (v, format!(" ({name})"))
        } else {
            (k.to_owned(), String::new())
        };
        let index: u32 = index
            .trim()
            .parse()
            .with_context(|| format!("--shard {text}: the shard index `{index}`{from} is not a number"))?;
        if index >= count {
            bail!("--shard {text}: the shard index {index}{from} is not below the count {count} (indices start at 0)");
        }
        Ok(Self { index, count })
    }

    /// Whether the segment at `path` belongs to this shard (by its file name: the same segment
    /// in another directory or bucket lands in the same shard).
    pub fn owns(&self, path: &Path) -> bool {
        shard_of(path, self.count) == self.index
    }
}

/// The shard of `count` that the segment at `path` belongs to.
pub fn shard_of(path: &Path, count: u32) -> u32 {
    let name = path.file_name().unwrap_or(path.as_os_str());
    let hash = blake3::hash(name.as_encoded_bytes());
    let first = u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"));
    (first % count as u64) as u32
}

/// Combines the summaries of one split backtest. When they came from shards, every shard
/// `0..N` must be there exactly once (a missing shard is a part of the archive nobody read);
/// `names` names each part in messages.
pub fn merge(parts: &[(String, crate::replay::ReplaySummary)]) -> Result<crate::replay::ReplaySummary> {
    let mut out = crate::replay::ReplaySummary::default();
    let shards: Vec<(&str, Option<Shard>)> = parts.iter().map(|(n, s)| (n.as_str(), s.shard)).collect();
    if let Some(&(first_name, Some(first))) = shards.first() {
        let mut seen: Vec<Option<&str>> = vec![None; first.count as usize];
        for &(name, shard) in &shards {
            let Some(s) = shard else { bail!("{name}: not a shard's summary, but {first_name} is") };
            if s.count != first.count {
                bail!(
                    "{name}: shard {}/{} of a split into {}, but {first_name} is of {}",
                    s.index,
                    s.count,
                    s.count,
                    first.count
                );
            }
            if let Some(other) = seen[s.index as usize].replace(name) {
                bail!("{name}: shard {}/{} again (also {other})", s.index, s.count);
            }
        }
        let missing: Vec<String> =
            (0..first.count).filter(|&i| seen[i as usize].is_none()).map(|i| i.to_string()).collect();
        if !missing.is_empty() {
            bail!("shard(s) {} of {} missing: their segments were not read", missing.join(", "), first.count);
        }
    } else if let Some((name, _)) = shards.iter().find(|(_, s)| s.is_some()) {
        bail!("{name}: a shard's summary, but {} is not", shards[0].0);
    }
    for (_, s) in parts {
        out.absorb(s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_from_flags_and_the_orchestrators_variables() {
        let none = |_: &str| None;
        assert_eq!(Shard::parse("2/5", none).unwrap(), Shard { index: 2, count: 5 });
        let k8s = |v: &str| (v == "JOB_COMPLETION_INDEX").then(|| "3".to_owned());
        assert_eq!(Shard::parse("env/4", k8s).unwrap(), Shard { index: 3, count: 4 });
        let batch = |v: &str| (v == "AWS_BATCH_JOB_ARRAY_INDEX").then(|| "1".to_owned());
        assert_eq!(Shard::parse("env/2", batch).unwrap(), Shard { index: 1, count: 2 });
        for (bad, says) in [
            ("3", "expected K/N"),
            ("1/0", "not a positive number"),
            ("x/3", "`x` is not a number"),
            ("3/3", "not below the count 3"),
            ("env/3", "none of JOB_COMPLETION_INDEX, AWS_BATCH_JOB_ARRAY_INDEX is set"),
        ] {
            let e = Shard::parse(bad, none).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains(bad), "{bad}: {e}");
        }
        let e = Shard::parse("env/3", k8s).unwrap_err().to_string();
        assert!(e.contains("(JOB_COMPLETION_INDEX)"), "{e}");
    }

    #[test]
    fn every_segment_has_exactly_one_shard_whatever_its_directory() {
        let names: Vec<String> = (0..60).map(|i| format!("lanner-20261206T0000{i:02}Z-cafe-{i:06}.lnr")).collect();
        let mut per = [0; 4];
        for n in &names {
            let owners: Vec<u32> = (0..4).filter(|&k| Shard { index: k, count: 4 }.owns(Path::new(n))).collect();
            assert_eq!(owners.len(), 1, "{n}");
            per[owners[0] as usize] += 1;
            assert_eq!(shard_of(Path::new(n), 4), shard_of(&Path::new("/elsewhere").join(n), 4));
        }
        // Spread over every shard.
        assert!(per.iter().all(|&c| c >= 5), "{per:?}");
    }
}
