//! Finding the ACPI S5 (soft-off) sleep type in the DSDT.
//!
//! Powering off through ACPI means writing `SLP_TYPa | SLP_EN` to the PM1a
//! control register, where `SLP_TYPa` comes from the `\_S5` package in the
//! DSDT's AML. A full AML interpreter is far more than hv-core needs for that
//! one constant, so this scans for the encoding every firmware we know emits:
//! `NameOp "_S5_" PackageOp PkgLength NumElements <integer> <integer> ...`,
//! where each integer is `ZeroOp`, `OneOp`, `BytePrefix n` or a bare byte.

/// `SLP_TYPa` and `SLP_TYPb` for S5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SleepType {
    pub a: u8,
    pub b: u8,
}

const NAME_OP: u8 = 0x08;
const ROOT_CHAR: u8 = b'\\';
const PACKAGE_OP: u8 = 0x12;
const ZERO_OP: u8 = 0x00;
const ONE_OP: u8 = 0x01;
const BYTE_PREFIX: u8 = 0x0a;

/// Finds `\_S5` in an AML stream and returns its sleep types.
pub fn find_s5(aml: &[u8]) -> Option<SleepType> {
    let mut from = 0;
    while let Some(pos) = find(&aml[from..], b"_S5_").map(|p| p + from) {
        from = pos + 1;
        let named = match pos {
            0 => false,
            _ if aml[pos - 1] == NAME_OP => true,
            _ => pos >= 2 && aml[pos - 1] == ROOT_CHAR && aml[pos - 2] == NAME_OP,
        };
        if !named {
            continue;
        }
        if let Some(sleep) = parse_package(&aml[pos + 4..]) {
            return Some(sleep);
        }
    }
    None
}

fn parse_package(bytes: &[u8]) -> Option<SleepType> {
    let (&op, rest) = bytes.split_first()?;
    if op != PACKAGE_OP {
        return None;
    }
    // PkgLength: the top two bits of the lead byte count the bytes after it.
    let extra = (*rest.first()? >> 6) as usize;
    let rest = rest.get(1 + extra..)?;
    let (&count, rest) = rest.split_first()?;
    if count < 2 {
        return None;
    }
    let (a, rest) = parse_integer(rest)?;
    let (b, _) = parse_integer(rest)?;
    Some(SleepType { a, b })
}

fn parse_integer(bytes: &[u8]) -> Option<(u8, &[u8])> {
    let (&op, rest) = bytes.split_first()?;
    match op {
        ZERO_OP => Some((0, rest)),
        ONE_OP => Some((1, rest)),
        BYTE_PREFIX => rest.split_first().map(|(&v, rest)| (v, rest)),
        // Some firmware emits the value as a bare byte.
        v if v <= 7 => Some((v, rest)),
        _ => None,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_style_zero_ops() {
        // Name (_S5, Package (0x04) { Zero, Zero, Zero, Zero })
        let aml = [
            0x10, 0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(find_s5(&aml), Some(SleepType { a: 0, b: 0 }));
    }

    #[test]
    fn byte_prefixed_values_and_root_prefix() {
        // Name (\_S5, Package (0x02) { 0x07, 0x05 })
        let aml = [
            0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 0x08, 0x02, 0x0a, 0x07, 0x0a, 0x05,
        ];
        assert_eq!(find_s5(&aml), Some(SleepType { a: 7, b: 5 }));
    }

    #[test]
    fn multi_byte_package_length() {
        let aml = [
            0x08, b'_', b'S', b'5', b'_', 0x12, 0x40, 0x00, 0x02, 0x01, 0x0a, 0x03,
        ];
        assert_eq!(find_s5(&aml), Some(SleepType { a: 1, b: 3 }));
    }

    #[test]
    fn skips_mentions_that_are_not_definitions() {
        // A method referring to _S5_ first (no NameOp), then the definition.
        let aml = [
            0x70, b'_', b'S', b'5', b'_', 0x60, //
            0x08, b'_', b'S', b'5', b'_', 0x12, 0x05, 0x02, 0x0a, 0x05, 0x00,
        ];
        assert_eq!(find_s5(&aml), Some(SleepType { a: 5, b: 0 }));
    }

    #[test]
    fn missing_or_truncated_definitions_give_none() {
        assert_eq!(find_s5(&[]), None);
        assert_eq!(find_s5(b"no sleep states here"), None);
        assert_eq!(find_s5(&[0x08, b'_', b'S', b'5', b'_', 0x12, 0x05]), None);
        assert_eq!(
            find_s5(&[0x08, b'_', b'S', b'5', b'_', 0x12, 0x05, 0x01, 0x00]),
            None
        );
        assert_eq!(find_s5(&[0x08, b'_', b'S', b'5', b'_', 0x14]), None);
    }
}
