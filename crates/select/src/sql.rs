//! S3 Select's SQL: `SELECT … FROM S3Object[path] [alias] [WHERE …] [LIMIT n]`, parsed with
//! `sqlparser` and compiled into [`Query`], the expression tree the engine evaluates. Anything
//! S3 Select does not have (joins, GROUP BY, ORDER BY, subqueries) is refused with AWS's codes.

use sqlparser::ast;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use crate::SelectError;
use crate::value::{CastType, Value};

/// The longest expression S3 Select takes (AWS: 256 KB).
const MAX_EXPRESSION_BYTES: usize = 256 << 10;
/// The most operators an expression may have: a chain of them is a tree as deep as it is
/// long, and compiling, evaluating and dropping it recurse.
const MAX_OPERATORS: usize = 256;

/// Refuses an expression with more operators than [`MAX_OPERATORS`], before it is parsed.
fn check_operators(sql: &str) -> Result<(), SelectError> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| parse_error(e.to_string()))?;
    let operators = tokens
        .iter()
        .filter(|t| match t {
            Token::Word(w) => matches!(
                w.value.to_ascii_uppercase().as_str(),
                "AND" | "OR" | "NOT" | "LIKE" | "BETWEEN" | "IS" | "IN" | "CASE" | "WHEN"
            ),
            Token::Eq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::StringConcat
            | Token::LParen => true,
            _ => false,
        })
        .count();
    if operators > MAX_OPERATORS {
        return Err(SelectError::new(
            "ExpressionTooLong",
            format!("the expression has more than {MAX_OPERATORS} operators"),
        ));
    }
    Ok(())
}

/// One step of a column path: a name, matched exactly when it was quoted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Step {
    pub(crate) name: String,
    pub(crate) exact: bool,
}

impl Step {
    pub(crate) fn matches(&self, name: &str) -> bool {
        if self.exact {
            self.name == name
        } else {
            self.name.eq_ignore_ascii_case(name)
        }
    }

    /// `_N`: the N-th column (1-based), for positional access.
    pub(crate) fn position(&self) -> Option<usize> {
        self.name
            .strip_prefix('_')?
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .map(|n| n - 1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum AggFunc {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum TrimWhere {
    Both,
    Leading,
    Trailing,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Column(Vec<Step>),
    Literal(Value),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Concat(Box<Expr>, Box<Expr>),
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        escape: Option<Box<Expr>>,
        negated: bool,
    },
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    In {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    Cast(Box<Expr>, CastType),
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    /// A scalar function, by its upper-case name.
    Function(String, Vec<Expr>),
    Substring {
        expr: Box<Expr>,
        from: Option<Box<Expr>>,
        length: Option<Box<Expr>>,
    },
    Trim {
        expr: Box<Expr>,
        side: TrimWhere,
        what: Option<Box<Expr>>,
    },
    Extract(String, Box<Expr>),
    /// The `index`-th aggregate of the query; `arg: None` is `COUNT(*)`.
    Aggregate {
        index: usize,
        func: AggFunc,
        arg: Option<Box<Expr>>,
    },
}

/// One output column: its expression and name.
#[derive(Debug, Clone)]
pub(crate) struct Projection {
    pub(crate) expr: Expr,
    pub(crate) name: String,
}

#[derive(Debug, Clone)]
pub(crate) enum Select {
    /// `SELECT *`: every field of the record, as it is.
    All,
    Columns(Vec<Projection>),
}

/// A compiled S3 Select query.
#[derive(Debug, Clone)]
pub struct Query {
    pub(crate) select: Select,
    /// `FROM S3Object[*].a.b`: where records are in a JSON document (`[*]` steps into arrays).
    pub(crate) from_path: Vec<PathStep>,
    pub(crate) filter: Option<Expr>,
    pub(crate) limit: Option<u64>,
    /// How many aggregates the projection has (0: one output row per record).
    pub(crate) aggregates: usize,
    /// The aggregates, in index order: how each is folded.
    pub(crate) aggregate_funcs: Vec<AggFunc>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PathStep {
    /// `[*]`: every element of an array.
    Wildcard,
    Key(String),
}

fn parse_error(message: impl Into<String>) -> SelectError {
    SelectError::new("ParseUnexpectedToken", message)
}

fn unsupported(message: impl Into<String>) -> SelectError {
    SelectError::new("UnsupportedSyntax", message)
}

/// Splits `FROM S3Object<path>` out of the SQL: `sqlparser` knows no `[*]` paths. Returns
/// the SQL with a plain `S3Object` there, and the path.
fn take_from_path(sql: &str) -> Result<(String, Vec<PathStep>), SelectError> {
    let lower = sql.to_ascii_lowercase();
    let mut search = 0;
    while let Some(found) = lower[search..].find("s3object") {
        let start = search + found;
        let end = start + "s3object".len();
        let before = lower[..start].trim_end();
        if !before.ends_with("from") {
            search = end;
            continue;
        }
        let bytes = sql.as_bytes();
        let mut i = end;
        let mut path = Vec::new();
        loop {
            if sql[i..].starts_with("[*]") {
                path.push(PathStep::Wildcard);
                i += 3;
            } else if bytes.get(i) == Some(&b'.') && bytes.get(i + 1) == Some(&b'"') {
                let close = sql[i + 2..]
                    .find('"')
                    .ok_or_else(|| parse_error("an unterminated quoted name in FROM"))?;
                path.push(PathStep::Key(sql[i + 2..i + 2 + close].to_owned()));
                i += close + 3;
            } else if bytes.get(i) == Some(&b'.') {
                let len = sql[i + 1..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(sql.len() - i - 1);
                if len == 0 {
                    return Err(parse_error("a path step in FROM has no name"));
                }
                path.push(PathStep::Key(sql[i + 1..i + 1 + len].to_owned()));
                i += len + 1;
            } else {
                break;
            }
        }
        let rewritten = format!("{}S3Object{}", &sql[..start], &sql[i..]);
        return Ok((rewritten, path));
    }
    // No S3Object: the compiler says what is wrong with the FROM.
    Ok((sql.to_owned(), Vec::new()))
}

impl Query {
    pub fn parse(sql: &str) -> Result<Query, SelectError> {
        if sql.len() > MAX_EXPRESSION_BYTES {
            return Err(SelectError::new(
                "ExpressionTooLong",
                "the SQL expression is longer than 256 KB",
            ));
        }
        check_operators(sql)?;
        let (sql, from_path) = take_from_path(sql)?;
        let statements =
            Parser::parse_sql(&GenericDialect {}, &sql).map_err(|e| parse_error(e.to_string()))?;
        let [ast::Statement::Query(query)] = statements.as_slice() else {
            return Err(unsupported("S3 Select runs exactly one SELECT"));
        };
        if query.with.is_some() || query.order_by.is_some() || query.fetch.is_some() {
            return Err(unsupported("WITH, ORDER BY and FETCH are not supported"));
        }
        let limit = match &query.limit_clause {
            None => None,
            Some(ast::LimitClause::LimitOffset {
                limit: Some(expr),
                offset: None,
                limit_by,
            }) if limit_by.is_empty() => Some(limit_value(expr)?),
            Some(_) => return Err(unsupported("only LIMIT n is supported")),
        };
        let ast::SetExpr::Select(select) = query.body.as_ref() else {
            return Err(unsupported(
                "UNION, VALUES and nested queries are not supported",
            ));
        };
        if select.distinct.is_some()
            || select.having.is_some()
            || !matches!(&select.group_by, ast::GroupByExpr::Expressions(e, _) if e.is_empty())
        {
            return Err(unsupported(
                "DISTINCT, GROUP BY and HAVING are not supported",
            ));
        }
        let alias = match select.from.as_slice() {
            [from] if from.joins.is_empty() => match &from.relation {
                ast::TableFactor::Table { name, alias, .. }
                    if name.to_string().eq_ignore_ascii_case("s3object") =>
                {
                    alias.as_ref().map(|a| a.name.value.clone())
                }
                _ => return Err(unsupported("select FROM S3Object")),
            },
            [] => {
                return Err(SelectError::new(
                    "ParseSelectMissingFrom",
                    "the query must select FROM S3Object",
                ));
            }
            _ => return Err(unsupported("joins are not supported")),
        };
        let mut compiler = Compiler {
            alias,
            aggregates: Vec::new(),
        };
        let select_list = compiler.projection(&select.projection)?;
        let aggregate_count = compiler.aggregates.len();
        let filter = select
            .selection
            .as_ref()
            .map(|e| compiler.expr(e))
            .transpose()?;
        if compiler.aggregates.len() != aggregate_count {
            return Err(SelectError::new(
                "InvalidAggregateInWhere",
                "aggregates are not allowed in WHERE",
            ));
        }
        if aggregate_count > 0
            && let Select::Columns(columns) = &select_list
            && columns.iter().any(|c| has_bare_column(&c.expr))
        {
            return Err(unsupported(
                "a query with aggregates selects aggregates only",
            ));
        }
        Ok(Query {
            select: select_list,
            from_path,
            filter,
            limit,
            aggregates: aggregate_count,
            aggregate_funcs: compiler.aggregates,
        })
    }
}

fn limit_value(expr: &ast::Expr) -> Result<u64, SelectError> {
    match expr {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n
                .parse()
                .map_err(|_| parse_error("LIMIT takes a non-negative integer")),
            _ => Err(parse_error("LIMIT takes a non-negative integer")),
        },
        _ => Err(parse_error("LIMIT takes a non-negative integer")),
    }
}

/// Whether an expression reads a record's column outside any aggregate.
fn has_bare_column(expr: &Expr) -> bool {
    match expr {
        Expr::Column(_) => true,
        Expr::Aggregate { .. } => false,
        other => other.children().into_iter().any(has_bare_column),
    }
}

impl Expr {
    /// The expressions this one is made of, in order (an aggregate's argument included).
    pub(crate) fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Column(_) | Expr::Literal(_) => Vec::new(),
            Expr::Not(e) | Expr::Neg(e) | Expr::Cast(e, _) | Expr::Extract(_, e) => vec![e],
            Expr::IsNull { expr, .. } => vec![expr],
            Expr::And(a, b)
            | Expr::Or(a, b)
            | Expr::Compare(_, a, b)
            | Expr::Arith(_, a, b)
            | Expr::Concat(a, b) => vec![a, b],
            Expr::Function(_, args) => args.iter().collect(),
            Expr::Aggregate { arg, .. } => arg.iter().map(|a| &**a).collect(),
            Expr::Like {
                expr,
                pattern,
                escape,
                ..
            } => [Some(&**expr), Some(&**pattern), escape.as_deref()]
                .into_iter()
                .flatten()
                .collect(),
            Expr::Between {
                expr, low, high, ..
            } => vec![expr, low, high],
            Expr::In { expr, list, .. } => std::iter::once(&**expr).chain(list).collect(),
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => operand
                .as_deref()
                .into_iter()
                .chain(whens.iter().flat_map(|(w, t)| [w, t]))
                .chain(otherwise.as_deref())
                .collect(),
            Expr::Substring { expr, from, length } => std::iter::once(&**expr)
                .chain(from.as_deref())
                .chain(length.as_deref())
                .collect(),
            Expr::Trim { expr, what, .. } => {
                std::iter::once(&**expr).chain(what.as_deref()).collect()
            }
        }
    }
}

struct Compiler {
    /// The alias of `S3Object` (`FROM S3Object s`), which column paths may start with.
    alias: Option<String>,
    aggregates: Vec<AggFunc>,
}

fn boxed(e: Expr) -> Box<Expr> {
    Box::new(e)
}

impl Compiler {
    fn projection(&mut self, items: &[ast::SelectItem]) -> Result<Select, SelectError> {
        if items.is_empty() {
            return Err(SelectError::new(
                "ParseExpectedExpression",
                "SELECT needs at least one expression",
            ));
        }
        if let [ast::SelectItem::Wildcard(_)] = items {
            return Ok(Select::All);
        }
        if let [ast::SelectItem::QualifiedWildcard(_, _)] = items {
            return Ok(Select::All);
        }
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let (expr, alias) = match item {
                ast::SelectItem::UnnamedExpr(e) => (e, None),
                ast::SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.clone())),
                _ => {
                    return Err(SelectError::new(
                        "ParseInvalidContextForWildcardInSelectList",
                        "* stands alone in the select list",
                    ));
                }
            };
            let compiled = self.expr(expr)?;
            let name = alias.unwrap_or_else(|| match &compiled {
                Expr::Column(path) => path.last().map(|s| s.name.clone()).unwrap_or_default(),
                _ => format!("_{}", i + 1),
            });
            out.push(Projection {
                expr: compiled,
                name,
            });
        }
        Ok(Select::Columns(out))
    }

    fn column(&self, idents: &[ast::Ident]) -> Expr {
        let mut steps: Vec<Step> = idents
            .iter()
            .map(|i| Step {
                name: i.value.clone(),
                exact: i.quote_style.is_some(),
            })
            .collect();
        let starts_with_alias = steps.len() > 1
            && (self
                .alias
                .as_deref()
                .is_some_and(|a| steps[0].name.eq_ignore_ascii_case(a))
                || steps[0].name.eq_ignore_ascii_case("s3object"));
        if starts_with_alias {
            steps.remove(0);
        }
        Expr::Column(steps)
    }

    fn exprs(&mut self, exprs: &[ast::Expr]) -> Result<Vec<Expr>, SelectError> {
        exprs.iter().map(|e| self.expr(e)).collect()
    }

    fn expr(&mut self, expr: &ast::Expr) -> Result<Expr, SelectError> {
        use ast::Expr as E;
        Ok(match expr {
            E::Identifier(i) => self.column(std::slice::from_ref(i)),
            E::CompoundIdentifier(ids) => self.column(ids),
            E::Nested(e) => self.expr(e)?,
            E::Value(v) => Expr::Literal(literal(&v.value)?),
            E::TypedString(t) => {
                let text = match &t.value.value {
                    ast::Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                let value = Value::Str(text);
                let kind = t.data_type.to_string().to_ascii_uppercase();
                if kind.starts_with("TIMESTAMP") || kind == "DATE" {
                    Expr::Literal(value.cast(CastType::Timestamp)?)
                } else {
                    Expr::Literal(value)
                }
            }
            E::UnaryOp { op, expr } => match op {
                ast::UnaryOperator::Not => Expr::Not(boxed(self.expr(expr)?)),
                ast::UnaryOperator::Minus => Expr::Neg(boxed(self.expr(expr)?)),
                ast::UnaryOperator::Plus => self.expr(expr)?,
                other => return Err(unsupported(format!("the operator {other}"))),
            },
            E::BinaryOp { left, op, right } => {
                let (l, r) = (boxed(self.expr(left)?), boxed(self.expr(right)?));
                use ast::BinaryOperator as B;
                match op {
                    B::And => Expr::And(l, r),
                    B::Or => Expr::Or(l, r),
                    B::Eq => Expr::Compare(CmpOp::Eq, l, r),
                    B::NotEq => Expr::Compare(CmpOp::NotEq, l, r),
                    B::Lt => Expr::Compare(CmpOp::Lt, l, r),
                    B::LtEq => Expr::Compare(CmpOp::LtEq, l, r),
                    B::Gt => Expr::Compare(CmpOp::Gt, l, r),
                    B::GtEq => Expr::Compare(CmpOp::GtEq, l, r),
                    B::Plus => Expr::Arith(ArithOp::Add, l, r),
                    B::Minus => Expr::Arith(ArithOp::Sub, l, r),
                    B::Multiply => Expr::Arith(ArithOp::Mul, l, r),
                    B::Divide => Expr::Arith(ArithOp::Div, l, r),
                    B::Modulo => Expr::Arith(ArithOp::Mod, l, r),
                    B::StringConcat => Expr::Concat(l, r),
                    other => return Err(unsupported(format!("the operator {other}"))),
                }
            }
            E::IsNull(e) => Expr::IsNull {
                expr: boxed(self.expr(e)?),
                negated: false,
            },
            E::IsNotNull(e) => Expr::IsNull {
                expr: boxed(self.expr(e)?),
                negated: true,
            },
            E::Between {
                expr,
                negated,
                low,
                high,
            } => Expr::Between {
                expr: boxed(self.expr(expr)?),
                low: boxed(self.expr(low)?),
                high: boxed(self.expr(high)?),
                negated: *negated,
            },
            E::In {
                expr,
                target: ast::InTarget::List(list),
                negated,
                ..
            } => Expr::In {
                expr: boxed(self.expr(expr)?),
                list: self.exprs(list)?,
                negated: *negated,
            },
            E::Like {
                negated,
                any: false,
                expr,
                pattern,
                escape_char,
            } => Expr::Like {
                expr: boxed(self.expr(expr)?),
                pattern: boxed(self.expr(pattern)?),
                escape: escape_char
                    .as_ref()
                    .map(|e| self.expr(e).map(boxed))
                    .transpose()?,
                negated: *negated,
            },
            E::Cast {
                expr, data_type, ..
            } => Expr::Cast(boxed(self.expr(expr)?), cast_type(data_type)?),
            E::Case {
                operand,
                conditions,
                else_result,
                ..
            } => Expr::Case {
                operand: operand
                    .as_ref()
                    .map(|o| self.expr(o).map(boxed))
                    .transpose()?,
                whens: conditions
                    .iter()
                    .map(|w| Ok((self.expr(&w.condition)?, self.expr(&w.result)?)))
                    .collect::<Result<_, SelectError>>()?,
                otherwise: else_result
                    .as_ref()
                    .map(|e| self.expr(e).map(boxed))
                    .transpose()?,
            },
            E::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => Expr::Substring {
                expr: boxed(self.expr(expr)?),
                from: substring_from
                    .as_ref()
                    .map(|e| self.expr(e).map(boxed))
                    .transpose()?,
                length: substring_for
                    .as_ref()
                    .map(|e| self.expr(e).map(boxed))
                    .transpose()?,
            },
            E::Trim {
                expr,
                trim_where,
                trim_what,
                trim_characters,
            } => {
                if trim_characters.is_some() {
                    return Err(unsupported("TRIM takes one set of characters"));
                }
                Expr::Trim {
                    expr: boxed(self.expr(expr)?),
                    side: match trim_where {
                        Some(ast::TrimWhereField::Leading) => TrimWhere::Leading,
                        Some(ast::TrimWhereField::Trailing) => TrimWhere::Trailing,
                        _ => TrimWhere::Both,
                    },
                    what: trim_what
                        .as_ref()
                        .map(|e| self.expr(e).map(boxed))
                        .transpose()?,
                }
            }
            E::Extract { field, expr, .. } => Expr::Extract(
                field.to_string().to_ascii_uppercase(),
                boxed(self.expr(expr)?),
            ),
            E::Function(f) => self.function(f)?,
            other => return Err(unsupported(format!("the expression {other}"))),
        })
    }

    fn function(&mut self, f: &ast::Function) -> Result<Expr, SelectError> {
        let name = f.name.to_string().to_ascii_uppercase();
        let list = match &f.args {
            ast::FunctionArguments::List(list) => list,
            ast::FunctionArguments::None => {
                return Ok(Expr::Function(name, Vec::new()));
            }
            ast::FunctionArguments::Subquery(_) => {
                return Err(unsupported("subqueries are not supported"));
            }
        };
        if list.duplicate_treatment.is_some() || !list.clauses.is_empty() || f.over.is_some() {
            return Err(unsupported(format!(
                "{name} with DISTINCT, clauses or OVER"
            )));
        }
        let aggregate = match name.as_str() {
            "COUNT" => Some(AggFunc::Count),
            "SUM" => Some(AggFunc::Sum),
            "AVG" => Some(AggFunc::Avg),
            "MIN" => Some(AggFunc::Min),
            "MAX" => Some(AggFunc::Max),
            _ => None,
        };
        let mut args = Vec::new();
        for arg in &list.args {
            match arg {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => args.push(Some(e)),
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard)
                    if aggregate == Some(AggFunc::Count) =>
                {
                    args.push(None);
                }
                _ => return Err(unsupported(format!("the arguments of {name}"))),
            }
        }
        if let Some(func) = aggregate {
            let arg = match args.as_slice() {
                [None] => None,
                [Some(e)] => {
                    let before = self.aggregates.len();
                    let compiled = self.expr(e)?;
                    if self.aggregates.len() != before {
                        return Err(SelectError::new(
                            "InvalidAggregateNesting",
                            "an aggregate cannot contain another",
                        ));
                    }
                    Some(boxed(compiled))
                }
                _ => {
                    return Err(SelectError::new(
                        "EvaluatorInvalidArguments",
                        format!("{name} takes one argument"),
                    ));
                }
            };
            let index = self.aggregates.len();
            self.aggregates.push(func);
            return Ok(Expr::Aggregate { index, func, arg });
        }
        if !crate::eval::is_function(&name) {
            return Err(SelectError::new(
                "UnsupportedFunction",
                format!("the function {name} is not supported"),
            ));
        }
        let mut compiled = Vec::new();
        for (i, arg) in args.into_iter().enumerate() {
            let Some(arg) = arg else {
                return Err(unsupported(format!("* as an argument of {name}")));
            };
            // The date part of DATE_ADD and DATE_DIFF is a bare word, not a column.
            if i == 0
                && matches!(name.as_str(), "DATE_ADD" | "DATE_DIFF")
                && let ast::Expr::Identifier(part) = arg
            {
                compiled.push(Expr::Literal(Value::Str(part.value.to_ascii_uppercase())));
                continue;
            }
            compiled.push(self.expr(arg)?);
        }
        Ok(Expr::Function(name, compiled))
    }
}

fn literal(value: &ast::Value) -> Result<Value, SelectError> {
    Ok(match value {
        ast::Value::Number(n, _) => n
            .parse::<i64>()
            .map(Value::Int)
            .or_else(|_| n.parse::<f64>().map(Value::Float))
            .map_err(|_| parse_error(format!("{n} is not a number")))?,
        ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => {
            Value::Str(s.clone())
        }
        ast::Value::Boolean(b) => Value::Bool(*b),
        ast::Value::Null => Value::Null,
        other => return Err(unsupported(format!("the literal {other}"))),
    })
}

fn cast_type(data_type: &ast::DataType) -> Result<CastType, SelectError> {
    let name = data_type.to_string().to_ascii_uppercase();
    let base = name.split('(').next().unwrap_or_default().trim();
    Ok(match base {
        "INT" | "INTEGER" | "BIGINT" | "SMALLINT" | "TINYINT" | "INT64" => CastType::Int,
        "FLOAT" | "REAL" | "DOUBLE" | "DOUBLE PRECISION" | "DECIMAL" | "NUMERIC" => CastType::Float,
        "STRING" | "VARCHAR" | "CHAR" | "TEXT" | "CHARACTER VARYING" | "CHARACTER" => {
            CastType::String
        }
        "BOOL" | "BOOLEAN" => CastType::Bool,
        "TIMESTAMP" | "DATE" | "DATETIME" => CastType::Timestamp,
        _ => {
            return Err(SelectError::new(
                "InvalidCast",
                format!("cannot CAST to {name}"),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_compiles_with_its_alias_path_and_limit() {
        let q = Query::parse(
            "SELECT s.name, CAST(s.age AS INT) AS years FROM S3Object[*].people s WHERE s.\"City\" = 'Oslo' LIMIT 5",
        )
        .unwrap();
        assert_eq!(
            q.from_path,
            vec![PathStep::Wildcard, PathStep::Key("people".into())]
        );
        assert_eq!(q.limit, Some(5));
        let Select::Columns(cols) = &q.select else {
            panic!("columns")
        };
        assert_eq!(cols[0].name, "name");
        assert_eq!(cols[1].name, "years");
        let Some(Expr::Compare(CmpOp::Eq, left, _)) = &q.filter else {
            panic!("filter")
        };
        assert_eq!(
            **left,
            Expr::Column(vec![Step {
                name: "City".into(),
                exact: true
            }])
        );
    }

    #[test]
    fn aggregates_are_numbered_and_cannot_mix_with_columns() {
        let q = Query::parse("SELECT COUNT(*), AVG(s.x) + 1 FROM S3Object s").unwrap();
        assert_eq!(q.aggregates, 2);
        assert!(Query::parse("SELECT s.x, COUNT(*) FROM S3Object s").is_err());
        assert!(Query::parse("SELECT * FROM S3Object WHERE COUNT(*) > 1").is_err());
    }

    #[test]
    fn refusals_carry_aws_codes() {
        let code = |sql: &str| Query::parse(sql).unwrap_err().code;
        assert_eq!(code("SELEC * FROM S3Object"), "ParseUnexpectedToken");
        assert_eq!(code("SELECT * FROM t"), "UnsupportedSyntax");
        assert_eq!(code("SELECT 1"), "ParseSelectMissingFrom");
        assert_eq!(
            code("SELECT * FROM S3Object ORDER BY 1"),
            "UnsupportedSyntax"
        );
        assert_eq!(
            code("SELECT FOO(s.a) FROM S3Object s"),
            "UnsupportedFunction"
        );
        assert_eq!(
            code("SELECT * FROM S3Object s JOIN S3Object t ON 1 = 1"),
            "UnsupportedSyntax"
        );
        // A chain deep enough to overflow the stack is refused before it is parsed.
        let chain = vec!["1 = 1"; 60_000].join(" OR ");
        assert_eq!(
            code(&format!("SELECT * FROM S3Object WHERE {chain}")),
            "ExpressionTooLong"
        );
    }
}
