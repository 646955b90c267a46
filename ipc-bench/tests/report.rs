//! The main job must not break silently: run the real binary over every row on a tiny
//! budget (two interleaved runs) and check the report's structure, not its timings.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

    let svg = std::fs::read_to_string(dir.join("chart.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("</svg>") && svg.contains("<rect"));
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
