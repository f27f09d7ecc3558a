//! Distinguished names (DNs): the RFC 4514 string form, certificate `Name`s, and RFC 4517
//! `distinguishedNameMatch` (spec-checklist C.57, P.139).
//!
//! A [`DistinguishedName`] keeps its RDNs in **RFC 4514 order**: most specific first (`CN=...`
//! before `C=...`). A certificate's DER `Name` is stored the other way round, so
//! [`DistinguishedName::from_der_name`] reverses it.
//!
//! # Matching rules
//!
//! [`DistinguishedName::matches`] is `distinguishedNameMatch` (RFC 4517 §4.2.15): the same number
//! of RDNs in the same order, and each pair of RDNs holds the same *set* of attribute value
//! assertions (the order inside a multi-valued `a+b` RDN does not matter). Values are compared by
//! their attribute type's equality rule:
//!
//! - every attribute type this module knows (the table `ATTRS`: CN, O, OU, C, L, ST, STREET, UID,
//!   serialNumber, organizationIdentifier, jurisdictionCountryName, ...) uses `caseIgnoreMatch`;
//!   `DC` and `emailAddress` use `caseIgnoreIA5Match`;
//! - the RFC 4518 string preparation is simplified but fixed: trim, collapse every run of
//!   whitespace to one space, then case-fold (`to_lowercase`, or ASCII-only for the IA5 rule).
//!   Unicode normalisation (NFKC) and the "map to nothing" step are **not** done;
//! - attribute types not in the table have no known equality rule, so their text values must be
//!   identical (conservative: a registered DN never matches more than intended);
//! - values that are not character strings ([`AttrValue::Binary`]) match only byte-equal.
//!
//! # String form
//!
//! Parsing follows RFC 4514 §3 with the tolerance found in practice: spaces around `,`, `+` and
//! `=`, case-insensitive descriptors, an `OID.` prefix on dotted OIDs. `#hex` values are decoded
//! from BER, so `2.5.4.97=#13...` (PrintableString) and `2.5.4.97=#0C...` (UTF8String) are the same
//! value (test vector R.8). [`Display`](fmt::Display) writes the canonical form of RFC 4514 §2:
//! the descriptors of RFC 4514 §3 (CN, L, ST, O, OU, C, STREET, DC, UID) with escaped text, every
//! other type as a dotted OID with a `#hex` BER value — the form Open Finance Brasil uses for
//! 2.5.4.15, 2.5.4.5, 2.5.4.97 and 1.3.6.1.4.1.311.60.2.1.3.

use std::fmt::{self, Write as _};

use x509_parser::asn1_rs::ToDer;
use x509_parser::x509::X509Name;

/// A distinguished name: a sequence of RDNs, most specific first. `==` is structural equality;
/// use [`matches`](Self::matches) to compare names the way RFC 4517 does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistinguishedName {
    rdns: Vec<Rdn>,
}

/// A relative distinguished name: a non-empty set of attribute value assertions (`a+b`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rdn {
    avas: Vec<AttributeValueAssertion>,
}

/// One `type=value` pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttributeValueAssertion {
    /// The attribute type as a dotted OID, e.g. `2.5.4.3` for `CN`.
    pub oid: String,
    pub value: AttrValue,
}

/// An attribute value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AttrValue {
    /// A character string (UTF8String, PrintableString, IA5String, TeletexString, BMPString,
    /// UniversalString, NumericString or VisibleString), decoded.
    Text(String),
    /// The complete BER encoding (tag, length, content) of a value that is not a decodable
    /// character string. It matches only a byte-equal value.
    Binary(Vec<u8>),
}

impl AttrValue {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            AttrValue::Text(s) => Some(s),
            AttrValue::Binary(_) => None,
        }
    }
}

/// Why a DN could not be parsed or converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnError {
    /// The RFC 4514 string is malformed; `at` is the byte offset of the problem.
    #[error("invalid DN string at byte {at}: {reason}")]
    Syntax { at: usize, reason: String },
    /// A certificate `Name` could not be converted.
    #[error("invalid certificate name: {0}")]
    Der(String),
}

fn syntax(at: usize, reason: impl Into<String>) -> DnError {
    DnError::Syntax { at, reason: reason.into() }
}

/// Equality rule of an attribute type (RFC 4517 §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    CaseIgnore,
    CaseIgnoreIa5,
    Exact,
}

/// Known attribute types: dotted OID, descriptors (matched case-insensitively), equality rule,
/// and whether `Display` writes the first descriptor (only the RFC 4514 §3 table) or the OID.
const ATTRS: &[(&str, &[&str], Rule, bool)] = {
    use Rule::{CaseIgnore as CI, CaseIgnoreIa5 as IA5};
    &[
        ("2.5.4.3", &["CN", "commonName"], CI, true),
        ("2.5.4.7", &["L", "localityName"], CI, true),
        ("2.5.4.8", &["ST", "stateOrProvinceName"], CI, true),
        ("2.5.4.10", &["O", "organizationName"], CI, true),
        ("2.5.4.11", &["OU", "organizationalUnitName"], CI, true),
        ("2.5.4.6", &["C", "countryName"], CI, true),
        ("2.5.4.9", &["STREET", "streetAddress"], CI, true),
        ("0.9.2342.19200300.100.1.25", &["DC", "domainComponent"], IA5, true),
        ("0.9.2342.19200300.100.1.1", &["UID", "userId"], CI, true),
        ("2.5.4.4", &["SN", "surname"], CI, false),
        ("2.5.4.5", &["serialNumber"], CI, false),
        ("2.5.4.12", &["title"], CI, false),
        ("2.5.4.13", &["description"], CI, false),
        ("2.5.4.15", &["businessCategory"], CI, false),
        ("2.5.4.17", &["postalCode"], CI, false),
        ("2.5.4.41", &["name"], CI, false),
        ("2.5.4.42", &["givenName", "GN"], CI, false),
        ("2.5.4.43", &["initials"], CI, false),
        ("2.5.4.44", &["generationQualifier"], CI, false),
        ("2.5.4.46", &["dnQualifier"], CI, false),
        ("2.5.4.65", &["pseudonym"], CI, false),
        ("2.5.4.97", &["organizationIdentifier"], CI, false),
        ("1.3.6.1.4.1.311.60.2.1.1", &["jurisdictionLocalityName", "jurisdictionL"], CI, false),
        ("1.3.6.1.4.1.311.60.2.1.2", &["jurisdictionStateOrProvinceName", "jurisdictionST"], CI, false),
        ("1.3.6.1.4.1.311.60.2.1.3", &["jurisdictionCountryName", "jurisdictionC"], CI, false),
        ("1.2.840.113549.1.9.1", &["emailAddress", "email", "E"], IA5, false),
    ]
};

fn rule_of(oid: &str) -> Rule {
    ATTRS.iter().find(|a| a.0 == oid).map_or(Rule::Exact, |a| a.2)
}

impl DistinguishedName {
    /// Parses the RFC 4514 string form (most specific RDN first). An empty string is an error:
    /// a registered subject DN that matched every empty certificate subject would be a hole.
    pub fn parse_rfc4514(s: &str) -> Result<Self, DnError> {
        let mut p = Parser { s, pos: 0 };
        p.skip_ws();
        if p.peek().is_none() {
            return Err(syntax(0, "empty DN: expected at least one `type=value`, such as `CN=client`"));
        }
        let mut rdns = Vec::new();
        let mut avas = vec![p.ava()?];
        loop {
            p.skip_ws();
            match p.peek() {
                Some(b'+') => {
                    p.pos += 1;
                    avas.push(p.ava()?);
                }
                Some(b',') => {
                    p.pos += 1;
                    rdns.push(Rdn { avas: std::mem::take(&mut avas) });
                    avas.push(p.ava()?);
                }
                None => {
                    rdns.push(Rdn { avas });
                    return Ok(DistinguishedName { rdns });
                }
                // `ava` stops only at `,`, `+` or the end; kept for robustness.
                Some(_) => return Err(syntax(p.pos, "expected `,` or `+` between attributes")),
            }
        }
    }

    /// Converts a certificate subject or issuer. Character strings are decoded; other values are
    /// kept as [`AttrValue::Binary`], as are strings whose content is invalid for their type.
    pub fn from_der_name(name: &X509Name<'_>) -> Result<Self, DnError> {
        let mut rdns = Vec::new();
        for rdn in name.iter_rdn() {
            let mut avas = Vec::new();
            for ava in rdn.iter() {
                let ber = ava
                    .attr_value()
                    .to_der_vec()
                    .map_err(|e| DnError::Der(format!("cannot re-encode an attribute value: {e}")))?;
                let value = match AttrValue::from_ber(&ber) {
                    Ok(v) => v,
                    Err(_) => AttrValue::Binary(ber),
                };
                avas.push(AttributeValueAssertion { oid: ava.attr_type().to_id_string(), value });
            }
            if avas.is_empty() {
                return Err(DnError::Der("an RDN holds no attribute".into()));
            }
            rdns.push(Rdn { avas });
        }
        rdns.reverse(); // DER order is least specific first; ours is RFC 4514 order.
        Ok(DistinguishedName { rdns })
    }

    /// The RDNs, most specific first.
    pub fn rdns(&self) -> &[Rdn] {
        &self.rdns
    }

    /// Every value of the attribute `oid` (dotted), most specific RDN first.
    pub fn values<'a>(&'a self, oid: &'a str) -> impl Iterator<Item = &'a AttrValue> + 'a {
        self.rdns.iter().flat_map(|r| &r.avas).filter(move |a| a.oid == oid).map(|a| &a.value)
    }

    /// RFC 4517 `distinguishedNameMatch`; see the module docs for the value rules.
    pub fn matches(&self, other: &DistinguishedName) -> bool {
        self.rdns.len() == other.rdns.len() && self.rdns.iter().zip(&other.rdns).all(|(a, b)| a.matches(b))
    }
}

impl Rdn {
    pub fn avas(&self) -> &[AttributeValueAssertion] {
        &self.avas
    }

    /// Same set of AVAs: compare the sorted lists of prepared values.
    fn matches(&self, other: &Rdn) -> bool {
        fn keys(r: &Rdn) -> Vec<(&str, AttrValue)> {
            let mut k: Vec<_> = r.avas.iter().map(AttributeValueAssertion::match_key).collect();
            k.sort();
            k
        }
        self.avas.len() == other.avas.len() && keys(self) == keys(other)
    }
}

impl AttributeValueAssertion {
    /// The value after the string preparation of its equality rule: two AVAs match iff their
    /// keys are equal.
    fn match_key(&self) -> (&str, AttrValue) {
        let value = match &self.value {
            AttrValue::Text(s) => AttrValue::Text(match rule_of(&self.oid) {
                Rule::Exact => s.clone(),
                Rule::CaseIgnore => collapse_spaces(s).to_lowercase(),
                Rule::CaseIgnoreIa5 => collapse_spaces(s).to_ascii_lowercase(),
            }),
            binary => binary.clone(),
        };
        (&self.oid, value)
    }
}

/// Simplified RFC 4518 insignificant-space handling: trim and collapse inner runs to one space.
fn collapse_spaces(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------------
// RFC 4514 parser

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
    }

    fn ava(&mut self) -> Result<AttributeValueAssertion, DnError> {
        self.skip_ws();
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.') {
            self.pos += 1;
        }
        let name = &self.s[start..self.pos];
        if name.is_empty() {
            let after_plus = self.s[..start].trim_end().ends_with('+');
            let reason = match self.s[start..].chars().next() {
                None | Some(',' | '+') if after_plus => "empty attribute: expected `type=value` after `+`".into(),
                Some('+') => "empty attribute: expected `type=value` before `+`".into(),
                None | Some(',') => "empty RDN: expected `type=value` (stray or trailing `,`?)".into(),
                Some('=') => "missing attribute type before `=`".into(),
                Some(c) => format!("unexpected `{c}`: expected an attribute type such as `CN` or `2.5.4.3`"),
            };
            return Err(syntax(start, reason));
        }
        let oid = attribute_oid(name).map_err(|reason| syntax(start, reason))?;
        self.skip_ws();
        if self.peek() != Some(b'=') {
            return Err(syntax(self.pos, format!("expected `=` after the attribute type `{name}`")));
        }
        self.pos += 1;
        self.skip_ws();
        let value = if self.peek() == Some(b'#') { self.hex_value()? } else { AttrValue::Text(self.string_value()?) };
        Ok(AttributeValueAssertion { oid, value })
    }

    /// `#` followed by the hex of a BER encoding (RFC 4514 §2.4 / §3 `hexstring`).
    fn hex_value(&mut self) -> Result<AttrValue, DnError> {
        let at = self.pos;
        self.pos += 1;
        let digits_at = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
            self.pos += 1;
        }
        let digits = &self.s.as_bytes()[digits_at..self.pos];
        self.skip_ws();
        if !matches!(self.peek(), None | Some(b',' | b'+')) {
            return Err(syntax(
                self.pos,
                "a `#` value is only hex digits (to start a text value with `#`, escape it as `\\#`)",
            ));
        }
        if digits.is_empty() || !digits.len().is_multiple_of(2) {
            return Err(syntax(at, "`#` must be followed by an even number of hex digits (a BER encoding)"));
        }
        let ber: Vec<u8> = digits.chunks_exact(2).map(|p| (hex_digit(p[0]) << 4) | hex_digit(p[1])).collect();
        AttrValue::from_ber(&ber).map_err(|reason| syntax(at, format!("bad BER value after `#`: {reason}")))
    }

    /// An RFC 4514 `string`, unescaped. Unescaped whitespace at either end is dropped.
    fn string_value(&mut self) -> Result<String, DnError> {
        let start = self.pos;
        let mut out = Vec::new();
        let mut keep = 0; // length of `out` without unescaped trailing whitespace
        while let Some(c) = self.peek() {
            match c {
                b',' | b'+' => break,
                b'\\' => {
                    let at = self.pos;
                    let bytes = self.s.as_bytes();
                    match (bytes.get(at + 1).copied(), bytes.get(at + 2).copied()) {
                        (None, _) => {
                            return Err(syntax(
                                at,
                                "unterminated escape: `\\` ends the value (write `\\\\` for a backslash)",
                            ));
                        }
                        (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                            out.push((hex_digit(h) << 4) | hex_digit(l));
                            self.pos += 3;
                        }
                        (Some(e @ (b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' | b'=' | b' ' | b'#')), _) => {
                            out.push(e);
                            self.pos += 2;
                        }
                        _ => {
                            return Err(syntax(
                                at,
                                "invalid escape: `\\` must be followed by one of `, + \" \\ < > ; = # space` \
                                 or by two hex digits such as `\\2C`",
                            ));
                        }
                    }
                    keep = out.len();
                }
                b'"' | b';' | b'<' | b'>' => {
                    let c = char::from(c);
                    return Err(syntax(self.pos, format!("unescaped `{c}` in a value: write it as `\\{c}`")));
                }
                0 => return Err(syntax(self.pos, "NUL in a value: write it as `\\00`")),
                _ => {
                    out.push(c);
                    self.pos += 1;
                    if !is_ws(c) {
                        keep = out.len();
                    }
                }
            }
        }
        out.truncate(keep);
        String::from_utf8(out).map_err(|_| {
            syntax(start, "hex escapes do not form UTF-8 (write each byte of a character, such as `\\C4\\8D` for `č`)")
        })
    }
}

/// Resolves a descriptor (case-insensitive) or a dotted OID (optionally `OID.`-prefixed).
fn attribute_oid(name: &str) -> Result<String, String> {
    let dotted = match name.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("oid.") => &name[4..],
        _ => name,
    };
    if dotted.starts_with(|c: char| c.is_ascii_digit()) {
        // RFC 4512 numericoid: number *( "." number ), number = "0" / non-zero digit + digits.
        let ok = dotted.split('.').count() >= 2
            && dotted
                .split('.')
                .all(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) && (n == "0" || !n.starts_with('0')));
        return if ok {
            Ok(dotted.to_owned())
        } else {
            Err(format!("malformed dotted OID `{name}`: expected numbers without leading zeros joined by `.`"))
        };
    }
    ATTRS.iter().find(|a| a.1.iter().any(|d| d.eq_ignore_ascii_case(name))).map(|a| a.0.to_owned()).ok_or_else(|| {
        format!(
            "unknown attribute type `{name}`: use CN, L, ST, O, OU, C, STREET, DC, UID, serialNumber, \
             organizationIdentifier, businessCategory, jurisdictionCountryName, emailAddress, ... \
             or a dotted OID such as `2.5.4.97`"
        )
    })
}

fn hex_digit(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0, // callers check `is_ascii_hexdigit` first
    }
}

// ---------------------------------------------------------------------------------------------
// BER values

impl AttrValue {
    /// Decodes one BER value: a character string becomes `Text`, any other type `Binary`.
    /// Errors on a malformed encoding or string content invalid for its type.
    fn from_ber(ber: &[u8]) -> Result<AttrValue, &'static str> {
        let (&tag, mut rest) = ber.split_first().ok_or("empty encoding")?;
        if tag & 0x1F == 0x1F {
            // High tag number form: continuation octets have bit 8 set.
            loop {
                let (&b, r) = rest.split_first().ok_or("truncated tag")?;
                rest = r;
                if b & 0x80 == 0 {
                    break;
                }
            }
        }
        let (&first, mut rest) = rest.split_first().ok_or("missing length")?;
        let len = match first {
            0x80 => return Err("indefinite length is not supported"),
            n if n < 0x80 => usize::from(n),
            n => {
                let k = usize::from(n & 0x7F);
                if k > 4 || rest.len() < k {
                    return Err("bad length");
                }
                let (len, r) = rest.split_at(k);
                rest = r;
                len.iter().fold(0, |acc, &b| (acc << 8) | usize::from(b))
            }
        };
        if rest.len() != len {
            return Err(if rest.len() < len { "content shorter than its length" } else { "bytes after the value" });
        }
        let text = match tag {
            0x0C => String::from_utf8(rest.to_vec()).ok(),
            // NumericString, PrintableString, IA5String, VisibleString: ASCII.
            0x12 | 0x13 | 0x16 | 0x1A => rest.is_ascii().then(|| rest.iter().map(|&b| char::from(b)).collect()),
            // TeletexString (T.61) is in practice Latin-1.
            0x14 => Some(rest.iter().map(|&b| char::from(b)).collect()),
            // BMPString: UCS-2 big-endian.
            0x1E => len
                .is_multiple_of(2)
                .then(|| char::decode_utf16(rest.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))))
                .and_then(|chars| chars.collect::<Result<String, _>>().ok()),
            // UniversalString: UCS-4 big-endian.
            0x1C => len
                .is_multiple_of(4)
                .then(|| rest.chunks_exact(4).map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))))
                .and_then(|chars| chars.collect::<Option<String>>()),
            _ => return Ok(AttrValue::Binary(ber.to_vec())),
        };
        text.map(AttrValue::Text).ok_or("string content is invalid for its ASN.1 string type")
    }
}

/// DER encoding of a text value, for the `#hex` form of dotted OIDs. PrintableString when the
/// characters allow it (what Open Finance Brasil expects), IA5String for IA5 attributes,
/// otherwise UTF8String.
fn der_text(s: &str, rule: Rule) -> Vec<u8> {
    let printable = |c: u8| {
        c.is_ascii_alphanumeric()
            || matches!(c, b' ' | b'\'' | b'(' | b')' | b'+' | b',' | b'-' | b'.' | b'/' | b':' | b'=' | b'?')
    };
    let tag = if rule == Rule::CaseIgnoreIa5 && s.is_ascii() {
        0x16
    } else if s.bytes().all(printable) {
        0x13
    } else {
        0x0C
    };
    let len = s.len().to_be_bytes();
    let mut out = vec![tag];
    if s.len() < 0x80 {
        out.push(len[len.len() - 1]);
    } else {
        let skip = len.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (len.len() - skip) as u8);
        out.extend_from_slice(&len[skip..]);
    }
    out.extend_from_slice(s.as_bytes());
    out
}

// ---------------------------------------------------------------------------------------------
// Display

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rdn) in self.rdns.iter().enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            for (j, ava) in rdn.avas.iter().enumerate() {
                if j > 0 {
                    f.write_char('+')?;
                }
                write!(f, "{ava}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for AttributeValueAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let descriptor = ATTRS.iter().find(|a| a.0 == self.oid && a.3).map(|a| a.1[0]);
        match (descriptor, &self.value) {
            (Some(name), AttrValue::Text(s)) => {
                write!(f, "{name}=")?;
                write_escaped(f, s)
            }
            (Some(name), AttrValue::Binary(ber)) => write!(f, "{name}=#{}", Hex(ber)),
            (None, AttrValue::Text(s)) => write!(f, "{}=#{}", self.oid, Hex(&der_text(s, rule_of(&self.oid)))),
            (None, AttrValue::Binary(ber)) => write!(f, "{}=#{}", self.oid, Hex(ber)),
        }
    }
}

struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

/// RFC 4514 §2.4 escaping, plus hex escapes for control characters so output stays on one line.
fn write_escaped(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    for (i, c) in s.char_indices() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => write!(f, "\\{c}")?,
            '#' if i == 0 => f.write_str("\\#")?,
            ' ' if i == 0 || i + 1 == s.len() => f.write_str("\\ ")?,
            c if c.is_control() => {
                let mut buf = [0; 4];
                c.encode_utf8(&mut buf).bytes().try_for_each(|b| write!(f, "\\{b:02X}"))?;
            }
            c => f.write_char(c)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const R8_PRINTABLE: &str =
        "2.5.4.97=#132A4F464242522D36376335373838322D303433622D313165632D396130332D303234326163313330303033";
    const R8_UTF8: &str =
        "2.5.4.97=#0C2A4F464242522D36376335373838322D303433622D313165632D396130332D303234326163313330303033";
    const R8_TEXT: &str = "OFBBR-67c57882-043b-11ec-9a03-0242ac130003";

    fn dn(s: &str) -> DistinguishedName {
        DistinguishedName::parse_rfc4514(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn single_values_parse() {
        // RFC 4514 §3 escapes and hex pairs; checklist C.58 (string form per RFC 4514).
        let cases: &[(&str, &str, &str)] = &[
            ("CN=Alice", "2.5.4.3", "Alice"),
            ("cn=Alice", "2.5.4.3", "Alice"),
            ("commonName=Alice", "2.5.4.3", "Alice"),
            ("OID.2.5.4.3=Alice", "2.5.4.3", "Alice"),
            ("CN=a\\,b", "2.5.4.3", "a,b"),
            ("CN=a\\+b", "2.5.4.3", "a+b"),
            ("CN=a\\\"b\\\"", "2.5.4.3", "a\"b\""),
            ("CN=a\\\\b", "2.5.4.3", "a\\b"),
            ("CN=\\<a\\>\\;\\=", "2.5.4.3", "<a>;="),
            ("CN=\\#a", "2.5.4.3", "#a"),
            ("CN=\\ a", "2.5.4.3", " a"),
            ("CN=a\\ ", "2.5.4.3", "a "),
            ("CN=a#b=c", "2.5.4.3", "a#b=c"),
            ("CN=\\2C\\2c", "2.5.4.3", ",,"),
            ("CN=Lu\\C4\\8Di\\C4\\87", "2.5.4.3", "Lučić"),
            ("CN=Lučić", "2.5.4.3", "Lučić"),
            ("  CN  =  a  b  ", "2.5.4.3", "a  b"),
            ("CN=", "2.5.4.3", ""),
            ("UID=12345", "0.9.2342.19200300.100.1.1", "12345"),
            ("SN=Smith", "2.5.4.4", "Smith"),
            ("serialNumber=1", "2.5.4.5", "1"),
            ("jurisdictionC=BR", "1.3.6.1.4.1.311.60.2.1.3", "BR"),
            ("E=a@b.example", "1.2.840.113549.1.9.1", "a@b.example"),
            // Test vector R.8: PrintableString and UTF8String forms; checklist P.139.
            (R8_PRINTABLE, "2.5.4.97", R8_TEXT),
            (R8_UTF8, "2.5.4.97", R8_TEXT),
            ("2.5.4.15=#1603616263", "2.5.4.15", "abc"),   // IA5String
            ("2.5.4.15=#1401E9 ", "2.5.4.15", "é"),        // TeletexString as Latin-1
            ("CN=#1E0400410107", "2.5.4.3", "Ać"),         // BMPString
            ("CN=#1C080000004100000107", "2.5.4.3", "Ać"), // UniversalString
            ("CN=#13810141", "2.5.4.3", "A"),              // long-form length
        ];
        for (input, oid, text) in cases {
            let d = dn(input);
            let ava = &d.rdns()[0].avas()[0];
            assert_eq!((d.rdns().len(), ava.oid.as_str(), ava.value.as_text()), (1, *oid, Some(*text)), "{input:?}");
        }
        assert_eq!(dn("CN=x,2.5.4.15=#1401E9").values("2.5.4.15").next(), Some(&AttrValue::Text("é".into())));
        assert_eq!(dn("CN=#0403010203").rdns()[0].avas()[0].value, AttrValue::Binary(vec![4, 3, 1, 2, 3]));
    }

    #[test]
    fn distinguished_name_match() {
        // RFC 4517 §4.2.15 distinguishedNameMatch with caseIgnoreMatch; checklist C.57, P.139.
        let cases: &[(&str, &str, bool)] = &[
            ("CN=client,OU=123,O=Bank,C=GB", "CN=client,OU=123,O=Bank,C=GB", true),
            ("CN=a+UID=1,O=x", "UID=1+CN=a,O=x", true), // order inside an RDN is irrelevant
            ("CN=a+UID=1,O=x", "CN=a+UID=2,O=x", false),
            ("CN=a+UID=1,O=x", "CN=a,UID=1,O=x", false), // multi-valued RDN is not two RDNs
            ("CN=a+CN=a", "CN=a", false),
            ("2.5.4.3=x", "CN=x", true), // dotted OID equals its descriptor
            ("0.9.2342.19200300.100.1.1=u", "uid=u", true),
            ("cn=ALICE,o=Bank", "CN=alice,O=BANK", true), // case-insensitive values and descriptors
            ("CN=Lučić", "CN=LUČIĆ", true),
            ("CN=Lu\\C4\\8Di\\C4\\87", "CN=lučić", true),
            ("CN=Alice   Smith,O=Bank", "CN= Alice Smith ,O=Bank", true), // inner whitespace
            ("CN=Alice\\20\\20Smith", "CN=alice smith", true),
            ("CN=\\ Alice", "CN=Alice", true), // insignificant leading space
            ("C=br", "C=BR", true),
            ("CN=a,O=b", "O=b,CN=a", false),      // RDN order matters
            ("CN=a,O=b,C=GB", "CN=a,O=b", false), // one RDN fewer
            ("CN=a", "CN=b", false),
            ("CN=a", "OU=a", false),
            ("CN=ab", "CN=a b", false),
            (R8_PRINTABLE, R8_UTF8, true), // test vector R.8
            (R8_PRINTABLE, "organizationIdentifier=OFBBR-67C57882-043B-11EC-9A03-0242AC130003", true),
            (R8_PRINTABLE, "organizationIdentifier=OFBBR-67c57882", false),
            ("emailAddress=Alice@Example.COM", "E=alice@example.com", true), // caseIgnoreIA5Match
            ("emailAddress=É@x.example", "E=é@x.example", false),            // IA5 folds ASCII only
            ("CN=É", "CN=é", true),
            ("1.2.3.4=#0C03414243", "1.2.3.4=#1303414243", true), // unknown type: exact text
            ("1.2.3.4=#0C03414243", "1.2.3.4=#0C03616263", false),
            ("CN=#0403010203", "CN=#0403010203", true), // binary: byte-equal only
            ("CN=#0403010203", "CN=#0403010204", false),
            ("CN=#0C0141", "CN=A", true),  // `#hex` of a string type is that string
            ("CN=#040141", "CN=A", false), // OCTET STRING is not text
        ];
        for (a, b, expected) in cases {
            assert_eq!(dn(a).matches(&dn(b)), *expected, "{a:?} vs {b:?}");
            assert_eq!(dn(b).matches(&dn(a)), *expected, "{b:?} vs {a:?} (symmetry)");
        }
    }

    #[test]
    fn malformed_inputs_error() {
        // Each must fail with a message, never panic.
        let cases: &[(&str, &str)] = &[
            ("", "empty DN"),
            ("   ", "empty DN"),
            ("CN", "expected `=`"),
            ("CN Alice", "expected `=`"),
            ("=Alice", "missing attribute type"),
            ("CN=a,,O=b", "empty RDN"),
            ("CN=a,", "empty RDN"),
            (",CN=a", "empty RDN"),
            ("CN=a+", "empty attribute"),
            ("CN=a++O=b", "empty attribute"),
            ("+CN=a", "empty attribute"),
            ("CN=a\\", "unterminated escape"),
            ("CN=a\\x", "invalid escape"),
            ("CN=a\\4", "invalid escape"),
            ("CN=a\\4G", "invalid escape"),
            ("CN=\\C4", "UTF-8"),
            ("CN=a;O=b", "unescaped `;`"),
            ("CN=\"quoted\"", "unescaped `\"`"),
            ("CN=a<b", "unescaped `<`"),
            ("CN=a\u{0}", "NUL"),
            ("FOO=bar", "unknown attribute type `FOO`"),
            ("C N=x", "expected `=`"),
            ("1..2=x", "malformed dotted OID"),
            ("01.2=x", "malformed dotted OID"),
            ("2=x", "malformed dotted OID"),
            ("CN=#", "even number of hex digits"),
            ("CN=#1", "even number of hex digits"),
            ("CN=#zz", "only hex digits"),
            ("CN=#0C02 41", "only hex digits"),
            ("CN=#0C0241", "shorter than its length"),
            ("CN=#0C014142", "bytes after the value"),
            ("CN=#0C80", "indefinite length"),
            ("CN=#0C", "missing length"),
            ("CN=#0CFF", "bad length"),
            ("CN=#0C01FF", "invalid for its ASN.1 string type"),
            ("CN=#1301E9", "invalid for its ASN.1 string type"),
            ("CN=#1E0141", "invalid for its ASN.1 string type"),
            ("CN=#1E02D800", "invalid for its ASN.1 string type"),
            ("CN=#1F", "truncated tag"),
            ("CN=Lučić,é=x", "unexpected `é`"),
        ];
        for (input, needle) in cases {
            match DistinguishedName::parse_rfc4514(input) {
                Ok(d) => panic!("{input:?} parsed as {d:?}"),
                Err(e) => assert!(e.to_string().contains(needle), "{input:?}: {e} (wanted {needle:?})"),
            }
        }
        assert_eq!(
            DistinguishedName::parse_rfc4514("CN=a,,O=b"),
            Err(DnError::Syntax { at: 5, reason: "empty RDN: expected `type=value` (stray or trailing `,`?)".into() })
        );
    }

    #[test]
    fn display_is_canonical_rfc4514() {
        let cases: &[(&str, &str)] = &[
            ("cn = a , o = b", "CN=a,O=b"),
            ("2.5.4.3=x+uid=1", "CN=x+UID=1"),
            ("CN=\\ a\\,b\\+\\<\\>\\;\\\"\\\\\\ ", "CN=\\ a\\,b\\+\\<\\>\\;\\\"\\\\\\ "),
            ("CN=\\#x#", "CN=\\#x#"),
            ("CN=a\\0Ab", "CN=a\\0Ab"),
            ("CN=#0403010203", "CN=#0403010203"),
            // Non-RFC 4514 §3 types are written as dotted OID `=#hex`, as checklist P.139 asks.
            (R8_UTF8, R8_PRINTABLE),
            ("serialNumber=123", "2.5.4.5=#1303313233"),
            ("businessCategory=Ação", "2.5.4.15=#0C0641C3A7C3A36F"),
            ("emailAddress=a@b", "1.2.840.113549.1.9.1=#1603614062"),
        ];
        for (input, expected) in cases {
            let d = dn(input);
            assert_eq!(d.to_string(), *expected, "{input:?}");
            assert_eq!(dn(expected), d, "{expected:?} reparses to the same value");
        }
        // A value of 200 bytes needs a long-form DER length.
        let long = format!("title={}", "x".repeat(200));
        assert!(dn(&long).to_string().starts_with("2.5.4.12=#1381C8787878"));
        assert!(dn(&dn(&long).to_string()).matches(&dn(&long)));
    }

    #[test]
    fn from_der_name_reads_multi_valued_rdns_in_rfc4514_order() {
        // rcgen cannot write a multi-valued RDN, so this Name is assembled by hand:
        // SEQUENCE { SET { O=x }, SET { CN=a (UTF8String), UID=1 (PrintableString) }, SET { 2.5.4.15=OCTET STRING } }
        fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
            [&[tag, u8::try_from(content.len()).unwrap()][..], content].concat()
        }
        let ava = |oid: &[u8], value: Vec<u8>| tlv(0x30, &[tlv(0x06, oid), value].concat());
        let o = ava(&[0x55, 4, 10], tlv(0x13, b"x"));
        let cn = ava(&[0x55, 4, 3], tlv(0x0C, b"a"));
        let uid = ava(&[0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x01], tlv(0x13, b"1"));
        let bc = ava(&[0x55, 4, 15], tlv(0x04, &[1, 2]));
        let name = tlv(0x30, &[tlv(0x31, &o), tlv(0x31, &[cn, uid].concat()), tlv(0x31, &bc)].concat());
        let (rest, parsed) = <X509Name as x509_parser::prelude::FromDer<_>>::from_der(&name).unwrap();
        assert!(rest.is_empty());
        let d = DistinguishedName::from_der_name(&parsed).unwrap();
        assert_eq!(d.to_string(), "2.5.4.15=#04020102,CN=a+UID=1,O=x");
        assert!(d.matches(&dn("2.5.4.15=#04020102, uid=1+cn=A, o=X")));
        assert!(!d.matches(&dn("2.5.4.15=#04020103,CN=a+UID=1,O=x")));
        assert!(!d.matches(&dn("O=x,CN=a+UID=1,2.5.4.15=#04020102")));
    }

    fn arb_dn() -> impl Strategy<Value = DistinguishedName> {
        let oid = prop::sample::select(vec![
            "2.5.4.3",
            "2.5.4.10",
            "2.5.4.6",
            "0.9.2342.19200300.100.1.25",
            "2.5.4.97",
            "2.5.4.5",
            "1.2.840.113549.1.9.1",
            "1.3.6.1.4.1.311.60.2.1.3",
            "1.2.3.4.5",
        ]);
        let value = prop_oneof![
            4 => "\\PC{0,12}".prop_map(AttrValue::Text),
            2 => "[ #,+\"\\\\<>;=\t\n\u{0}a-c]{0,8}".prop_map(AttrValue::Text),
            1 => prop::collection::vec(any::<u8>(), 0..6).prop_map(|c| {
                let mut ber = vec![0x04, u8::try_from(c.len()).unwrap_or(0)];
                ber.extend(c);
                AttrValue::Binary(ber)
            }),
        ];
        let ava = (oid, value).prop_map(|(oid, value)| AttributeValueAssertion { oid: oid.into(), value });
        let rdn = prop::collection::vec(ava, 1..3).prop_map(|avas| Rdn { avas });
        prop::collection::vec(rdn, 1..5).prop_map(|rdns| DistinguishedName { rdns })
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(d in arb_dn()) {
            let s = d.to_string();
            let back = DistinguishedName::parse_rfc4514(&s).map_err(|e| TestCaseError::fail(format!("{s:?}: {e}")))?;
            prop_assert!(back.matches(&d), "{s:?}");
            prop_assert_eq!(back, d);
        }

        #[test]
        fn parser_never_panics(s in "\\PC{0,40}|[A-Za-z0-9=,+#\\\\ .\"]{0,40}") {
            if let Ok(d) = DistinguishedName::parse_rfc4514(&s) {
                // Whatever parses, prints to something that parses to a matching DN.
                prop_assert!(dn(&d.to_string()).matches(&d));
            }
        }
    }
}
