//! The report a person reads: chart.svg (one panel per family, every row exactly once, sorted,
//! value on each bar, goal lines), report.html (goals first, then the panels) and the spread
//! columns, checked on a synthetic report (no benchmark runs); `--from` re-rendering a saved
//! results.json; and the main job end to end: the real binary over every row on a tiny budget
//! (two interleaved runs), checking the report's structure, not its timings.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipc_bench::catalog::{Kind, Metric};
use ipc_bench::harness::Placement;
use ipc_bench::report::{
    self, GroupResult, Machine, Report, RowResult, RunInfo, Status, fill_ratios,
};
use ipc_bench::stats::Measurement;
use ipc_bench::{chart, html};
use serde_json::Value;

fn out_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ipc-bench-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// One bench at a time: the machine has two cores and each bench uses both.
static SERIAL: Mutex<()> = Mutex::new(());

fn bench(args: &[&str]) -> (std::process::Output, Duration) {
    let _one = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let t = Instant::now();
    let out =
        Command::new(env!("CARGO_BIN_EXE_ipc-bench")).args(args).output().expect("run ipc-bench");
    (out, t.elapsed())
}

fn list_ids() -> Vec<(String, String)> {
    let (out, _) = bench(&["--list"]);
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("  "))
        .map(|l| {
            let id = l.split_whitespace().next().unwrap();
            let (g, r) = id.split_once('/').unwrap();
            (g.to_string(), r.to_string())
        })
        .collect()
}

#[test]
fn every_row_reported_with_files() {
    let dir = out_dir("all");
    let (out, took) = bench(&[
        "--quick",
        "--runs",
        "2",
        "--budget-ms",
        "1",
        "--no-progress",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("ipc-bench took {took:?}\n{stderr}");
    assert!(out.status.success(), "ipc-bench failed:\n{stdout}\n{stderr}");

    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["run"]["runs"], 2);
    assert!(json["machine"]["cpus"].as_u64().unwrap() >= 1);
    let groups = json["groups"].as_array().unwrap();
    let ids = list_ids();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.starts_with("# ipc-bench report"));
    assert!(md.contains("## Goals"));

    let mut seen = 0;
    let mut peer_errors = Vec::new();
    for (gid, rid) in &ids {
        let g = groups
            .iter()
            .find(|g| g["id"] == gid.as_str())
            .unwrap_or_else(|| panic!("group {gid} missing"));
        let row = g["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == rid.as_str())
            .unwrap_or_else(|| panic!("row {gid}/{rid} missing"));
        seen += 1;
        let status = row["status"].as_str().unwrap();
        assert!(["ok", "skipped", "error"].contains(&status), "{gid}/{rid}: {status}");
        assert_eq!(row["per_run"].as_array().unwrap().len(), 2, "{gid}/{rid}: one entry per run");
        let label = row["label"].as_str().unwrap();
        // Every row appears on the terminal and in report.md, with a figure or its reason.
        assert!(stdout.contains(label), "{gid}/{rid} not on the terminal");
        assert!(md.contains(&label.replace('|', "\\|")), "{gid}/{rid} not in report.md");
        match (row["kind"].as_str().unwrap(), status) {
            // Floors and our own crates must measure: they are this project's code.
            ("Floor" | "Ours", s) => assert_eq!(s, "ok", "{gid}/{rid}: {}", row["reason"]),
            ("Peer", "error") => peer_errors.push(format!("{gid}/{rid}: {}", row["reason"])),
            _ => {}
        }
        if status == "ok" {
            let f = row["figure"].as_f64().unwrap();
            assert!(f.is_finite() && f > 0.0, "{gid}/{rid}: figure {f}");
            let m = &row["median"];
            assert!(m["p50_ns"].as_f64().unwrap() <= m["max_ns"].as_f64().unwrap() * 1.0001);
        } else {
            assert!(!row["reason"].as_str().unwrap_or("").is_empty(), "{gid}/{rid}: no reason");
            assert!(stdout.contains(&format!("{status}: ")), "{gid}/{rid}: reason not printed");
        }
    }
    assert!(seen > 100, "only {seen} rows");
    if !peer_errors.is_empty() {
        eprintln!("peer rows that failed here (not a test failure):\n{}", peer_errors.join("\n"));
    }
    // Ratios: every floor row that measured is 1.00x its own group's floor.
    for g in groups {
        if let Some(floor) = g["floor"].as_str() {
            let f = g["rows"].as_array().unwrap().iter().find(|r| r["id"] == floor).unwrap();
            if f["status"] == "ok" {
                assert!((f["vs_floor"].as_f64().unwrap() - 1.0).abs() < 1e-9, "{}", g["id"]);
            }
        }
    }
    let goals = json["goals"].as_array().unwrap();
    assert!(goals.iter().any(|g| g["id"] == "P1") && goals.iter().any(|g| g["id"] == "P13"));
    assert!(stdout.contains("== Goals"));

    // The chart and the HTML report of a real run: every row exactly once, in its panel.
    let report: Report =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let svg = std::fs::read_to_string(dir.join("chart.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("chart.svg is well-formed");
    check_every_row_once(&report, doc.root_element(), "chart.svg");
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let opts = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
    let doc = roxmltree::Document::parse_with_options(&page, opts).expect("report.html");
    check_every_row_once(&report, doc.root_element(), "report.html");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn filter_and_json() {
    let dir = out_dir("json");
    let (out, _) = bench(&[
        "--filter",
        "poll-8/spin1",
        "--json",
        "--runs",
        "1",
        "--budget-ms",
        "1",
        "--no-progress",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).expect("stdout is the JSON report");
    let groups = json["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    let rows: Vec<&str> =
        groups[0]["rows"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(rows, ["spin2", "spin1"], "the group's floor is kept with the filtered row");
    assert!(dir.join("results.json").exists());
    std::fs::remove_dir_all(&dir).unwrap();

    let (bad, _) = bench(&["--filter", "no-such-row"]);
    assert_eq!(bad.status.code(), Some(2));
    let (bad, _) = bench(&["--runs", "zero"]);
    assert_eq!(bad.status.code(), Some(2));
}

// ---------------------------------------------------------------------------------------
// The synthetic report: every kind of group the chart must place and every kind of row.

fn measurement(p50_ns: f64) -> Measurement {
    Measurement {
        mean_ns: p50_ns,
        p50_ns,
        p90_ns: p50_ns * 1.1,
        p99_ns: p50_ns * 1.5,
        p999_ns: p50_ns * 2.0,
        max_ns: p50_ns * 3.0,
        ops: 1000,
        samples: 1000,
        batch: 1,
        bytes_per_op: 0,
    }
}

/// A measured row: its figure in each of three runs.
fn ok(id: &str, label: &str, kind: Kind, runs: [f64; 3]) -> RowResult {
    let mut sorted = runs;
    sorted.sort_by(f64::total_cmp);
    RowResult {
        id: id.into(),
        label: label.into(),
        kind,
        status: Status::Ok,
        reason: None,
        figure: Some(sorted[1]),
        per_run: runs.iter().map(|v| Some(*v)).collect(),
        median: Some(measurement(sorted[1])),
        vs_floor: None,
        vs_best_peer: None,
        vs_floor_spread: None,
        vs_best_peer_spread: None,
        per_run_p99: runs.iter().map(|v| Some(v * 1.5)).collect(),
        errors: Vec::new(),
    }
}

fn not_measured(id: &str, label: &str, kind: Kind, status: Status, reason: &str) -> RowResult {
    RowResult {
        status,
        reason: Some(reason.into()),
        figure: None,
        per_run: vec![None; 3],
        median: None,
        per_run_p99: vec![None; 3],
        ..ok(id, label, kind, [1.0; 3])
    }
}

fn group(id: &str, metric: Metric, floor: Option<&str>, rows: Vec<RowResult>) -> GroupResult {
    let mut g = GroupResult {
        id: id.into(),
        title: format!("title of {id}"),
        metric,
        placement: Placement::Cross,
        size: 8,
        floor: floor.map(str::to_string),
        best_peer: None,
        note: "how to read it".into(),
        rows,
    };
    fill_ratios(&mut g);
    g
}

/// A time group: a floor, ours, a peer, a skipped peer and a failed peer.
fn time_group(id: &str, metric: Metric, floor: f64, ours: [f64; 3], peer: f64) -> GroupResult {
    group(
        id,
        metric,
        Some("floor"),
        vec![
            ok("floor", &format!("{id} floor"), Kind::Floor, [floor; 3]),
            ok("ours", &format!("{id} ours"), Kind::Ours, ours),
            ok("peer", &format!("{id} peer"), Kind::Peer, [peer, peer * 1.1, peer * 0.9]),
            not_measured("gone", &format!("{id} gone"), Kind::Peer, Status::Skipped, "no python3"),
            not_measured("bad", &format!("{id} bad"), Kind::Peer, Status::Error, "peer hung"),
        ],
    )
}

fn synthetic() -> Report {
    use Kind::{Floor, Ours, Peer};
    let mut groups = vec![
        // The rows the P1 goals name: spin2 is the floor, queue-spsc ours, iceoryx2 a peer.
        group(
            "poll-8",
            Metric::Rtt,
            Some("spin2"),
            vec![
                ok("spin2", "spin ping-pong, 2 lines", Floor, [100.0, 100.0, 100.0]),
                ok("spin1", "spin ping-pong, 1 line", Floor, [70.0, 72.0, 71.0]),
                // Per-run ratios 1.20, 1.30, 1.15: median 1.20, spread 1.15-1.30.
                ok(
                    "queue-spsc",
                    "ipc-queue SPSC <polling> & \"quoted\"",
                    Ours,
                    [120.0, 130.0, 115.0],
                ),
                ok("iceoryx2", "iceoryx2 pub/sub", Peer, [900.0, 950.0, 1000.0]),
                not_measured(
                    "crossbeam-arrayqueue",
                    "crossbeam",
                    Peer,
                    Status::Skipped,
                    "built without it",
                ),
            ],
        ),
        time_group("poll-64", Metric::Rtt, 100.0, [130.0, 128.0, 131.0], 300.0),
        time_group("block-X", Metric::Rtt, 80e3, [300.0, 280.0, 320.0], 90e3),
        time_group("block-S", Metric::Rtt, 7e3, [4e3, 4.1e3, 3.9e3], 6e3),
        time_group("wake-X", Metric::Rtt, 100e3, [50e3, 52e3, 55e3], 98e3),
        time_group("pipe-8-X", Metric::Rtt, 70e3, [72e3, 71e3, 74e3], 75e3),
        group(
            "tput-queue-64",
            Metric::Throughput,
            Some("ring"),
            vec![
                ok("ring", "reference ring", Floor, [3e9, 3e9, 3e9]),
                ok("queue-spsc", "ipc-queue SPSC, 64 B", Ours, [2.5e9, 2.8e9, 2.9e9]),
                ok("crossbeam", "crossbeam (threads)", Peer, [1e9, 1.2e9, 0.9e9]),
            ],
        ),
        // No floor, no peer: divided by its best row.
        group(
            "memcpy",
            Metric::Throughput,
            None,
            vec![
                ok("4k", "memcpy 4 KiB", Floor, [3e9, 3.1e9, 2.9e9]),
                ok("1m", "memcpy 1 MiB", Floor, [30e9, 31e9, 29e9]),
            ],
        ),
        time_group("lock-uncontended", Metric::Op, 3.0, [6.0, 6.1, 5.9], 6.2),
        // No floor: divided by the best peer.
        group(
            "lock-recovery",
            Metric::Trial,
            None,
            vec![
                ok("mutex", "ipc-lock Mutex, OwnerDied", Ours, [1.2e6, 1.3e6, 1.25e6]),
                ok("pthread-robust", "glibc robust", Peer, [2e5, 2.1e5, 2.2e5]),
            ],
        ),
        time_group("sem-uncontended", Metric::Op, 5.0, [7.0, 7.5, 7.2], 14.0),
        time_group("shm-create", Metric::Trial, 16e3, [20e3, 21e3, 19e3], 80e3),
        // Groups others add later: a known family, a new shared prefix, lone prefixes.
        time_group("process-spawn", Metric::Trial, 500e3, [600e3, 610e3, 590e3], 2e6),
        time_group("newfam-X", Metric::Rtt, 70e3, [71e3, 72e3, 70e3], 80e3),
        time_group("newfam-S", Metric::Rtt, 7e3, [7.1e3, 7.2e3, 7e3], 8e3),
        time_group("lone-tokio", Metric::Rtt, 70e3, [90e3, 91e3, 89e3], 95e3),
        time_group("zzz", Metric::Op, 1.0, [2.0, 2.1, 1.9], 3.0),
    ];
    // A group whose every row failed still gets a block.
    groups.push(group(
        "shm-open",
        Metric::Trial,
        Some("raw"),
        vec![not_measured("raw", "raw shm_open", Floor, Status::Error, "EMFILE")],
    ));
    let goals = report::goals(&groups);
    Report {
        version: 1,
        machine: Machine { cpu: "test cpu".into(), cpus: 2, ..Machine::default() },
        run: RunInfo {
            quick: false,
            runs: 3,
            budget_ms: 250.0,
            filters: Vec::new(),
            started_unix: 0,
            elapsed_s: 1.0,
        },
        groups,
        goals,
    }
}

const PANELS: [&str; 11] = [
    "poll",
    "block",
    "wake",
    "pipe",
    "throughput",
    "lock",
    "sem",
    "shm",
    "process",
    "newfam",
    "other",
];

fn family_of(group: &str) -> &'static str {
    match group {
        g if g.starts_with("poll-") => "poll",
        g if g.starts_with("block-") => "block",
        g if g.starts_with("wake-") => "wake",
        g if g.starts_with("pipe-") => "pipe",
        g if g.starts_with("tput-") || g == "memcpy" => "throughput",
        g if g.starts_with("lock-") => "lock",
        g if g.starts_with("sem-") => "sem",
        g if g.starts_with("shm-") => "shm",
        g if g.starts_with("process-") => "process",
        g if g.starts_with("select-") || g.starts_with("async-") => "select",
        g if g.starts_with("newfam-") => "newfam",
        _ => "other",
    }
}

fn attr<'a>(n: roxmltree::Node<'a, '_>, name: &str) -> Option<&'a str> {
    n.attribute(name)
}

/// The text of a node and its descendants.
fn text_of(n: roxmltree::Node<'_, '_>) -> String {
    n.descendants().filter(|d| d.is_text()).filter_map(|d| d.text()).collect()
}

/// Where a row was drawn: (panel, group block, its element).
type Placed<'a, 'i> = (String, String, roxmltree::Node<'a, 'i>);

/// The panels under `root` in order, and every `data-row` element: row key -> where.
fn rows_in<'a, 'i>(
    root: roxmltree::Node<'a, 'i>,
) -> (Vec<String>, BTreeMap<String, Vec<Placed<'a, 'i>>>) {
    let mut panels = Vec::new();
    let mut rows: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for p in root.descendants().filter(|n| attr(*n, "data-panel").is_some()) {
        let panel = attr(p, "data-panel").unwrap().to_string();
        panels.push(panel.clone());
        for g in p.descendants().filter(|n| attr(*n, "data-group").is_some()) {
            let group = attr(g, "data-group").unwrap().to_string();
            for r in g.descendants().filter(|n| attr(*n, "data-row").is_some()) {
                let key = attr(r, "data-row").unwrap().to_string();
                rows.entry(key).or_default().push((panel.clone(), group.clone(), r));
            }
        }
    }
    (panels, rows)
}

/// Every row of the report is in exactly one block of the panel of its family; nothing else.
fn check_every_row_once(r: &Report, root: roxmltree::Node<'_, '_>, what: &str) {
    let (_, rows) = rows_in(root);
    let all = root.descendants().filter(|n| attr(*n, "data-row").is_some()).count();
    let expected: usize = r.groups.iter().map(|g| g.rows.len()).sum();
    assert_eq!(all, expected, "{what}: {all} row elements for {expected} rows");
    for g in &r.groups {
        for row in &g.rows {
            let key = format!("{}/{}", g.id, row.id);
            let found = rows.get(&key).map(Vec::as_slice).unwrap_or_default();
            assert_eq!(found.len(), 1, "{what}: {key} appears {} times", found.len());
            let (panel, group, _) = &found[0];
            assert_eq!(panel, family_of(&g.id), "{what}: {key} in the wrong panel");
            assert_eq!(group, &g.id, "{what}: {key} in the wrong block");
        }
    }
}

#[test]
fn chart_has_a_panel_per_family_and_every_row_once() {
    let r = synthetic();
    let svg = chart::svg(&r);
    let doc = roxmltree::Document::parse(&svg).expect("chart.svg is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(attr(root, "width"), Some("1400"), "drawn for 1400 px");
    let (panels, _) = rows_in(root);
    assert_eq!(
        panels, PANELS,
        "one panel per family, known ones first, then new prefixes, then other"
    );
    check_every_row_once(&r, root, "chart.svg");

    // The chart's own family rule agrees with the test's.
    let by_lib: Vec<(String, Vec<String>)> = chart::panels(&r)
        .iter()
        .map(|p| (p.family.clone(), p.groups.iter().map(|g| g.id.clone()).collect()))
        .collect();
    for (family, groups) in &by_lib {
        for g in groups {
            assert_eq!(family_of(g), family, "{g}");
        }
    }
    assert!(by_lib.iter().any(|(f, g)| f == "other" && g.contains(&"lone-tokio".to_string())));
}

#[test]
fn chart_blocks_are_sorted_with_values_spreads_and_goal_lines() {
    let r = synthetic();
    let svg = chart::svg(&r);
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let (_, rows) = rows_in(doc.root_element());
    for g in &r.groups {
        // Rows in drawing order: best first (lowest ratio for times, highest for throughput),
        // rows without a figure last.
        let mut drawn: Vec<(usize, &RowResult)> = g
            .rows
            .iter()
            .map(|row| {
                let (_, _, n) = &rows[&format!("{}/{}", g.id, row.id)][0];
                let pos = doc.descendants().position(|d| d == *n).unwrap();
                (pos, row)
            })
            .collect();
        drawn.sort_by_key(|(pos, _)| *pos);
        let plotted: Vec<f64> = drawn
            .iter()
            .map(|(_, row)| row.vs_floor.or(row.vs_best_peer).unwrap_or(f64::NAN))
            .collect();
        let measured: Vec<f64> = plotted.iter().copied().filter(|v| v.is_finite()).collect();
        let mut sorted = measured.clone();
        if g.metric.higher_is_better() {
            sorted.sort_by(|a, b| b.total_cmp(a));
        } else {
            sorted.sort_by(f64::total_cmp);
        }
        if g.floor.is_some() || g.best_peer.is_some() {
            assert_eq!(measured, sorted, "{}: not sorted best first", g.id);
        }
        let first_unmeasured = plotted.iter().position(|v| !v.is_finite()).unwrap_or(plotted.len());
        assert!(
            plotted[first_unmeasured..].iter().all(|v| !v.is_finite()),
            "{}: a row with no figure drawn before one with a figure",
            g.id
        );
        // Each bar has its value printed; each row that did not measure says why.
        for (_, row) in &drawn {
            let (_, _, n) = &rows[&format!("{}/{}", g.id, row.id)][0];
            let text = text_of(*n);
            match row.status {
                Status::Ok => {
                    assert!(
                        n.descendants().any(|d| d.has_tag_name("rect")),
                        "{}/{}: no bar",
                        g.id,
                        row.id
                    );
                    let value = report::figure_text(g, row);
                    assert!(
                        text.contains(&value),
                        "{}/{}: value {value:?} not in {text:?}",
                        g.id,
                        row.id
                    );
                }
                Status::Skipped => {
                    assert!(text.contains("skipped: "), "{}/{}: {text:?}", g.id, row.id)
                }
                Status::Error => assert!(text.contains("error: "), "{}/{}: {text:?}", g.id, row.id),
            }
        }
    }
    // poll-8 ours: 1.20x in the middle of its runs' 1.15-1.30x, drawn as a whisker; the P1 goal
    // (<= 1.25x the spin floor) is a line labelled under the bar.
    let (_, _, spsc) = &rows["poll-8/queue-spsc"][0];
    let text = text_of(*spsc);
    assert!(text.contains("1.20x · 120 ns"), "{text:?}");
    assert!(spsc.descendants().any(|d| d.has_tag_name("path")), "no whisker");
    assert!(text.contains("P1 ✓ ≤1.25x vs spin2"), "{text:?}");
    assert!(text.contains("P1 ✓ ≤0.30x vs iceoryx2"), "{text:?}");
    let lines: Vec<_> = spsc.descendants().filter(|d| d.has_tag_name("line")).collect();
    assert_eq!(lines.len(), 2, "one line per P1 goal on this row");
    // The line of "<= 1.25x spin2" sits where the bar's end would be at 1.25x: 1.25/1.20 of
    // the way along the log axis from the bar's end, i.e. to the right of it.
    let bar = spsc.descendants().find(|d| d.has_tag_name("rect")).unwrap();
    let end: f64 = attr(bar, "x").unwrap().parse::<f64>().unwrap()
        + attr(bar, "width").unwrap().parse::<f64>().unwrap();
    let xs: Vec<f64> = lines.iter().map(|l| attr(*l, "x1").unwrap().parse().unwrap()).collect();
    assert!(xs.iter().all(|x| *x > end), "met goals lie right of the bar end: {xs:?} vs {end}");
}

#[test]
fn html_report_opens_with_the_goals_then_the_panels() {
    let r = synthetic();
    let page = html::render(&r);
    let doc = roxmltree::Document::parse_with_options(
        &page,
        roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() },
    )
    .expect("report.html is well-formed");
    // Self-contained: nothing fetched.
    for n in doc.descendants() {
        for a in ["src", "href"] {
            assert!(attr(n, a).is_none(), "<{}> has {a}", n.tag_name().name());
        }
    }
    let order: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("h2") || n.has_tag_name("svg") || n.has_tag_name("table"))
        .map(|n| match n.tag_name().name() {
            "h2" => format!("h2:{}", attr(n, "id").unwrap_or("")),
            "table" => format!("table:{}", attr(n, "class").unwrap_or("")),
            _ => "svg".into(),
        })
        .collect();
    assert_eq!(order[..3], ["h2:goals", "table:goals", "h2:panels"], "{order:?}");
    let first_svg = order.iter().position(|o| o == "svg").unwrap();
    assert!(first_svg > 2 && order[first_svg..].iter().any(|o| o == "h2:tables"));
    // Each goal is a row of the goals table with its median, spread and verdict.
    let goals = doc.descendants().find(|n| attr(*n, "class") == Some("goals")).unwrap();
    let trs: Vec<_> = goals.children().filter(|n| n.has_tag_name("tr")).skip(1).collect();
    assert_eq!(trs.len(), r.goals.len());
    let p1 = text_of(trs[0]);
    assert!(
        p1.contains("1.20x") && p1.contains("1.15–1.30x") && p1.contains("met (2/3 runs met)"),
        "{p1:?}"
    );
    // The panels, inline: every row exactly once, in its family's panel.
    let panels = doc.descendants().find(|n| attr(*n, "class") == Some("panels")).unwrap();
    let (names, _) = rows_in(panels);
    assert_eq!(names, PANELS);
    check_every_row_once(&r, panels, "report.html");
}

#[test]
fn tables_show_the_spread_beside_the_median() {
    let r = synthetic();
    let poll = &r.groups[0];
    let spsc = &poll.rows[2];
    let s = spsc.vs_floor_spread.unwrap();
    assert!((spsc.vs_floor.unwrap() - 1.2).abs() < 1e-9);
    assert!((s.min - 1.15).abs() < 1e-9 && (s.max - 1.3).abs() < 1e-9 && s.runs == 3);
    let md = report::render_md(poll);
    let line = md.lines().find(|l| l.contains("ipc-queue SPSC")).unwrap();
    assert!(line.contains("| 1.20x | 1.15–1.30x |"), "{line}");
    assert!(md.contains("| vs floor | spread |"));
    let text = report::render_text(poll);
    assert!(
        text.lines().any(|l| l.contains("ipc-queue SPSC") && l.contains("1.20x  1.15–1.30x")),
        "{text}"
    );
    // The report opens with the goals, with their spread.
    let full = report::render_markdown(&r);
    let goals_at = full.find("## Goals").unwrap();
    assert!(
        goals_at < full.find("chart.svg").unwrap() && goals_at < full.find("## Tables").unwrap()
    );
    assert!(full.contains(
        "| P1 | SPSC polling RTT 8 B vs 2-line spin floor | <= 1.25x | 1.20x | 1.15–1.30x |"
    ));
    let goals = report::render_goals_text(&r.goals);
    assert!(goals.contains("spread") && goals.contains("1.15–1.30x"), "{goals}");
    // The p99 goal's spread is over the runs' p99s, in ms.
    let p11 = r.goals.iter().find(|g| g.id == "P11").unwrap();
    assert_eq!(report::goal_spread_text(p11), "1.80–1.95 ms");
}

/// Scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        Scratch(out_dir(tag))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn chart_renders_to_png_at_1400_px() {
    let dir = Scratch::new("png");
    std::fs::create_dir_all(&dir.0).unwrap();
    chart::draw(&synthetic(), &dir.0.join("chart.svg")).unwrap();
    let png = dir.0.join("chart.png");
    let out = Command::new("rsvg-convert")
        .args(["-w", "1400", "-o"])
        .arg(&png)
        .arg(dir.0.join("chart.svg"))
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: rsvg-convert not installed (.ci/deps/rsvg.sh installs it)");
            return;
        }
        Err(e) => panic!("rsvg-convert: {e}"),
    };
    assert!(out.status.success(), "rsvg-convert: {}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!(w, 1400);
    assert!(h > 500, "height {h}");
}

fn write_results(r: &Report, path: &Path, old_format: bool) {
    let mut v = serde_json::to_value(r).unwrap();
    if old_format {
        // As written before the spreads existed.
        for g in v["groups"].as_array_mut().unwrap() {
            for row in g["rows"].as_array_mut().unwrap() {
                let row = row.as_object_mut().unwrap();
                for k in ["vs_floor_spread", "vs_best_peer_spread", "per_run_p99"] {
                    row.remove(k);
                }
            }
        }
        for goal in v["goals"].as_array_mut().unwrap() {
            let goal = goal.as_object_mut().unwrap();
            for k in ["spread", "runs_met", "row", "at_target", "against"] {
                goal.remove(k);
            }
        }
    }
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn from_rerenders_a_saved_run_without_measuring() {
    let dir = Scratch::new("from");
    let saved = dir.0.join("saved");
    let out = dir.0.join("out");
    std::fs::create_dir_all(&saved).unwrap();
    let results = saved.join("results.json");
    write_results(&synthetic(), &results, true);
    let before = std::fs::read(&results).unwrap();

    // Into another directory: every file, the JSON with the recomputed spreads.
    let (o, took) = bench(&["--from", results.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(took < Duration::from_secs(30), "--from measured something? {took:?}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("== Goals") && stdout.contains("1.15–1.30x"), "{stdout}");
    for f in ["report.md", "report.html", "chart.svg", "results.json"] {
        assert!(out.join(f).exists(), "{f} not written");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| 1.20x | 1.15–1.30x |"), "spreads recomputed from the per-run figures");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert!(json["groups"][0]["rows"][2]["vs_floor_spread"]["max"].as_f64().unwrap() > 1.29);

    // Given its directory, into that directory (the default): the input is left as it was.
    let (o, _) = bench(&["--from", saved.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(saved.join("chart.svg").exists() && saved.join("report.html").exists());
    assert_eq!(std::fs::read(&results).unwrap(), before, "--from rewrote its input");

    // Bad input: a typed one-line error, no panic.
    let (o, _) = bench(&["--from", dir.0.join("missing.json").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("read results"), "{o:?}");
    std::fs::write(saved.join("bad.json"), "{\"version\": 1}").unwrap();
    let (o, _) = bench(&["--from", saved.join("bad.json").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an ipc-bench results.json"));
    // Measuring options make no sense with --from.
    let (o, _) = bench(&["--from", results.to_str().unwrap(), "--quick"]);
    assert_eq!(o.status.code(), Some(2));
}

/// A results.json is input like any other: absurd figures and control characters in labels
/// must still give a well-formed chart and page, promptly.
#[test]
fn chart_survives_hostile_results() {
    let mut r = synthetic();
    let g = &mut r.groups[0];
    // Ratios up to f64::MAX and down to the smallest positive value, zero and negative ones.
    g.rows[0].per_run = vec![Some(1.0), Some(100.0), Some(100.0)];
    g.rows[1].per_run = vec![Some(f64::MAX); 3];
    g.rows[1].figure = Some(f64::MAX);
    g.rows[2].per_run = vec![Some(-5.0), Some(0.0), Some(f64::MIN_POSITIVE)];
    g.rows[3].label = "bell \u{7} nul \u{0} esc \u{1b}[31m <b>&amp;".into();
    fill_ratios(g);
    r.goals = report::goals(&r.groups);
    let t = Instant::now();
    let svg = chart::svg(&r);
    let page = html::render(&r);
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    let doc = roxmltree::Document::parse(&svg).expect("chart.svg stays well-formed");
    check_every_row_once(&r, doc.root_element(), "chart.svg");
    let opts = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
    roxmltree::Document::parse_with_options(&page, opts).expect("report.html stays well-formed");
}
