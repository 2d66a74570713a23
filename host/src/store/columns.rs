//! Reading the façade's rows out of a database row, for every backend:
//! [`Columns`] gives typed, fallible access to a row's columns by index,
//! for any sqlx row whose database decodes the types tend stores (both
//! SQLite's and PostgreSQL's do). Each backend selects the columns in the
//! order a reader here expects; the SQL stays the backends'.

use super::StoreResult;
use serde_json::Value;
use std::str::FromStr;

/// A database row read by column index. Errors name nothing more than the
/// driver does; a value that does not parse (a status no spelling
/// matches) is an error naming it.
pub(super) trait Columns {
    fn text(&self, i: usize) -> StoreResult<String>;
    fn opt_text(&self, i: usize) -> StoreResult<Option<String>>;
    fn int(&self, i: usize) -> StoreResult<i64>;
    fn opt_int(&self, i: usize) -> StoreResult<Option<i64>>;
    fn float(&self, i: usize) -> StoreResult<f64>;
    fn opt_float(&self, i: usize) -> StoreResult<Option<f64>>;
    fn flag(&self, i: usize) -> StoreResult<bool>;

    /// A column stored as the spelling of an enum (a status, a kind).
    fn parsed<T: FromStr<Err = String>>(&self, i: usize) -> StoreResult<T> {
        Ok(self.text(i)?.parse().map_err(anyhow::Error::msg)?)
    }

    /// A column holding JSON text.
    fn json(&self, i: usize) -> StoreResult<Value> {
        Ok(serde_json::from_str(&self.text(i)?)?)
    }

    /// A nullable column holding JSON text.
    fn opt_json(&self, i: usize) -> StoreResult<Option<Value>> {
        self.opt_text(i)?.map(|s| serde_json::from_str(&s)).transpose().map_err(Into::into)
    }

    /// An unsigned count stored as an integer (an iteration, an attempt).
    fn count(&self, i: usize) -> StoreResult<u32> {
        Ok(self.int(i)? as u32)
    }
}

impl<R> Columns for R
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn text(&self, i: usize) -> StoreResult<String> {
        Ok(self.try_get(i)?)
    }
    fn opt_text(&self, i: usize) -> StoreResult<Option<String>> {
        Ok(self.try_get(i)?)
    }
    fn int(&self, i: usize) -> StoreResult<i64> {
        Ok(self.try_get(i)?)
    }
    fn opt_int(&self, i: usize) -> StoreResult<Option<i64>> {
        Ok(self.try_get(i)?)
    }
    fn float(&self, i: usize) -> StoreResult<f64> {
        Ok(self.try_get(i)?)
    }
    fn opt_float(&self, i: usize) -> StoreResult<Option<f64>> {
        Ok(self.try_get(i)?)
    }
    fn flag(&self, i: usize) -> StoreResult<bool> {
        Ok(self.try_get(i)?)
    }
}
