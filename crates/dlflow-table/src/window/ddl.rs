//! Flink's watermark clause in DDL, taught to DataFusion's parser by rewriting it into options.
//!
//! `CREATE UNBOUNDED EXTERNAL TABLE e (ts TIMESTAMP, v DOUBLE, WATERMARK FOR ts AS ts - INTERVAL
//! '2' SECOND) STORED AS JSON LOCATION '-'` becomes the same statement without the clause and with
//! `OPTIONS ('watermark.column' 'ts', 'watermark.delay' '2s')`.

use datafusion::error::{DataFusionError, Result};

/// `statement` with a `WATERMARK FOR col AS col [- INTERVAL 'n' UNIT]` column clause turned into
/// `'watermark.column'` / `'watermark.delay'` options; other statements unchanged.
///
/// ```
/// use dlflow_table::window::rewrite_watermark_clause;
/// let sql = "CREATE UNBOUNDED EXTERNAL TABLE e (ts TIMESTAMP, v DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '2' SECOND) STORED AS JSON LOCATION '-'";
/// assert_eq!(
///     rewrite_watermark_clause(sql)?,
///     "CREATE UNBOUNDED EXTERNAL TABLE e (ts TIMESTAMP, v DOUBLE) STORED AS JSON LOCATION '-' OPTIONS ('watermark.column' 'ts', 'watermark.delay' '2s')"
/// );
/// # Ok::<(), datafusion::error::DataFusionError>(())
/// ```
pub fn rewrite_watermark_clause(statement: &str) -> Result<String> {
    let Some(start) = find_keyword(statement, "WATERMARK") else { return Ok(statement.to_string()) };
    // The clause runs to the next comma or closing parenthesis at its own depth.
    let mut depth = 0i32;
    let mut end = statement.len();
    let mut quoted = false;
    for (i, c) in statement[start..].char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth == 0 => {
                end = start + i;
                break;
            }
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                end = start + i;
                break;
            }
            _ => {}
        }
    }
    let clause = &statement[start..end];
    let (column, delay) = parse_clause(clause)?;
    // Drop the clause and the comma before it.
    let before = statement[..start].trim_end();
    let before = before.strip_suffix(',').unwrap_or(before).trim_end();
    let after = &statement[end..];
    let mut rewritten = format!("{before}{after}");
    let options = format!("'watermark.column' '{column}', 'watermark.delay' '{delay}'");
    match find_keyword(&rewritten, "OPTIONS") {
        Some(at) => {
            let open = rewritten[at..].find('(').map(|p| at + p + 1).ok_or_else(|| bad(clause))?;
            let empty = rewritten[open..].trim_start().starts_with(')');
            rewritten.insert_str(open, &if empty { options } else { format!("{options}, ") });
        }
        None => rewritten = format!("{} OPTIONS ({options})", rewritten.trim_end()),
    }
    Ok(rewritten)
}

fn bad(clause: &str) -> DataFusionError {
    DataFusionError::Plan(format!("cannot read `{clause}`: expected WATERMARK FOR ts AS ts - INTERVAL '2' SECOND"))
}

/// `FOR ts AS ts - INTERVAL '2' SECOND` → (`ts`, `2s`).
fn parse_clause(clause: &str) -> Result<(String, String)> {
    let words: Vec<&str> = clause.split_whitespace().collect();
    let [watermark, for_, column, as_, rest @ ..] = words.as_slice() else { return Err(bad(clause)) };
    if !watermark.eq_ignore_ascii_case("WATERMARK") || !for_.eq_ignore_ascii_case("FOR") || !as_.eq_ignore_ascii_case("AS") {
        return Err(bad(clause));
    }
    let column = column.trim_matches('"').to_string();
    match rest {
        [same] if same.trim_matches('"') == column => Ok((column, "0s".into())),
        [same, "-", interval, amount, unit] if same.trim_matches('"') == column && interval.eq_ignore_ascii_case("INTERVAL") => {
            let amount = amount.trim_matches('\'');
            let unit = match unit.to_ascii_uppercase().trim_end_matches('S') {
                "MILLISECOND" => "ms",
                "SECOND" => "s",
                "MINUTE" => "m",
                "HOUR" => "h",
                _ => return Err(bad(clause)),
            };
            Ok((column, format!("{amount}{unit}")))
        }
        _ => Err(bad(clause)),
    }
}

/// The byte offset of `keyword` as a whole word outside quotes, case-insensitive.
fn find_keyword(text: &str, keyword: &str) -> Option<usize> {
    let upper = text.to_ascii_uppercase();
    let mut quoted = false;
    let bytes = upper.as_bytes();
    for i in 0..bytes.len() {
        if bytes[i] == b'\'' {
            quoted = !quoted;
        }
        if quoted || !upper[i..].starts_with(keyword) {
            continue;
        }
        let before_ok = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let after = i + keyword.len();
        let after_ok = after >= bytes.len() || !(bytes[after].is_ascii_alphanumeric() || bytes[after] == b'_');
        if before_ok && after_ok {
            return Some(i);
        }
    }
    None
}
