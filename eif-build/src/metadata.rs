//! The metadata section (type 5): compact JSON with a fixed key order.
//!
//! `{"ImageName":…,"ImageVersion":…,"BuildMetadata":{"BuildTime":…,"BuildTool":…,
//! "BuildToolVersion":…,"OperatingSystem":…,"KernelVersion":…},"DockerInfo":…,
//! "CustomMetadata":…}` with `CustomMetadata` re-serialized compactly and object keys
//! sorted. Metadata is not measured; it is only covered by the CRC.
//!
//! The serializer here is written out by hand so the output does not depend on which
//! serde_json features other crates in a build enable (`preserve_order` would otherwise
//! change the key order of `CustomMetadata`).

use serde_json::Value;

/// Image metadata. Every field is explicit so that builds are reproducible.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    pub image_name: String,
    pub image_version: String,
    pub build_time: String,
    pub build_tool: String,
    pub build_tool_version: String,
    pub operating_system: String,
    pub kernel_version: String,
    /// `DockerInfo` (null unless set).
    pub docker_info: Option<Value>,
    /// `CustomMetadata` (null unless set).
    pub custom: Option<Value>,
}

impl Metadata {
    /// Deterministic defaults: image name `cleanroom`, the given build time, this tool.
    pub fn new(build_time: String) -> Self {
        Metadata {
            image_name: "cleanroom".into(),
            image_version: "cleanroom".into(),
            build_time,
            build_tool: "eif-build".into(),
            build_tool_version: env!("CARGO_PKG_VERSION").into(),
            operating_system: "OS".into(),
            kernel_version: "kernel".into(),
            docker_info: None,
            custom: None,
        }
    }

    /// The exact section bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::new();
        s.push('{');
        key(&mut s, "ImageName");
        string(&mut s, &self.image_name);
        s.push(',');
        key(&mut s, "ImageVersion");
        string(&mut s, &self.image_version);
        s.push(',');
        key(&mut s, "BuildMetadata");
        s.push('{');
        for (i, (k, v)) in [
            ("BuildTime", &self.build_time),
            ("BuildTool", &self.build_tool),
            ("BuildToolVersion", &self.build_tool_version),
            ("OperatingSystem", &self.operating_system),
            ("KernelVersion", &self.kernel_version),
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                s.push(',');
            }
            key(&mut s, k);
            string(&mut s, v);
        }
        s.push_str("},");
        key(&mut s, "DockerInfo");
        optional(&mut s, self.docker_info.as_ref());
        s.push(',');
        key(&mut s, "CustomMetadata");
        optional(&mut s, self.custom.as_ref());
        s.push('}');
        s.into_bytes()
    }
}

fn key(s: &mut String, k: &str) {
    string(s, k);
    s.push(':');
}

fn string(s: &mut String, v: &str) {
    // serde_json never fails to serialize a str
    s.push_str(&serde_json::to_string(v).unwrap_or_default());
}

fn optional(s: &mut String, v: Option<&Value>) {
    match v {
        None => s.push_str("null"),
        Some(v) => canonical(s, v),
    }
}

/// Compact JSON with object keys sorted bytewise (what serde_json's default BTreeMap
/// map writes).
pub fn canonical(s: &mut String, v: &Value) {
    match v {
        Value::Null => s.push_str("null"),
        Value::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => s.push_str(&n.to_string()),
        Value::String(t) => string(s, t),
        Value::Array(items) => {
            s.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                canonical(s, it);
            }
            s.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            s.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                key(s, k);
                canonical(s, v);
            }
            s.push('}');
        }
    }
}

/// RFC 3339 (`YYYY-MM-DDTHH:MM:SS+00:00`) for seconds since the Unix epoch, UTC.
/// Used for the build time derived from `SOURCE_DATE_EPOCH`.
pub fn rfc3339_utc(epoch_secs: u64) -> String {
    let days = epoch_secs / 86_400;
    let rem = epoch_secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+00:00", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(rfc3339_utc(1_735_689_600), "2025-01-01T00:00:00+00:00");
        assert_eq!(rfc3339_utc(951_782_400 + 3661), "2000-02-29T01:01:01+00:00");
    }

    #[test]
    fn custom_keys_sorted_and_compact() {
        let v: Value = serde_json::from_str(r#"{"z": [1, {"b": 2, "a": "é\n"}], "a": null}"#).unwrap();
        let mut s = String::new();
        canonical(&mut s, &v);
        assert_eq!(s, r#"{"a":null,"z":[1,{"a":"é\n","b":2}]}"#);
    }
}
