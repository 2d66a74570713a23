//! End-to-end tests of the `cost-audit` plugin and `runbooks/cost-audit.yaml`
//! on the real `tend` binary and the sample data in `examples/cost-data`:
//! the totals, credits, recommendations, savings and week-over-week
//! increases are computed here independently (a plain CSV split and the
//! formulas the plugin documents) and compared with what tend reports; a
//! FOCUS file, a CUR file and a malformed file each get the expected result
//! or the exact error.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `examples/cost-data`.
fn sample_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/cost-data").canonicalize().unwrap()
}

fn tend(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(args)
        .current_dir(dir)
        .env("TEND_CACHE_DIR", std::env::temp_dir().join("tend-test-cache"))
        .env("TEND_DB", dir.join("tend.db"))
        .env_remove("TEND_LOG")
        .output()
        .expect("tend runs")
}

/// `tend plugins call cost-audit` with `data` granted as `/cost`.
fn call(data: &Path, config: &str, dir: &Path) -> Output {
    let grant = format!("{}:/cost:ro", data.display());
    tend(&["plugins", "call", "cost-audit", "--dir", &grant, "--config", config], dir)
}

fn json_out(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}): {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), stderr(out))
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// A CSV line split into fields (quotes and doubled quotes understood).
fn split(line: &str) -> Vec<String> {
    let (mut fields, mut field, mut quoted, mut chars) = (Vec::new(), String::new(), false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// The rows of a CSV file as maps from column to value.
fn read(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let head = split(lines.next().unwrap());
    lines.map(|l| head.iter().cloned().zip(split(l)).collect()).collect()
}

/// One billing line as this test reads it.
struct Line {
    currency: String,
    cost: f64,
    day: u32,
    service: String,
    resource: Option<String>,
    usage: bool,
    on_demand: bool,
    tags: BTreeMap<String, String>,
}

fn null(v: &str) -> bool {
    v.is_empty() || v == "NULL"
}

/// The September-2024 day of `2024-09-DD...`.
fn day(v: &str) -> u32 {
    assert!(v.starts_with("2024-09-"), "{v}");
    v[8..10].parse().unwrap()
}

fn focus_lines(path: &Path) -> Vec<Line> {
    read(path)
        .into_iter()
        .map(|r| Line {
            currency: r["BillingCurrency"].clone(),
            cost: r["BilledCost"].parse().unwrap(),
            day: day(&r["ChargePeriodStart"]),
            service: r["ServiceName"].clone(),
            resource: Some(r["ResourceId"].clone()).filter(|v| !null(v)),
            usage: r["ChargeCategory"] == "Usage",
            on_demand: r["PricingCategory"] == "Standard" && null(&r["CommitmentDiscountId"]),
            tags: if null(&r["Tags"]) { BTreeMap::new() } else { serde_json::from_str(&r["Tags"]).unwrap() },
        })
        .collect()
}

fn cur_lines(path: &Path) -> Vec<Line> {
    read(path)
        .into_iter()
        .map(|r| Line {
            currency: r["lineItem/CurrencyCode"].clone(),
            cost: r["lineItem/UnblendedCost"].parse().unwrap(),
            day: day(&r["lineItem/UsageStartDate"]),
            service: r["product/ProductName"].clone(),
            resource: Some(r["lineItem/ResourceId"].clone()).filter(|v| !null(v)),
            usage: ["Usage", "SavingsPlanCoveredUsage"].contains(&r["lineItem/LineItemType"].as_str()),
            on_demand: r["pricing/term"] == "OnDemand" && r["lineItem/LineItemType"] == "Usage",
            tags: r
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix("resourceTags/user:")?.to_string(), v.clone())))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
        })
        .collect()
}

/// Utilization per resource: (cpu samples, memory samples, requests + connections).
fn utilization(path: &Path) -> BTreeMap<String, (Vec<f64>, Vec<f64>, f64)> {
    let mut map: BTreeMap<String, (Vec<f64>, Vec<f64>, f64)> = BTreeMap::new();
    for r in read(path) {
        let u = map.entry(r["resource_id"].clone()).or_default();
        u.0.push(r["cpu_percent"].parse().unwrap());
        u.1.push(r["memory_percent"].parse().unwrap());
        u.2 += r["requests"].parse::<f64>().unwrap() + r["connections"].parse::<f64>().unwrap();
    }
    map
}

fn p95(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    s[(0.95 * s.len() as f64).ceil() as usize - 1]
}

/// What the audit should say, computed here from the documented formulas.
#[derive(Debug, Default)]
struct Expected {
    /// Per currency: (net cost, negative lines).
    totals: BTreeMap<String, (f64, usize)>,
    /// (kind, resource) to monthly saving.
    recommendations: BTreeMap<(String, String), f64>,
    /// Per currency.
    savings: BTreeMap<String, f64>,
    /// Services whose cost rose over 30 % week over week.
    increases: BTreeSet<String>,
}

/// Per (resource, currency): usage cost and on-demand cost per day of September, and tags.
type Daily = BTreeMap<(String, String), ([f64; 30], [f64; 30], BTreeMap<String, String>)>;

/// The sample data's window is September 2024 (30 days), so a monthly cost
/// is the cost over the window. Spot rule: workload batch or ci.
fn expected(lines: &[Line], usage: &BTreeMap<String, (Vec<f64>, Vec<f64>, f64)>) -> Expected {
    let mut e = Expected::default();
    let mut daily = Daily::new();
    let mut weeks: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for l in lines {
        let t = e.totals.entry(l.currency.clone()).or_default();
        t.0 += l.cost;
        if l.cost < 0.0 {
            t.1 += 1;
            continue;
        }
        let w = weeks.entry(l.service.clone()).or_default();
        match l.day {
            17..=23 => w.0 += l.cost,
            24..=30 => w.1 += l.cost,
            _ => {}
        }
        if let (Some(id), true) = (&l.resource, l.usage) {
            let d = daily.entry((id.clone(), l.currency.clone())).or_insert(([0.0; 30], [0.0; 30], BTreeMap::new()));
            d.0[l.day as usize - 1] += l.cost;
            if l.on_demand {
                d.1[l.day as usize - 1] += l.cost;
            }
            d.2.extend(l.tags.clone());
        }
    }
    e.increases = weeks.into_iter().filter(|(_, (a, b))| *a > 0.0 && (b - a) / a > 0.3).map(|(s, _)| s).collect();
    for ((id, currency), (all, on_demand, tags)) in daily {
        let monthly: f64 = all.iter().sum();
        let od: f64 = on_demand.iter().sum();
        let mean = od / 30.0;
        let sd = (on_demand.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 30.0).sqrt();
        let spot = tags.get("workload").is_some_and(|w| w == "batch" || w == "ci");
        let rec = match usage.get(&id) {
            Some((_, _, traffic)) if *traffic == 0.0 => Some(("idle", monthly)),
            Some((cpu, mem, _)) if p95(cpu) < 30.0 && p95(mem) < 40.0 => Some(("rightsizing", monthly * 0.5)),
            Some((cpu, mem, _)) if p95(cpu) < 30.0 || p95(mem) < 40.0 => Some(("rightsizing", monthly * 0.25)),
            _ if od > 0.0 && spot => Some(("spot", od * 0.7)),
            _ if od > 0.0 && sd / mean <= 0.2 => Some(("commitment", od * 0.3)),
            _ => None,
        };
        if let Some((kind, saving)) = rec {
            e.recommendations.insert((kind.to_string(), id), saving);
            *e.savings.entry(currency).or_default() += saving;
        }
    }
    e
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() < 0.011, "{what}: tend says {got}, the independent calculation {want}");
}

/// Compares the step's data with the independent calculation.
fn compare(data: &Value, e: &Expected) {
    let totals = data["totals"].as_array().unwrap();
    assert_eq!(totals.len(), e.totals.len(), "{totals:#?}");
    for ((currency, (cost, _)), t) in e.totals.iter().zip(totals) {
        assert_eq!(t["currency"], currency.as_str());
        assert_close(t["cost"].as_f64().unwrap(), *cost, &format!("total {currency}"));
    }
    let credits: usize = e.totals.values().map(|t| t.1).sum();
    assert_eq!(data["credits"]["count"], credits);
    let got: BTreeMap<(String, String), f64> = data["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let key = (r["kind"].as_str().unwrap().to_string(), r["resource"].as_str().unwrap().to_string());
            (key, r["saving"].as_f64().unwrap())
        })
        .collect();
    assert_eq!(got.keys().collect::<Vec<_>>(), e.recommendations.keys().collect::<Vec<_>>());
    for (key, saving) in &e.recommendations {
        assert_close(got[key], *saving, &format!("saving of {key:?}"));
    }
    let savings = data["savings"].as_array().unwrap();
    assert_eq!(savings.len(), e.savings.len());
    for ((currency, total), s) in e.savings.iter().zip(savings) {
        assert_eq!(s["currency"], currency.as_str());
        assert_close(s["monthly"].as_f64().unwrap(), *total, &format!("total saving in {currency}"));
    }
    let increases: BTreeSet<String> = data["week_over_week"]["increases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["scope"] == "service")
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(increases, e.increases);
}

const CONFIG: &str = r#"{"billing": ["/cost/billing"], "utilization": ["/cost/usage"], "rules": {"spot_tags": {"workload": ["batch", "ci"]}}}"#;

#[test]
fn the_audit_of_the_sample_data_matches_an_independent_calculation() {
    let data_dir = sample_data();
    let dir = tempfile::tempdir().unwrap();
    let out = call(&data_dir, CONFIG, dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let output = json_out(&out);
    let data = &output["data"];
    assert_eq!(data["files"][0]["path"], "/cost/billing/cur.csv");
    assert_eq!(data["files"][0]["format"], "aws-cur");
    assert_eq!(data["files"][1]["format"], "focus");

    let mut lines = cur_lines(&data_dir.join("billing/cur.csv"));
    lines.extend(focus_lines(&data_dir.join("billing/focus.csv")));
    assert_eq!(data["rows"], lines.len());
    let e = expected(&lines, &utilization(&data_dir.join("usage/utilization.csv")));
    // Every kind is in the sample data, in two currencies, with credits.
    let kinds: BTreeSet<&str> = e.recommendations.keys().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, BTreeSet::from(["commitment", "idle", "rightsizing", "spot"]));
    assert_eq!(e.totals.len(), 2);
    compare(data, &e);

    // Sorted by saving; a low finding each, a high one per increase.
    let savings: Vec<f64> =
        data["recommendations"].as_array().unwrap().iter().map(|r| r["saving"].as_f64().unwrap()).collect();
    assert!(savings.windows(2).all(|w| w[0] >= w[1]), "{savings:?}");
    let findings = output["findings"].as_array().unwrap();
    let high = findings.iter().filter(|f| f["severity"] == "high").count();
    assert_eq!(high, data["week_over_week"]["increases"].as_array().unwrap().len());
    assert_eq!(findings.len() - high, savings.len());
}

#[test]
fn a_focus_file_and_a_cur_file_are_each_audited_on_their_own() {
    let data_dir = sample_data();
    let dir = tempfile::tempdir().unwrap();
    let usage = utilization(&data_dir.join("usage/utilization.csv"));
    for (file, format, lines) in [
        ("focus.csv", "focus", focus_lines(&data_dir.join("billing/focus.csv"))),
        ("cur.csv", "aws-cur", cur_lines(&data_dir.join("billing/cur.csv"))),
    ] {
        let config = CONFIG.replace("\"/cost/billing\"", &format!("\"/cost/billing/{file}\""));
        let out = call(&data_dir, &config, dir.path());
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        let data = &json_out(&out)["data"];
        assert_eq!(data["files"][0]["format"], format);
        compare(data, &expected(&lines, &usage));
    }
}

#[test]
fn a_malformed_file_fails_the_step_naming_the_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let billing = dir.path().join("data/billing");
    std::fs::create_dir_all(&billing).unwrap();
    let text = std::fs::read_to_string(sample_data().join("billing/cur.csv")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut fields = split(&lines[16]);
    fields[7] = "\"12,5x\"".into();
    lines[16] = fields.join(",");
    std::fs::write(billing.join("aws.csv"), lines.join("\n")).unwrap();
    let out = call(&dir.path().join("data"), r#"{"billing": ["/cost/billing"]}"#, dir.path());
    assert!(!out.status.success());
    assert!(
        stderr(&out)
            .contains(r#"failed: /cost/billing/aws.csv:17: column "lineItem/UnblendedCost": "12,5x" is not a number"#),
        "{}",
        stderr(&out)
    );

    std::fs::write(billing.join("aws.csv"), "lineItem/UsageStartDate,lineItem/UnblendedCost,cost\n").unwrap();
    let out = call(&dir.path().join("data"), r#"{"billing": ["/cost/billing"]}"#, dir.path());
    assert!(
        stderr(&out).contains(
            "/cost/billing/aws.csv: the header is none of the known formats (FOCUS 1.0/1.1, AWS CUR, AWS CUR 2.0, \
             generic); the closest is AWS CUR, which lacks \"lineItem/CurrencyCode\", \"lineItem/LineItemType\", \
             \"lineItem/UsageAccountId\", \"product/ProductName\""
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_shipped_runbook_audits_the_sample_data_and_escalates_each_increase() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = sample_data();
    let runbooks = dir.path().join("runbooks");
    std::fs::create_dir_all(&runbooks).unwrap();
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks/cost-audit.yaml")).unwrap();
    assert!(shipped.contains("\"/var/lib/tend/cost:/cost:ro\""));
    let text = shipped.replace("/var/lib/tend/cost", &data_dir.display().to_string());
    std::fs::write(runbooks.join("cost-audit.yaml"), text).unwrap();

    let out = tend(&["run", "cost-audit", "--json", "--runbooks", runbooks.to_str().unwrap()], dir.path());
    let record = json_out(&out);
    assert_eq!(record["run"]["status"], "succeeded", "{}", stderr(&out));
    let data = &record["steps"][0]["output"];
    let mut lines = cur_lines(&data_dir.join("billing/cur.csv"));
    lines.extend(focus_lines(&data_dir.join("billing/focus.csv")));
    let e = expected(&lines, &utilization(&data_dir.join("usage/utilization.csv")));
    compare(data, &e);
    let escalated: BTreeSet<String> = record["escalations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            assert_eq!(x["severity"], "high");
            x["message"].as_str().unwrap().to_string()
        })
        .collect();
    let wanted: BTreeSet<String> = data["week_over_week"]["increases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "audit: {} {} cost rose {}% week over week",
                i["scope"].as_str().unwrap(),
                i["name"].as_str().unwrap(),
                i["change_percent"].as_f64().unwrap()
            )
        })
        .collect();
    assert!(!wanted.is_empty());
    assert_eq!(escalated, wanted);
}

#[test]
fn a_file_larger_than_the_memory_limit_is_streamed_within_it() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let billing = dir.path().join("data/billing");
    std::fs::create_dir_all(&billing).unwrap();
    let mut file = std::io::BufWriter::new(std::fs::File::create(billing.join("focus.csv")).unwrap());
    writeln!(file, "ChargePeriodStart,ChargeCategory,ServiceName,SubAccountId,ResourceId,PricingCategory,BilledCost,BillingCurrency,Tags").unwrap();
    let rows = 250_000u64;
    for i in 0..rows {
        let day = 1 + i * 30 / rows;
        writeln!(
            file,
            "2024-09-{day:02}T00:00:00Z,Usage,Amazon EC2,acct-{},res-{},Standard,0.25,USD,\"{{\"\"team\"\": \"\"team-{}\"\", \"\"note\"\": \"\"{}\"\"}}\"",
            i % 20,
            i % 2000,
            i % 37,
            "x".repeat(60)
        )
        .unwrap();
    }
    file.flush().unwrap();
    drop(file);
    let size = std::fs::metadata(billing.join("focus.csv")).unwrap().len();
    assert!(size > 40 << 20, "{size} bytes");

    let grant = format!("{}:/cost:ro", dir.path().join("data").display());
    let args = ["plugins", "call", "cost-audit", "--dir", &grant, "--memory", "24MiB", "--timeout", "5m", "--record"];
    let out = tend(&[&args[..], &["--config", r#"{"billing": ["/cost/billing"]}"#]].concat(), dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let record = json_out(&out);
    assert_eq!(record["output"]["data"]["rows"], rows);
    assert_eq!(record["output"]["data"]["totals"][0]["cost"], 62_500.0);
    let peak = record["peak_memory_bytes"].as_u64().unwrap();
    assert!(peak <= 24 << 20 && peak < size / 2, "peak {peak} bytes for a file of {size}");
}
