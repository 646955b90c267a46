//! ipc-bench: one command that measures every primitive of the ipc family against the
//! hardware floors and every peer, in the same run.
//!
//! ```text
//! cargo run --release -p ipc-bench               # full run (a few minutes)
//! cargo run --release -p ipc-bench -- --quick    # under a minute
//! cargo run --release -p ipc-bench -- --filter poll-64,iceoryx2 --json
//! ```
//!
//! It prints one table per group of comparable rows (mechanism, figure, ratio to the
//! group's floor and its run-to-run spread, ratio to the best peer), a progress line while it
//! runs, and writes under `target/ipc-bench/`: `report.md` and `report.html` (the goals first,
//! then the chart, the tables), `chart.svg` (one panel per family of groups) and
//! `results.json`. `--from results.json` renders those files again from a saved run without
//! measuring anything.
//!
//! # Method
//! - Real processes: the resource is created, then the peer side is forked; both are pinned
//!   per placement (X = cpu0/cpu1, S = cpu0/cpu0, U = unpinned) with `sched_setaffinity`.
//! - Round trips; one-way figures are RTT/2 and labelled so.
//! - Warm-up of 10% of the budget; operations under 2 µs timed in batches.
//! - p50, p90, p99, p99.9, max; the figure is the p50 (time) or the mean rate (throughput).
//! - Every run measures each row of a group once, alternating the order (ABC, CBA, ...);
//!   ratios are taken within a run and the median over >= 5 runs is reported.
//! - Every row runs in its own forked measuring process, which forks at most one peer, so
//!   no more than two threads are ever busy; every wait has a deadline and a hung row is
//!   killed and reported as an error, never a hang.
//!
//! # Where unsafe lives
//! `peers/glibc.rs` (pthread mutexes and `sem_t` on shared memory), `peers/raw_sync.rs`
//! (raw_sync takes raw pointers), `ours/process.rs` (the raw fork floor), and in
//! `harness.rs` the atomic words and payload copies of the floors' segments (`word`,
//! `copy_in`, `copy_out`). Everything else is `#![deny(unsafe_code)]`.
#![deny(unsafe_code)]

pub mod catalog;
pub mod chart;
pub mod floors;
pub mod harness;
pub mod html;
pub mod lockbench;
pub mod ours;
pub mod peers;
pub mod report;
pub mod stats;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use catalog::{GroupSpec, Kind};
use harness::{Ctx, Fail, Outcome};
use report::{Machine, Report, RunInfo};

/// What to run and where to write.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--quick`: a small budget per row, under a minute in all.
    pub quick: bool,
    /// Interleaved runs (>= 5 for the method; fewer only for smoke tests).
    pub runs: usize,
    /// Measuring budget per row and run.
    pub budget: Duration,
    /// `--filter` patterns (any match keeps a row).
    pub filters: Vec<String>,
    /// `--json`: print results.json to stdout instead of the tables.
    pub json: bool,
    /// Where the report, chart and JSON go (default: `target/ipc-bench`).
    pub out: Option<PathBuf>,
    /// `--list`: print the groups and rows and exit.
    pub list: bool,
    /// Progress line on stderr.
    pub progress: bool,
    /// `--from FILE`: render the report files again from a saved results.json, measure nothing.
    pub from: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            quick: false,
            runs: 5,
            budget: Duration::from_millis(250),
            filters: Vec::new(),
            json: false,
            out: None,
            list: false,
            progress: true,
            from: None,
        }
    }
}

const USAGE: &str = "\
usage: ipc-bench [--quick] [--filter PATTERN[,PATTERN..]]... [--json] [--runs N]
                 [--budget-ms MS] [--out DIR] [--no-progress] [--list]
       ipc-bench --from RESULTS.json [--out DIR] [--json]

  --quick        small budget per row: the whole run takes under a minute
  --filter P     keep rows whose `group/row` id or label contains P (case-insensitive);
                 a kept group always keeps its floor row
  --json         print results.json on stdout instead of the tables
  --runs N       interleaved runs (default 5; the method wants >= 5)
  --budget-ms MS measuring time per row and run (default 250, --quick 8)
  --out DIR      where report.md, report.html, chart.svg, results.json go
                 (default target/ipc-bench; with --from, the directory of RESULTS.json)
  --no-progress  no progress line on stderr
  --list         print the group and row ids and exit
  --from FILE    measure nothing: read a saved results.json (or DIR/results.json), recompute
                 its ratios, spreads and goals, print the tables and write the report files
";

/// Parse command-line arguments (without the program name).
///
/// # Errors
/// A message naming the bad argument (the caller prints it with the usage).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Config, String> {
    let mut c = Config::default();
    let mut budget = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--quick" => c.quick = true,
            "--json" => c.json = true,
            "--list" => c.list = true,
            "--no-progress" => c.progress = false,
            "--filter" => {
                let v = value("--filter")?;
                c.filters.extend(v.split(',').filter(|s| !s.is_empty()).map(str::to_string));
            }
            "--runs" => {
                let v = value("--runs")?;
                c.runs = v.parse().map_err(|_| format!("--runs: not a number: {v}"))?;
                if c.runs == 0 {
                    return Err("--runs must be at least 1".into());
                }
            }
            "--budget-ms" => {
                let v = value("--budget-ms")?;
                let ms: f64 = v.parse().map_err(|_| format!("--budget-ms: not a number: {v}"))?;
                if !(0.1..=60_000.0).contains(&ms) {
                    return Err("--budget-ms must be between 0.1 and 60000".into());
                }
                budget = Some(Duration::from_secs_f64(ms / 1000.0));
            }
            "--out" => c.out = Some(PathBuf::from(value("--out")?)),
            "--from" => c.from = Some(PathBuf::from(value("--from")?)),
            "-h" | "--help" => return Err(String::new()),
            other => {
                if let Some(v) = other.strip_prefix("--filter=") {
                    c.filters.extend(v.split(',').filter(|s| !s.is_empty()).map(str::to_string));
                } else {
                    return Err(format!("unknown argument {other:?}"));
                }
            }
        }
    }
    if c.from.is_some() {
        let measuring = [
            (c.quick, "--quick"),
            (!c.filters.is_empty(), "--filter"),
            (budget.is_some(), "--budget-ms"),
            (c.runs != Config::default().runs, "--runs"),
            (c.list, "--list"),
        ];
        if let Some((_, name)) = measuring.iter().find(|(set, _)| *set) {
            return Err(format!("--from renders a saved run: {name} does not apply"));
        }
    }
    c.budget = budget.unwrap_or(if c.quick { Duration::from_millis(8) } else { c.budget });
    Ok(c)
}

/// The binary's entry point.
pub fn main_with_args(args: impl IntoIterator<Item = String>) -> ExitCode {
    let cfg = match parse_args(args) {
        Ok(c) => c,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ipc-bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Some(from) = &cfg.from {
        return rerender(&cfg, from);
    }
    let groups = catalog::filter(catalog::catalog(), &cfg.filters);
    if cfg.list {
        for g in &groups {
            println!("{}  ({})", g.id, g.title);
            for r in &g.rows {
                println!("  {}/{}  [{}] {}", g.id, r.id, r.kind.tag(), r.label);
            }
        }
        return ExitCode::SUCCESS;
    }
    if groups.is_empty() {
        eprintln!("ipc-bench: no row matches {:?} (see --list)", cfg.filters);
        return ExitCode::from(2);
    }
    let report = run(&cfg, &groups, &mut |g| {
        if !cfg.json {
            print!("{}", report::render_text(g));
            let _ = std::io::stdout().flush();
        }
    });
    finish(&cfg, &report, &cfg.out.clone().unwrap_or_else(default_out_dir), true)
}

/// `--from`: read a saved run, recompute what is derived from the per-run figures (so a file
/// written before a change to the ratios, spreads or goals gets them), print and write.
fn rerender(cfg: &Config, from: &Path) -> ExitCode {
    // A directory means the results.json in it (`--from target/ipc-bench`).
    let joined;
    let from = if from.is_dir() {
        joined = from.join("results.json");
        joined.as_path()
    } else {
        from
    };
    let mut report = match read_results(from) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ipc-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    report::rederive(&mut report);
    if !cfg.json {
        for g in &report.groups {
            print!("{}", report::render_text(g));
        }
    }
    let dir = cfg.out.clone().unwrap_or_else(|| match from.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    });
    // The input stays as it was; a copy goes to another directory with the rest.
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let write_json = !same(&dir.join("results.json"), from);
    finish(cfg, &report, &dir, write_json)
}

/// Read and parse a results.json.
///
/// # Errors
/// A line naming the file and what is wrong with it.
pub fn read_results(path: &Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("read results {}: {e}", path.display()))?;
    let report: Report = serde_json::from_str(&text).map_err(|e| {
        format!("read results {}: not an ipc-bench results.json: {e}", path.display())
    })?;
    if report.version != 1 {
        return Err(format!(
            "read results {}: format version {}, this ipc-bench reads 1",
            path.display(),
            report.version
        ));
    }
    Ok(report)
}

/// Print the goals (or the JSON) and write the files.
fn finish(cfg: &Config, report: &Report, out: &Path, write_json: bool) -> ExitCode {
    if cfg.json {
        match serde_json::to_string_pretty(report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("ipc-bench: json: {e}"),
        }
    } else {
        print!("{}", report::render_goals_text(&report.goals));
    }
    match write_outputs_to(report, out, write_json) {
        Ok(()) => {
            eprintln!(
                "ipc-bench: wrote {0}/report.md, {0}/report.html, {0}/chart.svg{1}",
                out.display(),
                if write_json {
                    format!(", {}/results.json", out.display())
                } else {
                    String::new()
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ipc-bench: writing {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

/// `target/ipc-bench`: next to the profile directory the binary runs from
/// (`target/release/ipc-bench` gives `target/ipc-bench`), else `./target/ipc-bench`.
pub fn default_out_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let profile = exe.parent()?;
            let profile = if profile.ends_with("deps") { profile.parent()? } else { profile };
            Some(profile.parent()?.join("ipc-bench"))
        })
        .unwrap_or_else(|| PathBuf::from("target/ipc-bench"))
}

/// Write report.md, report.html, chart.svg and results.json into `dir`.
///
/// # Errors
/// The first I/O or serialisation error.
pub fn write_outputs(report: &Report, dir: &Path) -> Result<(), String> {
    write_outputs_to(report, dir, true)
}

fn write_outputs_to(report: &Report, dir: &Path, json: bool) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"))
    };
    write("report.md", report::render_markdown(report))?;
    write("report.html", html::render(report))?;
    write("chart.svg", chart::svg(report))?;
    if json {
        write("results.json", serde_json::to_string_pretty(report).map_err(|e| e.to_string())?)?;
    }
    Ok(())
}

/// The progress line on stderr (redrawn in place on a terminal, one line per group
/// otherwise).
struct Progress {
    on: bool,
    tty: bool,
    total: usize,
    done: usize,
    start: Instant,
}

impl Progress {
    fn step(&mut self, group: &str, run: usize, runs: usize, row: &str) {
        self.done += 1;
        if !self.on || !self.tty {
            return;
        }
        let el = self.start.elapsed().as_secs();
        eprint!(
            "\r\x1b[2K[{:>4}/{}] {:>3}s  {group}  run {run}/{runs}  {row}",
            self.done, self.total, el
        );
        let _ = std::io::stderr().flush();
    }

    fn group(&mut self, idx: usize, n: usize, id: &str) {
        if self.on && !self.tty {
            eprintln!("[{}/{n}] {id} ({}s)", idx + 1, self.start.elapsed().as_secs());
        }
    }

    fn clear(&self) {
        if self.on && self.tty {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    }
}

/// Run `groups` per `cfg`; `on_group` sees each group's result as soon as it is done.
pub fn run(
    cfg: &Config,
    groups: &[GroupSpec],
    on_group: &mut dyn FnMut(&report::GroupResult),
) -> Report {
    let started = Instant::now();
    let cpus = harness::usable_cpus();
    let total = groups.iter().map(|g| g.rows.len()).sum::<usize>() * cfg.runs;
    let mut progress = Progress {
        on: cfg.progress,
        tty: std::io::stderr().is_terminal(),
        total,
        done: 0,
        start: started,
    };
    let uses_python = groups.iter().any(|g| g.rows.iter().any(|r| r.id.starts_with("mp-")));
    let python = if uses_python { peers::python::resolve() } else { None };
    let mut results = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        progress.group(gi, groups.len(), &g.id);
        let ctx = Ctx {
            placement: g.placement,
            size: g.size,
            budget: cfg.budget,
            cpus,
            quick: cfg.quick,
            gap: g.gap,
            python: python.clone(),
        };
        let mut outcomes: Vec<Vec<Outcome>> = vec![Vec::new(); g.rows.len()];
        for run in 0..cfg.runs {
            let order: Vec<usize> = if run % 2 == 0 {
                (0..g.rows.len()).collect()
            } else {
                (0..g.rows.len()).rev().collect()
            };
            for i in order {
                let (Some(row), Some(outs)) = (g.rows.get(i), outcomes.get_mut(i)) else {
                    continue;
                };
                progress.step(&g.id, run + 1, cfg.runs, &row.label);
                // A skip does not change between runs: measure it once.
                if let Some(Err(Fail::Skip(s))) = outs.first() {
                    let s = s.clone();
                    outs.push(Err(Fail::Skip(s)));
                    continue;
                }
                let label = format!("{}/{}", g.id, row.id);
                outs.push(harness::isolate(&label, &ctx, row.run));
            }
        }
        progress.clear();
        let res = report::summarize_group(g, &outcomes);
        on_group(&res);
        results.push(res);
    }
    progress.clear();
    let goals = report::goals(&results);
    let _ = Kind::Ours;
    Report {
        version: 1,
        machine: machine(cpus, python.as_deref()),
        run: RunInfo {
            quick: cfg.quick,
            runs: cfg.runs,
            budget_ms: cfg.budget.as_secs_f64() * 1000.0,
            filters: cfg.filters.clone(),
            started_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
                .saturating_sub(started.elapsed().as_secs()),
            elapsed_s: started.elapsed().as_secs_f64(),
        },
        groups: results,
        goals,
    }
}

fn machine(cpus: usize, python: Option<&Path>) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let idle: Vec<&str> = cmdline
        .split_whitespace()
        .filter(|w| w.contains("haltpoll") || w.starts_with("idle=") || w.contains("nested_pvm"))
        .collect();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let kb: f64 = m.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.0} GiB", kb / (1024.0 * 1024.0)))
        })
        .unwrap_or_default();
    let python = if let Some(py) = python {
        std::process::Command::new(py)
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    } else {
        None
    };
    Machine {
        cpu: field("model name"),
        cpus,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        virtualized: field("flags").split_whitespace().any(|f| f == "hypervisor"),
        idle: idle.join(" "),
        memory,
        python,
    }
}
