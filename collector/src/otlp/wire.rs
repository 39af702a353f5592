//! A borrowing reader of the protobuf wire format: fields come out as numbers or as slices of
//! the request's own bytes, so a decoder can build the model straight from them without
//! `prost`'s owned message structs in between (what [`super::trace_decode`] does).
//!
//! It keeps `prost`'s rules, so the two decoders accept and refuse the same bodies (the
//! `otlp_traces` fuzz target and its corpus replay compare them): varints of at most ten bytes
//! that fit 64 bits, keys that fit 32 bits with a field number of at least 1 and a known wire
//! type, unknown fields (groups included) skipped, and prost's recursion budget of 100: a
//! nested message or a skipped unknown field needs budget left, and a nested message is read
//! with one less.

use std::fmt;

/// Why a body is not a valid protobuf message (the receivers say "invalid OTLP protobuf: …").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    Truncated,
    BadVarint,
    BadKey,
    WrongWireType { field: u32 },
    BadUtf8,
    UnexpectedEndGroup,
    TooDeep,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("a field runs past the end of its message"),
            Self::BadVarint => f.write_str("a varint is longer than 64 bits"),
            Self::BadKey => f.write_str("a field key is invalid"),
            Self::WrongWireType { field } => write!(f, "field {field} has the wrong wire type"),
            Self::BadUtf8 => f.write_str("a string field is not valid UTF-8"),
            Self::UnexpectedEndGroup => f.write_str("a group ends where none began"),
            Self::TooDeep => f.write_str("messages are nested more than 100 deep"),
        }
    }
}

impl std::error::Error for WireError {}

/// prost's recursion limit (`DecodeContext`'s default).
pub const RECURSION_BUDGET: u32 = 100;

/// One field's value, borrowed from the message's bytes.
#[derive(Debug, Clone, Copy)]
pub enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
    /// A group's start: only ever skipped ([`Message::skip`]); as a known field, an error.
    Group,
    /// A group's end outside any group: an error, known field or not.
    EndGroup,
}

impl<'a> Field<'a> {
    fn wrong(field: u32) -> WireError {
        WireError::WrongWireType { field }
    }

    pub fn varint(self, field: u32) -> Result<u64, WireError> {
        match self {
            Self::Varint(v) => Ok(v),
            _ => Err(Self::wrong(field)),
        }
    }

    /// An `int32` or enum: the varint truncated, as prost reads it.
    pub fn int32(self, field: u32) -> Result<i32, WireError> {
        self.varint(field).map(|v| v as i32)
    }

    pub fn fixed64(self, field: u32) -> Result<u64, WireError> {
        match self {
            Self::Fixed64(v) => Ok(v),
            _ => Err(Self::wrong(field)),
        }
    }

    pub fn fixed32(self, field: u32) -> Result<u32, WireError> {
        match self {
            Self::Fixed32(v) => Ok(v),
            _ => Err(Self::wrong(field)),
        }
    }

    pub fn bytes(self, field: u32) -> Result<&'a [u8], WireError> {
        match self {
            Self::Bytes(b) => Ok(b),
            _ => Err(Self::wrong(field)),
        }
    }

    pub fn str(self, field: u32) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes(field)?).map_err(|_| WireError::BadUtf8)
    }
}

/// The fields of one message, in the order they were written, and the recursion budget it
/// was entered with.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    buf: &'a [u8],
    budget: u32,
}

impl<'a> Message<'a> {
    /// A top-level message (the request body).
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            budget: RECURSION_BUDGET,
        }
    }

    /// The next field's number and value, `None` at the end.
    pub fn next_field(&mut self) -> Result<Option<(u32, Field<'a>)>, WireError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let key = u32::try_from(key).map_err(|_| WireError::BadKey)?;
        let number = key >> 3;
        if number == 0 {
            return Err(WireError::BadKey);
        }
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => Field::Fixed64(u64::from_le_bytes(self.take_array()?)),
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| WireError::Truncated)?;
                Field::Bytes(self.take(len)?)
            }
            3 => Field::Group,
            4 => Field::EndGroup,
            5 => Field::Fixed32(u32::from_le_bytes(self.take_array()?)),
            _ => return Err(WireError::BadKey),
        };
        Ok(Some((number, field)))
    }

    /// A nested message in a known field: needs budget left, and is read with one less.
    pub fn nested(&self, field: u32, value: Field<'a>) -> Result<Message<'a>, WireError> {
        let buf = value.bytes(field)?;
        if self.budget == 0 {
            return Err(WireError::TooDeep);
        }
        Ok(Message {
            buf,
            budget: self.budget - 1,
        })
    }

    /// Skips an unknown field, as prost does: it needs budget left, a group is read to its
    /// matching end (its fields skipped with one less budget), a stray group end is an error.
    pub fn skip(&mut self, number: u32, value: Field<'a>) -> Result<(), WireError> {
        skip(self, number, value, self.budget)
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        // Most varints of an export are one byte (every field key, short lengths, kinds).
        if let Some((&byte, rest)) = self.buf.split_first()
            && byte < 0x80
        {
            self.buf = rest;
            return Ok(u64::from(byte));
        }
        let mut value = 0u64;
        for (i, &byte) in self.buf.iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                // The tenth byte may only carry the 64th bit.
                if i == 9 && byte >= 2 {
                    return Err(WireError::BadVarint);
                }
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(if self.buf.len() < 10 {
            WireError::Truncated
        } else {
            WireError::BadVarint
        })
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        if len > self.buf.len() {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(head)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let bytes = self.take(N)?;
        bytes.try_into().map_err(|_| WireError::Truncated)
    }
}

fn skip<'a>(
    msg: &mut Message<'a>,
    number: u32,
    value: Field<'a>,
    budget: u32,
) -> Result<(), WireError> {
    if budget == 0 {
        return Err(WireError::TooDeep);
    }
    match value {
        Field::EndGroup => Err(WireError::UnexpectedEndGroup),
        Field::Group => loop {
            let Some((inner, field)) = msg.next_field()? else {
                return Err(WireError::Truncated);
            };
            match field {
                Field::EndGroup if inner == number => return Ok(()),
                Field::EndGroup => return Err(WireError::UnexpectedEndGroup),
                _ => skip(msg, inner, field, budget - 1)?,
            }
        },
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(buf: &[u8]) -> Result<Vec<(u32, String)>, WireError> {
        let mut msg = Message::new(buf);
        let mut out = Vec::new();
        while let Some((n, f)) = msg.next_field()? {
            if matches!(f, Field::Group | Field::EndGroup) {
                msg.skip(n, f)?;
            }
            out.push((n, format!("{f:?}")));
        }
        Ok(out)
    }

    #[test]
    fn fields_come_out_in_order_with_borrowed_bytes() {
        // 1: varint 150, 2: "hi", 3: fixed32 1, 4: fixed64 2
        let buf = [
            0x08, 0x96, 0x01, 0x12, 2, b'h', b'i', 0x1d, 1, 0, 0, 0, 0x21, 2, 0, 0, 0, 0, 0, 0, 0,
        ];
        let got = fields(&buf).map(|f| f.into_iter().map(|(n, _)| n).collect::<Vec<_>>());
        assert_eq!(got, Ok(vec![1, 2, 3, 4]));
        let mut msg = Message::new(&buf);
        let (_, v) = msg.next_field().ok().flatten().expect("a field");
        assert_eq!(v.varint(1), Ok(150));
        let (_, s) = msg.next_field().ok().flatten().expect("a field");
        assert_eq!(s.str(2), Ok("hi"));
        assert_eq!(s.varint(2), Err(WireError::WrongWireType { field: 2 }));
    }

    #[test]
    fn malformed_input_is_refused_as_prost_refuses_it() {
        // Field number 0, wire type 6, a length past the end, an 11-byte varint, a tenth
        // varint byte over 1, a stray group end, an unterminated group.
        assert_eq!(fields(&[0x00, 0]), Err(WireError::BadKey));
        assert_eq!(fields(&[0x0e]), Err(WireError::BadKey));
        assert_eq!(fields(&[0x12, 5, 1]), Err(WireError::Truncated));
        assert_eq!(
            fields(&[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02
            ]),
            Err(WireError::BadVarint)
        );
        assert!(
            fields(&[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ])
            .is_ok()
        );
        assert_eq!(fields(&[0x0c]), Err(WireError::UnexpectedEndGroup));
        assert_eq!(fields(&[0x0b, 0x08, 1]), Err(WireError::Truncated));
        // A group closed by its own number is skipped whole.
        assert_eq!(
            fields(&[0x0b, 0x10, 1, 0x0c, 0x18, 2]).map(|f| f.len()),
            Ok(2)
        );
    }

    #[test]
    fn nesting_past_the_budget_is_refused() {
        let mut msg = Message::new(&[]);
        let inner = [0u8; 0];
        for _ in 0..RECURSION_BUDGET {
            msg = msg
                .nested(1, Field::Bytes(&inner))
                .expect("within the budget");
        }
        assert_eq!(
            msg.nested(1, Field::Bytes(&inner)).err(),
            Some(WireError::TooDeep)
        );
        assert_eq!(msg.skip(9, Field::Varint(1)), Err(WireError::TooDeep));
    }
}
