//! Amounts as people read them: the services keep cents, the shapes for screens (the BFFs,
//! the old shop) show decimals.

/// Cents as a decimal amount: 3413 → `34.13`.
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

#[cfg(test)]
mod tests {
    use super::format_cents;

    #[test]
    fn cents_read_as_decimals() {
        assert_eq!(format_cents(3413), "34.13");
        assert_eq!(format_cents(5), "0.05");
        assert_eq!(format_cents(-250), "-2.50");
    }
}
