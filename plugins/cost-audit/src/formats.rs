//! The billing export formats cost-audit reads, detected from the header,
//! and the streaming reader that turns each line into a [`Row`].
//!
//! A file is read record by record through the `csv` crate (one record
//! buffer reused for every line), never whole, so a 100 MB export costs the
//! size of one line plus the aggregates. Every problem in a value is an
//! error naming the file, the line and the column, quoting the value.
//! Must not aggregate or judge anything: that is `audit.rs`.

use std::collections::BTreeMap;
use std::io::Read;

/// A billing export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// FinOps FOCUS 1.0 / 1.1.
    Focus,
    /// AWS Cost and Usage Report, legacy (`lineItem/UnblendedCost`).
    Cur,
    /// AWS CUR 2.0 (`line_item_unblended_cost`).
    Cur2,
    /// tend's generic CSV: `date,service,cost,currency[,account,resource_id,tags,pricing,charge]`.
    Generic,
}

impl Format {
    /// Every format, in the order detection tries them.
    pub const ALL: [Format; 4] = [Format::Focus, Format::Cur, Format::Cur2, Format::Generic];

    /// The name in the output (`"focus"`, `"aws-cur"`, `"aws-cur-2.0"`, `"generic"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Focus => "focus",
            Format::Cur => "aws-cur",
            Format::Cur2 => "aws-cur-2.0",
            Format::Generic => "generic",
        }
    }

    /// The name in messages.
    pub fn label(self) -> &'static str {
        match self {
            Format::Focus => "FOCUS 1.0/1.1",
            Format::Cur => "AWS CUR",
            Format::Cur2 => "AWS CUR 2.0",
            Format::Generic => "generic",
        }
    }

    /// The columns a header must have to be this format.
    pub fn required(self) -> &'static [&'static str] {
        match self {
            Format::Focus => &["BilledCost", "BillingCurrency", "ChargePeriodStart", "ChargeCategory", "ServiceName"],
            Format::Cur => &[
                "lineItem/UnblendedCost",
                "lineItem/CurrencyCode",
                "lineItem/UsageStartDate",
                "lineItem/LineItemType",
                "lineItem/UsageAccountId",
                "product/ProductName",
            ],
            Format::Cur2 => &[
                "line_item_unblended_cost",
                "line_item_currency_code",
                "line_item_usage_start_date",
                "line_item_line_item_type",
                "line_item_usage_account_id",
                "line_item_product_code",
            ],
            Format::Generic => &["date", "service", "cost", "currency"],
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a line charges for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Charge {
    /// Usage of a resource.
    Usage,
    /// A purchase or fee (a commitment, a support plan).
    Purchase,
    /// Tax.
    Tax,
    /// A credit.
    Credit,
    /// A refund.
    Refund,
    /// A correction or discount.
    Adjustment,
    /// Anything else the export names.
    Other,
}

impl Charge {
    /// The name in the output.
    pub fn as_str(self) -> &'static str {
        match self {
            Charge::Usage => "usage",
            Charge::Purchase => "purchase",
            Charge::Tax => "tax",
            Charge::Credit => "credit",
            Charge::Refund => "refund",
            Charge::Adjustment => "adjustment",
            Charge::Other => "other",
        }
    }

    /// From FOCUS `ChargeCategory`, CUR `LineItemType` or the generic `charge`.
    fn parse(text: &str) -> Charge {
        match text.to_ascii_lowercase().as_str() {
            "usage" | "discountedusage" | "savingsplancoveredusage" => Charge::Usage,
            "purchase" | "fee" | "rifee" | "savingsplanrecurringfee" | "savingsplanupfrontfee" => Charge::Purchase,
            "tax" => Charge::Tax,
            "credit" => Charge::Credit,
            "refund" => Charge::Refund,
            "adjustment" | "discount" | "bundleddiscount" | "edpdiscount" | "savingsplannegation" => Charge::Adjustment,
            _ => Charge::Other,
        }
    }
}

/// How a line is priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pricing {
    /// On-demand (list) pricing: FOCUS `Standard`, CUR `OnDemand`.
    OnDemand,
    /// Spot / dynamic pricing.
    Spot,
    /// Covered by a commitment (reservation, savings plan, committed use).
    Commitment,
    /// Not said, or something else.
    Unknown,
}

impl Pricing {
    fn parse(text: &str) -> Pricing {
        match text.to_ascii_lowercase().replace(['-', '_', ' '], "").as_str() {
            "standard" | "ondemand" => Pricing::OnDemand,
            "dynamic" | "spot" => Pricing::Spot,
            "committed" | "commitment" | "commitmentbased" | "reserved" => Pricing::Commitment,
            _ => Pricing::Unknown,
        }
    }
}

/// One billing line, normalized.
#[derive(Debug, Clone, PartialEq)]
pub struct Row<'a> {
    /// The usage day, in days since 1970-01-01.
    pub day: i64,
    /// What is billed (FOCUS `BilledCost`, CUR unblended cost), maybe negative.
    pub cost: f64,
    /// FOCUS `EffectiveCost`, when the export has it.
    pub effective: Option<f64>,
    /// FOCUS `ListCost`, when the export has it.
    pub list: Option<f64>,
    /// ISO currency code.
    pub currency: &'a str,
    /// Service name, `(none)` when null.
    pub service: &'a str,
    /// Account (FOCUS sub-account, AWS usage account), `(none)` when null.
    pub account: &'a str,
    /// Resource id, when the line has one.
    pub resource: Option<&'a str>,
    /// The line's tags.
    pub tags: Vec<(String, String)>,
    /// How the line is priced.
    pub pricing: Pricing,
    /// What the line charges for.
    pub charge: Charge,
}

/// Shown for a null service or account.
pub const NONE: &str = "(none)";

/// Where each value is in a record of one format.
#[derive(Debug, Clone)]
struct Layout {
    format: Format,
    names: Vec<String>,
    cost: usize,
    currency: usize,
    date: usize,
    service: Vec<usize>,
    account: Option<usize>,
    resource: Option<usize>,
    tags: Tags,
    pricing: Option<usize>,
    charge: Option<usize>,
    commitment: Option<usize>,
    effective: Option<usize>,
    list: Option<usize>,
}

/// Where a format keeps its tags.
#[derive(Debug, Clone)]
enum Tags {
    None,
    /// One column holding a JSON object; keys lose this prefix.
    Json(usize, &'static str),
    /// One column per tag: (index, tag key).
    Columns(Vec<(usize, String)>),
}

impl Layout {
    fn detect(path: &str, names: Vec<String>) -> Result<Layout, String> {
        let find = |name: &str| names.iter().position(|n| n == name);
        let Some(format) = Format::ALL.into_iter().find(|f| f.required().iter().all(|c| find(c).is_some())) else {
            return Err(not_a_format(path, &names));
        };
        let at = |name: &str| find(name).unwrap_or_default();
        let layout = match format {
            Format::Focus => Layout {
                cost: at("BilledCost"),
                currency: at("BillingCurrency"),
                date: at("ChargePeriodStart"),
                service: vec![at("ServiceName")],
                account: find("SubAccountId"),
                resource: find("ResourceId"),
                tags: find("Tags").map_or(Tags::None, |i| Tags::Json(i, "")),
                pricing: find("PricingCategory"),
                charge: find("ChargeCategory"),
                commitment: find("CommitmentDiscountId"),
                effective: find("EffectiveCost"),
                list: find("ListCost"),
                format,
                names,
            },
            Format::Cur => {
                let tags = names
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| Some((i, n.strip_prefix("resourceTags/")?)))
                    .map(|(i, key)| (i, key.strip_prefix("user:").unwrap_or(key).to_string()))
                    .collect();
                Layout {
                    cost: at("lineItem/UnblendedCost"),
                    currency: at("lineItem/CurrencyCode"),
                    date: at("lineItem/UsageStartDate"),
                    service: [find("product/ProductName"), find("lineItem/ProductCode")]
                        .into_iter()
                        .flatten()
                        .collect(),
                    account: find("lineItem/UsageAccountId"),
                    resource: find("lineItem/ResourceId"),
                    tags: Tags::Columns(tags),
                    pricing: find("pricing/term"),
                    charge: find("lineItem/LineItemType"),
                    commitment: None,
                    effective: None,
                    list: None,
                    format,
                    names,
                }
            }
            Format::Cur2 => Layout {
                cost: at("line_item_unblended_cost"),
                currency: at("line_item_currency_code"),
                date: at("line_item_usage_start_date"),
                service: [find("product_product_name"), find("line_item_product_code")].into_iter().flatten().collect(),
                account: find("line_item_usage_account_id"),
                resource: find("line_item_resource_id"),
                tags: find("resource_tags").map_or(Tags::None, |i| Tags::Json(i, "user_")),
                pricing: find("pricing_term"),
                charge: find("line_item_line_item_type"),
                commitment: None,
                effective: None,
                list: None,
                format,
                names,
            },
            Format::Generic => Layout {
                cost: at("cost"),
                currency: at("currency"),
                date: at("date"),
                service: vec![at("service")],
                account: find("account"),
                resource: find("resource_id"),
                tags: find("tags").map_or(Tags::None, |i| Tags::Json(i, "")),
                pricing: find("pricing"),
                charge: find("charge"),
                commitment: None,
                effective: None,
                list: None,
                format,
                names,
            },
        };
        Ok(layout)
    }
}

/// The error for a header that is no known format: the closest format (the
/// one with the most of its required columns) and what it lacks.
fn not_a_format(path: &str, names: &[String]) -> String {
    let missing =
        |f: Format| -> Vec<&str> { f.required().iter().copied().filter(|c| !names.iter().any(|n| n == c)).collect() };
    let score = |f: Format| f.required().len() - missing(f).len();
    let mut closest = Format::Focus;
    for f in Format::ALL {
        if score(f) > score(closest) {
            closest = f;
        }
    }
    let lacks: Vec<String> = missing(closest).iter().map(|c| format!("{c:?}")).collect();
    format!(
        "{path}: the header is none of the known formats (FOCUS 1.0/1.1, AWS CUR, AWS CUR 2.0, generic); the closest \
         is {}, which lacks {}",
        closest.label(),
        lacks.join(", ")
    )
}

/// A null value: empty, or `NULL` written as text (any case).
pub fn is_null(value: &str) -> bool {
    let v = value.trim();
    v.is_empty() || v.eq_ignore_ascii_case("null")
}

/// Reads one billing file line by line.
pub struct BillingReader<R: Read> {
    path: String,
    reader: csv::Reader<R>,
    layout: Layout,
    record: csv::StringRecord,
}

impl<R: Read> BillingReader<R> {
    /// Reads the header of `reader` (named `path` in messages) and detects the format.
    pub fn new(path: &str, reader: R) -> Result<Self, String> {
        let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(reader);
        let mut header = csv::StringRecord::new();
        match reader.read_record(&mut header) {
            Ok(true) => {}
            Ok(false) => return Err(format!("{path}: the file is empty; expected a header line")),
            Err(e) => return Err(csv_error(path, &e)),
        }
        let names = header
            .iter()
            .enumerate()
            .map(|(i, n)| if i == 0 { n.trim_start_matches('\u{feff}') } else { n }.trim().to_string())
            .collect();
        let layout = Layout::detect(path, names)?;
        Ok(BillingReader { path: path.to_string(), reader, layout, record: csv::StringRecord::new() })
    }

    /// The detected format.
    pub fn format(&self) -> Format {
        self.layout.format
    }

    /// Reads the next line into a [`Row`] and hands it to `visit` with its
    /// line number; `false` at the end of the file.
    pub fn next(&mut self, visit: impl FnOnce(&Row<'_>, u64)) -> Result<bool, String> {
        loop {
            match self.reader.read_record(&mut self.record) {
                Ok(false) => return Ok(false),
                Ok(true) => {}
                Err(e) => return Err(csv_error(&self.path, &e)),
            }
            // A blank line at the end (or anywhere) is no row.
            if self.record.len() == 1 && self.record[0].trim().is_empty() {
                continue;
            }
            break;
        }
        let line = self.record.position().map_or(0, |p| p.line());
        let row = parse_row(&self.layout, &self.record, &self.path, line)?;
        visit(&row, line);
        Ok(true)
    }
}

fn csv_error(path: &str, e: &csv::Error) -> String {
    match (e.position(), e.kind()) {
        (Some(p), csv::ErrorKind::Utf8 { err, .. }) => {
            format!("{path}:{}: field {} is not valid UTF-8", p.line(), err.field() + 1)
        }
        (Some(p), _) => format!("{path}:{}: {e}", p.line()),
        (None, csv::ErrorKind::Io(io)) => format!("{path}: cannot read: {io}"),
        (None, _) => format!("{path}: {e}"),
    }
}

/// One value of a record, with the context its errors name.
struct Cell<'r> {
    path: &'r str,
    line: u64,
    column: &'r str,
    value: &'r str,
}

impl<'r> Cell<'r> {
    fn error(&self, what: &str) -> String {
        format!("{}:{}: column {:?}: {:?} {what}", self.path, self.line, self.column, self.value)
    }

    fn required(&self) -> Result<&'r str, String> {
        if is_null(self.value) {
            return Err(self.error("is null; a value is required"));
        }
        Ok(self.value.trim())
    }

    fn number(&self) -> Result<f64, String> {
        let text = self.required()?;
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(self.error("is not a number")),
        }
    }

    fn optional_number(&self) -> Result<Option<f64>, String> {
        if is_null(self.value) { Ok(None) } else { self.number().map(Some) }
    }

    fn day(&self) -> Result<i64, String> {
        let text = self.required()?;
        parse_day(text).ok_or_else(|| self.error("is not a date; expected YYYY-MM-DD or an RFC 3339 time"))
    }
}

fn parse_row<'r>(
    layout: &'r Layout,
    record: &'r csv::StringRecord,
    path: &'r str,
    line: u64,
) -> Result<Row<'r>, String> {
    if record.len() != layout.names.len() {
        return Err(format!(
            "{path}:{line}: the line has {} fields, but the header has {}",
            record.len(),
            layout.names.len()
        ));
    }
    let cell = |i: usize| Cell { path, line, column: &layout.names[i], value: &record[i] };
    let optional = |i: Option<usize>| i.map(|i| &record[i]).filter(|v| !is_null(v)).map(str::trim);
    let cost = cell(layout.cost).number()?;
    let currency = cell(layout.currency).required()?;
    let day = cell(layout.date).day()?;
    let service = layout.service.iter().find_map(|&i| optional(Some(i))).unwrap_or(NONE);
    let account = optional(layout.account).unwrap_or(NONE);
    let resource = optional(layout.resource);
    let charge = optional(layout.charge).map_or(Charge::Usage, Charge::parse);
    let mut pricing = optional(layout.pricing).map_or(Pricing::Unknown, Pricing::parse);
    let covered = matches!(
        optional(layout.charge).map(str::to_ascii_lowercase).as_deref(),
        Some("discountedusage" | "savingsplancoveredusage")
    );
    if optional(layout.commitment).is_some() || covered {
        pricing = Pricing::Commitment;
    }
    let effective = layout.effective.map(|i| cell(i).optional_number()).transpose()?.flatten();
    let list = layout.list.map(|i| cell(i).optional_number()).transpose()?.flatten();
    let tags = match &layout.tags {
        Tags::None => Vec::new(),
        Tags::Json(i, prefix) => json_tags(&cell(*i), prefix)?,
        Tags::Columns(columns) => {
            columns.iter().filter_map(|(i, key)| optional(Some(*i)).map(|v| (key.clone(), v.to_string()))).collect()
        }
    };
    Ok(Row { day, cost, effective, list, currency, service, account, resource, tags, pricing, charge })
}

/// Tags written as a JSON object (`{"team": "web"}`); string, number and
/// boolean values are kept as text, null ones dropped. Keys lose `prefix`.
fn json_tags(cell: &Cell<'_>, prefix: &str) -> Result<Vec<(String, String)>, String> {
    if is_null(cell.value) {
        return Ok(Vec::new());
    }
    let map: BTreeMap<String, serde_json::Value> = serde_json::from_str(cell.value.trim())
        .map_err(|e| cell.error(&format!("is not a JSON object of tags: {e}")))?;
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| {
            let value = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => return None,
                other => other.to_string(),
            };
            Some((k.strip_prefix(prefix).unwrap_or(&k).to_string(), value))
        })
        .collect())
}

/// Days since 1970-01-01 of `text`: `YYYY-MM-DD`, optionally followed by a
/// time (`T...` or ` ...`) or, for a number, Unix seconds.
pub fn parse_day(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return seconds.is_finite().then(|| (seconds / 86_400.0).floor() as i64);
    }
    let date = text.get(..10)?;
    if text.len() > 10 && !matches!(text.as_bytes()[10], b'T' | b't' | b' ') {
        return None;
    }
    let mut parts = date.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month[m as usize - 1] {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Howard Hinnant's days_from_civil.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` of a day since 1970-01-01.
pub fn format_day(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(path: &str, text: &str) -> Result<(Format, Vec<String>), String> {
        let mut reader = BillingReader::new(path, text.as_bytes())?;
        let mut out = Vec::new();
        while reader.next(|row, line| out.push(format!("{line}: {row:?}")))? {}
        Ok((reader.format(), out))
    }

    fn first_row(text: &str) -> Row<'static> {
        let text: &'static str = Box::leak(text.to_string().into_boxed_str());
        let mut reader = BillingReader::new("/b/x.csv", text.as_bytes()).unwrap();
        let mut out = None;
        reader
            .next(|row, _| {
                out = Some(Row {
                    currency: Box::leak(row.currency.to_string().into_boxed_str()),
                    service: Box::leak(row.service.to_string().into_boxed_str()),
                    account: Box::leak(row.account.to_string().into_boxed_str()),
                    resource: row.resource.map(|r| &*Box::leak(r.to_string().into_boxed_str())),
                    ..row.clone()
                })
            })
            .unwrap();
        out.unwrap()
    }

    #[test]
    fn each_format_is_detected_from_its_header() {
        let focus = "BilledCost,EffectiveCost,ListCost,BillingCurrency,ChargePeriodStart,ChargeCategory,ServiceName,SubAccountId,ResourceId,Tags,PricingCategory,CommitmentDiscountId\n\
                     12.5,10,15,USD,2024-09-01T00:00:00Z,Usage,Amazon EC2,111,i-1,\"{\"\"team\"\": \"\"web\"\", \"\"n\"\": 3}\",Standard,NULL\n";
        let row = first_row(focus);
        assert_eq!(
            (row.cost, row.effective, row.list, row.currency, row.service, row.account, row.resource),
            (12.5, Some(10.0), Some(15.0), "USD", "Amazon EC2", "111", Some("i-1"))
        );
        assert_eq!(row.tags, [("n".to_string(), "3".to_string()), ("team".to_string(), "web".to_string())]);
        assert_eq!(
            (row.pricing, row.charge, format_day(row.day)),
            (Pricing::OnDemand, Charge::Usage, "2024-09-01".into())
        );

        let cur = "identity/LineItemId,lineItem/UsageStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/ResourceId,lineItem/UnblendedCost,lineItem/CurrencyCode,product/ProductName,pricing/term,resourceTags/user:workload\n\
                   a,2024-09-02T00:00:00Z,222,Usage,i-2,3.25,EUR,Amazon Elastic Compute Cloud,OnDemand,batch\n";
        let row = first_row(cur);
        assert_eq!((row.cost, row.currency, row.account, row.pricing), (3.25, "EUR", "222", Pricing::OnDemand));
        assert_eq!(row.tags, [("workload".to_string(), "batch".to_string())]);

        let cur2 = "line_item_usage_start_date,line_item_usage_account_id,line_item_line_item_type,line_item_resource_id,line_item_unblended_cost,line_item_currency_code,line_item_product_code,pricing_term,resource_tags\n\
                    2024-09-03 00:00:00,333,SavingsPlanCoveredUsage,db-1,7,USD,AmazonRDS,,\"{\"\"user_team\"\":\"\"data\"\"}\"\n";
        let row = first_row(cur2);
        assert_eq!((row.service, row.pricing, row.resource), ("AmazonRDS", Pricing::Commitment, Some("db-1")));
        assert_eq!(row.tags, [("team".to_string(), "data".to_string())]);

        let generic = "date,service,cost,currency,account,resource_id,pricing,charge\n2024-09-04,storage,-2,USD,NULL,NULL,spot,refund\n";
        let row = first_row(generic);
        assert_eq!(
            (row.cost, row.account, row.resource, row.pricing, row.charge),
            (-2.0, NONE, None, Pricing::Spot, Charge::Refund)
        );

        for (text, format) in
            [(focus, Format::Focus), (cur, Format::Cur), (cur2, Format::Cur2), (generic, Format::Generic)]
        {
            assert_eq!(rows("/b/x.csv", text).unwrap().0, format);
        }
    }

    #[test]
    fn an_unknown_header_names_the_closest_format_and_what_it_lacks() {
        let e = rows(
            "/billing/aws.csv",
            "lineItem/UsageStartDate,lineItem/UsageAccountId,lineItem/LineItemType,product/ProductName\n",
        )
        .unwrap_err();
        assert_eq!(
            e,
            "/billing/aws.csv: the header is none of the known formats (FOCUS 1.0/1.1, AWS CUR, AWS CUR 2.0, generic); \
             the closest is AWS CUR, which lacks \"lineItem/UnblendedCost\", \"lineItem/CurrencyCode\""
        );
        assert_eq!(
            rows("/billing/e.csv", "").unwrap_err(),
            "/billing/e.csv: the file is empty; expected a header line"
        );
    }

    #[test]
    fn a_bad_value_names_the_file_line_and_column() {
        let head = "lineItem/UsageStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/UnblendedCost,lineItem/CurrencyCode,product/ProductName\n";
        let ok = "2024-09-01T00:00:00Z,1,Usage,1.5,USD,EC2\n";
        let text = format!("{head}{ok}{ok}2024-09-01T00:00:00Z,1,Usage,\"12,5x\",USD,EC2\n");
        assert_eq!(
            rows("/billing/aws.csv", &text).unwrap_err(),
            "/billing/aws.csv:4: column \"lineItem/UnblendedCost\": \"12,5x\" is not a number"
        );
        let text = format!("{head}2024-13-01,1,Usage,1,USD,EC2\n");
        assert_eq!(
            rows("/billing/aws.csv", &text).unwrap_err(),
            "/billing/aws.csv:2: column \"lineItem/UsageStartDate\": \"2024-13-01\" is not a date; expected YYYY-MM-DD or an RFC 3339 time"
        );
        let text = format!("{head}2024-09-01,1,Usage,1,NULL,EC2\n");
        assert_eq!(
            rows("/billing/aws.csv", &text).unwrap_err(),
            "/billing/aws.csv:2: column \"lineItem/CurrencyCode\": \"NULL\" is null; a value is required"
        );
        let text = format!("{head}2024-09-01,1,Usage,1\n");
        assert_eq!(
            rows("/billing/aws.csv", &text).unwrap_err(),
            "/billing/aws.csv:2: the line has 4 fields, but the header has 6"
        );
        let text = "date,service,cost,currency,tags\n2024-09-01,s,1,USD,\"{team: web}\"\n";
        assert_eq!(
            rows("/billing/g.csv", text).unwrap_err(),
            "/billing/g.csv:2: column \"tags\": \"{team: web}\" is not a JSON object of tags: key must be a string at line 1 column 2"
        );
        let bytes = b"date,service,cost,currency\n2024-09-01,s\xff,1,USD\n";
        let mut reader = BillingReader::new("/billing/u.csv", &bytes[..]).unwrap();
        assert_eq!(reader.next(|_, _| {}).unwrap_err(), "/billing/u.csv:2: field 2 is not valid UTF-8");
    }

    #[test]
    fn null_text_blank_lines_and_a_byte_order_mark_are_understood() {
        let text = "\u{feff}date,service,cost,currency,account,tags\n2024-09-01,NULL,1,USD,null,NULL\n\n2024-09-02,s,2,USD,a,{}\n";
        let (format, out) = rows("/b/g.csv", text).unwrap();
        assert_eq!(format, Format::Generic);
        assert_eq!(out.len(), 2);
        let row = first_row(text);
        assert_eq!((row.service, row.account, row.tags.len()), (NONE, NONE, 0));
    }

    #[test]
    fn days_round_trip_and_bad_dates_are_refused() {
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(parse_day("2024-02-29T10:00:00Z"), Some(19_782));
        assert_eq!(format_day(19_782), "2024-02-29");
        assert_eq!(parse_day("1725148800"), parse_day("2024-09-01"));
        for bad in ["2023-02-29", "2024-9-1", "01/09/2024", "2024-09-01X"] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }
}
