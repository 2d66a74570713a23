//! Unit tests of the audit: each recommendation with its saving, currencies,
//! credits, week over week, and the plugin reading real files.

use super::*;
use crate::audit::Kind;
use crate::formats::BillingReader;
use crate::usage::{Usage, UsageMap};

fn levels() -> Levels {
    let config: Config = serde_json::from_value(json!({"billing": ["/x"]})).unwrap();
    config.levels()
}

/// Audits generic CSV lines (`date,service,cost,currency,account,resource_id,tags,pricing,charge`).
fn report(lines: &[String], usage: &UsageMap, levels: &Levels) -> Report {
    let text = format!("date,service,cost,currency,account,resource_id,tags,pricing,charge\n{}\n", lines.join("\n"));
    let mut reader = BillingReader::new("/b/g.csv", text.as_bytes()).unwrap();
    let mut audit = Audit::default();
    while reader.next(|row, line| audit.add(row, || format!("/b/g.csv:{line}"))).unwrap() {}
    audit.finish(levels, usage)
}

/// 30 days of September 2024 for `resource`, `cost(day)` a day.
fn month(resource: &str, tags: &str, pricing: &str, cost: impl Fn(u32) -> f64) -> Vec<String> {
    (1..=30)
        .map(|d| format!("2024-09-{d:02},compute,{},USD,acct-1,{resource},\"{tags}\",{pricing},usage", cost(d)))
        .collect()
}

fn only(report: &Report) -> &audit::Recommendation {
    assert_eq!(report.recommendations.len(), 1, "{:#?}", report.recommendations);
    &report.recommendations[0]
}

#[test]
fn an_idle_resource_saves_its_whole_monthly_cost() {
    let usage = UsageMap::from([(
        "i-idle".to_string(),
        Usage { cpu: vec![1.0; 10], memory: vec![50.0; 10], request_samples: 10, ..Usage::default() },
    )]);
    let r = report(&month("i-idle", "{}", "on_demand", |_| 4.0), &usage, &levels());
    let rec = only(&r);
    assert_eq!((rec.kind, rec.monthly_cost, rec.saving), (Kind::Idle, 120.0, 120.0));
    assert_eq!(
        rec.evidence,
        "no requests in 10 samples from 2024-09-01 to 2024-09-30; it cost USD 120.00 over those 30 days (USD 120.00/month)"
    );
}

#[test]
fn rightsizing_saves_half_under_both_levels_and_a_quarter_under_one() {
    let low =
        Usage { cpu: vec![10.0; 20], memory: vec![20.0; 20], requests: 5.0, request_samples: 20, ..Usage::default() };
    let cpu_only = Usage { memory: vec![70.0; 20], ..low.clone() };
    let busy = Usage { cpu: vec![80.0; 20], memory: vec![70.0; 20], ..low.clone() };
    let usage = UsageMap::from([("a".to_string(), low), ("b".to_string(), cpu_only), ("c".to_string(), busy)]);
    let mut lines = month("a", "{}", "NULL", |_| 2.0);
    lines.extend(month("b", "{}", "NULL", |_| 2.0));
    lines.extend(month("c", "{}", "NULL", f64::from));
    let r = report(&lines, &usage, &levels());
    let got: Vec<_> = r.recommendations.iter().map(|r| (r.resource.as_str(), r.kind, r.saving)).collect();
    assert_eq!(got, [("a", Kind::Rightsizing, 30.0), ("b", Kind::Rightsizing, 15.0)]);
    assert_eq!(
        r.recommendations[1].evidence,
        "p95 CPU 10.0% is under 30% (20 samples); p95 memory 70.0% is not under 40% (20 samples) from 2024-09-01 to \
         2024-09-30; USD 60.00/month, 25% of it saved by a smaller size"
    );
    assert_eq!(r.savings, [audit::Saving { currency: "USD".into(), monthly: 45.0 }]);
}

#[test]
fn a_fault_tolerant_workload_on_demand_is_a_spot_candidate() {
    let mut levels = levels();
    levels.spot_tags = BTreeMap::from([("workload".to_string(), vec!["batch".to_string(), "ci".to_string()])]);
    let mut lines = month("batch-1", "{\"\"workload\"\": \"\"batch\"\"}", "on_demand", |d| f64::from(d % 3));
    lines.extend(month("spot-1", "{\"\"workload\"\": \"\"batch\"\"}", "spot", |_| 1.0));
    lines.extend(month("web-1", "{\"\"workload\"\": \"\"web\"\"}", "on_demand", |d| f64::from(d % 3)));
    let r = report(&lines, &UsageMap::new(), &levels);
    let rec = only(&r);
    assert_eq!((rec.kind, rec.resource.as_str(), rec.monthly_cost, rec.saving), (Kind::Spot, "batch-1", 30.0, 21.0));
    assert_eq!(
        rec.evidence,
        "tag workload=batch marks it fault-tolerant, yet it runs on on-demand pricing: USD 30.00/month; spot saves 70%"
    );
}

#[test]
fn steady_on_demand_use_is_a_commitment_candidate_and_spiky_use_is_not() {
    let mut lines = month("db-1", "{}", "on_demand", |d| if d % 2 == 0 { 11.0 } else { 9.0 });
    lines.extend(month("db-2", "{}", "on_demand", |d| if d % 2 == 0 { 20.0 } else { 1.0 }));
    lines.extend(month("db-3", "{}", "commitment", |_| 10.0));
    let r = report(&lines, &UsageMap::new(), &levels());
    let rec = only(&r);
    assert_eq!(
        (rec.kind, rec.resource.as_str(), rec.monthly_cost, rec.saving),
        (Kind::Commitment, "db-1", 300.0, 90.0)
    );
    assert_eq!(
        rec.evidence,
        "steady on-demand use every day from 2024-09-01 to 2024-09-30: USD 10.00 a day on average, varying 10.0% (at \
         most 20%); USD 300.00/month, a commitment saves 30%"
    );
}

#[test]
fn currencies_are_never_summed_and_credits_are_not_savings() {
    let lines = [
        "2024-09-01,compute,10,USD,a,i-1,NULL,on_demand,usage".to_string(),
        "2024-09-01,compute,20,EUR,b,i-2,NULL,on_demand,usage".to_string(),
        "2024-09-02,compute,-4,USD,a,NULL,NULL,NULL,credit".to_string(),
        "2024-09-02,support,-1.5,EUR,b,NULL,NULL,NULL,refund".to_string(),
        "2024-09-03,compute,-2,USD,a,i-1,NULL,on_demand,usage".to_string(),
    ];
    let r = report(&lines, &UsageMap::new(), &levels());
    let totals: Vec<_> = r.totals.iter().map(|t| (t.currency.as_str(), t.cost, t.charges, t.credits, t.rows)).collect();
    assert_eq!(totals, [("EUR", 18.5, 20.0, -1.5, 2), ("USD", 4.0, 10.0, -6.0, 3)]);
    assert_eq!(r.credits.count, 3);
    let listed: Vec<_> = r.credits.listed.iter().map(|c| (c.at.as_str(), c.kind, c.amount)).collect();
    assert_eq!(
        listed,
        [("/b/g.csv:4", "credit", -4.0), ("/b/g.csv:5", "refund", -1.5), ("/b/g.csv:6", "negative usage", -2.0)]
    );
    assert!(r.recommendations.is_empty() && r.savings.is_empty());
    let services: Vec<_> = r.top.services.iter().map(|d| (d.currency.as_str(), d.name.as_str(), d.cost)).collect();
    assert_eq!(services, [("EUR", "compute", 20.0), ("EUR", "support", -1.5), ("USD", "compute", 4.0)]);
}

#[test]
fn a_week_over_week_increase_over_the_level_is_a_high_finding() {
    let mut lines: Vec<String> = (1..=14)
        .map(|d| format!("2024-09-{d:02},storage,{},USD,acct-9,NULL,NULL,NULL,usage", if d <= 7 { 10 } else { 14 }))
        .collect();
    lines.extend((1..=14).map(|d| format!("2024-09-{d:02},compute,{},USD,acct-9,NULL,NULL,NULL,usage", 10)));
    let r = report(&lines, &UsageMap::new(), &levels());
    let got: Vec<_> = r
        .week_over_week
        .increases
        .iter()
        .map(|i| (i.scope, i.name.as_str(), i.previous, i.current, i.change_percent))
        .collect();
    assert_eq!(got, [("service", "storage", 70.0, 98.0, 40.0)]);
    let compared = r.week_over_week.compared.as_ref().unwrap();
    assert_eq!((compared.previous.start.as_str(), compared.current.end.as_str()), ("2024-09-01", "2024-09-14"));
    let data = Data {
        files: Vec::new(),
        report: r,
        utilization: UtilizationRead { files: Vec::new(), from_series: false, resources: 0 },
    };
    let (_, findings) = metrics_and_findings(&data);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].severity, Severity::High);
    assert_eq!(findings[0].title, "service storage cost rose 40% week over week");
    assert_eq!(
        findings[0].detail,
        "service storage: USD 98.00 in the latest 7 days against USD 70.00 the 7 days before (more than 30%)"
    );
    let short = report(&lines[..3], &UsageMap::new(), &levels());
    assert_eq!(short.week_over_week.note.as_deref(), Some("3 days of billing data; 14 are needed"));
}

/// A fresh directory under the system's temporary directory.
fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cost-audit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_plugin_reads_every_csv_of_a_directory_in_order_with_its_format() {
    let dir = temp_dir("dir");
    std::fs::write(dir.join("b.csv"), "date,service,cost,currency\n2024-09-01,s,1,USD\n2024-09-02,s,2,USD\n").unwrap();
    std::fs::write(
        dir.join("a.csv"),
        "BilledCost,BillingCurrency,ChargePeriodStart,ChargeCategory,ServiceName\n3,EUR,2024-09-01T00:00:00Z,Usage,x\n",
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "not billing").unwrap();
    let d = dir.display().to_string();
    let ctx = StepContext { run_id: "r".into(), step_id: "s".into(), runbook: "b".into(), attempt: 1, iteration: 0 };
    let out = CostAudit::run(ctx.clone(), json!({"billing": [d]}).to_string(), String::new()).unwrap();
    let data: Value = serde_json::from_str(&out.data).unwrap();
    assert_eq!(
        data["files"],
        json!([{"path": format!("{d}/a.csv"), "format": "focus", "rows": 1}, {"path": format!("{d}/b.csv"), "format": "generic", "rows": 2}])
    );
    assert_eq!(data["totals"][0]["currency"], "EUR");
    let totals: Vec<_> =
        out.metrics.iter().filter(|m| m.name == "cost_total").map(|m| (m.labels[0].1.clone(), m.value)).collect();
    assert_eq!(totals, [("EUR".to_string(), 3.0), ("USD".to_string(), 3.0)]);

    let empty = temp_dir("empty");
    let e = CostAudit::run(ctx.clone(), json!({"billing": [empty.display().to_string()]}).to_string(), String::new())
        .unwrap_err();
    let expected = format!("field `billing`: {:?} has no .csv files", empty.display().to_string());
    assert!(matches!(&e, StepError::Failed(m) if *m == expected), "{e:?}");
    let e = CostAudit::run(ctx, json!({"billing": ["/nowhere/x.csv"]}).to_string(), String::new()).unwrap_err();
    assert!(
        matches!(&e, StepError::Failed(m) if m.starts_with("field `billing`: cannot open \"/nowhere/x.csv\": ")),
        "{e:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(empty);
}

#[test]
fn the_config_schema_is_closed_and_documents_every_rule() {
    let info = CostAudit::describe();
    assert_eq!((info.name.as_str(), info.capabilities.as_slice()), ("cost-audit", ["fs".to_string()].as_slice()));
    let schema: Value = serde_json::from_str(&info.config_schema.unwrap()).unwrap();
    assert_eq!(schema["required"], json!(["billing"]));
    assert_eq!(schema["properties"]["rules"]["additionalProperties"], false);
    let ctx = StepContext { run_id: "r".into(), step_id: "s".into(), runbook: "b".into(), attempt: 1, iteration: 0 };
    let e =
        CostAudit::run(ctx, json!({"billing": ["/x"], "rules": {"cpu": 3}}).to_string(), String::new()).unwrap_err();
    assert!(matches!(&e, StepError::InvalidConfig(m) if m.starts_with("field `rules.cpu`: unknown field")), "{e:?}");
}
