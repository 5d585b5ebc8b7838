//! `tamis-report`: a profile as one self-contained HTML file.
//!
//! Inline CSS and SVG only: no script, no font, no network, so the file
//! opens offline and can be mailed. Its size depends on the number of
//! columns, not rows (every chart is drawn from the profile's bounded
//! summaries); a 100-column profile stays well under 5 MB.

use std::fmt::Write;

use tamis_profile::{ColumnProfile, Profile, Severity};

/// Escapes text for HTML.
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

fn num(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    if v.abs() >= 1e6 || v.abs() < 1e-3 {
        format!("{v:.3e}")
    } else {
        format!("{v:.3}")
    }
}

fn pct(r: f64) -> String {
    format!("{:.1}%", r * 100.0)
}

const CSS: &str = r#"
:root{--fg:#1d2330;--mut:#667085;--bd:#e4e7ec;--bg:#f8fafc;--acc:#3056d3;--err:#c0362c;--warn:#b7791f;--ok:#2f855a}
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg);margin:0;background:var(--bg)}
header{background:#fff;border-bottom:1px solid var(--bd);padding:18px 28px}h1{margin:0 0 4px;font-size:22px}
main{padding:20px 28px;max-width:1400px}section{margin-bottom:28px}h2{font-size:17px;margin:0 0 10px}
.kpis{display:flex;flex-wrap:wrap;gap:12px}.kpi{background:#fff;border:1px solid var(--bd);border-radius:8px;padding:10px 14px;min-width:130px}
.kpi b{display:block;font-size:20px}.kpi span{color:var(--mut);font-size:12px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--bd)}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--bd);vertical-align:top}
th{background:#f2f4f7;font-weight:600;font-size:12px;text-transform:uppercase;color:var(--mut)}
.sev{font-weight:600;font-size:12px;padding:1px 6px;border-radius:4px;color:#fff}.error{background:var(--err)}.warning{background:var(--warn)}.info{background:var(--mut)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:14px}
.card{background:#fff;border:1px solid var(--bd);border-radius:8px;padding:12px 14px}.card h3{margin:0 0 2px;font-size:15px;word-break:break-all}
.tag{display:inline-block;background:#eef2ff;color:var(--acc);border-radius:4px;padding:0 6px;font-size:12px;margin-right:4px}
dl{display:grid;grid-template-columns:auto 1fr;gap:2px 10px;margin:8px 0;font-size:13px}dt{color:var(--mut)}dd{margin:0;word-break:break-all}
.mut{color:var(--mut)}svg text{font:10px system-ui,sans-serif;fill:#475467}.scroll{overflow-x:auto}
"#;

/// Renders the profile as an HTML document.
pub fn render_html(p: &Profile) -> String {
    let mut h = String::with_capacity(64 * 1024 + p.columns.len() * 8 * 1024);
    let title = p
        .dataset
        .sources
        .first()
        .map(|s| s.name.as_str())
        .unwrap_or("dataset");
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>tamis profile: {}</title><style>{CSS}</style></head><body>",
        esc(title)
    );
    let _ = write!(
        h,
        "<header><h1>Profile of {}</h1><div class=\"mut\">{} file(s) · tamis {} · schema {}</div></header><main>",
        esc(title),
        p.dataset.sources.len(),
        esc(&p.tamis_version),
        esc(&p.schema_version)
    );
    overview(&mut h, p);
    issues(&mut h, p);
    h.push_str("<section><h2>Columns</h2><div class=\"cards\">");
    for c in &p.columns {
        card(&mut h, c);
    }
    h.push_str("</div></section>");
    missing_matrix(&mut h, p);
    heatmap(&mut h, p);
    associations(&mut h, p);
    h.push_str("</main></body></html>\n");
    h
}

fn overview(h: &mut String, p: &Profile) {
    let q = &p.quality;
    h.push_str("<section><h2>Overview</h2><div class=\"kpis\">");
    let kpis = [
        (format!("{}", p.dataset.rows), "rows"),
        (format!("{}", p.dataset.columns), "columns"),
        (format!("{:.3}", q.score), "quality score"),
        (pct(q.completeness), "completeness"),
        (pct(q.validity), "validity"),
        (pct(q.uniqueness), "uniqueness"),
        (pct(q.consistency), "consistency"),
        (format!("{}", p.duplicates.rows), "duplicate rows"),
        (format!("{}", p.dataset.quarantine.rows), "quarantined rows"),
        (format!("{}", p.issues.len()), "issues"),
    ];
    for (v, k) in kpis {
        let _ = write!(
            h,
            "<div class=\"kpi\"><b>{}</b><span>{}</span></div>",
            esc(&v),
            k
        );
    }
    h.push_str("</div>");
    let lists = [
        (
            "Low quality (> 50 % missing)",
            &p.dataset.low_quality_columns,
        ),
        ("Constant", &p.dataset.constant_columns),
        ("Id-like", &p.dataset.id_like_columns),
    ];
    h.push_str("<dl>");
    for (k, v) in lists {
        if !v.is_empty() {
            let _ = write!(h, "<dt>{k}</dt><dd>{}</dd>", esc(&v.join(", ")));
        }
    }
    for s in &p.dataset.sources {
        let _ = write!(
            h,
            "<dt>source</dt><dd>{} · {:?}{}{}</dd>",
            esc(&s.name),
            s.format,
            s.encoding.map(|e| format!(" · {e:?}")).unwrap_or_default(),
            s.delimiter
                .as_ref()
                .map(|d| format!(" · delimiter {:?}", d))
                .unwrap_or_default()
        );
    }
    h.push_str("</dl></section>");
}

fn issues(h: &mut String, p: &Profile) {
    let _ = write!(h, "<section><h2>Issues ({})</h2>", p.issues.len());
    if p.issues.is_empty() {
        h.push_str("<p class=\"mut\">No issues found.</p></section>");
        return;
    }
    h.push_str("<table><tr><th>severity</th><th>column</th><th>type</th><th>count</th><th>description</th><th>example rows</th></tr>");
    for i in p.issues.iter().take(500) {
        let sev = match i.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        let _ = write!(
            h,
            "<tr><td><span class=\"sev {sev}\">{sev}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"mut\">{}</td></tr>",
            esc(i.column.as_deref().unwrap_or("—")),
            esc(&i.kind),
            i.count,
            esc(&i.description),
            i.example_row_ids
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    h.push_str("</table></section>");
}

fn card(h: &mut String, c: &ColumnProfile) {
    let _ = write!(
        h,
        "<div class=\"card\"><h3>{}</h3><span class=\"tag\">{}</span><span class=\"tag\">{}</span>",
        esc(&c.name),
        c.inferred_type,
        esc(&c.semantic_type)
    );
    h.push_str("<dl>");
    let mut row = |k: &str, v: String| {
        let _ = write!(h, "<dt>{k}</dt><dd>{}</dd>", esc(&v));
    };
    row(
        "missing",
        format!("{} ({})", c.missing, pct(c.missing_ratio)),
    );
    row(
        "distinct",
        format!(
            "{}{}",
            c.distinct,
            if c.distinct_exact { "" } else { " (≈)" }
        ),
    );
    if c.type_mismatches > 0 {
        row(
            "type mismatches",
            format!("{} (sampled as {})", c.type_mismatches, c.sample_type),
        );
    }
    if let Some(n) = &c.numeric {
        row("min / max", format!("{} / {}", num(n.min), num(n.max)));
        row(
            "mean ± std",
            format!(
                "{} ± {}",
                num(n.mean),
                n.std.map(num).unwrap_or_else(|| "—".into())
            ),
        );
        row(
            "p1 · p50 · p99",
            format!(
                "{} · {} · {}",
                num(n.quantiles.p1),
                num(n.quantiles.p50),
                num(n.quantiles.p99)
            ),
        );
        row("outliers (IQR)", format!("{}", n.outliers.iqr.count));
    }
    if let Some(d) = &c.dates {
        row(
            "range",
            format!(
                "{} … {}",
                d.min.clone().unwrap_or_default(),
                d.max.clone().unwrap_or_default()
            ),
        );
        row(
            "formats",
            d.formats
                .iter()
                .map(|f| format!("{} ({})", f.value, f.count))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    row(
        "length",
        format!(
            "{} … {} (mean {:.1})",
            c.text.min_length, c.text.max_length, c.text.mean_length
        ),
    );
    if let Some(f) = c.formats.first() {
        row("format", format!("{} ({})", f.value, f.count));
    }
    if let Some(p) = c.patterns.first() {
        row("top pattern", format!("{} ({})", p.value, p.count));
    }
    h.push_str("</dl>");
    if let Some(n) = &c.numeric {
        histogram_svg(h, &n.histogram.edges, &n.histogram.counts);
    } else {
        top_values_svg(h, c);
    }
    h.push_str("</div>");
}

fn histogram_svg(h: &mut String, edges: &[f64], counts: &[u64]) {
    let (w, ht) = (310.0, 90.0);
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let bw = w / counts.len().max(1) as f64;
    let _ = write!(
        h,
        "<svg width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\" role=\"img\">",
        ht + 14.0,
        ht + 14.0
    );
    for (i, c) in counts.iter().enumerate() {
        let bh = (*c as f64 / max) * ht;
        let _ = write!(
            h,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#3056d3\"><title>{} – {}: {}</title></rect>",
            i as f64 * bw + 0.5,
            ht - bh,
            (bw - 1.0).max(0.5),
            bh,
            num(edges[i]),
            num(edges.get(i + 1).copied().unwrap_or(edges[i])),
            c
        );
    }
    if let (Some(a), Some(b)) = (edges.first(), edges.last()) {
        let _ = write!(
            h,
            "<text x=\"0\" y=\"{}\">{}</text><text x=\"{w}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            ht + 12.0,
            esc(&num(*a)),
            ht + 12.0,
            esc(&num(*b))
        );
    }
    h.push_str("</svg>");
}

fn top_values_svg(h: &mut String, c: &ColumnProfile) {
    let vals: Vec<_> = c.top_values.iter().take(8).collect();
    if vals.is_empty() {
        return;
    }
    let max = vals.iter().map(|v| v.count).max().unwrap_or(1).max(1) as f64;
    let ht = vals.len() as f64 * 16.0;
    let _ = write!(
        h,
        "<svg width=\"310\" height=\"{ht}\" viewBox=\"0 0 310 {ht}\" role=\"img\">"
    );
    for (i, v) in vals.iter().enumerate() {
        let y = i as f64 * 16.0;
        let label: String = v.value.chars().take(22).collect();
        let bw = (v.count as f64 / max) * 150.0;
        let _ = write!(
            h,
            "<text x=\"0\" y=\"{:.0}\">{}</text><rect x=\"130\" y=\"{:.0}\" width=\"{bw:.1}\" height=\"11\" fill=\"#98a2f3\"/><text x=\"{:.1}\" y=\"{:.0}\">{}</text>",
            y + 11.0,
            esc(&label),
            y + 2.0,
            134.0 + bw,
            y + 11.0,
            v.count
        );
    }
    h.push_str("</svg>");
}

fn missing_matrix(h: &mut String, p: &Profile) {
    let m = &p.missing_matrix;
    if m.columns.is_empty() {
        return;
    }
    let bins = m.columns.iter().map(|c| c.len()).max().unwrap_or(0).max(1);
    let (cell_w, cell_h, label_w) = (8.0, 12.0, 160.0);
    let w = label_w + bins as f64 * cell_w;
    let ht = m.columns.len() as f64 * cell_h + 16.0;
    let _ = write!(
        h,
        "<section><h2>Missing values</h2><p class=\"mut\">Each row is a column; each cell {} source rows; darker is more missing.</p><div class=\"scroll\"><svg width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" role=\"img\">",
        m.bin_rows
    );
    for (ci, (col, fr)) in p.columns.iter().zip(&m.columns).enumerate() {
        let y = ci as f64 * cell_h;
        let name: String = col.name.chars().take(24).collect();
        let _ = write!(
            h,
            "<text x=\"0\" y=\"{:.0}\">{}</text>",
            y + 9.0,
            esc(&name)
        );
        for (bi, f) in fr.iter().enumerate() {
            if *f > 0.0 {
                let _ = write!(
                    h,
                    "<rect x=\"{:.0}\" y=\"{y:.0}\" width=\"{cell_w}\" height=\"{}\" fill=\"#c0362c\" fill-opacity=\"{:.2}\"/>",
                    label_w + bi as f64 * cell_w,
                    cell_h - 1.0,
                    0.15 + 0.85 * f.min(1.0)
                );
            }
        }
    }
    h.push_str("</svg></div></section>");
}

fn heatmap(h: &mut String, p: &Profile) {
    let cm = &p.correlation_matrix;
    if cm.columns.len() < 2 {
        return;
    }
    let n = cm.columns.len();
    let (cell, label) = (22.0, 140.0);
    let size = label + n as f64 * cell;
    h.push_str("<section><h2>Correlations (Pearson, on the row sample)</h2><div class=\"scroll\">");
    let _ = write!(
        h,
        "<svg width=\"{size}\" height=\"{size}\" viewBox=\"0 0 {size} {size}\" role=\"img\">"
    );
    for (i, name) in cm.columns.iter().enumerate() {
        let short: String = name.chars().take(20).collect();
        let _ = write!(
            h,
            "<text x=\"0\" y=\"{:.0}\">{}</text>",
            label + i as f64 * cell + 14.0,
            esc(&short)
        );
        let _ = write!(
            h,
            "<text transform=\"translate({:.0},{:.0}) rotate(-60)\">{}</text>",
            label + i as f64 * cell + 12.0,
            label - 4.0,
            esc(&short)
        );
        for (j, v) in cm.values[i].iter().enumerate() {
            let (fill, title) = match v {
                Some(r) => {
                    let a = r.abs().min(1.0);
                    (
                        if *r >= 0.0 {
                            format!("rgba(48,86,211,{a:.2})")
                        } else {
                            format!("rgba(192,54,44,{a:.2})")
                        },
                        format!("{:.3}", r),
                    )
                }
                None => ("#eee".to_string(), "n/a".to_string()),
            };
            let _ = write!(
                h,
                "<rect x=\"{:.0}\" y=\"{:.0}\" width=\"{}\" height=\"{}\" fill=\"{fill}\"><title>{} × {}: {title}</title></rect>",
                label + j as f64 * cell,
                label + i as f64 * cell,
                cell - 1.0,
                cell - 1.0,
                esc(name),
                esc(&cm.columns[j])
            );
        }
    }
    h.push_str("</svg></div></section>");
}

fn associations(h: &mut String, p: &Profile) {
    if p.associations.is_empty() && p.correlations.is_empty() {
        return;
    }
    h.push_str("<section><h2>Strongest relations</h2><table><tr><th>measure</th><th>a</th><th>b</th><th>value</th><th>sample rows</th></tr>");
    for (m, list) in [
        ("Pearson r", &p.correlations),
        ("Cramér's V", &p.associations),
    ] {
        for c in list {
            let _ = write!(
                h,
                "<tr><td>{m}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{}</td></tr>",
                esc(&c.a),
                esc(&c.b),
                c.value,
                c.rows
            );
        }
    }
    h.push_str("</table></section>");
}

/// Renders a clean run's before/after report (the JSON of
/// `tamis clean --report R.json`) as an HTML document.
pub fn render_clean_html(r: &serde_json::Value) -> String {
    use serde_json::Value;
    let s = |v: &Value| match v {
        Value::String(x) => x.clone(),
        Value::Null => "∅".into(),
        other => other.to_string(),
    };
    let mut h = String::with_capacity(32 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>tamis clean: {}</title><style>{CSS}</style></head><body><header><h1>Clean report: {}</h1><div class=\"mut\">run {} · tamis {}</div></header><main>",
        esc(&s(&r["output"])),
        esc(&s(&r["output"])),
        esc(&s(&r["run_id"])),
        env!("CARGO_PKG_VERSION")
    );
    let q = |k: &str| r[k]["score"].as_f64().unwrap_or(0.0);
    let _ = write!(
        h,
        "<section><h2>Summary</h2><table><tr><th>rows in</th><td>{}</td></tr><tr><th>rows out</th><td>{}</td></tr><tr><th>duplicates removed</th><td>{}</td></tr><tr><th>quality score</th><td>{:.1} → {:.1}</td></tr><tr><th>issues</th><td>{} → {}</td></tr></table></section>",
        s(&r["rows_in"]),
        s(&r["rows_out"]),
        s(&r["duplicates_removed"]),
        q("quality_before"),
        q("quality_after"),
        s(&r["issues_before"]),
        s(&r["issues_after"])
    );
    h.push_str("<section><h2>Steps</h2><table><tr><th>id</th><th>type</th><th>rows in</th><th>rows removed</th><th>rows modified</th><th>rows flagged</th><th>cells changed per column</th></tr>");
    for st in r["steps"].as_array().into_iter().flatten() {
        let cols: Vec<String> = st["cells_by_column"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{}: {}", esc(k), s(v)))
            .collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s(&st["id"])),
            esc(&s(&st["type"])),
            s(&st["rows_in"]),
            s(&st["rows_removed"]),
            s(&st["rows_modified"]),
            s(&st["rows_flagged"]),
            cols.join(", ")
        );
    }
    h.push_str("</table></section><section><h2>Sample of changed rows</h2>");
    for row in r["sample"].as_array().into_iter().flatten() {
        let _ = write!(
            h,
            "<h3>row {}</h3><div class=\"scroll\"><table><tr><th></th>",
            s(&row["row_id"])
        );
        let before = row["before"].as_object();
        let after = &row["after"];
        let names: Vec<&String> = before.into_iter().flatten().map(|(k, _)| k).collect();
        for k in &names {
            let _ = write!(h, "<th>{}</th>", esc(k));
        }
        h.push_str("</tr><tr><th>before</th>");
        for k in &names {
            let _ = write!(h, "<td>{}</td>", esc(&s(&row["before"][k.as_str()])));
        }
        h.push_str("</tr><tr><th>after</th>");
        for k in &names {
            let b = &row["before"][k.as_str()];
            let a = &after[k.as_str()];
            if a == b {
                let _ = write!(h, "<td>{}</td>", esc(&s(a)));
            } else {
                let _ = write!(h, "<td><b>{}</b></td>", esc(&s(a)));
            }
        }
        h.push_str("</tr></table></div>");
    }
    h.push_str("</section></main></body></html>");
    h
}

/// Renders `tamis pii apply`'s compliance report (its JSON) as an HTML document.
pub fn render_pii_html(r: &serde_json::Value) -> String {
    use serde_json::Value;
    let s = |v: &Value| match v {
        Value::String(x) => x.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    };
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>tamis privacy report: {}</title><style>{CSS}</style></head><body><header><h1>Privacy report: {}</h1><div class=\"mut\">output {} · {} rows · tamis {}</div></header><main>",
        esc(&s(&r["dataset_id"])),
        esc(&s(&r["dataset_id"])),
        esc(&s(&r["output"])),
        s(&r["rows"]),
        env!("CARGO_PKG_VERSION")
    );
    h.push_str("<section><h2>Personal data found</h2><table><tr><th>column</th><th>type</th><th>confidence</th><th>hit rate</th></tr>");
    for f in r["found"].as_array().into_iter().flatten() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.1}%</td></tr>",
            esc(&s(&f["column"])),
            esc(&s(&f["type"])),
            f["confidence"].as_f64().unwrap_or(0.0),
            f["hit_rate"].as_f64().unwrap_or(0.0) * 100.0
        );
    }
    h.push_str("</table></section><section><h2>What was done</h2><table><tr><th>column</th><th>strategy</th><th>cells changed</th></tr>");
    for a in r["actions"].as_array().into_iter().flatten() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s(&a["column"])),
            esc(&s(&a["strategy"])),
            s(&a["cells_changed"])
        );
    }
    let e = &r["epsilon"];
    let _ = write!(
        h,
        "</table></section><section><h2>Differential privacy</h2><p>ε this run {} · spent {} · budget {}</p></section>",
        s(&e["this_run"]),
        s(&e["spent"]),
        s(&e["budget"])
    );
    if let Some(k) = r["k_anonymity"].as_object() {
        let _ = write!(
            h,
            "<section><h2>k-anonymity</h2><p>k = {} over {} ({} classes, {} rows in classes smaller than 5){}</p></section>",
            s(&k["k"]),
            esc(&s(&k["quasi_identifiers"])),
            s(&k["classes"]),
            s(&k["rows_below_5"]),
            k.get("l")
                .filter(|l| !l.is_null())
                .map(|l| format!("; l = {}", s(l)))
                .unwrap_or_default()
        );
    }
    h.push_str("<section><h2>Residual risks</h2><ul>");
    for x in r["residual_risks"].as_array().into_iter().flatten() {
        let _ = write!(h, "<li>{}</li>", esc(&s(x)));
    }
    h.push_str("</ul></section></main></body></html>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(num(3.0), "3");
        assert_eq!(num(1.23456), "1.235");
    }
}
