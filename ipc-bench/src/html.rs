//! report.html: the report as one self-contained page (styles inline, every panel an inline
//! SVG, nothing fetched): the goals first, then the panels, the tables and how to read them.
//!
//! The page is also well-formed XML, so the report test reads it with an XML parser.

use std::fmt::Write as _;

use crate::chart::{self, escape};
use crate::report::{self, GroupResult, Report};

const STYLE: &str = "
body { font-family: DejaVu Sans, Verdana, Arial, sans-serif; margin: 16px 20px; color: #222;
       background: #f7f7f7; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 22px 0 8px; }
h3 { font-size: 14px; margin: 18px 0 4px; }
p.meta, p.note { color: #555; font-size: 12.5px; margin: 2px 0 8px; max-width: 1400px; }
table { border-collapse: collapse; background: #fff; font-size: 12.5px; }
th, td { border: 1px solid #ddd; padding: 2px 7px; text-align: left; }
th { background: #eee; }
td.n { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
tr.met td.verdict { color: #2ca02c; }
tr.missed td.verdict { color: #d62728; font-weight: bold; }
tr.na td.verdict { color: #666; }
td.skip { color: #666; font-style: italic; }
.panels { columns: 684px 2; column-gap: 16px; max-width: 1400px; }
.panels svg { display: block; break-inside: avoid; margin: 0 0 16px; max-width: 100%;
              height: auto; }
pre { white-space: pre-wrap; font-size: 12.5px; max-width: 1000px; }
";

/// The whole report as one HTML page.
pub fn render(r: &Report) -> String {
    let mut out =
        String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>");
    let _ = write!(out, "<title>ipc-bench report</title><style>{STYLE}</style></head><body>");
    let _ = write!(
        out,
        "<h1>ipc-bench report</h1><p class=\"meta\">Run: {}.<br/>Machine: {}.</p>",
        escape(&report::run_text(&r.run)),
        escape(&report::machine_text(&r.machine)),
    );
    goals(&mut out, r);
    out.push_str(
        "<h2 id=\"panels\">Every row ÷ its group's floor</h2><p class=\"note\">One panel per \
         family of groups, one block per group, best first. The bar is the median over runs of \
         row ÷ the group's floor measured in the same run (log scale); the whisker is the \
         smallest and largest of those per-run ratios; a goal is a line where the bar would \
         meet it. Hover a bar for its id and figures.</p>",
    );
    out.push_str(&chart::legend_svg());
    out.push_str("<div class=\"panels\">");
    for p in chart::panels(r) {
        out.push_str(&chart::panel_svg(r, &p));
    }
    out.push_str("</div><h2 id=\"tables\">Tables</h2>");
    for g in &r.groups {
        table(&mut out, g);
    }
    let _ = writeln!(
        out,
        "<h2 id=\"method\">How to read it</h2><pre>{}</pre></body></html>",
        escape(report::METHOD)
    );
    out
}

fn goals(out: &mut String, r: &Report) {
    let _ = write!(
        out,
        "<h2 id=\"goals\">Goals: {}</h2><p class=\"note\">Median of the per-run ratios; spread \
         = the smallest and largest per-run ratio (a miss whose spread reaches the target is \
         within this machine's run-to-run noise).</p>",
        escape(&report::goals_summary(&r.goals)),
    );
    out.push_str(
        "<table class=\"goals\"><tr><th>goal</th><th>what</th><th>target</th><th>median</th>\
         <th>spread</th><th>verdict</th><th>how</th></tr>",
    );
    for g in &r.goals {
        let class = match g.met {
            Some(true) => "met",
            Some(false) => "missed",
            None => "na",
        };
        let _ = write!(
            out,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"verdict\">{}</td>\
             <td>{}</td></tr>",
            escape(&g.id),
            escape(&g.what),
            escape(&g.target),
            escape(&report::goal_value_text(g)),
            escape(&report::goal_spread_text(g)),
            escape(&report::goal_verdict(g)),
            escape(&g.note),
        );
    }
    out.push_str("</table>");
}

fn table(out: &mut String, g: &GroupResult) {
    let (head, lines) = report::table(g);
    let _ = write!(
        out,
        "<h3 id=\"g-{}\">{} <code>{}</code></h3><p class=\"note\">{}</p><table><tr>",
        escape(&g.id),
        escape(&report::group_heading(g)),
        escape(&g.id),
        escape(&report::floor_text(g)),
    );
    for h in &head {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>");
    for l in &lines {
        out.push_str("<tr>");
        for (i, c) in l.iter().enumerate() {
            if l.len() < head.len() && i + 1 == l.len() {
                let _ = write!(
                    out,
                    "<td class=\"skip\" colspan=\"{}\">{}</td>",
                    head.len() - i,
                    escape(c)
                );
            } else {
                let class = if i >= 2 { " class=\"n\"" } else { "" };
                let _ = write!(out, "<td{class}>{}</td>", escape(c));
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}
