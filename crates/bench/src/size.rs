//! Object sizes: a fixed size (`4KiB`) or a uniform range (`1KiB-1MiB`).

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeSpec {
    pub min: u64,
    pub max: u64,
}

impl SizeSpec {
    pub fn sample(&self, rng: &mut impl Rng) -> u64 {
        if self.min == self.max {
            self.min
        } else {
            rng.random_range(self.min..=self.max)
        }
    }
}

impl std::str::FromStr for SizeSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (min, max) = match s.split_once('-') {
            Some((a, b)) => (parse_size(a)?, parse_size(b)?),
            None => (parse_size(s)?, parse_size(s)?),
        };
        if min > max {
            return Err(format!(
                "size range {s:?} has its minimum above its maximum"
            ));
        }
        Ok(Self { min, max })
    }
}

/// `4096`, `4KiB`, `4KB`, `1.5MiB`, `1GiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kib" | "k" => 1024.0,
        "mib" | "m" => 1024.0 * 1024.0,
        "gib" | "g" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        other => return Err(format!("unknown size unit {other:?}")),
    };
    Ok((number * factor).round() as u64)
}

pub fn describe(min: u64, max: u64) -> String {
    let one = |n: u64| match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{}GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{}KiB", n >> 10),
        n => format!("{n}B"),
    };
    if min == max {
        one(min)
    } else {
        format!("{}-{}", one(min), one(max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units_and_ranges() {
        assert_eq!(parse_size("4KiB").unwrap(), 4096);
        assert_eq!(parse_size("1.5MiB").unwrap(), 1_572_864);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(
            "1KiB-1MiB".parse::<SizeSpec>().unwrap(),
            SizeSpec {
                min: 1024,
                max: 1 << 20
            }
        );
        assert!("2MiB-1MiB".parse::<SizeSpec>().is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert_eq!(describe(4096, 4096), "4KiB");
    }
}
