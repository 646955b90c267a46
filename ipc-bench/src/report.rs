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
    /// Smallest and largest over runs of figure / floor figure (same run): the noise beside
    /// `vs_floor`.
    #[serde(default)]
    pub vs_floor_spread: Option<Spread>,
    /// Smallest and largest over runs of figure / best peer figure (same run).
    #[serde(default)]
    pub vs_best_peer_spread: Option<Spread>,
    /// The p99 of each run, ns (`None` where the run failed).
    #[serde(default)]
    pub per_run_p99: Vec<Option<f64>>,
    /// Errors of individual runs.
    pub errors: Vec<String>,
}

/// The run-to-run spread of a ratio: its smallest and largest per-run value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Smallest per-run value.
    pub min: f64,
    /// Largest per-run value.
    pub max: f64,
    /// How many runs (or run pairs) it is taken over.
    pub runs: usize,
}

impl Spread {
    /// The spread of `values` (non-finite values ignored); `None` if there are none.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        let min = v.iter().copied().reduce(f64::min)?;
        let max = v.iter().copied().reduce(f64::max)?;
        Some(Spread { min, max, runs: v.len() })
    }
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
    /// Smallest and largest per-run value (same unit as `value`); across groups, the extremes
    /// over every pair of one run of each.
    #[serde(default)]
    pub spread: Option<Spread>,
    /// How many runs met the target, of how many measured both rows (goals within one group
    /// and the p99 goal; `None` across groups, where runs do not pair).
    #[serde(default)]
    pub runs_met: Option<(usize, usize)>,
    /// The measured row, `group/row` (ours).
    #[serde(default)]
    pub row: Option<String>,
    /// The measured row's figure times this factor lies exactly on the target: the chart draws
    /// the goal line there (`None` where the goal is not about the row's p50 figure).
    #[serde(default)]
    pub at_target: Option<f64>,
    /// What the row is compared with, `group/row` (`None` for an absolute target).
    #[serde(default)]
    pub against: Option<String>,
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

/// `a[i] / b[i]` for every run `i` that measured both (`b[i] > 0`).
pub fn per_run_ratios(a: &[Option<f64>], b: &[Option<f64>]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .filter_map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) if *y > 0.0 => Some(x / y),
            _ => None,
        })
        .collect()
}

/// Turn the outcomes of every run (`outcomes[row][run]`) into the group's result.
pub fn summarize_group(spec: &GroupSpec, outcomes: &[Vec<Outcome>]) -> GroupResult {
    let metric = spec.metric;
    let rows: Vec<RowResult> = spec
        .rows
        .iter()
        .zip(outcomes)
        .map(|(r, outs)| {
            let ok: Vec<Measurement> =
                outs.iter().filter_map(|o| o.as_ref().ok().copied()).collect();
            let per_run: Vec<Option<f64>> =
                outs.iter().map(|o| o.as_ref().ok().map(|m| figure_of(metric, m))).collect();
            let per_run_p99: Vec<Option<f64>> =
                outs.iter().map(|o| o.as_ref().ok().map(|m| m.p99_ns)).collect();
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
                vs_floor_spread: None,
                vs_best_peer_spread: None,
                per_run_p99,
                errors,
            }
        })
        .collect();
    let mut g = GroupResult {
        id: spec.id.clone(),
        title: spec.title.clone(),
        metric,
        placement: spec.placement,
        size: spec.size,
        floor: spec.floor.map(str::to_string),
        best_peer: None,
        note: spec.note.to_string(),
        rows,
    };
    fill_ratios(&mut g);
    g
}

/// (Re)compute a group's best peer and every row's ratios and spreads from the per-run
/// figures: run after measuring, and on a saved results.json (`--from`), whose older
/// versions lack the spreads.
pub fn fill_ratios(g: &mut GroupResult) {
    let metric = g.metric;
    let floor_runs = g
        .floor
        .as_ref()
        .and_then(|f| g.rows.iter().find(|r| &r.id == f && r.status == Status::Ok))
        .map(|r| r.per_run.clone());
    let better = |a: f64, b: f64| if metric.higher_is_better() { a > b } else { a < b };
    let best_peer = g
        .rows
        .iter()
        .filter(|r| r.kind == Kind::Peer && r.figure.is_some())
        .fold(None::<&RowResult>, |best, r| match (best, r.figure) {
            (Some(b), Some(f)) if b.figure.is_some_and(|bf| !better(f, bf)) => Some(b),
            _ => Some(r),
        })
        .map(|r| (r.id.clone(), r.per_run.clone()));
    for r in &mut g.rows {
        let (v, s) = match &floor_runs {
            Some(f) => {
                let rs = per_run_ratios(&r.per_run, f);
                (median(&rs), Spread::of(&rs))
            }
            None => (None, None),
        };
        r.vs_floor = v;
        r.vs_floor_spread = s;
        let (v, s) = match &best_peer {
            Some((_, p)) => {
                let rs = per_run_ratios(&r.per_run, p);
                (median(&rs), Spread::of(&rs))
            }
            None => (None, None),
        };
        r.vs_best_peer = v;
        r.vs_best_peer_spread = s;
    }
    g.best_peer = best_peer.map(|(id, _)| id);
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

/// "1.27x", "12.5x", "163x"; under 0.1x two significant digits ("0.0027x"); "-" for none.
pub fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) => format!("{}x", ratio_digits(r)),
        None => "-".into(),
    }
}

fn ratio_digits(r: f64) -> String {
    if !r.is_finite() {
        "-".into()
    } else if r >= 100.0 {
        format!("{r:.0}")
    } else if r >= 10.0 {
        format!("{r:.1}")
    } else if r >= 0.1 || r <= 0.0 {
        format!("{r:.2}")
    } else {
        // Two significant digits: 0.054, 0.0027.
        let decimals = (1.0 - r.log10().floor()).clamp(2.0, 12.0) as usize;
        format!("{r:.decimals$}")
    }
}

/// "1.15–1.30x" (min–max over runs), "-" when fewer than two runs measured.
pub fn fmt_spread(s: Option<Spread>) -> String {
    match s {
        Some(s) if s.runs >= 2 => format!("{}–{}x", ratio_digits(s.min), ratio_digits(s.max)),
        _ => "-".into(),
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

/// The row's figure as text ("437 ns", "3.53 GiB/s", "-").
pub fn figure_text(g: &GroupResult, r: &RowResult) -> String {
    match r.figure {
        Some(f) if g.metric == Metric::Throughput => fmt_rate(f),
        Some(f) => fmt_ns(f),
        None => "-".into(),
    }
}

/// The columns of a group's table: header and one line of cells per row (a row that did not
/// measure has three cells: kind, mechanism and the reason).
pub fn table(g: &GroupResult) -> (Vec<String>, Vec<Vec<String>>) {
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
    head.extend(["vs floor".into(), "spread".into(), "vs best peer".into()]);
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
            c.push(fmt_spread(r.vs_floor_spread));
            c.push(fmt_ratio(r.vs_best_peer));
            c
        })
        .collect();
    (head, lines)
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// "floor: raw socketpair, 8 B = 74.4 µs (same run); " and the group's note, or the note alone
/// when the group has no floor.
pub fn floor_text(g: &GroupResult) -> String {
    match g.floor.as_ref().and_then(|f| g.rows.iter().find(|r| &r.id == f)) {
        Some(f) => format!("floor: {} = {} (same run); {}", f.label, figure_text(g, f), g.note),
        None => g.note.clone(),
    }
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
    let _ = writeln!(out, "   {}", floor_text(g));
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
            "P5",
            "pipe RTT 8 B over TCP loopback (S) vs a raw TCP socket pair",
            Ratio { num: ("tcp-8-S", "ipc-pipe-tcp"), den: ("tcp-8-S", "tcp"), le: true, x: 1.05 },
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
        (
            "P14",
            "ForkServer start + join vs raw fork + _exit + waitpid",
            Ratio {
                num: ("process-start", "forkserver"),
                den: ("process-start", "raw-fork"),
                le: true,
                x: 1.5,
            },
        ),
        (
            "P14",
            "Spawn start + join vs posix_spawn of /bin/true",
            Ratio {
                num: ("process-start", "spawn"),
                den: ("process-start", "posix-spawn"),
                le: true,
                x: 1.2,
            },
        ),
        (
            "P14",
            "Spawn start + join vs Python Process (spawn)",
            Faster {
                ours: ("process-start", "spawn"),
                them: ("process-start", "mp-spawn"),
                x: 10.0,
            },
        ),
        (
            "P14",
            "Pool::map per task vs Python Pool.map (default chunksize)",
            Faster { ours: ("process-pool", "map"), them: ("process-pool", "mp-pool"), x: 20.0 },
        ),
        (
            "P14",
            "Pool::map per task vs Python ProcessPoolExecutor.map",
            Faster {
                ours: ("process-pool", "map"),
                them: ("process-pool", "mp-executor"),
                x: 20.0,
            },
        ),
        (
            "P14",
            "Pool::apply round trip vs an ipc-pipe round trip (S)",
            Ratio {
                num: ("process-apply-S", "apply"),
                den: ("process-apply-S", "pipe"),
                le: true,
                x: 1.5,
            },
        ),
    ]
}

fn find<'a>(groups: &'a [GroupResult], (g, r): (&str, &str)) -> Option<&'a RowResult> {
    groups.iter().find(|x| x.id == g)?.rows.iter().find(|x| x.id == r && x.status == Status::Ok)
}

/// A goal's figure as measured in this run.
struct Measured {
    value: f64,
    spread: Option<Spread>,
    runs_met: Option<(usize, usize)>,
    note: String,
}

/// num / den: within one group the median of per-run ratios (spread and runs meeting the
/// target from the same ratios); across groups the ratio of the medians, whose spread is the
/// extremes over every pair of one run of each (runs of two groups are taken minutes apart and
/// do not pair).
fn ratio(
    groups: &[GroupResult],
    num: (&str, &str),
    den: (&str, &str),
    meets: &dyn Fn(f64) -> bool,
) -> Result<Measured, String> {
    let a = find(groups, num).ok_or_else(|| format!("no figure for {}/{}", num.0, num.1))?;
    let b = find(groups, den).ok_or_else(|| format!("no figure for {}/{}", den.0, den.1))?;
    if num.0 == den.0 {
        let rs = per_run_ratios(&a.per_run, &b.per_run);
        let value = median(&rs).ok_or_else(|| "no run measured both".to_string())?;
        Ok(Measured {
            value,
            spread: Spread::of(&rs),
            runs_met: Some((rs.iter().filter(|r| meets(**r)).count(), rs.len())),
            note: format!("median of per-run ratios, {}", num.0),
        })
    } else {
        match (a.figure, b.figure) {
            (Some(x), Some(y)) if y > 0.0 => {
                let xs = Spread::of(&a.per_run.iter().flatten().copied().collect::<Vec<_>>());
                let ys = Spread::of(
                    &b.per_run.iter().flatten().copied().filter(|v| *v > 0.0).collect::<Vec<_>>(),
                );
                let spread = match (xs, ys) {
                    (Some(xs), Some(ys)) => Some(Spread {
                        min: xs.min / ys.max,
                        max: xs.max / ys.min,
                        runs: xs.runs * ys.runs,
                    }),
                    _ => None,
                };
                Ok(Measured {
                    value: x / y,
                    spread,
                    runs_met: None,
                    note: "ratio of medians across groups".into(),
                })
            }
            _ => Err("missing figures".into()),
        }
    }
}

/// Recompute everything derived from the per-run figures: each group's ratios and spreads,
/// then the goals (`--from` on a results.json written by an older version).
pub fn rederive(r: &mut Report) {
    for g in &mut r.groups {
        fill_ratios(g);
    }
    r.goals = goals(&r.groups);
}

/// Check every goal against the groups of this run.
pub fn goals(groups: &[GroupResult]) -> Vec<Goal> {
    goal_specs()
        .into_iter()
        .map(|(id, what, check)| {
            // (target text, the measured row, the row it is compared with,
            //  (figure, met, at_target) or why there is none)
            let (target, row, against, res) = match check {
                Check::Ratio { num, den, le, x } => {
                    let meets = move |v: f64| if le { v <= x } else { v >= x };
                    let t = format!("{} {:.2}x", if le { "<=" } else { ">=" }, x);
                    let r = ratio(groups, num, den, &meets).map(|m| {
                        let met = meets(m.value);
                        // (num * f) / den = x.
                        let at = (m.value > 0.0).then(|| x / m.value);
                        (m, met, at)
                    });
                    (t, num, Some(den), r)
                }
                Check::Faster { ours, them, x } => {
                    let meets = move |v: f64| v >= x;
                    let t = format!(">= {x:.0}x faster");
                    let r = ratio(groups, them, ours, &meets).map(|m| {
                        let met = meets(m.value);
                        // them / (ours * f) = x.
                        let at = Some(m.value / x);
                        (m, met, at)
                    });
                    (t, ours, Some(them), r)
                }
                Check::P99 { row, x } => {
                    let t = format!("<= {:.0} ms", x / 1e6);
                    let r = find(groups, row)
                        .and_then(|r| Some((r, r.median?)))
                        .map(|(r, med)| {
                            let p99s: Vec<f64> = r.per_run_p99.iter().flatten().copied().collect();
                            let ms: Vec<f64> = p99s.iter().map(|p| p / 1e6).collect();
                            let runs_met = (!p99s.is_empty())
                                .then(|| (p99s.iter().filter(|p| **p <= x).count(), p99s.len()));
                            let m = Measured {
                                value: med.p99_ns / 1e6,
                                spread: Spread::of(&ms),
                                runs_met,
                                note: "median over runs of p99".into(),
                            };
                            // The bars are p50 figures: no line for a p99 goal.
                            (m, med.p99_ns <= x, None)
                        })
                        .ok_or_else(|| format!("no figure for {}/{}", row.0, row.1));
                    (t, row, None, r)
                }
            };
            let row = Some(format!("{}/{}", row.0, row.1));
            let against = against.map(|(g, r)| format!("{g}/{r}"));
            match res {
                Ok((m, met, at_target)) => Goal {
                    id: id.into(),
                    what: what.into(),
                    target,
                    value: Some(m.value),
                    met: Some(met),
                    note: m.note,
                    spread: m.spread,
                    runs_met: m.runs_met,
                    row,
                    at_target,
                    against,
                },
                Err(note) => Goal {
                    id: id.into(),
                    what: what.into(),
                    target,
                    value: None,
                    met: None,
                    note,
                    spread: None,
                    runs_met: None,
                    row,
                    at_target: None,
                    against,
                },
            }
        })
        .collect()
}

/// The goal's figure as text: "1.27x", "65.6x", "1.53 ms", "-".
pub fn goal_value_text(g: &Goal) -> String {
    match g.value {
        Some(v) if is_ms(g) => format!("{v:.2} ms"),
        v => fmt_ratio(v),
    }
}

/// The goal's run-to-run spread as text: "1.15–1.30x", "1.41–4.51 ms", "-".
pub fn goal_spread_text(g: &Goal) -> String {
    match g.spread {
        Some(s) if s.runs >= 2 && is_ms(g) => format!("{:.2}–{:.2} ms", s.min, s.max),
        s => fmt_spread(s),
    }
}

/// Whether the goal's figure is an absolute time in ms (the recovery goal), not a ratio.
fn is_ms(g: &Goal) -> bool {
    g.target.ends_with("ms")
}

/// "met", "MISSED" or "n/a", with how many runs met the target: "MISSED (2/5 runs met)".
pub fn goal_verdict(g: &Goal) -> String {
    let word = match g.met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "n/a",
    };
    match g.runs_met {
        Some((k, n)) if n >= 2 && g.met.is_some() => format!("{word} ({k}/{n} runs met)"),
        _ => word.into(),
    }
}

/// "25 of 30 goals met, 4 missed, 1 not measured".
pub fn goals_summary(goals: &[Goal]) -> String {
    let met = goals.iter().filter(|g| g.met == Some(true)).count();
    let missed = goals.iter().filter(|g| g.met == Some(false)).count();
    let na = goals.len() - met - missed;
    let mut s = format!("{met} of {} goals met, {missed} missed", goals.len());
    if na > 0 {
        let _ = write!(s, ", {na} not measured");
    }
    s
}

fn goal_line(g: &Goal) -> [String; 6] {
    [
        g.id.clone(),
        g.what.clone(),
        g.target.clone(),
        goal_value_text(g),
        goal_spread_text(g),
        format!("{}; {}", goal_verdict(g), g.note),
    ]
}

/// The goals as a terminal table.
pub fn render_goals_text(goals: &[Goal]) -> String {
    let mut out = format!("\n== Goals ({}; ratios from this run)\n", goals_summary(goals));
    let mut lines: Vec<[String; 6]> = vec![[
        String::new(),
        String::new(),
        "target".into(),
        "median".into(),
        "spread".into(),
        String::new(),
    ]];
    lines.extend(goals.iter().map(goal_line));
    let w: Vec<usize> =
        (0..6).map(|i| lines.iter().map(|l| width(&l[i])).max().unwrap_or(0)).collect();
    for l in &lines {
        let mut s = String::from("  ");
        for (i, c) in l.iter().enumerate() {
            let pad = " ".repeat(w[i].saturating_sub(width(c)));
            // Figures right-aligned, words left-aligned.
            if (3..5).contains(&i) {
                s.push_str(&pad);
                s.push_str(c);
            } else {
                s.push_str(c);
                if i + 1 < l.len() {
                    s.push_str(&pad);
                }
            }
            if i + 1 < l.len() {
                s.push_str("  ");
            }
        }
        let _ = writeln!(out, "{}", s.trim_end());
    }
    out
}

/// The machine in one sentence.
pub fn machine_text(m: &Machine) -> String {
    format!(
        "{} · {} CPUs usable · kernel {} · {}{} · {} RAM{}",
        m.cpu,
        m.cpus,
        m.kernel,
        if m.virtualized { "virtual machine" } else { "bare metal (no hypervisor flag)" },
        if m.idle.is_empty() { String::new() } else { format!(" ({})", m.idle) },
        m.memory,
        m.python.as_ref().map(|p| format!(" · {p}")).unwrap_or_default(),
    )
}

/// The run's settings in one sentence.
pub fn run_text(r: &RunInfo) -> String {
    format!(
        "{} interleaved runs{}, {:.0} ms measuring budget per row and run (+10% warm-up){}; took {:.0} s",
        r.runs,
        if r.quick { " (--quick)" } else { "" },
        r.budget_ms,
        if r.filters.is_empty() { String::new() } else { format!(", filter {:?}", r.filters) },
        r.elapsed_s,
    )
}

/// The whole report as Markdown: the goals first, then the chart, the tables and the method.
pub fn render_markdown(r: &Report) -> String {
    let mut out = String::from("# ipc-bench report\n\n");
    let _ = writeln!(out, "Run: {}. Machine: {}.\n", run_text(&r.run), machine_text(&r.machine));
    let _ = writeln!(out, "## Goals: {}\n", goals_summary(&r.goals));
    out.push_str(
        "Median of the per-run ratios; spread = the smallest and largest per-run ratio (a miss \
         whose spread reaches the target is within this machine's run-to-run noise).\n\n",
    );
    out.push_str(
        "| goal | what | target | median | spread | verdict; how |\n|---|---|---:|---:|---:|---|\n",
    );
    for g in &r.goals {
        let l = goal_line(g).map(|c| c.replace('|', "\\|"));
        let _ =
            writeln!(out, "| {} | {} | {} | {} | {} | {} |", l[0], l[1], l[2], l[3], l[4], l[5]);
    }
    out.push_str(
        "\n## Chart\n\n![Every row as its ratio to its group's floor, one panel per family \
         (chart.svg; report.html has it inline)](chart.svg)\n",
    );
    out.push_str("\n## Tables\n\n");
    for g in &r.groups {
        out.push_str(&render_md(g));
        out.push('\n');
    }
    out.push_str("## How to read it\n\n");
    out.push_str(METHOD);
    out
}

/// How to read the tables (printed in report.md and the README).
pub const METHOD: &str = "\
How to read it: every figure is the median over the interleaved runs (each run measures every
row of a group once, alternating the order). Latency figures are round trips (RTT) between two
real processes (threads only where a row says so); one-way is RTT/2, labelled. `vs floor` is
the median over runs of (row / floor of the same run), `spread` the smallest and largest of those
per-run ratios (a miss whose spread reaches the target is run-to-run noise); `vs best peer` is
the same median against the best peer row of the group. For times lower is better; for throughput (GiB/s, bytes over the median
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
