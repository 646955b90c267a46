//! From outcomes to figures and ratios; the terminal table, report.md and results.json.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::catalog::{GroupSpec, Kind, Metric, size_label};
use crate::harness::{Fail, Outcome, Placement};
use crate::stats::{Measurement, median};

/// Whether a row has a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// At least one run measured.
    Ok,
    /// Not measurable here (reason given).
    Skipped,
    /// Every run failed (reason given).
    Error,
}

/// One row after all runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowResult {
    /// Row id.
    pub id: String,
    /// What is measured.
    pub label: String,
    /// Floor, ours or peer.
    pub kind: Kind,
    /// Ok, skipped or error.
    pub status: Status,
    /// Why skipped or failed (the first reason).
    pub reason: Option<String>,
    /// The figure: median over runs of p50 ns (time metrics) or of bytes/s at the p50 sample
    /// (throughput).
    pub figure: Option<f64>,
    /// The figure of each run (`None` where the run failed).
    pub per_run: Vec<Option<f64>>,
    /// Field-wise median over the runs that measured.
    pub median: Option<Measurement>,
    /// Median over runs of figure / floor figure (same run).
    pub vs_floor: Option<f64>,
    /// Median over runs of figure / best peer figure (same run).
    pub vs_best_peer: Option<f64>,
    /// Errors of individual runs.
    pub errors: Vec<String>,
}

/// One group after all runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupResult {
    /// Group id.
    pub id: String,
    /// Title.
    pub title: String,
    /// The figure's kind.
    pub metric: Metric,
    /// Placement.
    pub placement: Placement,
    /// Message or block size.
    pub size: usize,
    /// Floor row id.
    pub floor: Option<String>,
    /// The best peer's row id (lowest time / highest throughput), if any peer measured.
    pub best_peer: Option<String>,
    /// How to read it.
    pub note: String,
    /// Rows.
    pub rows: Vec<RowResult>,
}

/// The machine the figures come from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// CPUs the bench could use.
    pub cpus: usize,
    /// Kernel release.
    pub kernel: String,
    /// Whether the CPU flags say "hypervisor".
    pub virtualized: bool,
    /// Idle-path settings from the kernel command line (haltpoll etc.).
    pub idle: String,
    /// Total memory.
    pub memory: String,
    /// python3 --version, if any.
    pub python: Option<String>,
}

/// A goal of the crate issues, checked on this run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Goal {
    /// Goal id (P1, P2, ...: the table in ipc-bench/README.md).
    pub id: String,
    /// What is compared.
    pub what: String,
    /// The target, e.g. "<= 1.25x".
    pub target: String,
    /// The measured ratio (or absolute figure for the recovery goal).
    pub value: Option<f64>,
    /// Whether the target is met; `None` when a row is missing.
    pub met: Option<bool>,
    /// How it was computed, or which rows are missing.
    pub note: String,
}

/// The settings of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    /// `--quick`.
    pub quick: bool,
    /// Interleaved runs.
    pub runs: usize,
    /// Measuring budget of one row in one run, ms.
    pub budget_ms: f64,
    /// `--filter` patterns.
    pub filters: Vec<String>,
    /// Seconds since the epoch at start.
    pub started_unix: u64,
    /// Wall time of the whole run, s.
    pub elapsed_s: f64,
}

/// Everything a run produced (results.json).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Format version of this JSON.
    pub version: u32,
    /// The machine.
    pub machine: Machine,
    /// The settings.
    pub run: RunInfo,
    /// The groups in run order.
    pub groups: Vec<GroupResult>,
    /// The goals.
    pub goals: Vec<Goal>,
}

/// The comparable figure of one measurement.
pub fn figure_of(metric: Metric, m: &Measurement) -> f64 {
    if metric == Metric::Throughput { m.bytes_per_sec_p50() } else { m.p50_ns }
}

fn median_measurement(ms: &[Measurement]) -> Option<Measurement> {
    let f = |g: fn(&Measurement) -> f64| median(&ms.iter().map(g).collect::<Vec<_>>());
    Some(Measurement {
        mean_ns: f(|m| m.mean_ns)?,
        p50_ns: f(|m| m.p50_ns)?,
        p90_ns: f(|m| m.p90_ns)?,
        p99_ns: f(|m| m.p99_ns)?,
        p999_ns: f(|m| m.p999_ns)?,
        max_ns: f(|m| m.max_ns)?,
        ops: f(|m| m.ops as f64)? as u64,
        samples: f(|m| m.samples as f64)? as u64,
        batch: f(|m| m.batch as f64)? as u64,
        bytes_per_op: ms.first()?.bytes_per_op,
    })
}

fn per_run_ratio(a: &[Option<f64>], b: &[Option<f64>]) -> Option<f64> {
    let r: Vec<f64> = a
        .iter()
        .zip(b)
        .filter_map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) if *y > 0.0 => Some(x / y),
            _ => None,
        })
        .collect();
    median(&r)
}

/// Turn the outcomes of every run (`outcomes[row][run]`) into the group's result.
pub fn summarize_group(spec: &GroupSpec, outcomes: &[Vec<Outcome>]) -> GroupResult {
    let metric = spec.metric;
    let mut rows: Vec<RowResult> = spec
        .rows
        .iter()
        .zip(outcomes)
        .map(|(r, outs)| {
            let ok: Vec<Measurement> =
                outs.iter().filter_map(|o| o.as_ref().ok().copied()).collect();
            let per_run: Vec<Option<f64>> =
                outs.iter().map(|o| o.as_ref().ok().map(|m| figure_of(metric, m))).collect();
            let errors: Vec<String> = outs
                .iter()
                .filter_map(|o| match o {
                    Err(Fail::Error(e)) => Some(e.clone()),
                    _ => None,
                })
                .collect();
            let first_fail = outs.iter().find_map(|o| o.as_ref().err().cloned());
            let (status, reason) = if !ok.is_empty() {
                (Status::Ok, None)
            } else {
                match first_fail {
                    Some(Fail::Skip(s)) => (Status::Skipped, Some(s)),
                    Some(Fail::Error(e)) => (Status::Error, Some(e)),
                    None => (Status::Skipped, Some("not run".into())),
                }
            };
            RowResult {
                id: r.id.to_string(),
                label: r.label.clone(),
                kind: r.kind,
                status,
                reason,
                figure: median(&per_run.iter().flatten().copied().collect::<Vec<_>>()),
                per_run,
                median: median_measurement(&ok),
                vs_floor: None,
                vs_best_peer: None,
                errors,
            }
        })
        .collect();
    let floor_runs = spec
        .floor
        .and_then(|f| rows.iter().find(|r| r.id == f && r.status == Status::Ok))
        .map(|r| r.per_run.clone());
    let better = |a: f64, b: f64| if metric.higher_is_better() { a > b } else { a < b };
    let best_peer = rows
        .iter()
        .filter(|r| r.kind == Kind::Peer && r.figure.is_some())
        .fold(None::<&RowResult>, |best, r| match (best, r.figure) {
            (Some(b), Some(f)) if b.figure.is_some_and(|bf| !better(f, bf)) => Some(b),
            _ => Some(r),
        })
        .map(|r| (r.id.clone(), r.per_run.clone()));
    for r in &mut rows {
        if let Some(f) = &floor_runs {
            r.vs_floor = per_run_ratio(&r.per_run, f);
        }
        if let Some((_, p)) = &best_peer {
            r.vs_best_peer = per_run_ratio(&r.per_run, p);
        }
    }
    GroupResult {
        id: spec.id.clone(),
        title: spec.title.clone(),
        metric,
        placement: spec.placement,
        size: spec.size,
        floor: spec.floor.map(str::to_string),
        best_peer: best_peer.map(|(id, _)| id),
        note: spec.note.to_string(),
        rows,
    }
}

/// "271 ns", "1.33 µs", "59.8 µs", "7.02 ms".
pub fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        return "-".into();
    }
    if ns < 10.0 {
        format!("{ns:.2} ns")
    } else if ns < 1000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        let us = ns / 1e3;
        if us < 10.0 { format!("{us:.2} µs") } else { format!("{us:.1} µs") }
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// "10.9 GiB/s", "535 MiB/s".
pub fn fmt_rate(bps: f64) -> String {
    let gib = bps / (1u64 << 30) as f64;
    if gib >= 1.0 {
        format!("{gib:.2} GiB/s")
    } else {
        format!("{:.0} MiB/s", bps / (1u64 << 20) as f64)
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 100.0 => format!("{r:.0}x"),
        Some(r) if r >= 10.0 => format!("{r:.1}x"),
        Some(r) => format!("{r:.2}x"),
        None => "-".into(),
    }
}

/// The header line of a group: title, placement, floor with its figure.
pub fn group_heading(g: &GroupResult) -> String {
    let mut s = format!("{} · {}", g.title, g.placement.describe());
    if matches!(g.metric, Metric::Op | Metric::Throughput | Metric::Trial)
        && g.id != "lock-contended"
    {
        s = g.title.clone();
    }
    s
}

fn figure_text(g: &GroupResult, r: &RowResult) -> String {
    match r.figure {
        Some(f) if g.metric == Metric::Throughput => fmt_rate(f),
        Some(f) => fmt_ns(f),
        None => "-".into(),
    }
}

/// The columns of a group's table: header and one line of cells per row.
fn table(g: &GroupResult) -> (Vec<String>, Vec<Vec<String>>) {
    let fig = match g.metric {
        Metric::Rtt => "RTT p50",
        Metric::OneWay => "one-way p50",
        Metric::Op => "p50 / op",
        Metric::Throughput => "throughput",
        Metric::Trial => "p50 / trial",
    };
    let mut head = vec!["kind".to_string(), "mechanism".into(), fig.into()];
    if g.metric == Metric::Rtt {
        head.push("one-way (RTT/2)".into());
    }
    if g.metric != Metric::Throughput {
        head.extend(["p99".into(), "p99.9".into(), "max".into()]);
    }
    head.extend(["vs floor".into(), "vs best peer".into()]);
    let lines = g
        .rows
        .iter()
        .map(|r| {
            let mut c = vec![r.kind.tag().to_string(), r.label.clone()];
            if r.status != Status::Ok {
                let word = if r.status == Status::Skipped { "skipped" } else { "error" };
                c.push(format!("{word}: {}", r.reason.clone().unwrap_or_default()));
                return c;
            }
            c.push(figure_text(g, r));
            if g.metric == Metric::Rtt {
                c.push(r.figure.map(|f| fmt_ns(f / 2.0)).unwrap_or_default());
            }
            if g.metric != Metric::Throughput {
                let m = r.median.unwrap_or(Measurement {
                    mean_ns: 0.0,
                    p50_ns: 0.0,
                    p90_ns: 0.0,
                    p99_ns: 0.0,
                    p999_ns: 0.0,
                    max_ns: 0.0,
                    ops: 0,
                    samples: 0,
                    batch: 0,
                    bytes_per_op: 0,
                });
                let batched = m.batch > 1;
                c.push(fmt_ns(m.p99_ns) + if batched { "*" } else { "" });
                c.push(fmt_ns(m.p999_ns) + if batched { "*" } else { "" });
                c.push(fmt_ns(m.max_ns) + if batched { "*" } else { "" });
            }
            c.push(fmt_ratio(r.vs_floor));
            c.push(fmt_ratio(r.vs_best_peer));
            c
        })
        .collect();
    (head, lines)
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// The group as a terminal table.
pub fn render_text(g: &GroupResult) -> String {
    let (head, lines) = table(g);
    let ncol = head.len();
    let mut w: Vec<usize> = head.iter().map(|h| width(h)).collect();
    for l in &lines {
        if l.len() == ncol {
            for (i, c) in l.iter().enumerate() {
                if let Some(x) = w.get_mut(i) {
                    *x = (*x).max(width(c));
                }
            }
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "\n== {} [{}]", group_heading(g), g.id);
    let floor = g.floor.as_ref().and_then(|f| g.rows.iter().find(|r| &r.id == f));
    if let Some(f) = floor {
        let _ =
            writeln!(out, "   floor: {} = {} (same run); {}", f.label, figure_text(g, f), g.note);
    } else {
        let _ = writeln!(out, "   {}", g.note);
    }
    let line = |cells: &[String]| {
        let mut s = String::from("  ");
        for (i, c) in cells.iter().enumerate() {
            let wi = w.get(i).copied().unwrap_or(0);
            let pad = wi.saturating_sub(width(c));
            if i >= 2 && cells.len() == ncol {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                if i + 1 < cells.len() {
                    s.push_str(&" ".repeat(pad));
                }
            }
            if i + 1 < cells.len() {
                s.push_str("  ");
            }
        }
        s.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(&head));
    for l in &lines {
        let _ = writeln!(out, "{}", line(l));
    }
    out
}

/// The group as a Markdown table.
pub fn render_md(g: &GroupResult) -> String {
    let (head, lines) = table(g);
    let mut out = String::new();
    let _ = writeln!(out, "### {} (`{}`)\n", group_heading(g), g.id);
    let floor = g.floor.as_ref().and_then(|f| g.rows.iter().find(|r| &r.id == f));
    match floor {
        Some(f) => {
            let _ = writeln!(
                out,
                "Floor: {} = **{}** (same run). {}.\n",
                f.label,
                figure_text(g, f),
                g.note
            );
        }
        None => {
            let _ = writeln!(out, "{}.\n", g.note);
        }
    }
    let _ = writeln!(out, "| {} |", head.join(" | "));
    let align: Vec<&str> = (0..head.len()).map(|i| if i < 2 { "---" } else { "---:" }).collect();
    let _ = writeln!(out, "| {} |", align.join(" | "));
    for l in &lines {
        let mut cells = l.clone();
        if cells.len() < head.len() {
            cells.resize(head.len(), String::new());
        }
        let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

/// How a goal is checked.
enum Check {
    /// num / den <= x (or >= x).
    Ratio { num: (&'static str, &'static str), den: (&'static str, &'static str), le: bool, x: f64 },
    /// den / num >= x ("x times faster than").
    Faster { ours: (&'static str, &'static str), them: (&'static str, &'static str), x: f64 },
    /// p99 of a row <= x ns.
    P99 { row: (&'static str, &'static str), x: f64 },
}

fn goal_specs() -> Vec<(&'static str, &'static str, Check)> {
    use Check::{Faster, P99, Ratio};
    vec![
        (
            "P1",
            "SPSC polling RTT 8 B vs 2-line spin floor",
            Ratio { num: ("poll-8", "queue-spsc"), den: ("poll-8", "spin2"), le: true, x: 1.25 },
        ),
        (
            "P1",
            "SPSC polling RTT 64 B vs 2-line spin floor (+copy)",
            Ratio { num: ("poll-64", "queue-spsc"), den: ("poll-64", "spin2"), le: true, x: 1.25 },
        ),
        (
            "P1",
            "SPSC polling RTT 8 B vs iceoryx2 pub/sub",
            Ratio { num: ("poll-8", "queue-spsc"), den: ("poll-8", "iceoryx2"), le: true, x: 0.3 },
        ),
        (
            "P1",
            "SPSC polling RTT 64 B vs iceoryx2 pub/sub",
            Ratio {
                num: ("poll-64", "queue-spsc"),
                den: ("poll-64", "iceoryx2"),
                le: true,
                x: 0.3,
            },
        ),
        (
            "P2",
            "SPSC throughput 64 B vs reference ring",
            Ratio {
                num: ("tput-queue-64", "queue-spsc"),
                den: ("tput-queue-64", "ring"),
                le: false,
                x: 0.9,
            },
        ),
        (
            "P3",
            "adaptive wait, peer spinning, vs SPSC polling (poll-64)",
            Ratio {
                num: ("poll-64", "queue-spsc-adaptive"),
                den: ("poll-64", "queue-spsc"),
                le: true,
                x: 1.3,
            },
        ),
        (
            "P3",
            "adaptive wait, peer asleep (wake-X) vs raw futex",
            Ratio { num: ("wake-X", "queue-spsc"), den: ("wake-X", "futex"), le: true, x: 1.05 },
        ),
        (
            "P3",
            "adaptive wait, same core vs raw pipe",
            Ratio { num: ("block-S", "queue-spsc"), den: ("block-S", "pipe"), le: true, x: 0.9 },
        ),
        (
            "P4",
            "MPMC RTT 64 B (2 processes) vs crossbeam ArrayQueue (threads)",
            Ratio {
                num: ("poll-64", "queue-mpmc"),
                den: ("poll-64", "crossbeam-arrayqueue"),
                le: true,
                x: 1.0,
            },
        ),
        (
            "P5",
            "pipe RTT 8 B (X) vs raw socketpair",
            Ratio {
                num: ("pipe-8-X", "ipc-pipe"),
                den: ("pipe-8-X", "socketpair"),
                le: true,
                x: 1.05,
            },
        ),
        (
            "P5",
            "pipe RTT 8 B (S) vs raw socketpair",
            Ratio {
                num: ("pipe-8-S", "ipc-pipe"),
                den: ("pipe-8-S", "socketpair"),
                le: true,
                x: 1.05,
            },
        ),
        (
            "P5",
            "pipe RTT 1 KiB (S) vs raw socketpair",
            Ratio {
                num: ("pipe-1k-S", "ipc-pipe"),
                den: ("pipe-1k-S", "socketpair"),
                le: true,
                x: 1.05,
            },
        ),
        (
            "P5",
            "pipe RTT 8 B (S) vs ipc-channel bytes",
            Ratio {
                num: ("pipe-8-S", "ipc-pipe"),
                den: ("pipe-8-S", "ipc-channel-bytes"),
                le: true,
                x: 0.95,
            },
        ),
        (
            "P5",
            "pipe RTT 8 B (S) vs interprocess",
            Ratio {
                num: ("pipe-8-S", "ipc-pipe"),
                den: ("pipe-8-S", "interprocess"),
                le: true,
                x: 0.95,
            },
        ),
        (
            "P5",
            "pipe RTT 8 B (X) vs ipc-channel bytes",
            Ratio {
                num: ("pipe-8-X", "ipc-pipe"),
                den: ("pipe-8-X", "ipc-channel-bytes"),
                le: true,
                x: 0.95,
            },
        ),
        (
            "P5",
            "pipe RTT 8 B (X) vs interprocess",
            Ratio {
                num: ("pipe-8-X", "ipc-pipe"),
                den: ("pipe-8-X", "interprocess"),
                le: true,
                x: 0.95,
            },
        ),
        (
            "P6",
            "pipe throughput 1 MiB vs raw Unix stream",
            Ratio {
                num: ("tput-pipe-1m", "ipc-pipe"),
                den: ("tput-pipe-1m", "uds-stream"),
                le: false,
                x: 0.9,
            },
        ),
        (
            "P7",
            "robust mutex uncontended vs parking_lot",
            Ratio {
                num: ("lock-uncontended", "mutex"),
                den: ("lock-uncontended", "parking_lot"),
                le: true,
                x: 1.1,
            },
        ),
        (
            "P8",
            "mutex contended (time per lock) vs glibc robust: >= 1.2x throughput",
            Ratio {
                num: ("lock-contended", "mutex"),
                den: ("lock-contended", "pthread-robust"),
                le: true,
                x: 1.0 / 1.2,
            },
        ),
        (
            "P8",
            "mutex handoff (X) vs raw futex RTT/2",
            Ratio {
                num: ("lock-handoff-X", "mutex"),
                den: ("lock-handoff-X", "futex"),
                le: true,
                x: 1.1,
            },
        ),
        (
            "P8",
            "mutex handoff (X) vs a raw futex mutex doing the same handoff",
            Ratio {
                num: ("lock-handoff-X", "mutex"),
                den: ("lock-handoff-X", "futex-mutex"),
                le: true,
                x: 1.1,
            },
        ),
        (
            "P9",
            "rwlock read uncontended vs parking_lot::RwLock read",
            Ratio {
                num: ("lock-uncontended", "rwlock-read"),
                den: ("lock-uncontended", "parking_lot-rwlock-read"),
                le: true,
                x: 1.1,
            },
        ),
        (
            "P10",
            "semaphore uncontended vs glibc sem_t",
            Ratio {
                num: ("sem-uncontended", "sem"),
                den: ("sem-uncontended", "sem_t"),
                le: true,
                x: 1.0,
            },
        ),
        ("P11", "owner-death recovery p99 (ms)", P99 { row: ("lock-recovery", "mutex"), x: 100e6 }),
        (
            "P12",
            "shm create+map+unlink 1 MiB vs raw (ftruncate)",
            Ratio { num: ("shm-create", "ipc-shm"), den: ("shm-create", "raw"), le: true, x: 1.1 },
        ),
        (
            "P12",
            "shm create, reserved, vs raw + fallocate",
            Ratio {
                num: ("shm-create", "ipc-shm-reserved"),
                den: ("shm-create", "raw-fallocate"),
                le: true,
                x: 1.1,
            },
        ),
        (
            "P13",
            "polling queue (poll-8) vs Python mp.Pipe 8 B (same core, its best)",
            Faster { ours: ("poll-8", "queue-spsc"), them: ("pipe-8-S", "mp-pipe"), x: 30.0 },
        ),
        (
            "P13",
            "blocking queue (X) vs Python mp.Queue (X)",
            Faster { ours: ("block-X", "queue-spsc"), them: ("block-X", "mp-queue"), x: 4.0 },
        ),
        (
            "P13",
            "blocking queue (S) vs Python mp.Queue (S)",
            Faster { ours: ("block-S", "queue-spsc"), them: ("block-S", "mp-queue"), x: 4.0 },
        ),
        (
            "P13",
            "mutex uncontended vs Python mp.Lock",
            Faster {
                ours: ("lock-uncontended", "mutex"),
                them: ("lock-uncontended", "mp-lock"),
                x: 4.0,
            },
        ),
    ]
}

fn find<'a>(groups: &'a [GroupResult], (g, r): (&str, &str)) -> Option<&'a RowResult> {
    groups.iter().find(|x| x.id == g)?.rows.iter().find(|x| x.id == r && x.status == Status::Ok)
}

/// num / den: the median of per-run ratios within one group, else the ratio of medians.
fn ratio(
    groups: &[GroupResult],
    num: (&str, &str),
    den: (&str, &str),
) -> Result<(f64, String), String> {
    let a = find(groups, num).ok_or_else(|| format!("no figure for {}/{}", num.0, num.1))?;
    let b = find(groups, den).ok_or_else(|| format!("no figure for {}/{}", den.0, den.1))?;
    if num.0 == den.0 {
        per_run_ratio(&a.per_run, &b.per_run)
            .map(|r| (r, format!("median of per-run ratios, {}", num.0)))
            .ok_or_else(|| "no run measured both".into())
    } else {
        match (a.figure, b.figure) {
            (Some(x), Some(y)) if y > 0.0 => Ok((x / y, "ratio of medians across groups".into())),
            _ => Err("missing figures".into()),
        }
    }
}

/// Check every goal against the groups of this run.
pub fn goals(groups: &[GroupResult]) -> Vec<Goal> {
    goal_specs()
        .into_iter()
        .map(|(id, what, check)| {
            let (target, res) = match check {
                Check::Ratio { num, den, le, x } => {
                    let t = format!("{} {:.2}x", if le { "<=" } else { ">=" }, x);
                    let r = ratio(groups, num, den)
                        .map(|(v, n)| (v, if le { v <= x } else { v >= x }, n));
                    (t, r)
                }
                Check::Faster { ours, them, x } => {
                    let t = format!(">= {x:.0}x faster");
                    let r = ratio(groups, them, ours).map(|(v, n)| (v, v >= x, n));
                    (t, r)
                }
                Check::P99 { row, x } => {
                    let t = format!("<= {:.0} ms", x / 1e6);
                    let r = find(groups, row)
                        .and_then(|r| r.median)
                        .map(|m| {
                            (m.p99_ns / 1e6, m.p99_ns <= x, "median over runs of p99".to_string())
                        })
                        .ok_or_else(|| format!("no figure for {}/{}", row.0, row.1));
                    (t, r)
                }
            };
            match res {
                Ok((v, met, note)) => Goal {
                    id: id.into(),
                    what: what.into(),
                    target,
                    value: Some(v),
                    met: Some(met),
                    note,
                },
                Err(note) => {
                    Goal { id: id.into(), what: what.into(), target, value: None, met: None, note }
                }
            }
        })
        .collect()
}

fn goal_line(g: &Goal) -> [String; 5] {
    let v = match (g.id.as_str(), g.value) {
        ("P11", Some(v)) => format!("{v:.2} ms"),
        (_, Some(v)) if g.target.contains("faster") => format!("{v:.1}x"),
        (_, v) => fmt_ratio(v),
    };
    let met = match g.met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "n/a",
    };
    [g.id.clone(), g.what.clone(), g.target.clone(), v, format!("{met} ({})", g.note)]
}

/// The goals as a terminal table.
pub fn render_goals_text(goals: &[Goal]) -> String {
    let mut out = String::from("\n== Goals (ratios from this run)\n");
    let lines: Vec<[String; 5]> = goals.iter().map(goal_line).collect();
    let w: Vec<usize> =
        (0..5).map(|i| lines.iter().map(|l| width(&l[i])).max().unwrap_or(0)).collect();
    for l in &lines {
        let mut s = String::from("  ");
        for (i, c) in l.iter().enumerate() {
            s.push_str(c);
            if i + 1 < l.len() {
                s.push_str(&" ".repeat(w[i].saturating_sub(width(c)) + 2));
            }
        }
        let _ = writeln!(out, "{}", s.trim_end());
    }
    out
}

/// The whole report as Markdown.
pub fn render_markdown(r: &Report) -> String {
    let mut out = String::from("# ipc-bench report\n\n");
    let m = &r.machine;
    let _ = writeln!(
        out,
        "Machine: {} · {} CPUs usable · kernel {} · {}{} · {} RAM{}.\n",
        m.cpu,
        m.cpus,
        m.kernel,
        if m.virtualized { "virtual machine" } else { "bare metal (no hypervisor flag)" },
        if m.idle.is_empty() { String::new() } else { format!(" ({})", m.idle) },
        m.memory,
        m.python.as_ref().map(|p| format!(" · {p}")).unwrap_or_default(),
    );
    let _ = writeln!(
        out,
        "Run: {} interleaved runs{}, {:.0} ms measuring budget per row and run (+10% warm-up){}; took {:.0} s.\n",
        r.run.runs,
        if r.run.quick { " (--quick)" } else { "" },
        r.run.budget_ms,
        if r.run.filters.is_empty() {
            String::new()
        } else {
            format!(", filter {:?}", r.run.filters)
        },
        r.run.elapsed_s,
    );
    out.push_str(METHOD);
    out.push_str("\n## Goals\n\n| goal | what | target | this run | |\n|---|---|---:|---:|---|\n");
    for g in &r.goals {
        let l = goal_line(g);
        let _ = writeln!(out, "| {} | {} | {} | {} | {} |", l[0], l[1], l[2], l[3], l[4]);
    }
    out.push_str("\n## Tables\n\n");
    for g in &r.groups {
        out.push_str(&render_md(g));
        out.push('\n');
    }
    out
}

/// How to read the tables (printed in report.md and the README).
pub const METHOD: &str = "\
How to read it: every figure is the median over the interleaved runs (each run measures every
row of a group once, alternating the order). Latency figures are round trips (RTT) between two
real processes (threads only where a row says so); one-way is RTT/2, labelled. `vs floor` is
the median over runs of (row / floor of the same run); `vs best peer` the same against the best
peer row of the group. For times lower is better; for throughput (GiB/s, bytes over the median
sample time) higher is better, so a throughput ratio of 0.9x means 90% of the reference.
Placements: X = cpu0/cpu1, S = both on cpu0, U = unpinned. Figures marked * come from batched
samples (a sample is the mean of a batch of operations, which keeps the ~20 ns clock cost out of
sub-microsecond figures; its tail percentiles are batch means). Cross-core blocking round trips
on this VM cost ~60 us because every wake-up is an IPI through the hypervisor: compare them with
the raw futex row of the same run, never as absolutes.
";

/// One-line summary of a size for titles.
pub fn size_text(size: usize) -> String {
    size_label(size)
}
