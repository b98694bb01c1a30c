//! Balance update files: CSV (header `event_id,user_id,asset,balance,effective_at`)
//! or JSON Lines (one object with those keys per line).
//!
//! `balance` is an integer string of base units; `effective_at` is RFC 3339
//! or Unix seconds; `asset` is a supported ticker (`ETH`, `DOT`, `SOL`,
//! `ATOM`, `ADA`, `XTZ`, any case). The first bad row fails the whole file,
//! named by its 1-based data row number and its line.

use serde::Deserialize;
use softstake_core::{Amount, ChainId, Timestamp};

/// Longest accepted id (event or user).
pub const MAX_ID_LEN: usize = 200;

/// A validated balance update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUpdate {
    /// Unique event id.
    pub event_id: String,
    /// User id.
    pub user_id: String,
    /// Chain whose asset this is.
    pub chain: ChainId,
    /// New absolute balance.
    pub balance: Amount,
    /// When it took effect.
    pub effective_at: Timestamp,
}

/// A bad row (or an unreadable file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("row {row} (line {line}): {reason}")]
pub struct RowError {
    /// 1-based data row.
    pub row: usize,
    /// 1-based line in the file.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated with a header row.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

impl Format {
    /// From a file name's extension (`.csv`, `.jsonl`/`.ndjson`).
    pub fn from_path(p: &std::path::Path) -> Option<Format> {
        match p.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::JsonLines),
            _ => None,
        }
    }
}

/// The fields of one row as written, all text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRow {
    /// Event id.
    pub event_id: String,
    /// User id.
    pub user_id: String,
    /// Asset ticker.
    pub asset: String,
    /// Balance in base units (string).
    pub balance: String,
    /// RFC 3339 or Unix seconds.
    pub effective_at: String,
}

/// Validates one row's fields.
pub fn validate_row(r: &RawRow) -> Result<ParsedUpdate, String> {
    let id = |name: &str, v: &str| -> Result<String, String> {
        let v = v.trim();
        if v.is_empty() {
            Err(format!("{name} is empty"))
        } else if v.len() > MAX_ID_LEN {
            Err(format!("{name} is longer than {MAX_ID_LEN} bytes"))
        } else if v.chars().any(char::is_control) {
            Err(format!("{name} contains control characters"))
        } else {
            Ok(v.to_owned())
        }
    };
    let event_id = id("event_id", &r.event_id)?;
    let user_id = id("user_id", &r.user_id)?;
    let chain = ChainId::from_asset(r.asset.trim()).ok_or_else(|| {
        format!(
            "asset {:?} is not one of ETH, DOT, SOL, ATOM, ADA, XTZ",
            r.asset
        )
    })?;
    let balance: Amount = r
        .balance
        .trim()
        .parse()
        .map_err(|e| format!("balance: {e} (an integer of base units)"))?;
    let effective_at: Timestamp = r
        .effective_at
        .parse()
        .map_err(|e| format!("effective_at: {e}"))?;
    Ok(ParsedUpdate {
        event_id,
        user_id,
        chain,
        balance,
        effective_at,
    })
}

/// Parses a whole file. Any bad row fails the file.
pub fn parse(text: &str, format: Format) -> Result<Vec<ParsedUpdate>, RowError> {
    let mut out = Vec::new();
    match format {
        Format::JsonLines => {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let row = out.len() + 1;
                let err = |reason: String| RowError {
                    row,
                    line: i + 1,
                    reason,
                };
                let raw: RawRow = serde_json::from_str(line).map_err(|e| err(e.to_string()))?;
                out.push(validate_row(&raw).map_err(err)?);
            }
        }
        Format::Csv => {
            let mut rdr = csv::ReaderBuilder::new()
                .trim(csv::Trim::All)
                .from_reader(text.as_bytes());
            for (i, rec) in rdr.deserialize::<RawRow>().enumerate() {
                let row = i + 1;
                let line = i + 2;
                let raw = rec.map_err(|e| RowError {
                    row,
                    line: e
                        .position()
                        .map_or(line, |p| usize::try_from(p.line()).unwrap_or(line)),
                    reason: e.to_string(),
                })?;
                out.push(validate_row(&raw).map_err(|reason| RowError { row, line, reason })?);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_csv_and_jsonl_alike() {
        let csv = "event_id,user_id,asset,balance,effective_at\n\
                   e1,alice,eth,1500000000000000000,2026-11-01T00:00:00Z\n\
                   e2,bob,ATOM,42,1793491200\n";
        let a = parse(csv, Format::Csv).unwrap();
        let jl = r#"{"event_id":"e1","user_id":"alice","asset":"eth","balance":"1500000000000000000","effective_at":"2026-11-01T00:00:00Z"}

{"event_id":"e2","user_id":"bob","asset":"ATOM","balance":"42","effective_at":"1793491200"}"#;
        let b = parse(jl, Format::JsonLines).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].chain, ChainId::Ethereum);
        assert_eq!(a[1].effective_at.unix(), 1_793_491_200);
    }

    #[test]
    fn the_first_bad_row_is_named() {
        let csv = "event_id,user_id,asset,balance,effective_at\n\
                   e1,alice,ETH,1,2026-11-01T00:00:00Z\n\
                   e2,bob,ETH,-5,2026-11-01T00:00:00Z\n";
        let e = parse(csv, Format::Csv).unwrap_err();
        assert_eq!((e.row, e.line), (2, 3));
        assert!(e.reason.contains("negative"), "{e}");

        for (bad, why) in [
            (
                r#"{"event_id":"","user_id":"u","asset":"ETH","balance":"1","effective_at":"1"}"#,
                "event_id is empty",
            ),
            (
                r#"{"event_id":"e","user_id":"u","asset":"BTC","balance":"1","effective_at":"1"}"#,
                "asset",
            ),
            (
                r#"{"event_id":"e","user_id":"u","asset":"ETH","balance":"1.5","effective_at":"1"}"#,
                "balance",
            ),
            (
                r#"{"event_id":"e","user_id":"u","asset":"ETH","balance":"1","effective_at":"yesterday"}"#,
                "effective_at",
            ),
            (
                r#"{"event_id":"e","user_id":"u","asset":"ETH","balance":"1","effective_at":"1","x":1}"#,
                "unknown field",
            ),
            (r#"{"event_id":"e","user_id":"u"#, "EOF"),
        ] {
            let e = parse(bad, Format::JsonLines).unwrap_err();
            assert_eq!(e.row, 1);
            assert!(e.reason.contains(why), "{why}: {e}");
        }
    }
}
