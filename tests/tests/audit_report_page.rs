//! The auditor's HTML report as a browser renders it: `cleanroom audit report` for a real
//! log, loaded in headless Chromium. The rendered DOM has the jobs table and the budget
//! chart, the page fetches nothing and runs nothing, a provider's job id with markup in
//! it stays text, and the page paints something. Needs `chromium` (`make test` installs
//! it).

use cleanroom_e2e::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A job id chosen by the provider to inject markup, an entity and attribute quotes.
const EVIL: &str = "job-<b>x</b>\"&'";
/// How Chromium serializes EVIL as a table cell's text.
const EVIL_CELL: &str = "<td>job-&lt;b&gt;x&lt;/b&gt;\"&amp;'</td>";
const SVG_NS: &str = "http://www.w3.org/2000/svg";

fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("chromium")).find(|c| c.is_file()))
        .unwrap_or_default();
    found.unwrap_or_else(|| {
        panic!(
            "`chromium` is not installed (needed to render the audit report page): `make test` \
             installs it (target test-deps), or run `apt-get install --no-install-recommends chromium`"
        )
    })
}

/// Run headless Chromium on `page` with `args`, a fresh profile in `profile`; its stdout.
fn run_chromium(page: &Path, profile: &Path, args: &[&str]) -> String {
    let url = format!("file://{}", page.canonicalize().expect("page path").display());
    let profile_arg = format!("--user-data-dir={}", profile.display());
    let mut child = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", &profile_arg])
        .args(args)
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait for chromium").is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 120 s on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().expect("chromium output");
    assert!(o.status.success(), "chromium {args:?} {url}: {}", text(&o));
    String::from_utf8(o.stdout).expect("chromium output is UTF-8")
}

/// The DOM of `page` after Chromium rendered it.
fn dump_dom(page: &Path, profile: &Path) -> String {
    run_chromium(page, profile, &["--dump-dom"])
}

/// The body of the first element starting with `open` up to the next `close`.
fn section<'a>(dom: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = dom.find(open)?;
    let len = dom[start..].find(close)?;
    Some(&dom[start..start + len])
}

/// What the rendered report must show: a `#jobs` row for job-1 with `job_released`, the
/// budget chart with at least one series, and the CSP that forbids every fetch.
fn check_dom(dom: &str) -> Result<(), String> {
    let jobs = section(dom, "<table id=\"jobs\">", "</table>").ok_or("no <table id=\"jobs\"> in the rendered DOM")?;
    let row = jobs.split("<tr>").skip(1).any(|r| r.contains("<td>job-1</td>") && r.contains("<td>job_released</td>"));
    if !row {
        return Err(format!("the jobs table has no row for job-1 with job_released:\n{jobs}"));
    }
    let chart =
        section(dom, "<svg id=\"budget-chart\"", "</svg>").ok_or("no <svg id=\"budget-chart\"> in the rendered DOM")?;
    let series = chart.matches("<polyline class=\"budget-series\"").count();
    if series == 0 {
        return Err(format!("the budget chart has no polyline:\n{chart}"));
    }
    let csp = "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none';";
    if !dom.contains(csp) {
        return Err("no Content-Security-Policy meta with default-src 'none'".into());
    }
    Ok(())
}

/// The page as written: no script, and no URL but the SVG namespace, so (with the CSP)
/// opening it makes no network request.
fn check_source(html: &str) -> Result<(), String> {
    if html.to_ascii_lowercase().contains("<script") {
        return Err("the page contains <script".into());
    }
    let rest = html.replace(SVG_NS, "");
    for scheme in ["http://", "https://"] {
        if let Some(i) = rest.find(scheme) {
            return Err(format!("the page names a URL: {}", &rest[i..(i + 80).min(rest.len())]));
        }
    }
    Ok(())
}

/// A screenshot that painted something: over 10 KB and bytes that vary. (Chromium's PNG of
/// an empty page at this size is about 9 KB using under 100 distinct byte values.)
fn check_png(png: &[u8]) -> Result<(), String> {
    if !png.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err("not a PNG".into());
    }
    if png.len() <= 10 * 1024 {
        return Err(format!("screenshot is only {} bytes", png.len()));
    }
    let mut seen = [false; 256];
    png.iter().for_each(|b| seen[*b as usize] = true);
    let distinct = seen.iter().filter(|s| **s).count();
    if distinct < 200 {
        return Err(format!("screenshot bytes hardly vary ({distinct} distinct values): one colour?"));
    }
    Ok(())
}

/// The provider's markup is text: the cell shows it escaped and no `<b>` element exists
/// anywhere in the rendered page (the report itself uses none).
fn check_escaped(dom: &str) -> Result<(), String> {
    if dom.contains("<b>") || dom.contains("<b ") {
        return Err("a <b> element was injected into the rendered DOM".into());
    }
    if !dom.contains(EVIL_CELL) {
        return Err(format!("the job id is not shown as escaped text ({EVIL_CELL})"));
    }
    Ok(())
}

fn run_job(w: &World, query: &Path) -> PathBuf {
    let o = w.release_query(query);
    assert!(o.status.success(), "{}", text(&o));
    let (o, result) = w.submit_query(query, &credit_lr_wasm(), &w.index);
    assert!(o.status.success(), "{}\n{}", text(&o), w.host_log());
    result
}

#[test]
fn the_audit_report_renders_in_a_browser_offline_with_provider_text_escaped() {
    chromium(); // fail first, and clearly, when the browser is missing
    let t0 = Instant::now();
    let w = World::start(WorldOptions::default());
    let r1 = run_job(&w, &w.query("job-1", &credit_lr_wasm()));
    // The provider's job id goes through query-init's --job unchanged; its '/' makes the
    // query file's name a path, so give it its directory.
    std::fs::create_dir_all(w.path(EVIL.split('/').next().unwrap())).unwrap();
    let evil_query = w.query(EVIL, &credit_lr_wasm());
    assert_eq!(w.read_query(&evil_query).job_id, EVIL);
    let r2 = run_job(&w, &evil_query);
    let log = w.fetch_audit();

    let out = w.path("report");
    let o = w.cr(&[
        "audit",
        "report",
        log.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--expect-pcr0",
        &w.pcr0,
        "--policy-digest",
        &w.policy_digest,
        "--allow-simulated",
        "--ledger",
        w.ledger.to_str().unwrap(),
        "--result",
        r1.to_str().unwrap(),
        "--result",
        r2.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let page = out.join("index.html");
    let html = std::fs::read_to_string(&page).unwrap();
    check_source(&html).unwrap();
    let t_report = t0.elapsed();

    let dom = dump_dom(&page, &w.path("chromium-profile-1"));
    check_dom(&dom).unwrap_or_else(|e| panic!("{e}\n--- rendered DOM ---\n{dom}"));
    check_escaped(&dom).unwrap_or_else(|e| panic!("{e}\n--- rendered DOM ---\n{dom}"));

    let png = w.path("report.png");
    let shot = format!("--screenshot={}", png.display());
    run_chromium(&page, &w.path("chromium-profile-2"), &[&shot, "--window-size=1200,1600"]);
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    check_png(&bytes).unwrap();

    // Negative controls. A report with the jobs table cut out is rejected by the DOM check…
    let start = html.find("<table id=\"jobs\">").unwrap();
    let end = start + html[start..].find("</table>").unwrap() + "</table>".len();
    let doctored_dir = w.path("doctored");
    std::fs::create_dir_all(&doctored_dir).unwrap();
    let doctored = doctored_dir.join("index.html");
    std::fs::write(&doctored, format!("{}{}", &html[..start], &html[end..])).unwrap();
    let doctored_dom = dump_dom(&doctored, &w.path("chromium-profile-3"));
    let err = check_dom(&doctored_dom).expect_err("a report without the jobs table passes the DOM check");
    assert!(err.contains("jobs"), "{err}");
    // …a report that wrote the job id unescaped fails the escaping check…
    let raw = w.path("unescaped.html");
    std::fs::write(
        &raw,
        html.replace("<td>job-&lt;b&gt;x&lt;/b&gt;&quot;&amp;&#39;</td>", &format!("<td>{EVIL}</td>")),
    )
    .unwrap();
    let raw_dom = dump_dom(&raw, &w.path("chromium-profile-5"));
    assert!(check_escaped(&raw_dom).unwrap_err().contains("injected"), "{raw_dom}");
    // …a page with a script or a remote URL fails the source check…
    let scripted = html.replace("</body>", "<script src=\"https://example.org/x.js\"></script></body>");
    assert!(check_source(&scripted).unwrap_err().contains("<script"));
    let remote = html.replace("</body>", "<img src=\"https://example.org/p.png\"></body>");
    assert!(check_source(&remote).unwrap_err().contains("https://example.org"));
    // …and an empty page's screenshot fails the screenshot check.
    let blank = doctored_dir.join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>\n").unwrap();
    let blank_png = w.path("blank.png");
    let shot = format!("--screenshot={}", blank_png.display());
    run_chromium(&blank, &w.path("chromium-profile-4"), &[&shot, "--window-size=1200,1600"]);
    assert!(check_png(&std::fs::read(&blank_png).unwrap()).is_err(), "a blank page passes the screenshot check");

    eprintln!(
        "audit report page: world + 2 jobs + report {:.1} s, total with 5 chromium runs {:.1} s; screenshot {} bytes",
        t_report.as_secs_f64(),
        t0.elapsed().as_secs_f64(),
        bytes.len()
    );
}
