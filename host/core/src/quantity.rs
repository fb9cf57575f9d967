//! Kubernetes resource quantities (`500m`, `1.5Gi`, `2e3`) to exact thousandths.

/// The quantity in thousandths of its unit, rounded up, as Kubernetes'
/// `MilliValue`. Saturates at `i64::MAX`.
pub fn milli(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not a quantity");
    let t = text.trim();
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let number_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(number_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(bad());
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    let digits = format!("{int_part}{frac_part}");
    let mantissa: i128 = digits.parse().map_err(|_| bad())?;
    // value = mantissa × 10^(dec − frac_len) × 2^bin
    let (dec, bin): (i32, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        s if s.starts_with(['e', 'E']) => (s[1..].parse::<i32>().map_err(|_| bad())?, 0),
        _ => return Err(bad()),
    };
    let frac_len = i32::try_from(frac_part.len()).map_err(|_| bad())?;
    // +3: thousandths.
    let exp10 = dec - frac_len + 3;
    let saturate = |v: Option<i128>| v.unwrap_or(i128::MAX);
    let mut value = saturate(mantissa.checked_mul(1i128 << bin.min(100)));
    if exp10 >= 0 {
        for _ in 0..exp10 {
            value = saturate(value.checked_mul(10));
        }
    } else {
        let divisor = 10i128
            .checked_pow(exp10.unsigned_abs())
            .unwrap_or(i128::MAX);
        value = (value + divisor - 1) / divisor; // round up
    }
    let value = i64::try_from(value).unwrap_or(i64::MAX);
    Ok(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::milli;

    #[test]
    fn matches_kubernetes_milli_value() {
        let cases = [
            ("1", 1000),
            ("500m", 500),
            ("0.5", 500),
            ("2.5", 2500),
            ("100n", 1), // rounded up
            ("1Ki", 1_024_000),
            ("128Mi", 134_217_728_000),
            ("1G", 1_000_000_000_000),
            ("1.5Gi", 1_610_612_736_000),
            ("1e3", 1_000_000),
            ("110", 110_000),
            ("-1", -1000),
        ];
        for (text, want) in cases {
            assert_eq!(milli(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_garbage_and_saturates_huge() {
        for text in ["", "m", "1.2.3", "12x", "Ki", "1 Gi"] {
            assert!(milli(text).is_err(), "{text:?}");
        }
        assert_eq!(milli("999999Ei"), Ok(i64::MAX));
    }
}
