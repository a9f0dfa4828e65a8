//! AWS's JSON policy language, as identity policies and bucket policies use it: statements
//! with Effect, Action/NotAction (wildcards), Resource/NotResource (ARNs with wildcards),
//! Principal (bucket policies) and Condition, evaluated with default deny and explicit deny
//! overriding every allow.

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Principal {
    Anyone,
    /// User names (from `arn:aws:iam::<account>:user/<name>` or the bare name).
    Users(Vec<String>),
}

#[derive(Debug, Clone)]
struct Condition {
    operator: String,
    if_exists: bool,
    key: String,
    values: Vec<String>,
}

#[derive(Debug, Clone)]
struct Statement {
    effect: Effect,
    principal: Option<Principal>,
    actions: Vec<String>,
    negate_actions: bool,
    resources: Vec<String>,
    negate_resources: bool,
    conditions: Vec<Condition>,
}

/// A parsed policy document.
#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<Statement>,
    /// Version 2012-10-17 documents substitute policy variables (`${aws:username}`) in
    /// resources and condition values; older ones take them literally, as AWS does.
    variables: bool,
}

/// What a request is, as policies see it.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    /// e.g. `s3:GetObject`.
    pub action: String,
    /// e.g. `arn:aws:s3:::bucket/key`.
    pub resource: String,
    /// The user making the request; `None` for anonymous requests.
    pub user: Option<String>,
    /// Condition keys (`aws:SourceIp`, `s3:prefix`…) and their values.
    pub keys: HashMap<String, Vec<String>>,
}

fn strings(value: &Value, what: &str) -> Result<Vec<String>, String> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Bool(b) => Ok(b.to_string()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(format!("{what} must hold strings")),
            })
            .collect(),
        Value::Bool(b) => Ok(vec![b.to_string()]),
        Value::Number(n) => Ok(vec![n.to_string()]),
        _ => Err(format!("{what} must be a string or a list of strings")),
    }
}

fn user_of_principal(p: &str) -> String {
    p.rsplit_once(":user/")
        .map_or(p, |(_, name)| name)
        .to_owned()
}

const OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "IpAddress",
    "NotIpAddress",
    "Bool",
    "Null",
    "DateEquals",
    "DateNotEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
];

impl Policy {
    /// Parses a policy; `bucket_policy` requires a Principal in every statement.
    pub fn parse(text: &str, bucket_policy: bool) -> Result<Self, String> {
        // serde_json keeps the last of repeated keys: `"Effect":"Deny","Effect":"Allow"` would
        // read as Allow. AWS refuses such a document, and so does Basalt.
        let mut de = serde_json::Deserializer::from_str(text);
        serde::de::Deserializer::deserialize_any(&mut de, UniqueKeys)
            .map_err(|e| format!("not JSON: {e}"))?;
        let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(doc) = doc else {
            return Err("a policy is a JSON object".into());
        };
        let variables = match doc.get("Version").map(Value::as_str) {
            None | Some(Some("2008-10-17")) => false,
            Some(Some("2012-10-17")) => true,
            Some(_) => return Err("Version must be 2012-10-17".into()),
        };
        let statements = match doc.get("Statement") {
            Some(Value::Array(list)) => list.clone(),
            Some(one @ Value::Object(_)) => vec![one.clone()],
            _ => return Err("a policy needs a Statement".into()),
        };
        if statements.is_empty() {
            return Err("a policy needs at least one statement".into());
        }
        let mut out = Vec::with_capacity(statements.len());
        for st in &statements {
            out.push(Self::statement(st, bucket_policy)?);
        }
        Ok(Self {
            statements: out,
            variables,
        })
    }

    fn statement(st: &Value, bucket_policy: bool) -> Result<Statement, String> {
        let Value::Object(st) = st else {
            return Err("a statement is a JSON object".into());
        };
        for key in st.keys() {
            if !matches!(
                key.as_str(),
                "Sid"
                    | "Effect"
                    | "Principal"
                    | "Action"
                    | "NotAction"
                    | "Resource"
                    | "NotResource"
                    | "Condition"
            ) {
                return Err(format!("unknown statement field {key}"));
            }
        }
        let effect = match st.get("Effect").and_then(Value::as_str) {
            Some("Allow") => Effect::Allow,
            Some("Deny") => Effect::Deny,
            _ => return Err("Effect must be Allow or Deny".into()),
        };
        let principal = match st.get("Principal") {
            None => None,
            Some(Value::String(s)) if s == "*" => Some(Principal::Anyone),
            Some(Value::Object(map)) => {
                let aws = map
                    .get("AWS")
                    .ok_or_else(|| "Principal supports AWS principals".to_owned())?;
                let names = strings(aws, "Principal")?;
                if names.iter().any(|n| n == "*") {
                    Some(Principal::Anyone)
                } else {
                    Some(Principal::Users(
                        names.iter().map(|n| user_of_principal(n)).collect(),
                    ))
                }
            }
            Some(_) => return Err("Principal must be \"*\" or {\"AWS\": ...}".into()),
        };
        if bucket_policy && principal.is_none() {
            return Err("every statement of a bucket policy needs a Principal".into());
        }
        if !bucket_policy && principal.is_some() {
            return Err("an identity policy has no Principal".into());
        }
        let (actions, negate_actions) = match (st.get("Action"), st.get("NotAction")) {
            (Some(a), None) => (strings(a, "Action")?, false),
            (None, Some(a)) => (strings(a, "NotAction")?, true),
            _ => return Err("a statement needs one of Action or NotAction".into()),
        };
        for action in &actions {
            let lower = action.to_ascii_lowercase();
            // Admin actions belong in identity policies only: a bucket policy cannot make
            // anybody an administrator.
            let admin = !bucket_policy && lower.starts_with("admin:");
            if action != "*"
                && !lower.starts_with("s3:")
                && !lower.starts_with("s3tables:")
                && !admin
            {
                return Err(format!("unsupported action {action}"));
            }
        }
        let (resources, negate_resources) = match (st.get("Resource"), st.get("NotResource")) {
            (Some(r), None) => (strings(r, "Resource")?, false),
            (None, Some(r)) => (strings(r, "NotResource")?, true),
            _ => return Err("a statement needs one of Resource or NotResource".into()),
        };
        for resource in &resources {
            if resource != "*"
                && !resource.starts_with("arn:aws:s3:::")
                && !resource.starts_with(TABLES_ARN_PREFIX)
                && !resource.starts_with(ADMIN_ARN_PREFIX)
            {
                return Err(format!("resource {resource} is not an S3 ARN"));
            }
        }
        let mut conditions = Vec::new();
        if let Some(cond) = st.get("Condition") {
            let Value::Object(ops) = cond else {
                return Err("Condition must be an object".into());
            };
            for (op, keys) in ops {
                let (operator, if_exists) = match op.strip_suffix("IfExists") {
                    Some(base) => (base.to_owned(), true),
                    None => (op.clone(), false),
                };
                if !OPERATORS.contains(&operator.as_str()) {
                    return Err(format!("unsupported condition operator {op}"));
                }
                let Value::Object(keys) = keys else {
                    return Err(format!("{op} must map condition keys to values"));
                };
                for (key, values) in keys {
                    let values = strings(values, key)?;
                    if matches!(operator.as_str(), "IpAddress" | "NotIpAddress") {
                        for v in &values {
                            parse_cidr(v).ok_or_else(|| format!("{v} is not an IP range"))?;
                        }
                    }
                    conditions.push(Condition {
                        operator: operator.clone(),
                        if_exists,
                        key: key.to_ascii_lowercase(),
                        values,
                    });
                }
            }
        }
        Ok(Statement {
            effect,
            principal,
            actions,
            negate_actions,
            resources,
            negate_resources,
            conditions,
        })
    }

    /// The effect of the statements that apply to `facts`: `Some(Deny)` if any denies,
    /// `Some(Allow)` if any allows, `None` if none applies.
    /// Whether the policy grants anything to everyone, as S3 judges it for public access
    /// blocks and GetBucketPolicyStatus: an Allow for principal `*` that no condition on the
    /// caller's address, network or identity narrows.
    pub fn is_public(&self) -> bool {
        const NARROWING: [&str; 7] = [
            "aws:sourceip",
            "aws:sourcevpc",
            "aws:sourcevpce",
            "aws:sourcearn",
            "aws:sourceaccount",
            "aws:principalaccount",
            "aws:username",
        ];
        self.statements.iter().any(|st| {
            st.effect == Effect::Allow
                && matches!(st.principal, Some(Principal::Anyone))
                && !st
                    .conditions
                    .iter()
                    .any(|c| NARROWING.contains(&c.key.to_ascii_lowercase().as_str()))
        })
    }

    /// Whether a condition of some statement names a key starting with `prefix` (lower case),
    /// so that a caller knows to look up the facts such keys need.
    pub fn names_condition_key_under(&self, prefix: &str) -> bool {
        self.statements
            .iter()
            .any(|st| st.conditions.iter().any(|c| c.key.starts_with(prefix)))
    }

    pub fn evaluate(&self, facts: &RequestFacts) -> Option<Effect> {
        let keys: HashMap<String, &Vec<String>> = facts
            .keys
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let variables = self.variables.then_some(&keys);
        let mut verdict = None;
        for st in &self.statements {
            if !st.applies(facts, &keys, variables) {
                continue;
            }
            if st.effect == Effect::Deny {
                return Some(Effect::Deny);
            }
            verdict = Some(Effect::Allow);
        }
        verdict
    }

    /// Whether some statement could allow `facts.action` on a resource under
    /// `facts.resource` (a prefix such as `arn:aws:s3:::bucket/`), whatever the rest of the
    /// resource and the conditions turn out to be. For requests whose resources are named in
    /// their body: a caller no statement could serve is refused before the body is read.
    pub fn may_allow_under(&self, facts: &RequestFacts) -> bool {
        let keys: HashMap<String, &Vec<String>> = facts
            .keys
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let variables = self.variables.then_some(&keys);
        self.statements.iter().any(|st| {
            st.effect == Effect::Allow
                && st.principal_matches(facts)
                && st.actions.iter().any(|a| glob(a, &facts.action, true)) != st.negate_actions
                && (st.negate_resources
                    || st.resources.iter().any(|r| {
                        substitute(r, variables)
                            .is_some_and(|r| pattern_may_match_under(&r, &facts.resource))
                    }))
        })
    }
}

/// Whether a glob `pattern` can match some string that starts with `prefix`.
fn pattern_may_match_under(pattern: &str, prefix: &str) -> bool {
    let literal = pattern.split(['*', '?']).next().unwrap_or_default();
    if literal.len() == pattern.len() {
        return pattern.starts_with(prefix);
    }
    literal.starts_with(prefix) || prefix.starts_with(literal)
}

impl Statement {
    fn principal_matches(&self, facts: &RequestFacts) -> bool {
        match &self.principal {
            None | Some(Principal::Anyone) => true,
            Some(Principal::Users(names)) => facts
                .user
                .as_ref()
                .is_some_and(|u| names.iter().any(|n| glob(n, u, false))),
        }
    }

    fn applies(
        &self,
        facts: &RequestFacts,
        keys: &HashMap<String, &Vec<String>>,
        variables: Option<&HashMap<String, &Vec<String>>>,
    ) -> bool {
        if !self.principal_matches(facts) {
            return false;
        }
        let action = self.actions.iter().any(|a| glob(a, &facts.action, true));
        if action == self.negate_actions {
            return false;
        }
        let resource = self
            .resources
            .iter()
            .any(|r| substitute(r, variables).is_some_and(|r| glob(&r, &facts.resource, false)));
        if resource == self.negate_resources {
            return false;
        }
        self.conditions.iter().all(|c| c.holds(keys, variables))
    }
}

/// Walks a JSON document and fails on an object that names a key twice.
struct UniqueKeys;

impl<'de> serde::de::Visitor<'de> for UniqueKeys {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(UniqueKeysSeed)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!(
                    "the key {key:?} appears twice in one object"
                )));
            }
            map.next_value_seed(UniqueKeysSeed)?;
        }
        Ok(())
    }
}

struct UniqueKeysSeed;

impl<'de> serde::de::DeserializeSeed<'de> for UniqueKeysSeed {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(UniqueKeys)
    }
}

/// A pattern with its policy variables (`${aws:username}`, and the escapes `${*}`, `${?}`,
/// `${$}`) replaced; `None` when a variable it names has no value (AWS: the pattern then
/// matches nothing) or a value that would read as a wildcard. Without `variables`, the
/// pattern as it is.
fn substitute<'a>(
    pattern: &'a str,
    variables: Option<&HashMap<String, &Vec<String>>>,
) -> Option<std::borrow::Cow<'a, str>> {
    let Some(variables) = variables.filter(|_| pattern.contains("${")) else {
        return Some(std::borrow::Cow::Borrowed(pattern));
    };
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}')?;
        let name = &after[..end];
        match name {
            "*" | "?" | "$" => out.push_str(name),
            _ => {
                let value = variables.get(&name.to_ascii_lowercase())?.first()?;
                if value.contains(['*', '?']) {
                    return None;
                }
                out.push_str(value);
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(std::borrow::Cow::Owned(out))
}

impl Condition {
    fn holds(
        &self,
        keys: &HashMap<String, &Vec<String>>,
        variables: Option<&HashMap<String, &Vec<String>>>,
    ) -> bool {
        let Some(actual) = keys.get(&self.key) else {
            // As AWS evaluates them: a negated operator holds for a missing key ("is not
            // equal" to anything), a positive one does not, unless it is …IfExists.
            return match self.operator.as_str() {
                "Null" => self.values.iter().any(|v| v == "true"),
                op if op.contains("Not") => true,
                _ => self.if_exists,
            };
        };
        let values: Vec<std::borrow::Cow<'_, str>> = self
            .values
            .iter()
            .filter_map(|v| substitute(v, variables))
            .collect();
        let any =
            |f: &dyn Fn(&str, &str) -> bool| actual.iter().any(|a| values.iter().any(|v| f(a, v)));
        let date = |s: &str| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|t| t.unix_timestamp_nanos())
        };
        let cmp_dates = |f: fn(i128, i128) -> bool| {
            any(&|a, v| matches!((date(a), date(v)), (Some(a), Some(v)) if f(a, v)))
        };
        let num = |s: &str| s.parse::<f64>().ok();
        let cmp_nums = |f: fn(f64, f64) -> bool| {
            any(&|a, v| matches!((num(a), num(v)), (Some(a), Some(v)) if f(a, v)))
        };
        match self.operator.as_str() {
            "StringEquals" => any(&|a, v| a == v),
            "StringNotEquals" => !any(&|a, v| a == v),
            "StringEqualsIgnoreCase" => any(&|a, v| a.eq_ignore_ascii_case(v)),
            "StringNotEqualsIgnoreCase" => !any(&|a, v| a.eq_ignore_ascii_case(v)),
            "StringLike" => any(&|a, v| glob(v, a, false)),
            "StringNotLike" => !any(&|a, v| glob(v, a, false)),
            "IpAddress" => any(&|a, v| ip_in(a, v)),
            "NotIpAddress" => !any(&|a, v| ip_in(a, v)),
            "Bool" => any(&|a, v| a.eq_ignore_ascii_case(v)),
            "Null" => self.values.iter().any(|v| v == "false"),
            "DateEquals" => cmp_dates(|a, v| a == v),
            "DateNotEquals" => !cmp_dates(|a, v| a == v),
            "DateLessThan" => cmp_dates(|a, v| a < v),
            "DateLessThanEquals" => cmp_dates(|a, v| a <= v),
            "DateGreaterThan" => cmp_dates(|a, v| a > v),
            "DateGreaterThanEquals" => cmp_dates(|a, v| a >= v),
            "NumericEquals" => cmp_nums(|a, v| a == v),
            "NumericNotEquals" => !cmp_nums(|a, v| a == v),
            "NumericLessThan" => cmp_nums(|a, v| a < v),
            "NumericLessThanEquals" => cmp_nums(|a, v| a <= v),
            "NumericGreaterThan" => cmp_nums(|a, v| a > v),
            "NumericGreaterThanEquals" => cmp_nums(|a, v| a >= v),
            _ => false,
        }
    }
}

/// `*` matches any run of characters, `?` one character.
fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if ignore_case {
        (
            pattern.to_ascii_lowercase().chars().collect(),
            text.to_ascii_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((addr, bits))
}

fn ip_in(address: &str, range: &str) -> bool {
    let (Ok(addr), Some((net, bits))) = (address.parse::<IpAddr>(), parse_cidr(range)) else {
        return false;
    };
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The resource of every admin action: `arn:basalt:admin:::<call>`.
pub const ADMIN_ARN_PREFIX: &str = "arn:basalt:admin:::";

/// The resources of the Iceberg catalog's actions (`s3tables:*`):
/// `arn:aws:s3tables:::bucket/<bucket>` for a warehouse and its namespaces,
/// `…/table/<namespace>/<table>` for a table (namespace levels joined by dots).
pub const TABLES_ARN_PREFIX: &str = "arn:aws:s3tables:::";

/// The canned identity policies: readonly, readwrite, writeonly, and admin (every S3 and
/// admin action: users, keys, policies, heal, lifecycle runs).
pub fn canned(name: &str) -> Option<&'static str> {
    match name {
        "admin" => Some(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*","s3tables:*","admin:*"],"Resource":["*"]}]}"#,
        ),
        "readonly" => Some(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:GetObjectVersion","s3:GetObjectTagging","s3:GetObjectVersionTagging","s3:ListBucket","s3:ListBucketVersions","s3:ListAllMyBuckets","s3:GetBucketLocation","s3:GetBucketVersioning"],"Resource":["arn:aws:s3:::*"]},{"Effect":"Allow","Action":["s3tables:Get*","s3tables:List*"],"Resource":["arn:aws:s3tables:::*"]}]}"#,
        ),
        "readwrite" => Some(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*"],"Resource":["arn:aws:s3:::*"]},{"Effect":"Allow","Action":["s3tables:*"],"Resource":["arn:aws:s3tables:::*"]}]}"#,
        ),
        "writeonly" => Some(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:AbortMultipartUpload","s3:ListMultipartUploadParts","s3:ListBucketMultipartUploads"],"Resource":["arn:aws:s3:::*"]}]}"#,
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(
        action: &str,
        resource: &str,
        user: Option<&str>,
        keys: &[(&str, &str)],
    ) -> RequestFacts {
        RequestFacts {
            action: action.into(),
            resource: resource.into(),
            user: user.map(str::to_owned),
            keys: keys
                .iter()
                .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
                .collect(),
        }
    }

    #[test]
    fn wildcards_explicit_deny_and_default_deny() {
        let p = Policy::parse(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"s3:Get*","Resource":"arn:aws:s3:::data/*"},
                {"Effect":"Deny","Action":"s3:*","Resource":"arn:aws:s3:::data/secret/*"}]}"#,
            false,
        )
        .unwrap();
        let get = |r: &str| p.evaluate(&facts("s3:GetObject", r, Some("u"), &[]));
        assert_eq!(get("arn:aws:s3:::data/a.csv"), Some(Effect::Allow));
        assert_eq!(get("arn:aws:s3:::data/secret/k"), Some(Effect::Deny));
        assert_eq!(get("arn:aws:s3:::other/a"), None);
        assert_eq!(
            p.evaluate(&facts(
                "s3:PutObject",
                "arn:aws:s3:::data/a",
                Some("u"),
                &[]
            )),
            None
        );
    }

    #[test]
    fn repeated_keys_are_refused_wherever_they_are() {
        for doc in [
            r#"{"Statement":[{"Effect":"Deny","Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}],"Statement":[]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true","aws:SecureTransport":"false"}}}]}"#,
        ] {
            let err = Policy::parse(doc, false).unwrap_err();
            assert!(err.contains("appears twice"), "{doc}: {err}");
        }
        assert!(
            Policy::parse(
                r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"Deny","Action":"s3:*","Resource":"*"}]}"#,
                false
            )
            .is_ok(),
            "the same keys in different objects are fine"
        );
    }

    #[test]
    fn a_caller_no_statement_could_serve_is_known_before_the_keys() {
        let p = Policy::parse(
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:DeleteObject",
                "Resource":"arn:aws:s3:::pub/tmp/*"}]}"#,
            true,
        )
        .unwrap();
        let under = |bucket: &str, action: &str| {
            p.may_allow_under(&facts(
                action,
                &format!("arn:aws:s3:::{bucket}/"),
                None,
                &[],
            ))
        };
        assert!(under("pub", "s3:DeleteObject"));
        assert!(!under("pub", "s3:PutObject"));
        assert!(!under("other", "s3:DeleteObject"));
        assert!(!under("pu", "s3:DeleteObject"));
        let any = Policy::parse(
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::*"}]}"#,
            false,
        )
        .unwrap();
        assert!(any.may_allow_under(&facts("s3:DeleteObject", "arn:aws:s3:::x/", Some("u"), &[])));
        assert!(pattern_may_match_under(
            "arn:aws:s3:::b*",
            "arn:aws:s3:::bucket/"
        ));
        assert!(!pattern_may_match_under(
            "arn:aws:s3:::bucket",
            "arn:aws:s3:::bucket/"
        ));
    }

    #[test]
    fn conditions_on_prefix_ip_transport_and_time() {
        let p = Policy::parse(
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::basalt:user/alice"]},
                "Action":"s3:ListBucket","Resource":"arn:aws:s3:::b",
                "Condition":{"StringLike":{"s3:prefix":["home/alice/*"]},
                             "IpAddress":{"aws:SourceIp":"127.0.0.0/8"},
                             "Bool":{"aws:SecureTransport":"false"},
                             "DateLessThan":{"aws:CurrentTime":"2100-01-01T00:00:00Z"}}}]}"#,
            true,
        )
        .unwrap();
        let ok = [
            ("s3:prefix", "home/alice/x"),
            ("aws:SourceIp", "127.0.0.1"),
            ("aws:SecureTransport", "false"),
            ("aws:CurrentTime", "2026-11-25T00:00:00Z"),
        ];
        let list = |user, keys: &[(&str, &str)]| {
            p.evaluate(&facts("s3:ListBucket", "arn:aws:s3:::b", user, keys))
        };
        assert_eq!(list(Some("alice"), &ok), Some(Effect::Allow));
        assert_eq!(list(Some("bob"), &ok), None);
        assert_eq!(list(None, &ok), None);
        let mut other = ok;
        other[0] = ("s3:prefix", "home/bob/");
        assert_eq!(list(Some("alice"), &other), None);
        let mut remote = ok;
        remote[1] = ("aws:SourceIp", "10.1.2.3");
        assert_eq!(list(Some("alice"), &remote), None);
        assert_eq!(list(Some("alice"), &ok[1..]), None, "a missing key fails");
        let deny_others = Policy::parse(
            r#"{"Statement":[{"Effect":"Deny","Action":"s3:ListBucket","Resource":"*",
                "Condition":{"StringNotLike":{"s3:prefix":"home/alice/*"}}}]}"#,
            false,
        )
        .unwrap();
        assert_eq!(
            deny_others.evaluate(&facts("s3:ListBucket", "arn:aws:s3:::b", Some("u"), &[])),
            Some(Effect::Deny),
            "a negated condition holds when its key is missing"
        );
    }

    #[test]
    fn policy_variables_name_the_caller() {
        let home = |version: &str| {
            Policy::parse(
                &format!(
                    r#"{{"Version":"{version}","Statement":[
                    {{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/${{aws:username}}/*"}},
                    {{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::home",
                      "Condition":{{"StringLike":{{"s3:prefix":"${{aws:username}}/*"}}}}}}]}}"#
                ),
                false,
            )
            .unwrap()
        };
        let p = home("2012-10-17");
        let as_user = |user: &str, resource: &str, prefix: &str| {
            p.evaluate(&facts(
                if prefix.is_empty() {
                    "s3:GetObject"
                } else {
                    "s3:ListBucket"
                },
                resource,
                Some(user),
                &[("aws:username", user), ("s3:prefix", prefix)],
            ))
        };
        assert_eq!(
            as_user("alice", "arn:aws:s3:::home/alice/a", ""),
            Some(Effect::Allow)
        );
        assert_eq!(as_user("bob", "arn:aws:s3:::home/alice/a", ""), None);
        assert_eq!(
            as_user("alice", "arn:aws:s3:::home", "alice/x"),
            Some(Effect::Allow)
        );
        assert_eq!(as_user("bob", "arn:aws:s3:::home", "alice/x"), None);
        // A name that would read as a wildcard matches nothing; so does a missing variable.
        assert_eq!(as_user("*", "arn:aws:s3:::home/alice/a", ""), None);
        let anonymous = facts("s3:GetObject", "arn:aws:s3:::home/alice/a", None, &[]);
        assert_eq!(p.evaluate(&anonymous), None);
        // Version 2008-10-17 takes `${...}` literally.
        let old = home("2008-10-17");
        let literal = facts(
            "s3:GetObject",
            "arn:aws:s3:::home/${aws:username}/a",
            Some("alice"),
            &[("aws:username", "alice")],
        );
        assert_eq!(old.evaluate(&literal), Some(Effect::Allow));
        assert_eq!(
            old.evaluate(&facts(
                "s3:GetObject",
                "arn:aws:s3:::home/alice/a",
                Some("alice"),
                &[("aws:username", "alice")]
            )),
            None
        );
    }

    #[test]
    fn admin_actions_only_in_identity_policies() {
        let admin = Policy::parse(canned("admin").unwrap(), false).unwrap();
        let call = |p: &Policy, action: &str| {
            p.evaluate(&facts(action, "arn:basalt:admin:::users", Some("a"), &[]))
        };
        assert_eq!(call(&admin, "admin:CreateUser"), Some(Effect::Allow));
        let readwrite = Policy::parse(canned("readwrite").unwrap(), false).unwrap();
        assert_eq!(call(&readwrite, "admin:CreateUser"), None);
        let bucket_admin = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"admin:*","Resource":"*"}]}"#;
        assert!(Policy::parse(bucket_admin, true).is_err());
    }

    #[test]
    fn malformed_policies_are_refused() {
        for bad in [
            "not json",
            r#"{"Statement":[]}"#,
            r#"{"Statement":[{"Effect":"Maybe","Action":"s3:*","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Foo":{"a":"b"}}}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"x"}}}]}"#,
            r#"{"Version":"1999","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
        ] {
            assert!(Policy::parse(bad, false).is_err(), "{bad}");
        }
        let no_principal = r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
        assert!(Policy::parse(no_principal, true).is_err());
        for name in ["readonly", "readwrite", "writeonly"] {
            Policy::parse(canned(name).unwrap(), false).unwrap();
        }
    }

    #[test]
    fn globs_and_ip_ranges() {
        assert!(glob("a*b?d", "axxbcd", false));
        assert!(!glob("a*b?d", "axxbd", false));
        assert!(glob("*", "", false));
        assert!(glob("S3:get*", "s3:GetObject", true));
        assert!(ip_in("::1", "::1/128"));
        assert!(ip_in("192.168.1.7", "192.168.0.0/16"));
        assert!(!ip_in("192.169.1.7", "192.168.0.0/16"));
        assert!(ip_in("10.0.0.1", "0.0.0.0/0"));
    }
}
