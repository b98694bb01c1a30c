//! Reading users' carried remainders for a distribution.
//!
//! A user's carry is `carry_after` of their latest credit of the asset. Every
//! distribution writes a credit row for every user with weight, so for the
//! users who had weight in the previous distribution of the asset, that
//! distribution's row is their latest one: the read is that distribution's
//! rows (O(users), through the `(distribution_id, user_id)` index), never the
//! whole credit history. Only the users missing from it (new users, or users
//! back after a gap) are looked up one by one, in batches, among all earlier
//! credits. Distributions of one asset are serialized (the asset lock) and
//! credit ids grow with them, so "latest by id" and "latest by distribution"
//! are the same row.

use crate::StoreError;
use std::collections::HashMap;

/// Users per SQLite page of the previous distribution's rows, and per batch
/// of missing users (`?` placeholders, see balances.rs).
const SQLITE_PAGE: usize = 5_000;
const SQLITE_BATCH: usize = 500;
/// Missing users per PostgreSQL lookup (one array parameter).
const PG_BATCH: usize = 10_000;

/// Backend-specific reads; [`carries`] puts them together.
pub(crate) trait ReadCarries<C> {
    /// Distribution `prev`'s `(user, carry_after)` rows, sorted by bytes.
    async fn prev_rows(conn: &mut C, prev: i64) -> Result<Vec<(String, u128)>, StoreError>;
    /// Each of `users`' latest carry of `asset` from distributions before
    /// `before` (users without any credit are absent).
    async fn latest_of(
        conn: &mut C,
        asset: &str,
        before: i64,
        users: &[&str],
    ) -> Result<HashMap<String, u128>, StoreError>;
}

/// Carried remainders (micro-units) of `users`, which must be sorted by bytes
/// and distinct, before distribution `before` of `asset`, given the rows of
/// the latest distribution of the asset before it (`None`: there is none,
/// so no user has a carry). The result is aligned with `users` (0 for none).
pub(crate) async fn carries<C, S: ReadCarries<C>>(
    conn: &mut C,
    asset: &str,
    prev_rows: Option<&[(String, u128)]>,
    before: i64,
    users: &[&str],
) -> Result<Vec<u128>, StoreError> {
    let Some(prev_rows) = prev_rows else {
        return Ok(vec![0; users.len()]);
    };
    let (mut out, missing) = align(users, prev_rows);
    if !missing.is_empty() {
        let ids: Vec<&str> = missing.iter().map(|i| users[*i]).collect();
        let found = S::latest_of(conn, asset, before, &ids).await?;
        for i in missing {
            out[i] = found.get(users[i]).copied().unwrap_or(0);
        }
    }
    Ok(out)
}

fn carry(s: &str) -> Result<u128, StoreError> {
    s.parse::<u128>()
        .map_err(|e| StoreError::Corrupt(format!("credits.carry_after: {e}")))
}

/// Aligns `prev_rows` (sorted by bytes) with `users` (sorted by bytes);
/// returns the carries found and the indexes of users missing from it.
fn align(users: &[&str], prev_rows: &[(String, u128)]) -> (Vec<u128>, Vec<usize>) {
    let mut out = vec![0u128; users.len()];
    let mut missing = Vec::new();
    let mut j = 0;
    for (i, u) in users.iter().enumerate() {
        while j < prev_rows.len() && prev_rows[j].0.as_bytes() < u.as_bytes() {
            j += 1;
        }
        match prev_rows.get(j) {
            Some((p, c)) if p.as_bytes() == u.as_bytes() => out[i] = *c,
            _ => missing.push(i),
        }
    }
    (out, missing)
}

/// Keeps, per user, the carry of the row with the highest id.
fn latest(rows: Vec<(String, String, i64)>) -> Result<HashMap<String, u128>, StoreError> {
    let mut best: HashMap<String, (i64, String)> = HashMap::new();
    for (u, c, id) in rows {
        match best.get(&u) {
            Some((b, _)) if *b >= id => {}
            _ => {
                best.insert(u, (id, c));
            }
        }
    }
    best.into_iter()
        .map(|(u, (_, c))| Ok((u, carry(&c)?)))
        .collect()
}

impl ReadCarries<sqlx::SqliteConnection> for crate::Store {
    async fn prev_rows(
        conn: &mut sqlx::SqliteConnection,
        prev: i64,
    ) -> Result<Vec<(String, u128)>, StoreError> {
        // Pages packed into one row each (`LEN:USER_ID` then the carry's
        // digits, ';' between users), read in index order after the previous
        // page's last user: sqlx-sqlite's per-row cost would dominate
        // otherwise (see distribution.rs).
        let page = |after: &str| {
            format!(
                "SELECT group_concat(length(user_id) || ':' || user_id || carry_after, ';'), max(user_id) FROM ( \
                   SELECT user_id, carry_after FROM credits WHERE distribution_id = ? {after} \
                   ORDER BY user_id LIMIT {SQLITE_PAGE})"
            )
        };
        let (first_sql, next_sql) = (page(""), page("AND user_id > ?"));
        let bad = |v: &str| StoreError::Corrupt(format!("credits near {v:?}"));
        let mut rows: Vec<(String, u128)> = Vec::new();
        let mut current: Option<(Option<String>, Option<String>)> =
            sqlx::query_as(sqlx::AssertSqlSafe(first_sql.as_str()))
                .bind(prev)
                .fetch_optional(&mut *conn)
                .await?;
        while let Some((Some(packed), Some(last))) = current.take() {
            let next = sqlx::query_as(sqlx::AssertSqlSafe(next_sql.as_str()))
                .bind(prev)
                .bind(last)
                .fetch_optional(&mut *conn);
            let parse = async {
                let mut rest = packed.as_str();
                while !rest.is_empty() {
                    let (len, after) = rest.split_once(':').ok_or_else(|| bad(rest))?;
                    let len: usize = len.parse().map_err(|_| bad(rest))?;
                    let cut = after
                        .char_indices()
                        .nth(len)
                        .map_or(after.len(), |(i, _)| i);
                    let (user, tail) = after.split_at(cut);
                    let (c, next) = tail.split_once(';').unwrap_or((tail, ""));
                    rows.push((user.to_owned(), carry(c)?));
                    rest = next;
                }
                Ok::<(), StoreError>(())
            };
            let (fetched, parsed) = tokio::join!(next, parse);
            parsed?;
            current = fetched?;
        }
        // SQLite's BINARY order is byte order already; sorting a sorted
        // list is one pass.
        rows.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Ok(rows)
    }

    async fn latest_of(
        conn: &mut sqlx::SqliteConnection,
        asset: &str,
        before: i64,
        users: &[&str],
    ) -> Result<HashMap<String, u128>, StoreError> {
        let mut out = HashMap::new();
        for chunk in users.chunks(SQLITE_BATCH) {
            let sql = format!(
                "SELECT user_id, carry_after, id FROM credits WHERE asset = ? AND distribution_id < ? AND user_id IN ({})",
                vec!["?"; chunk.len()].join(",")
            );
            // Only placeholders are interpolated; values are bound.
            let mut q = sqlx::query_as::<_, (String, String, i64)>(sqlx::AssertSqlSafe(sql))
                .persistent(false)
                .bind(asset)
                .bind(before);
            for u in chunk {
                q = q.bind(*u);
            }
            out.extend(latest(q.fetch_all(&mut *conn).await?)?);
        }
        Ok(out)
    }
}

impl ReadCarries<sqlx::PgConnection> for crate::Store {
    async fn prev_rows(
        conn: &mut sqlx::PgConnection,
        prev: i64,
    ) -> Result<Vec<(String, u128)>, StoreError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT user_id, carry_after FROM credits WHERE distribution_id = $1")
                .bind(prev)
                .fetch_all(&mut *conn)
                .await?;
        let mut rows = rows
            .into_iter()
            .map(|(u, c)| Ok((u, carry(&c)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        rows.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Ok(rows)
    }

    async fn latest_of(
        conn: &mut sqlx::PgConnection,
        asset: &str,
        before: i64,
        users: &[&str],
    ) -> Result<HashMap<String, u128>, StoreError> {
        let mut out = HashMap::new();
        for chunk in users.chunks(PG_BATCH) {
            let rows: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT user_id, carry_after, id FROM credits WHERE asset = $1 AND distribution_id < $2 AND user_id = ANY($3)",
            )
            .bind(asset)
            .bind(before)
            .bind(chunk)
            .fetch_all(&mut *conn)
            .await?;
            out.extend(latest(rows)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align_finds_the_previous_rows_and_lists_the_rest() {
        let prev = vec![
            ("a".to_owned(), 1u128),
            ("c".to_owned(), 3),
            ("d".to_owned(), 4),
        ];
        let (out, missing) = align(&["b", "c", "e"], &prev);
        assert_eq!(out, vec![0, 3, 0]);
        assert_eq!(missing, vec![0, 2]);
        let (out, missing) = align(&["a", "d"], &prev);
        assert_eq!(out, vec![1, 4]);
        assert!(missing.is_empty());
        let (out, missing) = align(&["x"], &[]);
        assert_eq!((out, missing), (vec![0], vec![0]));
    }

    #[test]
    fn latest_keeps_the_highest_id() {
        let rows = vec![
            ("u".to_owned(), "5".to_owned(), 7),
            ("u".to_owned(), "9".to_owned(), 12),
            ("u".to_owned(), "1".to_owned(), 3),
            ("v".to_owned(), "2".to_owned(), 1),
        ];
        let m = latest(rows).unwrap();
        assert_eq!(m.get("u"), Some(&9));
        assert_eq!(m.get("v"), Some(&2));
        assert!(latest(vec![("u".into(), "x".into(), 1)]).is_err());
    }
}
