//! The auditor's report: one self-contained HTML page (no network, no scripts) rendered
//! from a verified [`AuditReport`]. Every value from the log is HTML-escaped: records are
//! written by enclaves but principals and job ids come from providers.

use crate::{AuditReport, JobReport};
use std::collections::BTreeMap;
use std::fmt::Write;

/// HTML-escape text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian, by
/// [`protocol::date::Date`]); a time past year 9999 prints as seconds.
pub fn utc(secs: u64) -> String {
    let rem = secs % 86_400;
    match i64::try_from(secs / 86_400).ok().and_then(protocol::date::Date::from_days_since_epoch) {
        Some(d) => format!("{d} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60),
        None => format!("{secs} s UTC"),
    }
}

/// The first 16 characters and an ellipsis (cut at a character boundary: grant ids are
/// the owner's text, not always hex).
fn short(s: &str) -> String {
    let cut = s.char_indices().nth(16).map_or(s.len(), |(i, _)| i);
    format!("{}…", &s[..cut])
}

fn spent(j: &JobReport) -> bool {
    j.event == "job_released" || j.event == "job_failed"
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#1b1b1b;max-width:1100px}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}table{border-collapse:collapse;width:100%;margin:.5em 0}\
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}th{background:#f2f2f2}\
code{font-size:.9em}.ok{color:#0a6b2b;font-weight:600}.warn{background:#fff4d6;padding:.5em 1em;border-left:4px solid #d9a400}\
.sim{background:#ffe1e1;padding:.5em 1em;border-left:4px solid #c00}";

/// Render the whole page.
pub fn render(r: &AuditReport, generated_at: u64) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>cleanroom audit report</title><style>{STYLE}</style></head><body>\n"
    );
    let _ = write!(h, "<h1>cleanroom audit report</h1>\n<p class=\"ok\" id=\"verdict\">Log verified: {} records, every signer attested, every checkpoint given matches.</p>\n", r.records);
    let _ = writeln!(
        h,
        "<p>Log <code>{}</code>, tree root <code>{}</code>. Generated {}.</p>",
        esc(r.origin.as_deref().unwrap_or("(no checkpoint given)")),
        esc(&r.root),
        utc(generated_at)
    );
    if r.simulated {
        h.push_str("<p class=\"sim\">Attestation is SIMULATED: development evidence, not hardware-backed. Nothing here is proof about real hardware.</p>\n");
    }
    h.push_str("<h2>Findings</h2>\n");
    if r.findings.is_empty() {
        h.push_str("<p id=\"findings\">None.</p>\n");
    } else {
        h.push_str("<ul id=\"findings\">");
        for f in &r.findings {
            let _ = write!(h, "<li class=\"warn\">{}</li>", esc(f));
        }
        h.push_str("</ul>\n");
    }

    h.push_str("<h2>Jobs and budget</h2>\n");
    let mut groups: BTreeMap<(String, String), Vec<&JobReport>> = BTreeMap::new();
    for j in &r.jobs {
        groups.entry((j.dataset.clone(), j.collaborator.clone())).or_default().push(j);
    }
    h.push_str(&budget_chart(&groups));
    h.push_str("<table id=\"jobs\"><thead><tr><th>line</th><th>time</th><th>dataset</th><th>collaborator</th><th>event</th><th>job</th><th>grant</th><th>ε</th><th>δ</th><th>collaborator ε left</th></tr></thead><tbody>\n");
    for ((dataset, collaborator), jobs) in &groups {
        for j in jobs {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                j.line,
                utc(j.time),
                esc(&short(dataset)),
                esc(collaborator),
                esc(&j.event),
                esc(&j.job_id),
                esc(&short(&j.grant_id)),
                esc(&j.epsilon),
                esc(&j.delta),
                esc(&j.budget_after)
            );
        }
    }
    h.push_str("</tbody></table>\n");
    let _ = writeln!(
        h,
        "<p>{} key releases, {} jobs released, {} failed after the spend (their ε is spent), {} answered again from cache (nothing spent).</p>",
        r.key_releases, r.jobs_released, r.jobs_failed, r.jobs_cached
    );

    h.push_str("<h2>Signers (enclave instances) and their attestation</h2>\n<table id=\"signers\"><thead><tr><th>key</th><th>platform</th><th>policy</th><th>evidence</th><th>first line</th><th>records</th><th>verdict</th></tr></thead><tbody>\n");
    for s in &r.signers {
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&short(&s.public_key)),
            esc(s.platform.as_str()),
            esc(&short(&s.policy_digest)),
            esc(&short(&s.evidence_digest)),
            s.first_line,
            s.records,
            esc(&s.verdict)
        );
    }
    h.push_str("</tbody></table>\n");

    h.push_str("<h2>Checkpoints and who holds them</h2>\n<table id=\"checkpoints\"><thead><tr><th>holder</th><th>tree size</th><th>root</th><th>signed by</th></tr></thead><tbody>\n");
    for c in &r.checkpoints {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
            esc(&c.holder),
            c.size,
            esc(&short(&c.root)),
            esc(&short(&c.signer))
        );
    }
    h.push_str("</tbody></table>\n");
    if !r.results_included.is_empty() {
        h.push_str("<h2>Results shown to be in the log</h2>\n<ul>");
        for i in &r.results_included {
            let _ = write!(h, "<li>{}</li>", esc(i));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</body></html>\n");
    h
}

/// Cumulative ε spent over time, one step line per (dataset, collaborator), as inline SVG.
fn budget_chart(groups: &BTreeMap<(String, String), Vec<&JobReport>>) -> String {
    const W: f64 = 720.0;
    const H: f64 = 240.0;
    const PAD: f64 = 48.0;
    const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"];
    let series: Vec<(String, Vec<(u64, f64)>)> = groups
        .iter()
        .map(|((d, c), jobs)| {
            let mut total = 0.0;
            let pts = jobs
                .iter()
                .filter(|j| spent(j))
                .map(|j| {
                    total += j.epsilon.parse::<f64>().unwrap_or(0.0);
                    (j.time, total)
                })
                .collect();
            (format!("{c} on {}", short(d)), pts)
        })
        .filter(|(_, p): &(String, Vec<(u64, f64)>)| !p.is_empty())
        .collect();
    let mut s = format!(
        "<svg id=\"budget-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"cumulative epsilon spent over time\">\n"
    );
    let t0 = series.iter().flat_map(|(_, p)| p.iter().map(|x| x.0)).min().unwrap_or(0);
    let t1 = series.iter().flat_map(|(_, p)| p.iter().map(|x| x.0)).max().unwrap_or(1).max(t0 + 1);
    let emax = series.iter().flat_map(|(_, p)| p.iter().map(|x| x.1)).fold(0.0f64, f64::max).max(1e-9);
    let x = |t: u64| PAD + (t - t0) as f64 / (t1 - t0) as f64 * (W - 2.0 * PAD);
    let y = |e: f64| H - PAD - e / emax * (H - 2.0 * PAD);
    let _ = writeln!(
        s,
        "<line x1=\"{PAD}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#333\"/><line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{0}\" stroke=\"#333\"/>",
        H - PAD,
        W - PAD
    );
    let _ = writeln!(
        s,
        "<text x=\"4\" y=\"{}\" font-size=\"11\">ε {emax:.3}</text><text x=\"4\" y=\"{}\" font-size=\"11\">0</text>",
        PAD + 4.0,
        H - PAD
    );
    let _ = writeln!(s, "<text x=\"{PAD}\" y=\"{}\" font-size=\"11\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text>", H - PAD + 16.0, esc(&utc(t0)), W - PAD, H - PAD + 16.0, esc(&utc(t1)));
    for (i, (label, pts)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut path = format!("{:.1},{:.1}", x(pts[0].0), y(0.0));
        let mut last = 0.0;
        for (t, e) in pts {
            let _ = write!(path, " {:.1},{:.1} {:.1},{:.1}", x(*t), y(last), x(*t), y(*e));
            last = *e;
        }
        let _ = writeln!(
            s,
            "<polyline class=\"budget-series\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{path}\"/><text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{colour}\">{}</text>",
            PAD + 8.0,
            PAD + 14.0 * (i as f64 + 1.0),
            esc(label)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_and_escaping() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_796_083_200), "2026-12-01 00:00:00 UTC");
        assert_eq!(esc("<script>\"&'"), "&lt;script&gt;&quot;&amp;&#39;");
        assert_eq!(short("ééééééééééééééééé"), "éééééééééééééééé…");
        assert_eq!(short("abc"), "abc…");
    }
}
