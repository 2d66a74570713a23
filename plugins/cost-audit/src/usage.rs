//! Utilization of resources: from a CSV
//! (`resource_id,timestamp,cpu_percent,memory_percent,requests[,connections]`)
//! or from a prometheus-query step's output. Must not judge anything: it
//! only collects samples per resource for `audit.rs`.

use crate::formats::{is_null, parse_day};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;

/// The columns a utilization CSV must have (in any order); `connections` may follow.
pub const COLUMNS: [&str; 5] = ["resource_id", "timestamp", "cpu_percent", "memory_percent", "requests"];

/// The prometheus-query names taken as utilization (other queries are ignored).
pub const QUERIES: [&str; 4] = ["cpu_percent", "memory_percent", "requests", "connections"];

/// What is known of one resource's use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// CPU samples, in percent.
    pub cpu: Vec<f32>,
    /// Memory samples, in percent.
    pub memory: Vec<f32>,
    /// Requests over the samples that said, and how many said.
    pub requests: f64,
    /// How many samples gave requests.
    pub request_samples: usize,
    /// Connections over the samples that said.
    pub connections: f64,
    /// How many samples gave connections.
    pub connection_samples: usize,
}

/// Samples per resource id.
pub type UsageMap = HashMap<String, Usage>;

/// Reads a utilization CSV named `path`, keeping samples whose day lies in
/// `window` (first and last day, inclusive).
pub fn read_csv(path: &str, reader: impl Read, window: (i64, i64), into: &mut UsageMap) -> Result<(), String> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| format!("{path}: {e}"))?
        .iter()
        .enumerate()
        .map(|(i, n)| if i == 0 { n.trim_start_matches('\u{feff}') } else { n }.trim().to_string())
        .collect();
    let find = |name: &str| names.iter().position(|n| n == name);
    let missing: Vec<String> = COLUMNS.iter().filter(|c| find(c).is_none()).map(|c| format!("{c:?}")).collect();
    if !missing.is_empty() {
        return Err(format!(
            "{path}: the utilization header lacks {}; expected resource_id,timestamp,cpu_percent,memory_percent,requests[,connections]",
            missing.join(", ")
        ));
    }
    let at = |name: &str| find(name).unwrap_or_default();
    let (id, time, cpu, memory, requests, connections) = (
        at("resource_id"),
        at("timestamp"),
        at("cpu_percent"),
        at("memory_percent"),
        at("requests"),
        find("connections"),
    );
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => return Err(format!("{path}:{}: {e}", e.position().map_or(0, |p| p.line()))),
        }
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != names.len() {
            return Err(format!(
                "{path}:{line}: the line has {} fields, but the header has {}",
                record.len(),
                names.len()
            ));
        }
        let error = |i: usize, what: &str| format!("{path}:{line}: column {:?}: {:?} {what}", names[i], &record[i]);
        let number = |i: usize| -> Result<Option<f64>, String> {
            if is_null(&record[i]) {
                return Ok(None);
            }
            match record[i].trim().parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
                _ => Err(error(i, "is not a number of 0 or more")),
            }
        };
        if is_null(&record[id]) {
            return Err(error(id, "is null; a value is required"));
        }
        let day = parse_day(&record[time])
            .ok_or_else(|| error(time, "is not a time; expected an RFC 3339 time, a date or Unix seconds"))?;
        let sample = Sample {
            cpu: number(cpu)?,
            memory: number(memory)?,
            requests: number(requests)?,
            connections: connections.map(number).transpose()?.flatten(),
        };
        if (window.0..=window.1).contains(&day) {
            sample.add(into.entry(record[id].trim().to_string()).or_default());
        }
    }
}

/// One sample of one resource.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    cpu: Option<f64>,
    memory: Option<f64>,
    requests: Option<f64>,
    connections: Option<f64>,
}

impl Sample {
    fn add(self, usage: &mut Usage) {
        if let Some(v) = self.cpu {
            usage.cpu.push(v as f32);
        }
        if let Some(v) = self.memory {
            usage.memory.push(v as f32);
        }
        if let Some(v) = self.requests {
            usage.requests += v;
            usage.request_samples += 1;
        }
        if let Some(v) = self.connections {
            usage.connections += v;
            usage.connection_samples += 1;
        }
    }
}

/// Takes the utilization out of a prometheus-query step's output: each
/// query named `cpu_percent`, `memory_percent`, `requests` or
/// `connections`; each series is a resource named by its `label` label;
/// every sample of a range query (or the one value of an instant query) is
/// a sample. Samples are taken as they come: the query's range is the
/// window. Non-numbers (`"NaN"`) are skipped.
pub fn from_prometheus(output: &Value, label: &str, into: &mut UsageMap) -> Result<(), String> {
    let field = "field `utilization_series`";
    let queries = output
        .get("queries")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{field}: expected the output of a prometheus-query step (an object with `queries`)"))?;
    for query in queries {
        let Some(name) = query.get("name").and_then(Value::as_str).filter(|n| QUERIES.contains(n)) else {
            continue;
        };
        for series in query.get("series").and_then(Value::as_array).into_iter().flatten() {
            let Some(id) = series.pointer(&format!("/labels/{label}")).and_then(Value::as_str) else {
                return Err(format!(
                    "{field}: a series of query {name:?} has no {label:?} label: {}",
                    series.get("labels").unwrap_or(&Value::Null)
                ));
            };
            let values: Vec<f64> = match (series.get("values"), series.get("value")) {
                (Some(Value::Array(samples)), _) => samples.iter().filter_map(|s| s.get(1)?.as_f64()).collect(),
                (_, Some(v)) => v.as_f64().into_iter().collect(),
                _ => Vec::new(),
            };
            let usage = into.entry(id.to_string()).or_default();
            for v in values {
                let mut sample = Sample::default();
                match name {
                    "cpu_percent" => sample.cpu = Some(v),
                    "memory_percent" => sample.memory = Some(v),
                    "requests" => sample.requests = Some(v),
                    _ => sample.connections = Some(v),
                }
                sample.add(usage);
            }
        }
    }
    Ok(())
}

/// The 95th percentile of `samples` (nearest rank), or none without samples.
pub fn p95(samples: &[f32]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f32::total_cmp);
    let rank = ((0.95 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(f64::from(sorted[rank - 1]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_utilization_csv_keeps_the_samples_of_the_window() {
        let text = "resource_id,timestamp,cpu_percent,memory_percent,requests,connections\n\
                    i-1,2024-09-01T00:00:00Z,10,50,0,NULL\n\
                    i-1,2024-09-02T00:00:00Z,20,NULL,5,0\n\
                    i-1,2024-08-01T00:00:00Z,99,99,99,99\n";
        let mut map = UsageMap::new();
        let window = (parse_day("2024-09-01").unwrap(), parse_day("2024-09-30").unwrap());
        read_csv("/u.csv", text.as_bytes(), window, &mut map).unwrap();
        let u = &map["i-1"];
        assert_eq!((u.cpu.clone(), u.memory.clone()), (vec![10.0, 20.0], vec![50.0]));
        assert_eq!((u.requests, u.request_samples, u.connections, u.connection_samples), (5.0, 2, 0.0, 1));
    }

    #[test]
    fn utilization_errors_name_the_file_line_and_column() {
        let mut map = UsageMap::new();
        let e = read_csv("/u.csv", "resource_id,time,cpu_percent\n".as_bytes(), (0, 1), &mut map).unwrap_err();
        assert_eq!(
            e,
            "/u.csv: the utilization header lacks \"timestamp\", \"memory_percent\", \"requests\"; expected resource_id,timestamp,cpu_percent,memory_percent,requests[,connections]"
        );
        let text = "resource_id,timestamp,cpu_percent,memory_percent,requests\ni-1,2024-09-01,-3,1,1\n";
        assert_eq!(
            read_csv("/u.csv", text.as_bytes(), (0, 99_999), &mut map).unwrap_err(),
            "/u.csv:2: column \"cpu_percent\": \"-3\" is not a number of 0 or more"
        );
        let text = "resource_id,timestamp,cpu_percent,memory_percent,requests\ni-1,yesterday,3,1,1\n";
        assert_eq!(
            read_csv("/u.csv", text.as_bytes(), (0, 99_999), &mut map).unwrap_err(),
            "/u.csv:2: column \"timestamp\": \"yesterday\" is not a time; expected an RFC 3339 time, a date or Unix seconds"
        );
    }

    #[test]
    fn prometheus_series_map_to_resources_by_label() {
        let output = json!({"queries": [
            {"name": "cpu_percent", "series": [{"labels": {"resource_id": "i-1"}, "values": [[1, "NaN"], [2, 12.5], [3, 20]]}]},
            {"name": "requests", "series": [{"labels": {"resource_id": "i-1"}, "value": 0}]},
            {"name": "other", "series": [{"labels": {}, "value": 1}]},
        ]});
        let mut map = UsageMap::new();
        from_prometheus(&output, "resource_id", &mut map).unwrap();
        assert_eq!(map["i-1"].cpu, vec![12.5, 20.0]);
        assert_eq!((map["i-1"].requests, map["i-1"].request_samples), (0.0, 1));
        let bad = json!({"queries": [{"name": "cpu_percent", "series": [{"labels": {"instance": "a"}, "value": 1}]}]});
        assert_eq!(
            from_prometheus(&bad, "resource_id", &mut map).unwrap_err(),
            "field `utilization_series`: a series of query \"cpu_percent\" has no \"resource_id\" label: {\"instance\":\"a\"}"
        );
        assert_eq!(p95(&[1.0, 2.0, 3.0, 4.0, 100.0]), Some(100.0));
        assert_eq!(p95(&(1..=100).map(|v| v as f32).collect::<Vec<_>>()), Some(95.0));
    }
}
