//! chart.svg: small multiples. One panel per family of groups (poll, block, wake, pipe,
//! throughput, lock, sem, shm, process, ...); in each panel one block per group, its rows
//! sorted best first, each a bar of the row's ratio to its group's floor in the same run (log
//! scale), the run-to-run spread as a whisker, the value printed at the bar's end and every
//! goal about the row drawn as a line where the bar would meet it.
//!
//! The family of a group is the prefix of its id before the first `-` (`pipe-8-X` is in
//! "pipe", `tput-queue-64` in "throughput"), so a group added to the catalog lands in a panel
//! with no change here: a prefix that two or more groups share is a panel of its own, a lone
//! unknown prefix goes to "other".
//!
//! The SVG is written by hand rather than through a plotting crate: every row and panel carries
//! its id (`data-row="group/row"`, `data-panel="family"`), so the report test can check that each
//! row appears exactly once, and the text sits where a reader looks for it (on the bars, beside
//! the goal lines), which a chart library's axis machinery does not place.

use std::fmt::Write as _;
use std::path::Path;

use crate::catalog::Kind;
use crate::report::{
    self, GroupResult, Report, RowResult, Spread, Status, fmt_ratio, per_run_ratios,
};
use crate::stats::median;

/// Width of chart.svg: two columns of panels, readable when shown 1400 px wide.
pub const WIDTH: f64 = 1400.0;
/// Columns of panels in chart.svg.
const COLUMNS: usize = 2;
/// Space between and around panels.
const GAP: f64 = 16.0;
/// Width of one panel.
pub const PANEL_WIDTH: f64 = (WIDTH - GAP * (COLUMNS as f64 + 1.0)) / COLUMNS as f64;

const PAD: f64 = 12.0;
const ROW_H: f64 = 15.0;
const BAR_H: f64 = 11.0;
const LABEL_FONT: f64 = 11.0;
const VALUE_FONT: f64 = 10.5;
const FONT: &str = "DejaVu Sans, Verdana, Arial, sans-serif";

const OURS: &str = "#1f77b4";
const PEER: &str = "#ff7f0e";
const FLOOR: &str = "#8c8c8c";
const MET: &str = "#2ca02c";
const MISSED: &str = "#d62728";
const INK: &str = "#222";
const MUTED: &str = "#666";
const GRID: &str = "#e4e4e4";

/// The known families in panel order, with the line that says what their groups measure.
pub const FAMILIES: &[(&str, &str)] = &[
    ("poll", "queue round trips, both sides polling"),
    ("block", "blocking round trips: the waiter may sleep"),
    ("wake", "round trips that always wake a sleeper"),
    ("pipe", "message pipe round trips"),
    ("throughput", "one way, bytes per second"),
    ("lock", "mutexes and rwlocks"),
    ("sem", "semaphores"),
    ("shm", "shared-memory segments"),
    ("process", "processes"),
    ("select", "waiting on many sources at once, and async"),
];
/// Group id prefixes that belong to a family of another name.
const ALIASES: &[(&str, &str)] =
    &[("tput", "throughput"), ("memcpy", "throughput"), ("async", "select")];
/// The panel of groups whose prefix is not a family.
pub const OTHER: &str = "other";

/// The family a group id's prefix names, if it names one by itself: a known family or one of
/// its aliases. `None` for an unknown prefix (see [`panels`]).
fn known_family(group_id: &str) -> Option<&'static str> {
    let head = prefix(group_id);
    ALIASES
        .iter()
        .find(|(a, _)| *a == head)
        .map(|(_, f)| *f)
        .or_else(|| FAMILIES.iter().find(|(f, _)| *f == head).map(|(f, _)| *f))
}

fn prefix(group_id: &str) -> &str {
    group_id.split_once('-').map_or(group_id, |(p, _)| p)
}

/// One panel: a family and its groups in run order.
#[derive(Debug)]
pub struct Panel<'a> {
    /// Family name (`poll`, `pipe`, ..., a new prefix, or `other`).
    pub family: String,
    /// Its groups.
    pub groups: Vec<&'a GroupResult>,
}

/// The panels of a report: the known families in their order, then every unknown prefix that
/// two or more groups share (in the order first met), then "other" for the rest. Families
/// with no group are left out.
pub fn panels(r: &Report) -> Vec<Panel<'_>> {
    let mut out: Vec<Panel<'_>> = FAMILIES
        .iter()
        .map(|(f, _)| Panel { family: (*f).to_string(), groups: Vec::new() })
        .collect();
    let mut other = Vec::new();
    for g in &r.groups {
        let family = match known_family(&g.id) {
            Some(f) => Some(f.to_string()),
            None => {
                let p = prefix(&g.id);
                let shared =
                    p != g.id && r.groups.iter().filter(|x| prefix(&x.id) == p).count() > 1;
                shared.then(|| p.to_string())
            }
        };
        match family {
            Some(f) => match out.iter_mut().find(|p| p.family == f) {
                Some(p) => p.groups.push(g),
                None => out.push(Panel { family: f, groups: vec![g] }),
            },
            None => other.push(g),
        }
    }
    out.push(Panel { family: OTHER.into(), groups: other });
    out.retain(|p| !p.groups.is_empty());
    out
}

fn family_line(family: &str) -> &'static str {
    FAMILIES.iter().find(|(f, _)| *f == family).map_or("", |(_, d)| *d)
}

/// `&`, `<`, `>` and quotes escaped for XML text and attribute values; characters XML does
/// not allow (control characters other than tab and newlines, U+FFFE, U+FFFF) become U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Advance width of `c` in DejaVu Sans, in em (from the font's metrics, rounded; a wide face:
/// text measured with it fits narrower ones too).
fn em(c: char) -> f64 {
    match c {
        'i' | 'j' | 'l' | 'I' | '\'' | '|' => 0.28,
        ' ' | '.' | ',' | ':' | ';' | '!' | '·' => 0.32,
        '/' | '-' | '(' | ')' | '[' | ']' | '{' | '}' | 'f' | 't' => 0.37,
        'r' => 0.41,
        '"' | '*' | '_' | '–' | 'J' => 0.5,
        's' | 'c' | 'z' => 0.53,
        'm' | 'M' | 'W' | '%' | '@' => 0.95,
        'w' => 0.82,
        '+' | '=' | '<' | '>' | '÷' | '≤' | '≥' | '✓' | '✗' | '…' => 0.84,
        'A'..='Z' => 0.72,
        _ => 0.62,
    }
}

/// Estimated width of `s` in `size` px (regular weight; bold is about 10% wider).
fn text_width(s: &str, size: f64) -> f64 {
    s.chars().map(em).sum::<f64>() * size
}

/// `s` cut to fit `px` at `size`, with an ellipsis where it was cut.
fn fit(s: &str, px: f64, size: f64) -> String {
    if text_width(s, size) <= px {
        return s.to_string();
    }
    let room = px - em('…') * size;
    let mut used = 0.0;
    let mut t: String = s
        .chars()
        .take_while(|c| {
            used += em(*c) * size;
            used <= room
        })
        .collect();
    t.push('…');
    t
}

/// What a group's bars are divided by.
struct Reference {
    /// Row id of the reference (its bar is 1x).
    row: Option<String>,
    /// "÷ floor raw socketpair, 8 B", "no floor: ÷ best peer ...".
    text: String,
}

/// A row's plotted ratio and its run-to-run spread.
type Plotted = (Option<f64>, Option<Spread>);

/// Per row (in group order): the plotted ratio and its spread, and the reference.
fn ratios(g: &GroupResult) -> (Vec<Plotted>, Reference) {
    let ok = |id: &str| g.rows.iter().find(|r| r.id == id && r.status == Status::Ok);
    if let Some(f) = g.floor.as_deref().and_then(ok) {
        let v = g.rows.iter().map(|r| (r.vs_floor, r.vs_floor_spread)).collect();
        return (v, Reference { row: Some(f.id.clone()), text: format!("÷ floor: {}", f.label) });
    }
    if let Some(p) = g.best_peer.as_deref().and_then(ok) {
        let v = g.rows.iter().map(|r| (r.vs_best_peer, r.vs_best_peer_spread)).collect();
        return (
            v,
            Reference {
                row: Some(p.id.clone()),
                text: format!("no floor: ÷ best peer, {}", p.label),
            },
        );
    }
    // No floor and no peer (memcpy): divide by the best row.
    let better = |a: f64, b: f64| if g.metric.higher_is_better() { a > b } else { a < b };
    let best =
        g.rows.iter().filter(|r| r.figure.is_some()).reduce(|b, r| match (r.figure, b.figure) {
            (Some(f), Some(bf)) if better(f, bf) => r,
            _ => b,
        });
    match best {
        Some(b) => {
            let v = g
                .rows
                .iter()
                .map(|r| {
                    let rs = per_run_ratios(&r.per_run, &b.per_run);
                    (median(&rs), Spread::of(&rs))
                })
                .collect();
            (
                v,
                Reference {
                    row: Some(b.id.clone()),
                    text: format!("no floor: ÷ best row, {}", b.label),
                },
            )
        }
        None => (
            vec![(None, None); g.rows.len()],
            Reference { row: None, text: "nothing measured".into() },
        ),
    }
}

/// A goal line on a row.
struct Mark {
    at: f64,
    met: Option<bool>,
    title: String,
}

/// A goal about a row, as the line of text under it: "P5 ✗ ≤0.95x vs interprocess".
struct Tag {
    text: String,
    met: Option<bool>,
}

struct Bar<'a> {
    key: String,
    row: &'a RowResult,
    ratio: Option<f64>,
    spread: Option<Spread>,
    value: String,
    marks: Vec<Mark>,
    tags: Vec<Tag>,
    reference: bool,
}

impl Bar<'_> {
    fn text_width(&self) -> f64 {
        text_width(&self.value, VALUE_FONT)
    }

    /// The rightmost ratio drawn for this row: bar end, whisker end or goal line (the value
    /// may have to go after a line).
    fn reach(&self) -> Option<f64> {
        let s = self.spread.filter(|s| s.runs >= 2).map(|s| s.max);
        let r = match (self.ratio, s) {
            (Some(r), Some(s)) => Some(r.max(s)),
            (r, _) => r,
        }?;
        Some(self.marks.iter().map(|m| m.at).fold(r, f64::max))
    }
}

struct Block<'a> {
    g: &'a GroupResult,
    reference: Reference,
    bars: Vec<Bar<'a>>,
}

fn block<'a>(r: &'a Report, g: &'a GroupResult) -> Block<'a> {
    let (ratios, reference) = ratios(g);
    let mut bars: Vec<Bar<'a>> = g
        .rows
        .iter()
        .zip(ratios)
        .map(|(row, (ratio, spread))| {
            let key = format!("{}/{}", g.id, row.id);
            let ratio = ratio.filter(|v| v.is_finite() && *v > 0.0);
            let value = match (row.status, ratio) {
                (Status::Ok, Some(v)) => {
                    format!("{} · {}", fmt_ratio(Some(v)), report::figure_text(g, row))
                }
                (Status::Ok, None) => report::figure_text(g, row),
                (s, _) => format!(
                    "{}: {}",
                    if s == Status::Skipped { "skipped" } else { "error" },
                    row.reason.as_deref().unwrap_or("")
                ),
            };
            let goals: Vec<&report::Goal> =
                r.goals.iter().filter(|goal| goal.row.as_deref() == Some(key.as_str())).collect();
            let tags = goals.iter().map(|goal| tag(goal, &g.id)).collect();
            let marks = goals
                .iter()
                .filter_map(|goal| {
                    let at = ratio? * goal.at_target?;
                    (at.is_finite() && at > 0.0).then(|| Mark {
                        at,
                        met: goal.met,
                        title: format!(
                            "{} {}: {} (this run {}, {})",
                            goal.id,
                            goal.what,
                            goal.target,
                            report::goal_value_text(goal),
                            report::goal_verdict(goal)
                        ),
                    })
                })
                .collect();
            let reference = reference.row.as_deref() == Some(row.id.as_str());
            Bar { key, row, ratio, spread, value, marks, tags, reference }
        })
        .collect();
    // Best first; rows with no figure last, in catalog order (the sort is stable).
    let higher = g.metric.higher_is_better();
    bars.sort_by(|a, b| match (a.ratio, b.ratio) {
        (Some(x), Some(y)) if higher => y.total_cmp(&x),
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    Block { g, reference, bars }
}

fn sign(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "✓",
        Some(false) => "✗",
        None => "?",
    }
}

/// "P5 ✗ ≤0.95x vs interprocess", "P13 ✓ ≥30x faster than mp-pipe (pipe-8-S)",
/// "P11 ✓ owner-death recovery p99 (ms) ≤100 ms".
fn tag(goal: &report::Goal, group: &str) -> Tag {
    let target = goal.target.replace("<= ", "≤").replace(">= ", "≥");
    let text = match goal.against.as_deref().and_then(|a| a.split_once('/')) {
        Some((g, row)) => {
            let word = if target.contains("faster") { "than" } else { "vs" };
            let whom = if g == group { row.to_string() } else { format!("{row} ({g})") };
            format!("{} {} {target} {word} {whom}", goal.id, sign(goal.met))
        }
        None => format!("{} {} {} {target}", goal.id, sign(goal.met), goal.what),
    };
    Tag { text, met: goal.met }
}

/// A log axis from `lo` to `hi` over `width` px starting at `x0`.
#[derive(Clone, Copy)]
struct Axis {
    lo: f64,
    hi: f64,
    x0: f64,
    width: f64,
}

impl Axis {
    fn x(&self, v: f64) -> f64 {
        self.x0 + self.frac(v) * self.width
    }

    fn frac(&self, v: f64) -> f64 {
        let span = (self.hi / self.lo).ln();
        if span > 0.0 { ((v.max(self.lo) / self.lo).ln() / span).clamp(0.0, 1.0) } else { 0.0 }
    }

    /// Tick values: finer the shorter the axis (1-1.1-1.2-..., 1-2-5, decades); labels that
    /// would overlap are dropped when drawn.
    fn ticks(&self) -> Vec<f64> {
        let decades = (self.hi / self.lo).log10();
        let mults: &[f64] = if decades <= 0.6 {
            &[1.0, 1.1, 1.2, 1.3, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
        } else if decades <= 1.2 {
            &[1.0, 1.2, 1.5, 2.0, 3.0, 5.0, 7.0]
        } else if decades <= 3.5 {
            &[1.0, 2.0, 5.0]
        } else {
            &[1.0]
        };
        let mut out = Vec::new();
        let first = self.lo.log10().floor() as i32;
        let last = self.hi.log10().ceil() as i32;
        for p in first..=last {
            for m in mults {
                let v = m * 10f64.powi(p);
                if v >= self.lo && v <= self.hi {
                    out.push(v);
                }
            }
        }
        out
    }
}

/// "0.01x", "0.2x", "1x", "1.5x", "20x".
fn tick_label(v: f64) -> String {
    let digits = if v >= 1.0 { 1 } else { (-v.log10().floor()) as usize + 1 };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    format!("{s}x")
}

/// One panel drawn at the origin: the SVG elements and the height they take.
fn panel_body(r: &Report, p: &Panel<'_>, w: f64) -> (String, f64) {
    let blocks: Vec<Block<'_>> = p.groups.iter().map(|g| block(r, g)).collect();
    let bars = || blocks.iter().flat_map(|b| b.bars.iter());

    // Columns: labels right-aligned up to `label_right`, bars from `x0`.
    let longest = bars()
        .map(|b| text_width(&b.row.label, LABEL_FONT) * if b.reference { 1.1 } else { 1.0 })
        .fold(0.0, f64::max);
    let label_right = PAD + longest.min(w * 0.42);
    let x0 = label_right + 6.0;
    let avail = w - PAD - x0;

    // Axis range over every bar, whisker end and goal line, and the floor's 1x.
    let mut values = vec![1.0];
    for b in bars() {
        values.extend(b.ratio);
        if let Some(s) = b.spread.filter(|s| s.runs >= 2) {
            values.extend([s.min, s.max]);
        }
        values.extend(b.marks.iter().map(|m| m.at));
    }
    values.retain(|v| v.is_finite() && *v > 0.0);
    // Bounded, whatever a saved results.json says: a bar beyond the range ends at its edge.
    let lo = (values.iter().copied().fold(f64::INFINITY, f64::min) / 1.3).clamp(1e-9, 1.0 / 1.3);
    let hi = (values.iter().copied().fold(0.0, f64::max) * 1.05).clamp(1.05, 1e9);
    // The widest span for which every value text still fits after its bar.
    let mut axis = Axis { lo, hi, x0, width: avail };
    let mut width = avail;
    for b in bars() {
        if let Some(reach) = b.reach() {
            let f = axis.frac(reach);
            if f > 0.0 {
                width = width.min((avail - 4.0 - b.text_width()) / f);
            }
        }
    }
    axis.width = width.max(avail * 0.35);

    let mut s = String::new();
    let mut y = PAD;
    // Title, and which way is better.
    let dirs: Vec<bool> = p.groups.iter().map(|g| g.metric.higher_is_better()).collect();
    let better = if dirs.iter().all(|h| *h) {
        "higher is better"
    } else if dirs.iter().all(|h| !*h) {
        "lower is better"
    } else {
        "time: lower is better; throughput: higher"
    };
    let _ = write!(
        s,
        r#"<text x="{PAD}" y="{:.1}" font-size="16" font-weight="bold" fill="{INK}">{}<tspan dx="8" font-size="11.5" font-weight="normal" fill="{MUTED}">{}</tspan></text>"#,
        y + 14.0,
        escape(&p.family),
        escape(family_line(&p.family)),
    );
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" font-size="11" fill="{MUTED}" text-anchor="end">{better}</text>"#,
        w - PAD,
        y + 14.0,
    );
    y += 24.0;
    let ticks = axis.ticks();
    // Tick labels that fit side by side: 1x always, then the others that clear every kept one.
    let span = |t: f64| {
        let half = text_width(&tick_label(t), 9.5) / 2.0;
        (axis.x(t) - half - 5.0, axis.x(t) + half + 5.0)
    };
    let mut labelled: Vec<f64> = ticks.iter().copied().filter(|t| (t - 1.0).abs() < 1e-9).collect();
    for t in &ticks {
        let (a, b) = span(*t);
        if labelled.iter().all(|k| {
            let (ka, kb) = span(*k);
            b < ka || a > kb
        }) {
            labelled.push(*t);
        }
    }
    let tick_row = |s: &mut String, y: f64| {
        for t in &labelled {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{y:.1}" font-size="9.5" fill="{MUTED}" text-anchor="middle">{}</text>"#,
                axis.x(*t),
                tick_label(*t),
            );
        }
    };
    tick_row(&mut s, y + 9.0);
    y += 13.0;
    let plot_top = y;
    let mut body = String::new();
    for b in &blocks {
        let head = format!("{}  {} · {}", b.g.id, report::group_heading(b.g), b.reference.text);
        let head = fit(&head, w - 2.0 * PAD, 11.0);
        let id_len = b.g.id.chars().count().min(head.chars().count());
        let (id, rest): (String, String) =
            (head.chars().take(id_len).collect(), head.chars().skip(id_len).collect());
        let _ = write!(
            body,
            r#"<g class="group" data-group="{}"><text x="{PAD}" y="{:.1}" font-size="11" fill="{INK}"><tspan font-weight="bold">{}</tspan><tspan dx="6">{}</tspan></text>"#,
            escape(&b.g.id),
            y + 12.0,
            escape(&id),
            escape(rest.trim_start()),
        );
        y += 17.0;
        for bar in &b.bars {
            y += draw_row(&mut body, bar, &axis, label_right, y, w);
        }
        body.push_str("</g>");
        y += 7.0;
    }
    let plot_bottom = y - 4.0;
    // Grid under everything: ticks light, the floor's 1x dark.
    for t in &ticks {
        let x = axis.x(*t);
        let one = (*t - 1.0).abs() < 1e-9;
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" y1="{plot_top:.1}" x2="{x:.1}" y2="{plot_bottom:.1}" stroke="{}" stroke-width="{}"/>"#,
            if one { "#999" } else { GRID },
            if one { 1.2 } else { 1.0 },
        );
    }
    s.push_str(&body);
    tick_row(&mut s, y + 6.0);
    y += 10.0 + PAD;
    (s, y)
}

/// One row at `y`: label, bar, whisker, goal lines, value and the goals under it; returns the
/// height it takes.
fn draw_row(s: &mut String, bar: &Bar<'_>, axis: &Axis, label_right: f64, y: f64, w: f64) -> f64 {
    let row = bar.row;
    let color = match row.kind {
        Kind::Ours => OURS,
        Kind::Peer => PEER,
        Kind::Floor => FLOOR,
    };
    let mut tip = format!("{} [{}]: {}", row.label, bar.key, bar.value);
    if let Some(sp) = bar.spread.filter(|sp| sp.runs >= 2) {
        let _ = write!(tip, " (runs {})", report::fmt_spread(Some(sp)));
    }
    let _ = write!(
        s,
        r#"<g class="row" data-row="{}" data-kind="{}"><title>{}</title>"#,
        escape(&bar.key),
        row.kind.tag(),
        escape(&tip),
    );
    let bold = if bar.reference { 1.1 } else { 1.0 };
    let label = fit(&row.label, (label_right - PAD) / bold, LABEL_FONT);
    let _ = write!(
        s,
        r#"<text x="{label_right:.1}" y="{:.1}" font-size="{LABEL_FONT}" fill="{INK}" text-anchor="end"{}>{}</text>"#,
        y + 11.0,
        if bar.reference { r#" font-weight="bold""# } else { "" },
        escape(&label),
    );
    let Some(ratio) = bar.ratio else {
        let text = fit(&bar.value, w - PAD - axis.x0, VALUE_FONT);
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="{VALUE_FONT}" fill="{}" font-style="italic">{}</text>"#,
            axis.x0,
            y + 11.0,
            if row.status == Status::Error { MISSED } else { MUTED },
            escape(&text),
        );
        let h = ROW_H + draw_tags(s, &bar.tags, axis.x0, w - PAD, y + ROW_H);
        s.push_str("</g>");
        return h;
    };
    let end = axis.x(ratio);
    let _ = write!(
        s,
        r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{BAR_H}" fill="{color}"/>"#,
        axis.x0,
        y + (ROW_H - BAR_H) / 2.0,
        (end - axis.x0).max(1.5),
    );
    let mut text_x = end;
    if let Some(sp) = bar.spread.filter(|sp| sp.runs >= 2) {
        let (a, b) = (axis.x(sp.min), axis.x(sp.max));
        let mid = y + ROW_H / 2.0;
        let _ = write!(
            s,
            r#"<path d="M{a:.1} {:.1}V{:.1}M{a:.1} {mid:.1}H{b:.1}M{b:.1} {:.1}V{:.1}" stroke="{INK}" stroke-width="1" fill="none"/>"#,
            mid - 3.0,
            mid + 3.0,
            mid - 3.0,
            mid + 3.0,
        );
        text_x = text_x.max(b);
    }
    let mut xs: Vec<f64> = Vec::new();
    for m in &bar.marks {
        let x = axis.x(m.at);
        xs.push(x);
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{}" stroke-width="2.5"><title>{}</title></line>"#,
            y - 1.0,
            y + ROW_H + 1.0,
            mark_color(m.met),
            escape(&m.title),
        );
    }
    // The value goes after the bar and whisker, and after any goal line it would cover.
    xs.sort_by(f64::total_cmp);
    let tw = bar.text_width();
    for x in xs {
        if x >= text_x - 2.0 && x <= text_x + 4.0 + tw {
            text_x = x + 1.0;
        }
    }
    // On a white halo, so a grid line under it does not hide it.
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" font-size="{VALUE_FONT}" fill="{INK}" stroke="white" stroke-width="3" paint-order="stroke" stroke-linejoin="round">{}"#,
        text_x + 4.0,
        y + 11.0,
        escape(&bar.value),
    );
    s.push_str("</text>");
    let h = ROW_H + draw_tags(s, &bar.tags, axis.x0, w - PAD, y + ROW_H);
    s.push_str("</g>");
    h
}

const TAG_FONT: f64 = 9.5;
const TAG_H: f64 = 12.0;

/// The goals of a row on lines under it, from `x0`, wrapped before `right`; returns the
/// height they take.
fn draw_tags(s: &mut String, tags: &[Tag], x0: f64, right: f64, y: f64) -> f64 {
    let mut lines: Vec<Vec<&Tag>> = Vec::new();
    let mut used = f64::INFINITY;
    let gap = 12.0;
    for t in tags {
        let tw = text_width(&t.text, TAG_FONT) * 1.1;
        match lines.last_mut() {
            Some(line) if used + gap + tw <= right - x0 => {
                line.push(t);
                used += gap + tw;
            }
            _ => {
                lines.push(vec![t]);
                used = tw;
            }
        }
    }
    for (i, line) in lines.iter().enumerate() {
        let _ = write!(
            s,
            r#"<text x="{x0:.1}" y="{:.1}" font-size="{TAG_FONT}" font-weight="bold" stroke="white" stroke-width="3" paint-order="stroke" stroke-linejoin="round">"#,
            y + i as f64 * TAG_H + 8.5,
        );
        for (j, t) in line.iter().enumerate() {
            let _ = write!(
                s,
                r#"<tspan{} fill="{}">{}</tspan>"#,
                if j > 0 { format!(r#" dx="{gap}""#) } else { String::new() },
                mark_color(t.met),
                escape(&t.text),
            );
        }
        s.push_str("</text>");
    }
    lines.len() as f64 * TAG_H + if lines.is_empty() { 0.0 } else { 2.0 }
}

fn mark_color(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => MET,
        Some(false) => MISSED,
        None => MUTED,
    }
}

/// The key to the colours and marks, `w` px wide, drawn at the origin; returns its height.
fn legend(s: &mut String, y: f64) -> f64 {
    let mut x = GAP;
    let base = y + 11.0;
    let swatch = |s: &mut String, x: &mut f64, color: &str, text: &str| {
        let _ = write!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="16" height="{BAR_H}" fill="{color}"/><text x="{:.1}" y="{base:.1}" font-size="12" fill="{INK}">{}</text>"#,
            *x,
            y + 1.0,
            *x + 21.0,
            escape(text),
        );
        *x += 21.0 + text_width(text, 12.0) + 18.0;
    };
    swatch(s, &mut x, OURS, "ours");
    swatch(s, &mut x, PEER, "peers");
    swatch(s, &mut x, FLOOR, "floors (bold label: the group's 1x)");
    let mid = y + 6.5;
    let _ = write!(
        s,
        r#"<path d="M{:.1} {:.1}V{:.1}M{:.1} {mid:.1}H{:.1}M{:.1} {:.1}V{:.1}" stroke="{INK}" fill="none"/><text x="{:.1}" y="{base:.1}" font-size="12" fill="{INK}">spread: min–max over runs</text>"#,
        x,
        mid - 3.0,
        mid + 3.0,
        x,
        x + 24.0,
        x + 24.0,
        mid - 3.0,
        mid + 3.0,
        x + 30.0,
    );
    x += 30.0 + text_width("spread: min–max over runs", 12.0) + 18.0;
    for (color, text) in [(MET, "goal met ✓"), (MISSED, "goal missed ✗")] {
        let _ = write!(
            s,
            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="2.5"/><text x="{:.1}" y="{base:.1}" font-size="12" fill="{INK}">{text}</text>"#,
            x + 3.0,
            y - 1.0,
            x + 3.0,
            y + 14.0,
            x + 10.0,
        );
        x += 10.0 + text_width(text, 12.0) + 18.0;
    }
    18.0
}

/// The top of chart.svg: title, run, legend. Returns its height.
fn header(s: &mut String, r: &Report) -> f64 {
    let _ = write!(
        s,
        r#"<text x="{GAP}" y="28" font-size="20" font-weight="bold" fill="{INK}">ipc-bench: each row ÷ its group's floor in the same run<tspan dx="10" font-size="13" font-weight="normal" fill="{MUTED}">(log scale; median over runs)</tspan></text>"#,
    );
    let line = format!("{} · {}", report::run_text(&r.run), report::machine_text(&r.machine));
    let _ = write!(
        s,
        r#"<text x="{GAP}" y="48" font-size="11.5" fill="{MUTED}">{}</text>"#,
        escape(&fit(&line, WIDTH - 2.0 * GAP, 11.5)),
    );
    58.0 + legend(s, 58.0) + 8.0
}

/// One panel as a standalone `<svg>` element (report.html puts each inline).
pub fn panel_svg(r: &Report, p: &Panel<'_>) -> String {
    let (body, h) = panel_body(r, p, PANEL_WIDTH);
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{PANEL_WIDTH:.0}" height="{h:.0}" viewBox="0 0 {PANEL_WIDTH:.0} {h:.0}" font-family="{FONT}"><g class="panel" data-panel="{}">{}{body}</g></svg>"#,
        escape(&p.family),
        frame(PANEL_WIDTH, h),
    )
}

fn frame(w: f64, h: f64) -> String {
    format!(
        r##"<rect x="0.5" y="0.5" width="{:.1}" height="{:.1}" rx="4" fill="#fff" stroke="#d0d0d0"/>"##,
        w - 1.0,
        h - 1.0
    )
}

/// The key alone as a standalone `<svg>` element (report.html shows it above the panels).
pub fn legend_svg() -> String {
    let mut s = String::new();
    let h = legend(&mut s, 4.0) + 8.0;
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0}" height="{h:.0}" viewBox="0 0 {WIDTH:.0} {h:.0}" font-family="{FONT}">{s}</svg>"#
    )
}

/// The whole chart: header, then the panels in two columns (each panel goes to the shorter
/// column, in order).
pub fn svg(r: &Report) -> String {
    let mut s = String::new();
    let top = header(&mut s, r);
    let mut heights = [top; COLUMNS];
    for p in panels(r) {
        let (body, h) = panel_body(r, &p, PANEL_WIDTH);
        let col = (0..COLUMNS).min_by(|a, b| heights[*a].total_cmp(&heights[*b])).unwrap_or(0);
        let x = GAP + col as f64 * (PANEL_WIDTH + GAP);
        let _ = write!(
            s,
            r#"<g class="panel" data-panel="{}" transform="translate({x:.1} {:.1})">{}{body}</g>"#,
            escape(&p.family),
            heights[col],
            frame(PANEL_WIDTH, h),
        );
        heights[col] += h + GAP;
    }
    let h = heights.iter().copied().fold(0.0, f64::max);
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0}" height="{h:.0}" viewBox="0 0 {WIDTH:.0} {h:.0}" font-family="{FONT}"><rect width="100%" height="100%" fill="#f7f7f7"/>{s}</svg>
"##
    )
}

/// Write the chart to `path`.
///
/// # Errors
/// The write's error, as text.
pub fn draw(r: &Report, path: &Path) -> Result<(), String> {
    std::fs::write(path, svg(r)).map_err(|e| format!("write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_labels() {
        let a = Axis { lo: 0.5, hi: 3.0, x0: 0.0, width: 100.0 };
        let labels: Vec<String> = a.ticks().into_iter().map(tick_label).collect();
        assert_eq!(labels, ["0.5x", "0.7x", "1x", "1.2x", "1.5x", "2x", "3x"]);
        assert!((a.x(0.5)).abs() < 1e-9 && (a.x(3.0) - 100.0).abs() < 1e-9);
        let a = Axis { lo: 0.002, hi: 200.0, x0: 0.0, width: 100.0 };
        let labels: Vec<String> = a.ticks().into_iter().map(tick_label).collect();
        assert_eq!(labels, ["0.01x", "0.1x", "1x", "10x", "100x"]);
        let labels: Vec<String> = [0.002, 0.05, 0.2, 1.0, 1.5, 20.0].map(tick_label).into();
        assert_eq!(labels, ["0.002x", "0.05x", "0.2x", "1x", "1.5x", "20x"]);
    }

    #[test]
    fn families_from_prefixes() {
        assert_eq!(known_family("pipe-8-X"), Some("pipe"));
        assert_eq!(known_family("tput-queue-64"), Some("throughput"));
        assert_eq!(known_family("memcpy"), Some("throughput"));
        assert_eq!(known_family("process-spawn"), Some("process"));
        assert_eq!(known_family("select-X"), Some("select"));
        assert_eq!(known_family("async-X"), Some("select"));
        assert_eq!(known_family("newthing-X"), None);
        // 6.2 px per letter and 8.4 px for the ellipsis at 10 px.
        assert_eq!(fit("abcdef", 40.0, 10.0), "abcdef");
        assert_eq!(fit("abcdef", 27.5, 10.0), "abc…");
        assert_eq!(escape(r#"<a & "b">"#), "&lt;a &amp; &quot;b&quot;&gt;");
        assert_eq!(escape("a\u{7}b\u{1b}\tc"), "a\u{FFFD}b\u{FFFD}\tc");
    }
}
