//! Kubernetes resource quantities (`500m`, `1.5Gi`, `2e3`) to exact thousandths.

/// More significant digits than any quantity needs (an i64 has 19).
const MAX_DIGITS: usize = 38;
/// Beyond this decimal exponent every quantity saturates or rounds to the
/// smallest step, so larger ones are refused rather than computed.
const MAX_EXPONENT: i32 = 1000;

/// The quantity in thousandths of its unit, rounded up, as Kubernetes'
/// `MilliValue`. Saturates at `i64::MAX`. Bounded work for any input: at
/// most [`MAX_DIGITS`] digits and a decimal exponent within ±[`MAX_EXPONENT`].
pub fn milli(text: &str) -> Result<i64, String> {
    let bad = || {
        let shown: String = text.chars().take(40).collect();
        let more = if shown.len() < text.len() { "…" } else { "" };
        format!("{shown:?}{more} is not a quantity")
    };
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
    let significant = digits.trim_start_matches('0');
    if significant.len() > MAX_DIGITS {
        return Err(format!(
            "{}: more than {MAX_DIGITS} significant digits",
            bad()
        ));
    }
    let mantissa: i128 = if significant.is_empty() {
        0
    } else {
        significant.parse().map_err(|_| bad())?
    };
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
        s if s.starts_with(['e', 'E']) => {
            let exp = s[1..].parse::<i32>().map_err(|_| bad())?;
            if exp.unsigned_abs() > MAX_EXPONENT.unsigned_abs() {
                return Err(format!("{}: exponent beyond ±{MAX_EXPONENT}", bad()));
            }
            (exp, 0)
        }
        _ => return Err(bad()),
    };
    // Bounded by the checks above: no overflow in i32.
    let frac_len = i32::try_from(frac_part.len()).map_err(|_| bad())?;
    // +3: thousandths.
    let exp10 = dec - frac_len + 3;
    let mut value = mantissa.saturating_mul(1i128 << bin);
    if exp10 >= 0 {
        let factor = 10i128.checked_pow(exp10.unsigned_abs());
        value = match factor {
            Some(f) => value.saturating_mul(f),
            None if value == 0 => 0,
            None => i128::MAX,
        };
    } else {
        match 10i128.checked_pow(exp10.unsigned_abs()) {
            // Round up, as MilliValue does.
            Some(divisor) => value = value / divisor + i128::from(value % divisor != 0),
            None => value = i128::from(value != 0),
        }
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

    #[test]
    fn any_input_is_bounded_work_and_never_overflows() {
        // Each of these once looped for seconds, overflowed or panicked.
        assert_eq!(milli("1e1000"), Ok(i64::MAX));
        assert_eq!(milli("0e1000"), Ok(0));
        assert_eq!(milli("1e-1000"), Ok(1));
        assert_eq!(
            milli("99999999999999999999999999999999999999n"),
            Ok(i64::MAX)
        );
        assert_eq!(
            milli("99999999999999999999999999999999999999Ei"),
            Ok(i64::MAX)
        );
        assert_eq!(
            milli("-99999999999999999999999999999999999999Ei"),
            Ok(-i64::MAX)
        );
        assert_eq!(
            milli("000000000000000000000000000000000000000000000001"),
            Ok(1000)
        );
        assert!(milli("1e2147483647").is_err_and(|e| e.contains("exponent")));
        assert!(milli("1e-2147483648").is_err());
        assert!(milli(&"9".repeat(100_000)).is_err_and(|e| e.contains("digits") && e.len() < 200));
    }
}
