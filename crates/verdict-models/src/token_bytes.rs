//! The raw bytes every token id stands for, for byte-level constrained decoding.
//!
//! Grammar constraints run over the bytes the model emits, not over token strings: a
//! byte-level BPE token like `Ġ"` is the two bytes ` "`, and a token may end in the middle of a
//! UTF-8 character. This table is built once per tokenizer and shared by every constrained
//! request; tokens are also grouped by first byte so a constraint only scans the groups whose
//! first byte it can accept.

use std::collections::HashMap;

use tokenizers::{DecoderWrapper, Tokenizer};

/// Byte strings of a vocabulary.
#[derive(Debug, Clone)]
pub struct TokenBytes {
    /// `bytes[id]`; `None` for special/added tokens and ids without text.
    bytes: Vec<Option<Vec<u8>>>,
    /// Ordinary token ids grouped by their first byte.
    by_first_byte: Vec<Vec<u32>>,
}

/// GPT-2's reversible byte <-> printable character map used by byte-level BPE vocabularies.
fn byte_level_decoder_map() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = (u32::from(b'!')..=u32::from(b'~')).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut map = HashMap::with_capacity(256);
    let mut extra = 0u32;
    for byte in 0u32..=255 {
        let ch = if printable.contains(&byte) {
            byte
        } else {
            extra += 1;
            255 + extra
        };
        if let Some(ch) = char::from_u32(ch) {
            map.insert(ch, byte as u8);
        }
    }
    map
}

/// Bytes of a SentencePiece-style piece: `▁` is a space, `<0xNN>` a raw byte.
fn sentencepiece_bytes(piece: &str) -> Vec<u8> {
    if piece.len() == 6 && piece.starts_with("<0x") && piece.ends_with('>') {
        if let Ok(byte) = u8::from_str_radix(&piece[3..5], 16) {
            return vec![byte];
        }
    }
    piece.replace('\u{2581}', " ").into_bytes()
}

impl TokenBytes {
    /// Builds the table from a tokenizer. Added and special tokens (chat markers, image pads)
    /// get no bytes, so constraints never emit them inside structured output.
    pub fn from_tokenizer(tokenizer: &Tokenizer) -> Self {
        let size = tokenizer.get_vocab_size(true);
        let mut bytes: Vec<Option<Vec<u8>>> = vec![None; size];
        let added = tokenizer.get_added_tokens_decoder();
        let byte_level = matches!(tokenizer.get_decoder(), Some(DecoderWrapper::ByteLevel(_)));
        let char_map = byte_level.then(byte_level_decoder_map);
        for (token, id) in tokenizer.get_vocab(false) {
            let index = id as usize;
            if index >= size || added.contains_key(&id) {
                continue;
            }
            let decoded = match &char_map {
                Some(map) => token
                    .chars()
                    .map(|c| map.get(&c).copied())
                    .collect::<Option<Vec<u8>>>(),
                None => Some(sentencepiece_bytes(&token)),
            };
            bytes[index] = decoded.filter(|b| !b.is_empty());
        }
        Self::from_bytes(bytes)
    }

    /// Builds the table from explicit byte strings (`None` = never allowed).
    pub fn from_bytes(bytes: Vec<Option<Vec<u8>>>) -> Self {
        let mut by_first_byte = vec![Vec::new(); 256];
        for (id, token) in bytes.iter().enumerate() {
            if let Some(first) = token.as_ref().and_then(|b| b.first()) {
                by_first_byte[usize::from(*first)].push(id as u32);
            }
        }
        Self {
            bytes,
            by_first_byte,
        }
    }

    /// Bytes of a token id; `None` for special tokens and unknown ids.
    pub fn get(&self, id: u32) -> Option<&[u8]> {
        self.bytes.get(id as usize).and_then(|b| b.as_deref())
    }

    /// Ordinary tokens starting with `byte`.
    pub fn starting_with(&self, byte: u8) -> &[u32] {
        &self.by_first_byte[usize::from(byte)]
    }

    pub fn vocab_size(&self) -> usize {
        self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_map_is_a_bijection() {
        let map = byte_level_decoder_map();
        assert_eq!(map.len(), 256);
        let mut seen: Vec<u8> = map.values().copied().collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 256);
        assert_eq!(map[&'\u{120}'], b' '); // 'Ġ'
        assert_eq!(map[&'\u{10A}'], b'\n'); // 'Ċ'
        assert_eq!(map[&'a'], b'a');
    }

    #[test]
    fn sentencepiece_pieces() {
        assert_eq!(sentencepiece_bytes("\u{2581}the"), b" the");
        assert_eq!(sentencepiece_bytes("<0x0A>"), b"\n");
    }
}
