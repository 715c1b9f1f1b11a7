//! Trade orders: the workload switchyard protects, and the one schema the order consumer
//! accepts (documented in `events/order-consumer/README.md`).
//!
//! A body is either the order itself (raw SQS message) or an SNS notification wrapping it
//! (the fan-out path). Parsing is strict: an unknown field, a missing field or a bad value is
//! refused with a named [`RejectReason`], because an order that cannot be applied must end
//! in the DLQ with its reason in the logs, never half-applied.
//!
//! Money is never a float: `price` is a decimal string, held as integer micro-units.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

/// The fields of an order, all required, nothing else allowed.
pub const FIELDS: [&str; 8] =
    ["orderId", "account", "instrument", "side", "quantity", "price", "submittedAt", "acknowledgedAt"];

/// The fields a client sends to the order API: every field but `acknowledgedAt`, which the
/// API stamps (the queued order, [`FIELDS`], has it).
pub const REQUEST_FIELDS: [&str; 7] = ["orderId", "account", "instrument", "side", "quantity", "price", "submittedAt"];

/// Largest quantity one order may carry.
pub const MAX_QUANTITY: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub const fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

/// A price in micro-units of the instrument's currency: `"101.25"` is `101_250_000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(pub i64);

impl fmt::Display for Price {
    /// Six fractional digits, as the database column (`numeric(18,6)`) holds it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// An instant in UTC with nanosecond precision, from an RFC 3339 `…Z` timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    pub unix_seconds: i64,
    pub nanos: u32,
}

impl fmt::Display for Timestamp {
    /// RFC 3339 with microseconds (PostgreSQL's `timestamptz` precision).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.unix_seconds.div_euclid(86_400);
        let secs = self.unix_seconds.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            self.nanos / 1000
        )
    }
}

impl Timestamp {
    pub fn now() -> Self {
        std::time::SystemTime::now().into()
    }

    /// Milliseconds since the Unix epoch (negative before 1970, which never parses).
    pub fn unix_millis(&self) -> i64 {
        self.unix_seconds * 1000 + i64::from(self.nanos / 1_000_000)
    }

    pub fn from_unix_millis(ms: i64) -> Self {
        Timestamp { unix_seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) as u32) * 1_000_000 }
    }

    /// Seconds from `earlier` to `self`, with millisecond precision (negative if earlier is later).
    pub fn seconds_since(&self, earlier: &Timestamp) -> f64 {
        (self.unix_millis() - earlier.unix_millis()) as f64 / 1000.0
    }
}

impl std::str::FromStr for Timestamp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        timestamp("timestamp", s).map_err(|r| r.detail)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl From<std::time::SystemTime> for Timestamp {
    fn from(t: std::time::SystemTime) -> Self {
        let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp { unix_seconds: d.as_secs() as i64, nanos: d.subsec_nanos() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Order {
    pub order_id: String,
    pub account: String,
    pub instrument: String,
    pub side: Side,
    pub quantity: u64,
    pub price: Price,
    pub submitted_at: Timestamp,
    /// When the regional API acknowledged the order to the client: from then on losing it is
    /// a broken promise.
    pub acknowledged_at: Timestamp,
}

/// How soon a shadow consumer sees an order it kept again (instead of after the queue's 60 s
/// visibility timeout). The order waits in the shadow only until the replica holds it, and if
/// the shadow's region becomes the writer the order must be back on the queue by the time the
/// new writer applies: the wait lands in the time to the first order applied after a failover.
/// Short, because it costs little: a kept order is one SQS receive per recheck, so the ~170
/// orders of a minute-long writer outage (10,000 an hour) cost about 5,000 receives. 2 s also
/// fits inside the sandbox's shortened wait for the first applied order (about 3 s).
pub const SHADOW_RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

impl Order {
    /// Everything that identifies the order's content, in one line. Two deliveries of the
    /// same order have the same fingerprint; an order id reused for different content does
    /// not (that is a conflict, not a duplicate).
    pub fn fingerprint(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{}",
            self.order_id,
            self.account,
            self.instrument,
            self.side.as_str(),
            self.quantity,
            self.price.0,
            self.submitted_at,
            self.acknowledged_at
        )
    }

    /// The order as the wire schema spells it (what the API publishes).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "orderId": self.order_id,
            "account": self.account,
            "instrument": self.instrument,
            "side": self.side.as_str(),
            "quantity": self.quantity,
            "price": self.price.to_string(),
            "submittedAt": self.submitted_at.to_string(),
            "acknowledgedAt": self.acknowledged_at.to_string(),
        })
    }
}

macro_rules! reject_reasons {
    ($( $(#[$doc:meta])* $variant:ident ),+ $(,)?) => {
        /// Why a message is not an order. Names are stable: logs and alarms filter on them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum RejectReason { $( $(#[$doc])* $variant ),+ }

        impl RejectReason {
            pub const ALL: &'static [RejectReason] = &[ $( RejectReason::$variant ),+ ];
            pub const fn as_str(self) -> &'static str {
                match self { $( RejectReason::$variant => stringify!($variant) ),+ }
            }
        }
    };
}

reject_reasons! {
    /// The body is not JSON.
    NotJson,
    /// The body (or the SNS message inside it) is JSON but not an object.
    NotAnObject,
    /// An SNS notification without a string `Message`.
    BadEnvelope,
    UnknownField,
    MissingField,
    BadOrderId,
    BadAccount,
    BadInstrument,
    BadSide,
    BadQuantity,
    BadPrice,
    BadTimestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.detail)
    }
}

fn reject(reason: RejectReason, detail: impl Into<String>) -> Rejection {
    Rejection { reason, detail: detail.into() }
}

/// Parses an SQS message body: an order, or an SNS notification whose `Message` is one.
pub fn parse_body(body: &str) -> Result<Order, Rejection> {
    let value: Value = serde_json::from_str(body).map_err(|e| reject(RejectReason::NotJson, e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(reject(RejectReason::NotAnObject, "the body is not a JSON object"));
    };
    if map.get("Type").and_then(Value::as_str) == Some("Notification") && map.contains_key("TopicArn") {
        let Some(Value::String(message)) = map.get("Message") else {
            return Err(reject(RejectReason::BadEnvelope, "SNS notification without a string Message"));
        };
        let inner: Value =
            serde_json::from_str(message).map_err(|e| reject(RejectReason::NotJson, format!("SNS Message: {e}")))?;
        let Value::Object(inner) = inner else {
            return Err(reject(RejectReason::NotAnObject, "the SNS Message is not a JSON object"));
        };
        return parse_order(&inner);
    }
    parse_order(&map)
}

/// The order API's side of the contract: a client's request (no `acknowledgedAt`) becomes
/// the queued order, stamped `acknowledged_at`.
pub fn acknowledge_request(mut request: Map<String, Value>, acknowledged_at: Timestamp) -> Result<Order, Rejection> {
    if request.contains_key("acknowledgedAt") {
        return Err(reject(RejectReason::UnknownField, "acknowledgedAt is set by the API, not the client"));
    }
    request.insert("acknowledgedAt".into(), Value::String(acknowledged_at.to_string()));
    parse_order(&request)
}

/// The two wire schemas as JSON Schema (2020-12): the client's request and the queued order.
/// They say what [`parse_order`] checks, except what JSON Schema cannot (a price of zero, a
/// date that does not exist), which the descriptions name.
pub fn json_schemas() -> [(&'static str, Value); 2] {
    let property = |field: &str| -> Value {
        let time = serde_json::json!({
            "type": "string", "format": "date-time", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?Z$",
        });
        match field {
            "orderId" => {
                serde_json::json!({ "type": "string", "pattern": "^[A-Za-z0-9_:-]{1,64}$", "description": "the idempotency key: one order, once" })
            }
            "account" => serde_json::json!({ "type": "string", "pattern": "^[A-Za-z0-9_:-]{1,32}$" }),
            "instrument" => serde_json::json!({ "type": "string", "pattern": "^[A-Z][A-Z0-9.]{0,11}$" }),
            "side" => serde_json::json!({ "enum": ["buy", "sell"] }),
            "quantity" => serde_json::json!({ "type": "integer", "minimum": 1, "maximum": MAX_QUANTITY }),
            "price" => serde_json::json!({
                "type": "string", "pattern": "^[0-9]{1,12}(\\.[0-9]{1,6})?$",
                "description": "a positive decimal string (money is never a float); zero is refused",
            }),
            "acknowledgedAt" => {
                let mut t = time;
                t["description"] = Value::String(
                    "stamped by the order API, on its clock (submittedAt is the client's: the two are in no required order)"
                        .into(),
                );
                t
            }
            _ => time,
        }
    };
    let schema = |id: &str, title: &str, fields: &[&str]| -> Value {
        serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": id,
            "title": title,
            "type": "object",
            "additionalProperties": false,
            "required": fields,
            "properties": fields.iter().map(|f| ((*f).to_owned(), property(f))).collect::<Map<String, Value>>(),
        })
    };
    [
        ("order-request", schema("switchyard:order-request", "What a client sends to POST /orders", &REQUEST_FIELDS)),
        (
            "queued-order",
            schema("switchyard:queued-order", "An acknowledged order, as the orders queues hold it", &FIELDS),
        ),
    ]
}

/// Validates one order object against the schema.
pub fn parse_order(map: &Map<String, Value>) -> Result<Order, Rejection> {
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(reject(RejectReason::UnknownField, format!("unknown field {unknown:?}")));
    }
    if let Some(missing) = FIELDS.iter().find(|f| !map.contains_key(**f)) {
        return Err(reject(RejectReason::MissingField, format!("missing field {missing:?}")));
    }
    let text = |field: &str, reason: RejectReason| -> Result<&str, Rejection> {
        map.get(field).and_then(Value::as_str).ok_or_else(|| reject(reason, format!("{field} must be a string")))
    };
    let order_id = identifier(text("orderId", RejectReason::BadOrderId)?, 64, "orderId", RejectReason::BadOrderId)?;
    let account = identifier(text("account", RejectReason::BadAccount)?, 32, "account", RejectReason::BadAccount)?;
    let instrument = instrument(text("instrument", RejectReason::BadInstrument)?)?;
    let side = match text("side", RejectReason::BadSide)? {
        "buy" => Side::Buy,
        "sell" => Side::Sell,
        other => return Err(reject(RejectReason::BadSide, format!("side must be buy or sell, not {other:?}"))),
    };
    let quantity = match map.get("quantity").and_then(Value::as_u64) {
        Some(q) if (1..=MAX_QUANTITY).contains(&q) => q,
        _ => {
            return Err(reject(
                RejectReason::BadQuantity,
                format!("quantity must be a whole number from 1 to {MAX_QUANTITY}"),
            ));
        }
    };
    let price = price(text("price", RejectReason::BadPrice)?)?;
    let submitted_at = timestamp("submittedAt", text("submittedAt", RejectReason::BadTimestamp)?)?;
    let acknowledged_at = timestamp("acknowledgedAt", text("acknowledgedAt", RejectReason::BadTimestamp)?)?;
    Ok(Order { order_id, account, instrument, side, quantity, price, submitted_at, acknowledged_at })
}

/// 1 to `max` characters from `[A-Za-z0-9_:-]`.
fn identifier(s: &str, max: usize, field: &str, reason: RejectReason) -> Result<String, Rejection> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':'));
    if ok { Ok(s.to_owned()) } else { Err(reject(reason, format!("{field} must be 1 to {max} of [A-Za-z0-9_:-]"))) }
}

/// A ticker: 1 to 12 of `[A-Z0-9.]`, starting with a letter (`AAPL`, `BRK.B`).
fn instrument(s: &str) -> Result<String, Rejection> {
    let ok = s.len() <= 12
        && s.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'.');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(reject(RejectReason::BadInstrument, "instrument must be 1 to 12 of [A-Z0-9.], starting with a letter"))
    }
}

/// A positive decimal string with at most 12 integer and 6 fractional digits.
fn price(s: &str) -> Result<Price, Rejection> {
    let bad = || {
        reject(RejectReason::BadPrice, format!("price must be a positive decimal string like \"101.25\", not {s:?}"))
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty()
        || int.len() > 12
        || frac.len() > 6
        || !digits(int)
        || !digits(frac)
        || (s.contains('.') && frac.is_empty())
    {
        return Err(bad());
    }
    let int: i64 = int.parse().map_err(|_| bad())?;
    let frac: i64 = format!("{frac:0<6}").parse().map_err(|_| bad())?;
    let micros = int * 1_000_000 + frac;
    if micros == 0 { Err(bad()) } else { Ok(Price(micros)) }
}

/// RFC 3339 in UTC: `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, fraction up to nanoseconds.
fn timestamp(field: &str, s: &str) -> Result<Timestamp, Rejection> {
    let bad = || {
        reject(
            RejectReason::BadTimestamp,
            format!("{field} must be an RFC 3339 UTC time like 2026-11-22T09:30:00.123Z"),
        )
    };
    let b = s.as_bytes();
    if b.len() < 20 || b.len() > 30 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, Rejection> {
        let part = s.get(range).ok_or_else(bad)?;
        if part.bytes().all(|c| c.is_ascii_digit()) { part.parse().map_err(|_| bad()) } else { Err(bad()) }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = s.get(19..).ok_or_else(bad)?;
    let fraction = match rest.strip_suffix('Z') {
        Some("") => "",
        Some(f)
            if f.len() >= 2 && f.len() <= 10 && f.starts_with('.') && f[1..].bytes().all(|c| c.is_ascii_digit()) =>
        {
            &f[1..]
        }
        _ => return Err(bad()),
    };
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(bad());
    }
    let nanos: u32 = if fraction.is_empty() { 0 } else { format!("{fraction:0<9}").parse().map_err(|_| bad())? };
    let unix_seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Ok(Timestamp { unix_seconds, nanos })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn good() -> Value {
        json!({
            "orderId": "ord-0001",
            "account": "ACC-42",
            "instrument": "BRK.B",
            "side": "buy",
            "quantity": 100,
            "price": "412.5",
            "submittedAt": "2026-11-22T09:30:00.123Z",
            "acknowledgedAt": "2026-11-22T09:30:00.125Z"
        })
    }

    fn with(field: &str, value: Value) -> String {
        let mut v = good();
        v[field] = value;
        v.to_string()
    }

    #[test]
    fn a_good_order_parses_raw_and_wrapped_in_sns() {
        let order = parse_body(&good().to_string()).expect("good order");
        assert_eq!(order.price, Price(412_500_000));
        assert_eq!(order.price.to_string(), "412.500000");
        assert_eq!(order.submitted_at.to_string(), "2026-11-22T09:30:00.123000Z");
        let sns = json!({
            "Type": "Notification",
            "MessageId": "m",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:switchyard-sandbox-orders",
            "Message": good().to_string(),
        });
        assert_eq!(parse_body(&sns.to_string()), Ok(order.clone()));
        // The wire form round-trips.
        assert_eq!(parse_body(&order.to_json().to_string()), Ok(order));
    }

    /// #18: `submittedAt` is the client's clock, `acknowledgedAt` the order API's. A client
    /// whose clock runs ahead gives an order acknowledged "before" it was submitted; it is
    /// acknowledged, so it is applied, never refused as poison.
    #[test]
    fn an_order_from_a_client_whose_clock_runs_ahead_is_no_poison() {
        let ahead = parse_body(&with("submittedAt", json!("2026-11-22T09:30:05Z")));
        let order = ahead.expect("acknowledged, so applied");
        assert!(order.acknowledged_at < order.submitted_at);
    }

    /// The fingerprint is a persisted contract: rows applied by one version are compared with
    /// redeliveries by the next (a changed fingerprint makes every redelivery a conflict).
    /// These literals must never change.
    #[test]
    fn the_fingerprint_is_pinned() {
        let order = parse_body(&good().to_string()).expect("good order");
        assert_eq!(
            order.fingerprint(),
            "ord-0001|ACC-42|BRK.B|buy|100|412500000|2026-11-22T09:30:00.123000Z|2026-11-22T09:30:00.125000Z"
        );
    }

    #[test]
    fn every_bad_value_is_refused_with_its_reason() {
        use RejectReason::*;
        let mut missing = good();
        missing.as_object_mut().expect("object").remove("price");
        let table = [
            ("not json".to_owned(), NotJson),
            ("[1]".to_owned(), NotAnObject),
            (json!({"Type": "Notification", "TopicArn": "t", "Message": 1}).to_string(), BadEnvelope),
            (json!({"Type": "Notification", "TopicArn": "t", "Message": "[]"}).to_string(), NotAnObject),
            (with("extra", json!(1)), UnknownField),
            (missing.to_string(), MissingField),
            (with("orderId", json!("")), BadOrderId),
            (with("orderId", json!("a b")), BadOrderId),
            (with("orderId", json!("x".repeat(65))), BadOrderId),
            (with("account", json!(42)), BadAccount),
            (with("instrument", json!("aapl")), BadInstrument),
            (with("instrument", json!("1ABC")), BadInstrument),
            (with("side", json!("short")), BadSide),
            (with("quantity", json!(0)), BadQuantity),
            (with("quantity", json!(1.5)), BadQuantity),
            (with("quantity", json!("100")), BadQuantity),
            (with("quantity", json!(MAX_QUANTITY + 1)), BadQuantity),
            (with("price", json!(412.5)), BadPrice),
            (with("price", json!("0")), BadPrice),
            (with("price", json!("-1")), BadPrice),
            (with("price", json!("1.")), BadPrice),
            (with("price", json!(".5")), BadPrice),
            (with("price", json!("1.1234567")), BadPrice),
            (with("price", json!("1e3")), BadPrice),
            (with("submittedAt", json!("2026-11-22 09:30:00Z")), BadTimestamp),
            (with("submittedAt", json!("2026-11-22T09:30:00+01:00")), BadTimestamp),
            (with("submittedAt", json!("2026-02-30T09:30:00Z")), BadTimestamp),
            (with("submittedAt", json!("2026-11-22T24:00:00Z")), BadTimestamp),
            (with("submittedAt", json!("2026-11-22T09:30:00.Z")), BadTimestamp),
        ];
        for (body, reason) in table {
            let got = parse_body(&body).map_err(|r| r.reason);
            assert_eq!(got, Err(reason), "{body}");
        }
    }

    #[test]
    fn a_request_becomes_a_queued_order_stamped_by_the_api() {
        let mut request: Map<String, Value> = serde_json::from_str(
            r#"{"orderId":"o-1","account":"a","instrument":"AAPL","side":"buy","quantity":1,"price":"1.5","submittedAt":"2026-12-01T10:00:00Z"}"#,
        )
        .expect("json");
        let at = Timestamp::from_unix_millis(1_796_119_200_500);
        let order = acknowledge_request(request.clone(), at).expect("a valid request");
        assert_eq!(order.acknowledged_at, at);
        request.insert("acknowledgedAt".into(), Value::String("2026-12-01T10:00:01Z".into()));
        assert_eq!(
            acknowledge_request(request, at).expect_err("stamped by a client").reason,
            RejectReason::UnknownField
        );
        let [(_, req), (_, queued)] = json_schemas();
        let names = |s: &Value| s["required"].as_array().map(|a| a.len()).unwrap_or(0);
        assert_eq!((names(&req), names(&queued)), (REQUEST_FIELDS.len(), FIELDS.len()));
        assert!(req["properties"].get("acknowledgedAt").is_none());
    }

    #[test]
    fn timestamps_are_exact() {
        for (text, unix, shown) in [
            ("1970-01-01T00:00:00Z", 0, "1970-01-01T00:00:00.000000Z"),
            ("2000-02-29T23:59:59.999999999Z", 951_868_799, "2000-02-29T23:59:59.999999Z"),
            ("2026-11-22T09:30:00.5Z", 1_795_339_800, "2026-11-22T09:30:00.500000Z"),
        ] {
            let t = timestamp("t", text).expect(text);
            assert_eq!(t.unix_seconds, unix, "{text}");
            assert_eq!(t.to_string(), shown);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Arbitrary text never panics the parser, and every refusal carries a known name.
        #[test]
        fn arbitrary_bodies_never_panic(body in any::<String>()) {
            if let Err(r) = parse_body(&body) {
                prop_assert!(RejectReason::ALL.contains(&r.reason));
                prop_assert!(!r.detail.is_empty());
            }
        }

        /// Near-misses: a good order with one field replaced by an arbitrary JSON value.
        #[test]
        fn arbitrary_field_values_are_accepted_or_named(
            field in proptest::sample::select(FIELDS.to_vec()),
            value in arbitrary_json(),
        ) {
            match parse_body(&with(field, value)) {
                Ok(order) => prop_assert_eq!(parse_body(&order.to_json().to_string()), Ok(order)),
                Err(r) => prop_assert!(RejectReason::ALL.contains(&r.reason)),
            }
        }

        /// Every valid order survives the wire form unchanged.
        #[test]
        fn valid_orders_round_trip(
            id in "[A-Za-z0-9_:-]{1,64}",
            instrument in "[A-Z][A-Z0-9.]{0,11}",
            quantity in 1..=MAX_QUANTITY,
            micros in 1..=999_999_999_999_999_999i64,
            submitted in 0..=253_402_300_799i64,
            ack_delay in 0..=86_400i64,
        ) {
            let order = Order {
                order_id: id,
                account: "acc".into(),
                instrument,
                side: Side::Sell,
                quantity,
                price: Price(micros),
                submitted_at: Timestamp { unix_seconds: submitted - ack_delay.min(submitted), nanos: 0 },
                acknowledged_at: Timestamp { unix_seconds: submitted, nanos: 0 },
            };
            prop_assert_eq!(parse_body(&order.to_json().to_string()), Ok(order));
        }
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|n| json!(n)),
            any::<String>().prop_map(Value::String),
            "[0-9]{0,14}(\\.[0-9]{0,8})?".prop_map(Value::String),
            "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,10})?Z?".prop_map(Value::String),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z]{1,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
