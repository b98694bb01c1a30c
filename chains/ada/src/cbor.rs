//! A minimal canonical CBOR writer for the transaction shapes softstake
//! builds (definite lengths, shortest integer heads). Decoding, in the test
//! node, is pallas' own.

/// A CBOR byte buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    fn head(&mut self, major: u8, v: u64) {
        let m = major << 5;
        match v {
            0..=23 => self.0.push(m | u8::try_from(v).unwrap_or(0)),
            24..=0xff => {
                self.0.push(m | 24);
                self.0.push(u8::try_from(v).unwrap_or(0));
            }
            0x100..=0xffff => {
                self.0.push(m | 25);
                self.0
                    .extend_from_slice(&u16::try_from(v).unwrap_or(0).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.0.push(m | 26);
                self.0
                    .extend_from_slice(&u32::try_from(v).unwrap_or(0).to_be_bytes());
            }
            _ => {
                self.0.push(m | 27);
                self.0.extend_from_slice(&v.to_be_bytes());
            }
        }
    }
    /// Unsigned integer.
    pub fn uint(&mut self, v: u64) -> &mut Self {
        self.head(0, v);
        self
    }
    /// Byte string.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.head(2, b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    /// Array header.
    pub fn array(&mut self, n: usize) -> &mut Self {
        self.head(4, n as u64);
        self
    }
    /// Map header.
    pub fn map(&mut self, n: usize) -> &mut Self {
        self.head(5, n as u64);
        self
    }
    /// Tag.
    pub fn tag(&mut self, t: u64) -> &mut Self {
        self.head(6, t);
        self
    }
    /// A Conway set header (tag 258 + array).
    pub fn set(&mut self, n: usize) -> &mut Self {
        self.tag(258).array(n)
    }
    /// true / false.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.0.push(if v { 0xf5 } else { 0xf4 });
        self
    }
    /// null.
    pub fn null(&mut self) -> &mut Self {
        self.0.push(0xf6);
        self
    }
    /// Raw, already encoded bytes.
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_heads_are_shortest() {
        let mut w = Writer::default();
        w.uint(23).uint(24).uint(256).uint(65_536).uint(1 << 32);
        assert_eq!(
            hex::encode(&w.0),
            "1718181901001a000100001b0000000100000000"
        );
        let mut w = Writer::default();
        w.set(1).bytes(&[1, 2]).map(0).bool(true).null();
        assert_eq!(hex::encode(&w.0), "d9010281420102a0f5f6");
    }
}
