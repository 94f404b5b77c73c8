//! The part of rusqlite's surface that `store/logic.rs` uses, over the synchronous `postgres`
//! client, so that the one body of SQL operations runs on both backends.
//!
//! Statements are prepared once per connection and cached by their text (as rusqlite's
//! `prepare_cached`); `?N` placeholders become `$N` and the marker comment
//! `/* FOR UPDATE SKIP LOCKED */` becomes that clause. Values cross as [`Value`], which binds
//! itself to whatever type PostgreSQL inferred for a parameter (an integer to `BIGINT`,
//! `INTEGER` or `BOOLEAN`, text to `TEXT`) and reads any column the schema uses.

use bytes::BytesMut;
use postgres::types::{FromSql as PgFromSql, IsNull, ToSql as PgToSql, Type, to_sql_checked};
use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;

/// Most statements one connection keeps prepared (the cache starts over beyond it).
const CACHE_CAPACITY: usize = 512;

/// A failure of a statement.
#[derive(Debug)]
pub enum Error {
    /// `query_row` found no row (see [`OptionalExtension`]).
    QueryReturnedNoRows,
    /// The database or the connection failed.
    Db(postgres::Error),
    /// A value could not be converted.
    Conversion(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::QueryReturnedNoRows => f.write_str("query returned no rows"),
            Error::Db(e) => match e.as_db_error() {
                Some(d) => write!(f, "{}: {}", d.code().code(), d.message()),
                None => write!(f, "{e}"),
            },
            Error::Conversion(m) => f.write_str(m),
        }
    }
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Error {
        Error::Db(e)
    }
}

/// rusqlite's `Result`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A value crossing to or from the database.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `NULL`.
    Null,
    /// Any integer (and booleans, as 0 and 1).
    Integer(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl PgToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, BoxError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::UNKNOWN => {
                    i.to_string().as_str().to_sql(ty, out)
                }
                _ => Err(format!("an integer cannot bind to {ty}").into()),
            },
            Value::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => Err(format!("a float cannot bind to {ty}").into()),
            },
            Value::Text(s) => match *ty {
                Type::BYTEA => s.as_bytes().to_sql(ty, out),
                _ => s.as_str().to_sql(ty, out),
            },
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl<'a> PgFromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Value, BoxError> {
        Ok(match *ty {
            Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Integer(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Integer(i16::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Integer(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)?.into()),
            Type::BYTEA => Value::Blob(Vec::<u8>::from_sql(ty, raw)?),
            _ => Value::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &Type) -> std::result::Result<Value, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A value that can be a statement's parameter.
pub trait ToSql {
    /// The value to bind.
    fn to_value(&self) -> Value;
}

/// A value a column can be read as.
pub trait FromSql: Sized {
    /// Converts a column's value.
    fn from_value(v: &Value) -> Result<Self>;
}

impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToSql> ToSql for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToSql::to_value)
    }
}

impl ToSql for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

impl ToSql for i64 {
    fn to_value(&self) -> Value {
        Value::Integer(*self)
    }
}

impl ToSql for bool {
    fn to_value(&self) -> Value {
        Value::Integer((*self).into())
    }
}

impl ToSql for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToSql for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToSql for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}

fn mismatch(v: &Value, want: &str) -> Error {
    Error::Conversion(format!("column holds {v:?}, not {want}"))
}

impl FromSql for i64 {
    fn from_value(v: &Value) -> Result<i64> {
        match v {
            Value::Integer(i) => Ok(*i),
            _ => Err(mismatch(v, "an integer")),
        }
    }
}

impl FromSql for bool {
    fn from_value(v: &Value) -> Result<bool> {
        match v {
            Value::Integer(i) => Ok(*i != 0),
            _ => Err(mismatch(v, "a boolean")),
        }
    }
}

impl FromSql for String {
    fn from_value(v: &Value) -> Result<String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            _ => Err(mismatch(v, "text")),
        }
    }
}

impl FromSql for Vec<u8> {
    fn from_value(v: &Value) -> Result<Vec<u8>> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(s) => Ok(s.clone().into_bytes()),
            _ => Err(mismatch(v, "bytes")),
        }
    }
}

impl<T: FromSql> FromSql for Option<T> {
    fn from_value(v: &Value) -> Result<Option<T>> {
        match v {
            Value::Null => Ok(None),
            _ => T::from_value(v).map(Some),
        }
    }
}

/// A statement's parameters (what rusqlite's `Params` is to it).
pub trait Params {
    /// The values, in placeholder order.
    fn values(self) -> Vec<Value>;
}

impl Params for &[&dyn ToSql] {
    fn values(self) -> Vec<Value> {
        self.iter().map(|v| v.to_value()).collect()
    }
}

impl<const N: usize> Params for &[&dyn ToSql; N] {
    fn values(self) -> Vec<Value> {
        self.iter().map(|v| v.to_value()).collect()
    }
}

impl Params for [&(dyn ToSql + Send + Sync); 0] {
    fn values(self) -> Vec<Value> {
        Vec::new()
    }
}

macro_rules! array_params {
    ($($n:literal),+) => {$(
        impl<T: ToSql> Params for [T; $n] {
            fn values(self) -> Vec<Value> {
                self.iter().map(ToSql::to_value).collect()
            }
        }
    )+};
}

array_params!(1, 2, 3, 4);

/// Parameters from an iterator (rusqlite's `params_from_iter`).
pub struct ParamsFromIter<I>(I);

/// Parameters from an iterator of values.
pub fn params_from_iter<I>(iter: I) -> ParamsFromIter<I>
where
    I: IntoIterator,
    I::Item: ToSql,
{
    ParamsFromIter(iter)
}

impl<I> Params for ParamsFromIter<I>
where
    I: IntoIterator,
    I::Item: ToSql,
{
    fn values(self) -> Vec<Value> {
        self.0.into_iter().map(|v| v.to_value()).collect()
    }
}

/// rusqlite's `params!`: a slice of parameters of any types.
macro_rules! pg_params {
    () => {
        &[] as &[&dyn $crate::store::postgres::sql::ToSql]
    };
    ($($v:expr),+ $(,)?) => {
        &[$(&$v as &dyn $crate::store::postgres::sql::ToSql),+] as &[&dyn $crate::store::postgres::sql::ToSql]
    };
}

pub(crate) use pg_params as params;

/// One row, its values read out.
pub struct Row<'a> {
    values: Vec<Value>,
    _rows: PhantomData<&'a ()>,
}

/// A column index (rusqlite's `RowIndex`; by position only here).
pub trait RowIndex {
    /// The position.
    fn index(&self) -> usize;
}

impl RowIndex for usize {
    fn index(&self) -> usize {
        *self
    }
}

impl Row<'_> {
    /// Column `idx` as `T`.
    pub fn get<I: RowIndex, T: FromSql>(&self, idx: I) -> Result<T> {
        let i = idx.index();
        let v = self
            .values
            .get(i)
            .ok_or_else(|| Error::Conversion(format!("no column {i}")))?;
        T::from_value(v)
    }
}

/// `query_row`'s missing row as `None` (rusqlite's `OptionalExtension`).
pub trait OptionalExtension<T> {
    /// `Ok(None)` for no row.
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// One connection with its statement cache. Used from one thread at a time.
pub struct Connection {
    client: RefCell<postgres::Client>,
    cache: RefCell<HashMap<String, postgres::Statement>>,
}

/// Rewrites the shared SQL for PostgreSQL: `?N` → `$N`, the claim marker → its clause.
pub fn translate(sql: &str) -> String {
    let sql = sql.replace("/* FOR UPDATE SKIP LOCKED */", "FOR UPDATE SKIP LOCKED");
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == '?' && !quoted && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

impl Connection {
    /// Wraps a connected client.
    pub fn new(client: postgres::Client) -> Connection {
        Connection {
            client: RefCell::new(client),
            cache: RefCell::new(HashMap::new()),
        }
    }

    /// Whether the connection to the server is gone.
    pub fn is_closed(&self) -> bool {
        self.client.borrow().is_closed()
    }

    /// Runs statements without parameters (the simple query protocol).
    pub fn batch_execute(&self, sql: &str) -> Result<()> {
        Ok(self.client.borrow_mut().batch_execute(sql)?)
    }

    /// The prepared statement for `sql`, prepared on first use.
    pub fn prepare_cached(&self, sql: &str) -> Result<CachedStatement<'_>> {
        if let Some(st) = self.cache.borrow().get(sql) {
            return Ok(CachedStatement {
                conn: self,
                st: st.clone(),
            });
        }
        let st = self.client.borrow_mut().prepare(&translate(sql))?;
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(sql.to_owned(), st.clone());
        Ok(CachedStatement { conn: self, st })
    }

    fn rows(&self, st: &postgres::Statement, values: &[Value]) -> Result<Vec<Row<'static>>> {
        let args: Vec<&(dyn PgToSql + Sync)> = values.iter().map(|v| v as _).collect();
        let rows = self.client.borrow_mut().query(st, &args)?;
        rows.iter()
            .map(|r| {
                let values = (0..r.len())
                    .map(|i| r.try_get::<_, Value>(i))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                Ok(Row {
                    values,
                    _rows: PhantomData,
                })
            })
            .collect()
    }
}

/// A prepared statement of a [`Connection`].
pub struct CachedStatement<'c> {
    conn: &'c Connection,
    st: postgres::Statement,
}

impl CachedStatement<'_> {
    /// Runs it; the number of rows changed.
    pub fn execute<P: Params>(&mut self, params: P) -> Result<usize> {
        let values = params.values();
        let args: Vec<&(dyn PgToSql + Sync)> = values.iter().map(|v| v as _).collect();
        let n = self.conn.client.borrow_mut().execute(&self.st, &args)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// The first row through `f`; [`Error::QueryReturnedNoRows`] without one.
    pub fn query_row<T, P, F>(&mut self, params: P, f: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        let rows = self.conn.rows(&self.st, &params.values())?;
        match rows.first() {
            Some(r) => f(r),
            None => Err(Error::QueryReturnedNoRows),
        }
    }

    /// Every row through `f`.
    pub fn query_map<T, P, F>(&mut self, params: P, f: F) -> Result<MappedRows<F>>
    where
        P: Params,
        F: FnMut(&Row<'_>) -> Result<T>,
    {
        let rows = self.conn.rows(&self.st, &params.values())?;
        Ok(MappedRows {
            rows: rows.into_iter(),
            f,
        })
    }

    /// The rows, one by one.
    pub fn query<P: Params>(&mut self, params: P) -> Result<Rows> {
        let rows = self.conn.rows(&self.st, &params.values())?;
        Ok(Rows {
            rows: rows.into_iter(),
            current: None,
        })
    }

    /// Whether it yields a row.
    pub fn exists<P: Params>(&mut self, params: P) -> Result<bool> {
        Ok(!self.conn.rows(&self.st, &params.values())?.is_empty())
    }
}

/// Rows mapped through a function.
pub struct MappedRows<F> {
    rows: std::vec::IntoIter<Row<'static>>,
    f: F,
}

impl<T, F> Iterator for MappedRows<F>
where
    F: FnMut(&Row<'_>) -> Result<T>,
{
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        let row = self.rows.next()?;
        Some((self.f)(&row))
    }
}

/// Rows of [`CachedStatement::query`].
pub struct Rows {
    rows: std::vec::IntoIter<Row<'static>>,
    current: Option<Row<'static>>,
}

impl Rows {
    /// The next row.
    pub fn next(&mut self) -> Result<Option<&Row<'static>>> {
        self.current = self.rows.next();
        Ok(self.current.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::translate;

    #[test]
    fn placeholders_become_numbered_dollars_outside_literals() {
        assert_eq!(
            translate(
                "SELECT '?1', x FROM t WHERE a = ?1 AND b = ?12 /* FOR UPDATE SKIP LOCKED */"
            ),
            "SELECT '?1', x FROM t WHERE a = $1 AND b = $12 FOR UPDATE SKIP LOCKED"
        );
    }
}
