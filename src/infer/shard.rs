//! Which share of the images one machine of a fleet predicts: `--shard K/N`, or `--shard auto`,
//! read from the scheduler that started the process.

use std::str::FromStr;

use crate::remote::auth::Env;
use crate::sanitize::for_terminal;

/// One machine's share of the images: `K/N`, K from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub k: u32,
    pub n: u32,
}

/// A `--shard` value that is neither `K/N` nor `auto`.
#[derive(Debug, thiserror::Error)]
#[error("--shard `{}`: use K/N with 1 ≤ K ≤ N, e.g. 3/8, or auto", for_terminal(.0))]
pub struct BadShard(String);

impl FromStr for Shard {
    type Err = BadShard;
    fn from_str(s: &str) -> Result<Shard, BadShard> {
        let bad = || BadShard(s.to_string());
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n): (u32, u32) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if k == 0 || n == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }
}

impl Shard {
    /// Whether `key` belongs to this shard: a hash of the key, so every machine agrees whatever
    /// the order its database holds the images in.
    pub fn contains(&self, key: &str) -> bool {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h % u64::from(self.n) == u64::from(self.k - 1)
    }

    /// The shard given by the scheduler that started this process, and the variables it came
    /// from. When several schedulers' variables are set they must agree.
    pub fn from_scheduler(env: &dyn Env) -> Result<(Shard, &'static str), ShardEnvError> {
        let mut found: Option<(Shard, &'static str)> = None;
        for (read, vars) in SCHEDULERS {
            let Some(shard) = read(env)? else { continue };
            match found {
                Some((s, first)) if s != shard => {
                    return Err(ShardEnvError(format!(
                        "--shard auto: {first} says {}/{} but {vars} says {}/{}: pass --shard K/N",
                        s.k, s.n, shard.k, shard.n
                    )));
                }
                Some(_) => {}
                None => found = Some((shard, vars)),
            }
        }
        found.ok_or_else(|| {
            ShardEnvError(format!(
                "--shard auto: no scheduler variables set (looked for {}): pass --shard K/N",
                SCHEDULERS
                    .iter()
                    .map(|(_, v)| *v)
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })
    }
}

/// `--shard auto` without a usable scheduler.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ShardEnvError(String);

type ReadShard = fn(&dyn Env) -> Result<Option<Shard>, ShardEnvError>;

/// Each scheduler's reader and the variables it reads, in the order they are tried.
const SCHEDULERS: [(ReadShard, &str); 3] = [
    (
        kubernetes,
        "JOB_COMPLETION_INDEX/JOB_COMPLETIONS (Kubernetes Indexed Job)",
    ),
    (
        slurm,
        "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_MIN/SLURM_ARRAY_TASK_COUNT (Slurm job array)",
    ),
    (
        torch,
        "RANK/WORLD_SIZE (torchrun, Azure ML distributed job)",
    ),
];

/// A variable that must be a whole number, or is absent.
fn number(env: &dyn Env, name: &str) -> Result<Option<u64>, ShardEnvError> {
    match env.var(name) {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| {
            ShardEnvError(format!(
                "--shard auto: {name}=`{}` is not a whole number",
                for_terminal(&v)
            ))
        }),
    }
}

/// A variable that must be set once the scheduler's first one is.
fn required(env: &dyn Env, name: &str, because: &str, how: &str) -> Result<u64, ShardEnvError> {
    number(env, name)?.ok_or_else(|| {
        ShardEnvError(format!(
            "--shard auto: {because} is set but {name} is not: {how}"
        ))
    })
}

/// A 0-based index of `count`, checked.
fn of(index: u64, count: u64, vars: &str) -> Result<Option<Shard>, ShardEnvError> {
    match (u32::try_from(index + 1), u32::try_from(count)) {
        (Ok(k), Ok(n)) if n > 0 && k <= n => Ok(Some(Shard { k, n })),
        _ => Err(ShardEnvError(format!(
            "--shard auto: {vars} give index {index} of {count}: the index must be below the count"
        ))),
    }
}

/// A 0-based `index_var` of `count_var`; `how` says how to set the count when it is missing.
fn indexed(
    env: &dyn Env,
    index_var: &str,
    count_var: &str,
    how: &str,
) -> Result<Option<Shard>, ShardEnvError> {
    let Some(index) = number(env, index_var)? else {
        return Ok(None);
    };
    let count = required(env, count_var, index_var, how)?;
    of(index, count, &format!("{index_var}/{count_var}"))
}

/// Kubernetes sets `JOB_COMPLETION_INDEX` (0-based) in an Indexed Job; the count is not set by
/// Kubernetes, so the manifest passes `spec.completions` as `JOB_COMPLETIONS`.
fn kubernetes(env: &dyn Env) -> Result<Option<Shard>, ShardEnvError> {
    indexed(
        env,
        "JOB_COMPLETION_INDEX",
        "JOB_COMPLETIONS",
        "set it in the Job's env to the same number as spec.completions",
    )
}

/// A Slurm job array `--array=MIN-MAX[:STEP]`: task IDs MIN, MIN+STEP, … of COUNT tasks.
fn slurm(env: &dyn Env) -> Result<Option<Shard>, ShardEnvError> {
    let Some(id) = number(env, "SLURM_ARRAY_TASK_ID")? else {
        return Ok(None);
    };
    let how = "run inside an sbatch --array job, or pass --shard K/N";
    let min = required(env, "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_ID", how)?;
    let count = required(env, "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_ID", how)?;
    let step = number(env, "SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
    let vars = "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_MIN/SLURM_ARRAY_TASK_COUNT";
    if id < min || (id - min) % step != 0 {
        return Err(ShardEnvError(format!(
            "--shard auto: {vars} give task {id} in an array from {min} by {step}: not one of its tasks"
        )));
    }
    of((id - min) / step, count, vars)
}

/// torchrun and Azure ML distributed jobs: one process per GPU, `RANK` of `WORLD_SIZE`.
fn torch(env: &dyn Env) -> Result<Option<Shard>, ShardEnvError> {
    indexed(
        env,
        "RANK",
        "WORLD_SIZE",
        "start it with torchrun or as a distributed job, or pass --shard K/N",
    )
}

/// `--shard`: a fixed share, or the scheduler's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardArg {
    Fixed(Shard),
    Auto,
}

impl FromStr for ShardArg {
    type Err = BadShard;
    fn from_str(s: &str) -> Result<ShardArg, BadShard> {
        if s.trim().eq_ignore_ascii_case("auto") {
            return Ok(ShardArg::Auto);
        }
        s.parse().map(ShardArg::Fixed)
    }
}

impl ShardArg {
    /// The shard, and where it came from when it was read from the scheduler.
    pub fn resolve(self, env: &dyn Env) -> Result<(Shard, Option<&'static str>), ShardEnvError> {
        match self {
            ShardArg::Fixed(s) => Ok((s, None)),
            ShardArg::Auto => Shard::from_scheduler(env).map(|(s, from)| (s, Some(from))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::remote::auth::MapEnv;

    fn env(vars: &[(&str, &str)]) -> MapEnv {
        MapEnv(
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
        )
    }

    fn auto(vars: &[(&str, &str)]) -> Result<Shard, ShardEnvError> {
        Shard::from_scheduler(&env(vars)).map(|(s, _)| s)
    }

    #[test]
    fn shards_partition_the_keys() {
        let keys: Vec<String> = (0..1000).map(|i| format!("d/img{i}.jpg")).collect();
        let shards: Vec<Shard> = (1..=4).map(|k| Shard { k, n: 4 }).collect();
        for key in &keys {
            assert_eq!(shards.iter().filter(|s| s.contains(key)).count(), 1);
        }
        let first = keys.iter().filter(|k| shards[0].contains(k)).count();
        assert!((150..350).contains(&first), "{first}");
        assert!("0/3".parse::<Shard>().is_err());
        assert!("4/3".parse::<Shard>().is_err());
        assert_eq!("3/8".parse::<Shard>().unwrap(), Shard { k: 3, n: 8 });
        assert_eq!("auto".parse::<ShardArg>().unwrap(), ShardArg::Auto);
        assert_eq!(
            "2/5".parse::<ShardArg>().unwrap(),
            ShardArg::Fixed(Shard { k: 2, n: 5 })
        );
    }

    #[test]
    fn kubernetes_indexed_job() {
        let s = auto(&[("JOB_COMPLETION_INDEX", "0"), ("JOB_COMPLETIONS", "4")]);
        assert_eq!(s, Ok(Shard { k: 1, n: 4 }));
        let s = auto(&[("JOB_COMPLETION_INDEX", "3"), ("JOB_COMPLETIONS", "4")]);
        assert_eq!(s, Ok(Shard { k: 4, n: 4 }));
        let e = auto(&[("JOB_COMPLETION_INDEX", "4"), ("JOB_COMPLETIONS", "4")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("index 4 of 4"), "{e}");
        let e = auto(&[("JOB_COMPLETION_INDEX", "1")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("JOB_COMPLETIONS is not") && e.contains("spec.completions"),
            "{e}"
        );
        let e = auto(&[("JOB_COMPLETION_INDEX", "x1"), ("JOB_COMPLETIONS", "4")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("JOB_COMPLETION_INDEX=`x1` is not a whole number"),
            "{e}"
        );
    }

    #[test]
    fn slurm_array() {
        let vars = |id: &'static str| {
            [
                ("SLURM_ARRAY_TASK_ID", id),
                ("SLURM_ARRAY_TASK_MIN", "5"),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
            ]
        };
        assert_eq!(auto(&vars("5")), Ok(Shard { k: 1, n: 3 }));
        assert_eq!(auto(&vars("7")), Ok(Shard { k: 3, n: 3 }));
        assert!(
            auto(&vars("8"))
                .unwrap_err()
                .to_string()
                .contains("index 3 of 3")
        );
        assert!(
            auto(&vars("4"))
                .unwrap_err()
                .to_string()
                .contains("not one of its tasks")
        );
        // --array=0-12:4 → tasks 0, 4, 8, 12.
        let stepped = |id| {
            auto(&[
                ("SLURM_ARRAY_TASK_ID", id),
                ("SLURM_ARRAY_TASK_MIN", "0"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
                ("SLURM_ARRAY_TASK_STEP", "4"),
            ])
        };
        assert_eq!(stepped("8"), Ok(Shard { k: 3, n: 4 }));
        assert!(
            stepped("6")
                .unwrap_err()
                .to_string()
                .contains("not one of its tasks")
        );
        let e = auto(&[("SLURM_ARRAY_TASK_ID", "2")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("SLURM_ARRAY_TASK_MIN is not"), "{e}");
    }

    #[test]
    fn torchrun_and_azure_ml() {
        let s = auto(&[("RANK", "2"), ("WORLD_SIZE", "8")]);
        assert_eq!(s, Ok(Shard { k: 3, n: 8 }));
        assert!(
            auto(&[("RANK", "0")])
                .unwrap_err()
                .to_string()
                .contains("WORLD_SIZE is not")
        );
        assert!(auto(&[("RANK", "0"), ("WORLD_SIZE", "0")]).is_err());
    }

    #[test]
    fn schedulers_must_agree_and_one_must_be_there() {
        let both = [
            ("JOB_COMPLETION_INDEX", "1"),
            ("JOB_COMPLETIONS", "4"),
            ("RANK", "1"),
            ("WORLD_SIZE", "4"),
        ];
        let (s, from) = Shard::from_scheduler(&env(&both)).unwrap();
        assert_eq!(
            (s, from.starts_with("JOB_COMPLETION_INDEX")),
            (Shard { k: 2, n: 4 }, true)
        );
        let e = auto(&[both[0], both[1], ("RANK", "0"), ("WORLD_SIZE", "4")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("says 2/4") && e.contains("says 1/4") && e.contains("--shard K/N"),
            "{e}"
        );
        let e = auto(&[]).unwrap_err().to_string();
        assert_eq!(e.lines().count(), 1);
        for v in [
            "JOB_COMPLETION_INDEX",
            "SLURM_ARRAY_TASK_ID",
            "RANK/WORLD_SIZE",
            "--shard K/N",
        ] {
            assert!(e.contains(v), "{e}");
        }
        assert_eq!(
            ShardArg::Fixed(Shard { k: 1, n: 2 })
                .resolve(&env(&both))
                .unwrap(),
            (Shard { k: 1, n: 2 }, None)
        );
    }
}
