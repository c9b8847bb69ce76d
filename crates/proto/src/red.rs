//! RFC 2198 audio redundancy ("RED"), the payload format Chrome's audio RED
//! sends when `red/48000/2` is negotiated with fmtp `111/111`: every packet
//! carries the new Opus frame (the *primary*) plus copies of one or more
//! earlier frames, so a lost packet is rebuilt from the next one.
//!
//! Start with [`RedEncoder`] on the send side and [`split`] on the receive
//! side; [`encode`] and [`parse`] are the raw format underneath.
//!
//! # Layout
//!
//! ```text
//!  redundant block header, 4 bytes each, oldest block first:
//!   0                   1                   2                   3
//!   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  |1| block PT    |  timestamp offset (14)    | block length (10) |
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  final header, 1 byte:  |0| primary PT  |
//!  then the redundant blocks' data in header order, then the primary's.
//! ```
//!
//! A block's RTP timestamp is the packet's minus its offset. The primary's
//! length is not written: it is whatever follows the last block.
//!
//! # Decisions
//!
//! - **Zero-length blocks and primaries are valid.** The format can express
//!   them and RFC 2198 does not forbid them, so [`encode`] writes and
//!   [`parse`] accepts them; rejecting an empty primary on parse would throw
//!   away the redundant blocks beside it, which are the point of RED.
//!   [`Red::frames`] skips them, though: an empty Opus payload is not a
//!   frame, and handing one to a decoder would conceal a frame we actually
//!   have.
//! - **At most [`MAX_REDUNDANT_BLOCKS`] blocks** per packet, on both sides,
//!   so every payload [`encode`] accepts also parses.

use std::collections::VecDeque;

/// The F bit: set on every redundant block header, clear on the final one.
const FOLLOW: u8 = 0x80;

/// Largest RTP payload type: it has 7 bits.
pub const MAX_PAYLOAD_TYPE: u8 = 0x7f;

/// Largest timestamp offset of a redundant block: it has 14 bits. At the
/// Opus RTP clock of 48 kHz that is 341 ms.
pub const MAX_TIMESTAMP_OFFSET: u16 = 0x3fff;

/// Longest redundant block in bytes: its length has 10 bits.
pub const MAX_BLOCK_LEN: usize = 0x3ff;

/// Most redundant blocks [`parse`] accepts and [`encode`] writes in one
/// payload. It bounds the work and allocation one hostile packet can cause
/// (a 1,200-byte packet could otherwise declare 300 headers), while staying
/// far above any useful depth: see [`MAX_DEPTH`].
pub const MAX_REDUNDANT_BLOCKS: usize = 32;

/// Most redundant copies [`RedEncoder`] sends per packet. The send policy
/// uses at most 3 (see `media`).
pub const MAX_DEPTH: usize = 4;

/// How many packets back the copies of a [`RedEncoder`] go, by depth: the
/// `i`th copy in a packet is of the frame `SPREAD[i]` packets before it.
///
/// Spread rather than consecutive, because loss comes in bursts: with the
/// copies 1, 3 and 6 packets later, a frame is lost only if its packet and
/// all three of those are, so a burst of 4 to 5 packets costs nothing,
/// where copies 1, 2 and 3 packets later lose every frame of a burst but
/// the last three. Simulated with Gilbert–Elliott loss of 10 % in bursts
/// of 3 on average: 0.9 % of frames lost (1, 3, 6) against 2.8 %
/// (1, 2, 3), the same bandwidth; under 10–20 % random loss both lose
/// under 0.2 %. The price is latency: the receiver waits up to 6 packets
/// (120 ms) for a copy, and only while copies are needed.
pub const SPREAD: [usize; MAX_DEPTH] = [1, 3, 6, 8];

/// Frames a [`RedEncoder`] remembers: as far back as its deepest copy.
const HISTORY: usize = SPREAD[MAX_DEPTH - 1];

/// Default limit on a payload [`RedEncoder`] builds, in bytes. With RTP,
/// SRTP, UDP, IPv6 and TURN headers on top it stays well under a 1,280-byte
/// IPv6 minimum MTU, so redundancy never makes a packet fragment.
pub const DEFAULT_MAX_PAYLOAD_LEN: usize = 1000;

/// One redundant block: an earlier frame carried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block<'a> {
    /// RTP payload type of the block (7 bits; Opus is usually 111).
    pub payload_type: u8,
    /// How far the block's RTP timestamp lies before the packet's (14 bits).
    pub timestamp_offset: u16,
    /// The block's payload, at most [`MAX_BLOCK_LEN`] bytes.
    pub data: &'a [u8],
}

/// A parsed RED payload, borrowing from the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Red<'a> {
    /// Redundant blocks in packet order: oldest first, as senders write them.
    pub redundant: Vec<Block<'a>>,
    /// RTP payload type of the primary (7 bits).
    pub primary_payload_type: u8,
    /// The primary payload; it may be empty (see the module docs).
    pub primary: &'a [u8],
}

/// Where a [`Frame`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The packet's own new frame.
    Primary,
    /// A copy of an earlier frame, which may already have arrived (or may
    /// arrive later, reordered); deduplicating by timestamp is the jitter
    /// buffer's job.
    Redundant,
}

/// One frame taken out of a RED packet, with its own RTP timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The frame's RTP timestamp: the packet's minus the block's offset.
    pub timestamp: u32,
    /// RTP payload type of the frame.
    pub payload_type: u8,
    /// The frame's payload, never empty.
    pub data: &'a [u8],
    /// Whether this is the packet's primary or a redundant copy.
    pub origin: Origin,
}

/// A block or payload type that RFC 2198 cannot express. [`encode`] wrote
/// nothing. Not retryable: the same input fails the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A payload type does not fit in 7 bits.
    #[error("payload type {payload_type} does not fit in 7 bits")]
    PayloadType {
        /// The offending payload type.
        payload_type: u8,
    },
    /// A redundant block's timestamp offset does not fit in 14 bits.
    #[error("redundant block {block} has timestamp offset {offset}; at most 16383 fits")]
    TimestampOffset {
        /// Index of the block in the caller's slice.
        block: usize,
        /// The offending offset.
        offset: u16,
    },
    /// A redundant block is longer than 10 bits can describe.
    #[error("redundant block {block} is {len} bytes; at most 1023 fit")]
    BlockTooLong {
        /// Index of the block in the caller's slice.
        block: usize,
        /// Its length in bytes.
        len: usize,
    },
    /// More redundant blocks than [`MAX_REDUNDANT_BLOCKS`].
    #[error("{count} redundant blocks; at most {MAX_REDUNDANT_BLOCKS} per payload")]
    TooManyBlocks {
        /// How many the caller passed.
        count: usize,
    },
}

/// A payload that is not valid RED. Parsing never panics: every malformed
/// input ends up here. Not retryable: the packet is broken or not RED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The payload ended before the final one-byte header (the one with the
    /// F bit clear). An empty payload is reported this way too.
    #[error("payload ends before the primary's header")]
    MissingPrimaryHeader,
    /// A redundant block header (F bit set) has fewer than its 4 bytes.
    #[error("redundant block header at byte {at} is cut short")]
    TruncatedHeader {
        /// Offset of the header's first byte in the payload.
        at: usize,
    },
    /// More redundant block headers than [`MAX_REDUNDANT_BLOCKS`].
    #[error("more than {MAX_REDUNDANT_BLOCKS} redundant blocks")]
    TooManyBlocks,
    /// A redundant block's length runs past the end of the payload.
    #[error("redundant block {block} needs {len} bytes but only {remaining} remain")]
    BlockPastEnd {
        /// Index of the block, in packet order.
        block: usize,
        /// The length its header declares.
        len: usize,
        /// Bytes left in the payload where its data starts.
        remaining: usize,
    },
}

/// Appends a RED payload to `out`: headers for `redundant` (oldest first,
/// in the order given), the primary's header, the blocks' data and then
/// `primary`. On error `out` is left as it was.
pub fn encode(
    primary_payload_type: u8,
    primary: &[u8],
    redundant: &[Block<'_>],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    check_payload_type(primary_payload_type)?;
    if redundant.len() > MAX_REDUNDANT_BLOCKS {
        return Err(EncodeError::TooManyBlocks {
            count: redundant.len(),
        });
    }
    for (index, block) in redundant.iter().enumerate() {
        check_payload_type(block.payload_type)?;
        if block.timestamp_offset > MAX_TIMESTAMP_OFFSET {
            return Err(EncodeError::TimestampOffset {
                block: index,
                offset: block.timestamp_offset,
            });
        }
        if block.data.len() > MAX_BLOCK_LEN {
            return Err(EncodeError::BlockTooLong {
                block: index,
                len: block.data.len(),
            });
        }
    }
    write(primary_payload_type, primary, redundant, out);
    Ok(())
}

fn check_payload_type(payload_type: u8) -> Result<(), EncodeError> {
    if payload_type > MAX_PAYLOAD_TYPE {
        return Err(EncodeError::PayloadType { payload_type });
    }
    Ok(())
}

/// Writes a payload whose fields the caller has already checked against
/// their bit widths; the masks only keep a bug from corrupting neighbours.
fn write(primary_payload_type: u8, primary: &[u8], redundant: &[Block<'_>], out: &mut Vec<u8>) {
    let data_len: usize = redundant.iter().map(|b| b.data.len()).sum();
    out.reserve(redundant.len() * 4 + 1 + data_len + primary.len());
    for block in redundant {
        // 14-bit offset and 10-bit length share the next 24 bits.
        let len = (block.data.len() & MAX_BLOCK_LEN) as u32;
        let packed = (u32::from(block.timestamp_offset & MAX_TIMESTAMP_OFFSET) << 10) | len;
        let [_, b1, b2, b3] = packed.to_be_bytes();
        out.extend_from_slice(&[FOLLOW | (block.payload_type & MAX_PAYLOAD_TYPE), b1, b2, b3]);
    }
    out.push(primary_payload_type & MAX_PAYLOAD_TYPE);
    for block in redundant {
        out.extend_from_slice(block.data);
    }
    out.extend_from_slice(primary);
}

/// Parses a RED payload (the RTP payload of a packet whose payload type is
/// the negotiated `red`), borrowing the blocks from it.
pub fn parse(payload: &[u8]) -> Result<Red<'_>, ParseError> {
    // Headers first: the data starts only after the last of them. Kept on
    // the stack, so a packet without redundancy allocates nothing.
    let mut headers = [(0u8, 0u16, 0usize); MAX_REDUNDANT_BLOCKS];
    let mut count = 0;
    let mut rest = payload;
    let primary_payload_type = loop {
        let Some((&first, after)) = rest.split_first() else {
            return Err(ParseError::MissingPrimaryHeader);
        };
        if first & FOLLOW == 0 {
            rest = after;
            break first;
        }
        let at = payload.len() - rest.len();
        let Some((&[b0, b1, b2, b3], after)) = rest.split_first_chunk::<4>() else {
            return Err(ParseError::TruncatedHeader { at });
        };
        let Some(slot) = headers.get_mut(count) else {
            return Err(ParseError::TooManyBlocks);
        };
        let packed = u32::from_be_bytes([0, b1, b2, b3]);
        // Both fit by construction: 14 and 10 bits of a 24-bit value.
        let offset = (packed >> 10) as u16;
        let len = (packed as usize) & MAX_BLOCK_LEN;
        *slot = (b0 & MAX_PAYLOAD_TYPE, offset, len);
        count += 1;
        rest = after;
    };
    let mut redundant = Vec::with_capacity(count);
    for (block, &(payload_type, timestamp_offset, len)) in headers.iter().take(count).enumerate() {
        let Some((data, after)) = rest.split_at_checked(len) else {
            return Err(ParseError::BlockPastEnd {
                block,
                len,
                remaining: rest.len(),
            });
        };
        redundant.push(Block {
            payload_type,
            timestamp_offset,
            data,
        });
        rest = after;
    }
    Ok(Red {
        redundant,
        primary_payload_type,
        primary: rest,
    })
}

impl<'a> Red<'a> {
    /// The frames of a packet whose RTP timestamp is `rtp_timestamp`,
    /// redundant copies first (oldest first) and the primary last.
    ///
    /// Skipped: empty blocks (nothing to decode) and redundant blocks with
    /// offset 0, which would claim the primary's own timestamp; a jitter
    /// buffer that keeps the first frame per timestamp would otherwise let a
    /// stray copy displace the real primary.
    pub fn frames(&self, rtp_timestamp: u32) -> impl Iterator<Item = Frame<'a>> + '_ {
        let redundant = self
            .redundant
            .iter()
            .filter(|b| b.timestamp_offset != 0)
            .map(move |b| Frame {
                // RTP timestamps wrap; so does the subtraction.
                timestamp: rtp_timestamp.wrapping_sub(u32::from(b.timestamp_offset)),
                payload_type: b.payload_type,
                data: b.data,
                origin: Origin::Redundant,
            });
        let primary = Frame {
            timestamp: rtp_timestamp,
            payload_type: self.primary_payload_type,
            data: self.primary,
            origin: Origin::Primary,
        };
        redundant
            .chain(std::iter::once(primary))
            .filter(|f| !f.data.is_empty())
    }
}

/// Splits the RED payload of a packet with RTP timestamp `rtp_timestamp`
/// into its frames, oldest first, primary last; see [`Red::frames`] for the
/// blocks that are skipped.
pub fn split(rtp_timestamp: u32, payload: &[u8]) -> Result<Vec<Frame<'_>>, ParseError> {
    let red = parse(payload)?;
    Ok(red.frames(rtp_timestamp).collect())
}

/// A frame sent earlier, kept to be sent again.
#[derive(Debug, Clone)]
struct Sent {
    timestamp: u32,
    data: Vec<u8>,
}

/// Send side: remembers the last few encoded frames and wraps each new
/// frame in a RED payload carrying copies of earlier ones, spread as
/// [`SPREAD`] says.
///
/// Feed it every frame, in order, whether or not it goes out as RED: use
/// [`encode`](Self::encode) when sending RED and [`record`](Self::record)
/// when sending plain Opus (redundancy off), so that switching redundancy on
/// has copies to send at once.
#[derive(Debug, Clone)]
pub struct RedEncoder {
    payload_type: u8,
    max_payload_len: usize,
    /// Oldest first; at most [`HISTORY`] entries.
    history: VecDeque<Sent>,
}

impl RedEncoder {
    /// An encoder whose primary and redundant blocks all have payload type
    /// `payload_type` (Opus's, as in fmtp `111/111`), limited to
    /// [`DEFAULT_MAX_PAYLOAD_LEN`] bytes per payload.
    pub fn new(payload_type: u8) -> Result<Self, EncodeError> {
        check_payload_type(payload_type)?;
        Ok(Self {
            payload_type,
            max_payload_len: DEFAULT_MAX_PAYLOAD_LEN,
            history: VecDeque::with_capacity(HISTORY),
        })
    }

    /// Sets the payload size limit: redundant copies that would push the
    /// payload past `max_payload_len` bytes are left out. The primary itself
    /// is always sent, however large.
    #[must_use]
    pub fn with_max_payload_len(mut self, max_payload_len: usize) -> Self {
        self.max_payload_len = max_payload_len;
        self
    }

    /// Appends to `out` a RED payload for the frame `frame` with RTP
    /// timestamp `timestamp`, carrying copies of up to `depth` earlier
    /// frames (capped at [`MAX_DEPTH`]): the frames [`SPREAD`]`[..depth]`
    /// packets back. Then remembers `frame`. Returns how many copies went
    /// in.
    ///
    /// Among those frames, a copy is left out if it is empty, if
    /// its timestamp is not 1..=16383 ticks before `timestamp` (a long gap,
    /// or the timestamps went backwards), if it is longer than
    /// [`MAX_BLOCK_LEN`], or if it would not fit in the payload size limit.
    /// The newest copies are considered first: they cover the most likely
    /// loss (one packet), and a copy that does not fit does not stop an
    /// older, smaller one from going in.
    pub fn encode(&mut self, timestamp: u32, frame: &[u8], depth: u8, out: &mut Vec<u8>) -> usize {
        let depth = usize::from(depth).min(MAX_DEPTH);
        let mut budget = self.max_payload_len.saturating_sub(1 + frame.len());
        let mut picked = [Block {
            payload_type: 0,
            timestamp_offset: 0,
            data: &[],
        }; MAX_DEPTH];
        let mut count = 0;
        let newest_first = SPREAD[..depth]
            .iter()
            .filter_map(|back| self.history.len().checked_sub(*back))
            .filter_map(|index| self.history.get(index));
        for sent in newest_first {
            let offset = timestamp.wrapping_sub(sent.timestamp);
            let cost = 4 + sent.data.len();
            let usable = !sent.data.is_empty()
                && (1..=u32::from(MAX_TIMESTAMP_OFFSET)).contains(&offset)
                && sent.data.len() <= MAX_BLOCK_LEN
                && cost <= budget;
            if !usable {
                continue;
            }
            budget -= cost;
            picked[count] = Block {
                payload_type: self.payload_type,
                // Checked just above to fit in 14 bits.
                timestamp_offset: offset as u16,
                data: &sent.data,
            };
            count += 1;
        }
        let picked = &mut picked[..count];
        // Picked newest first; the format wants oldest first.
        picked.reverse();
        write(self.payload_type, frame, picked, out);
        self.record(timestamp, frame);
        count
    }

    /// Remembers a frame sent without RED, so later payloads can carry it.
    pub fn record(&mut self, timestamp: u32, frame: &[u8]) {
        // Reuse the oldest frame's buffer: no allocation once warmed up.
        let mut slot = if self.history.len() == HISTORY {
            self.history.pop_front()
        } else {
            None
        }
        .unwrap_or_else(|| Sent {
            timestamp,
            data: Vec::new(),
        });
        slot.timestamp = timestamp;
        slot.data.clear();
        slot.data.extend_from_slice(frame);
        self.history.push_back(slot);
    }

    /// Forgets every remembered frame, e.g. when the stream restarts with a
    /// new SSRC and timestamp base.
    pub fn reset(&mut self) {
        self.history.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::collection::vec;
    use proptest::prelude::*;

    use std::collections::BTreeSet;

    use super::*;

    const OPUS: u8 = 111;
    /// 20 ms at the Opus RTP clock of 48 kHz.
    const TICKS_20MS: u32 = 960;

    fn encoded(primary_pt: u8, primary: &[u8], redundant: &[Block<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(primary_pt, primary, redundant, &mut out).unwrap();
        out
    }

    fn block(timestamp_offset: u16, data: &[u8]) -> Block<'_> {
        Block {
            payload_type: OPUS,
            timestamp_offset,
            data,
        }
    }

    // --- exact layout ---

    #[test]
    fn one_block_has_the_hand_computed_layout() {
        let out = encoded(OPUS, &[0xaa, 0xbb, 0xcc], &[block(960, &[0x11, 0x22])]);
        // F=1|111 = 0xef; 960 << 10 | 2 = 0x0f0002; F=0|111 = 0x6f.
        assert_eq!(
            out,
            [0xef, 0x0f, 0x00, 0x02, 0x6f, 0x11, 0x22, 0xaa, 0xbb, 0xcc]
        );
    }

    #[test]
    fn field_extremes_pack_into_their_bits() {
        let long = [0x55; MAX_BLOCK_LEN];
        let out = encoded(
            0,
            &[],
            &[
                Block {
                    payload_type: MAX_PAYLOAD_TYPE,
                    timestamp_offset: MAX_TIMESTAMP_OFFSET,
                    data: &long,
                },
                Block {
                    payload_type: 0,
                    timestamp_offset: 1,
                    data: &[],
                },
            ],
        );
        // All 14 offset bits and all 10 length bits set.
        assert_eq!(out[..4], [0xff, 0xff, 0xff, 0xff]);
        // Offset 1, length 0: only the lowest offset bit, in the 3rd byte.
        assert_eq!(out[4..8], [0x80, 0x00, 0x04, 0x00]);
        assert_eq!(out[8], 0x00);
        assert_eq!(out.len(), 9 + MAX_BLOCK_LEN);
    }

    #[test]
    fn no_blocks_is_one_header_byte_and_the_primary() {
        assert_eq!(encoded(OPUS, &[1, 2], &[]), [0x6f, 1, 2]);
    }

    #[test]
    fn encode_appends_to_what_is_in_out() {
        let mut out = vec![9, 9];
        encode(OPUS, &[1], &[], &mut out).unwrap();
        assert_eq!(out, [9, 9, 0x6f, 1]);
    }

    // --- round trips ---

    #[test]
    fn round_trips_keep_blocks_in_order() {
        let cases: [(&[u8], Vec<Block<'_>>); 4] = [
            (&[1, 2, 3], vec![]),
            (&[1], vec![block(960, &[7; 80])]),
            (
                &[4; 90],
                vec![
                    block(2880, &[3; 70]),
                    block(1920, &[2; 75]),
                    block(960, &[1; 80]),
                ],
            ),
            (&[], vec![block(960, &[5])]),
        ];
        for (primary, blocks) in cases {
            let out = encoded(OPUS, primary, &blocks);
            let red = parse(&out).unwrap();
            assert_eq!(red.primary_payload_type, OPUS);
            assert_eq!(red.primary, primary);
            assert_eq!(red.redundant, blocks);
        }
    }

    #[test]
    fn the_maximum_number_of_blocks_round_trips() {
        let data: Vec<[u8; 1]> = (0..MAX_REDUNDANT_BLOCKS).map(|i| [i as u8]).collect();
        let blocks: Vec<Block<'_>> = data.iter().map(|d| block(1, d)).collect();
        let out = encoded(OPUS, &[0xee], &blocks);
        assert_eq!(parse(&out).unwrap().redundant, blocks);
    }

    // --- encode errors ---

    #[test]
    fn encode_rejects_what_the_bits_cannot_hold_and_writes_nothing() {
        let long = [0; MAX_BLOCK_LEN + 1];
        let many = vec![block(1, &[1]); MAX_REDUNDANT_BLOCKS + 1];
        let bad_pt = Block {
            payload_type: 128,
            ..block(1, &[1])
        };
        let cases: [(u8, Vec<Block<'_>>, EncodeError); 5] = [
            (128, vec![], EncodeError::PayloadType { payload_type: 128 }),
            (
                OPUS,
                vec![block(1, &[1]), bad_pt],
                EncodeError::PayloadType { payload_type: 128 },
            ),
            (
                OPUS,
                vec![block(MAX_TIMESTAMP_OFFSET + 1, &[1])],
                EncodeError::TimestampOffset {
                    block: 0,
                    offset: 16384,
                },
            ),
            (
                OPUS,
                vec![block(1, &[1]), block(1, &long)],
                EncodeError::BlockTooLong {
                    block: 1,
                    len: 1024,
                },
            ),
            (OPUS, many, EncodeError::TooManyBlocks { count: 33 }),
        ];
        for (pt, blocks, expected) in cases {
            let mut out = vec![42];
            assert_eq!(encode(pt, &[1], &blocks, &mut out), Err(expected));
            assert_eq!(out, [42], "out untouched on {expected}");
        }
    }

    // --- parse errors ---

    #[test]
    fn parse_rejects_every_malformed_shape() {
        let too_many: Vec<u8> = [0x80 | OPUS, 0, 0x04, 0]
            .repeat(MAX_REDUNDANT_BLOCKS + 1)
            .into_iter()
            .chain([OPUS])
            .collect();
        let cases: [(&str, Vec<u8>, ParseError); 9] = [
            ("empty", vec![], ParseError::MissingPrimaryHeader),
            (
                "only a header byte with F",
                vec![0xef],
                ParseError::TruncatedHeader { at: 0 },
            ),
            (
                "header cut at 2 bytes",
                vec![0xef, 0x0f],
                ParseError::TruncatedHeader { at: 0 },
            ),
            (
                "header cut at 3 bytes",
                vec![0xef, 0x0f, 0],
                ParseError::TruncatedHeader { at: 0 },
            ),
            (
                "second header cut",
                vec![0xef, 0x0f, 0, 0, 0xef, 0],
                ParseError::TruncatedHeader { at: 4 },
            ),
            (
                "no final header",
                vec![0xef, 0x0f, 0, 0],
                ParseError::MissingPrimaryHeader,
            ),
            ("too many blocks", too_many, ParseError::TooManyBlocks),
            (
                "first block past the end",
                vec![0xef, 0x0f, 0, 3, 0x6f, 1, 2],
                ParseError::BlockPastEnd {
                    block: 0,
                    len: 3,
                    remaining: 2,
                },
            ),
            (
                "second block past the end",
                vec![0xef, 0x1e, 0, 1, 0xef, 0x0f, 0, 2, 0x6f, 1, 2],
                ParseError::BlockPastEnd {
                    block: 1,
                    len: 2,
                    remaining: 1,
                },
            ),
        ];
        for (name, payload, expected) in cases {
            assert_eq!(parse(&payload), Err(expected), "{name}");
        }
    }

    #[test]
    fn blocks_that_exactly_fill_the_payload_leave_an_empty_primary() {
        let red = parse(&[0xef, 0x0f, 0, 2, 0x6f, 1, 2]).unwrap();
        assert_eq!(red.redundant, [block(960, &[1, 2])]);
        assert!(red.primary.is_empty());
    }

    // --- split ---

    #[test]
    fn split_gives_each_frame_its_own_timestamp() {
        let out = encoded(OPUS, &[3], &[block(1920, &[1]), block(960, &[2])]);
        let frames = split(10_000, &out).unwrap();
        let got: Vec<_> = frames
            .iter()
            .map(|f| (f.timestamp, f.data, f.origin))
            .collect();
        assert_eq!(
            got,
            [
                (8080, &[1][..], Origin::Redundant),
                (9040, &[2][..], Origin::Redundant),
                (10_000, &[3][..], Origin::Primary),
            ]
        );
    }

    #[test]
    fn split_timestamps_wrap_around_zero() {
        let out = encoded(OPUS, &[3], &[block(960, &[2])]);
        let frames = split(100, &out).unwrap();
        assert_eq!(frames[0].timestamp, u32::MAX - 859);
        assert_eq!(frames[1].timestamp, 100);
    }

    #[test]
    fn split_skips_empty_blocks_and_copies_claiming_the_primary_slot() {
        let out = encoded(
            OPUS,
            &[],
            &[block(960, &[]), block(0, &[9]), block(480, &[1])],
        );
        let frames = split(5000, &out).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].timestamp, 4520);
        assert_eq!(frames[0].origin, Origin::Redundant);
    }

    #[test]
    fn split_keeps_each_blocks_payload_type() {
        let other = Block {
            payload_type: 0,
            ..block(960, &[1])
        };
        let payload = encoded(OPUS, &[2], &[other]);
        let frames = split(960, &payload).unwrap();
        assert_eq!(frames[0].payload_type, 0);
        assert_eq!(frames[1].payload_type, OPUS);
    }

    // --- RedEncoder ---

    fn encoder() -> RedEncoder {
        RedEncoder::new(OPUS).unwrap()
    }

    /// Sends `frames` 20 ms apart from timestamp 0 at `depth`, returning each
    /// payload and how many copies it carried.
    fn send(enc: &mut RedEncoder, frames: &[&[u8]], depth: u8) -> Vec<(Vec<u8>, usize)> {
        frames
            .iter()
            .enumerate()
            .map(|(i, frame)| {
                let mut out = Vec::new();
                let n = enc.encode(i as u32 * TICKS_20MS, frame, depth, &mut out);
                (out, n)
            })
            .collect()
    }

    /// Sends `count` one-byte frames `[0]`, `[1]`, … as [`send`] does, so
    /// frame `i` has timestamp `i * 960` and content `[i]`.
    fn send_numbered(enc: &mut RedEncoder, count: u8, depth: u8) -> Vec<(Vec<u8>, usize)> {
        let frames: Vec<[u8; 1]> = (0..count).map(|i| [i]).collect();
        let frames: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
        send(enc, &frames, depth)
    }

    #[test]
    fn encoder_rejects_a_payload_type_over_7_bits() {
        assert_eq!(
            RedEncoder::new(128).err(),
            Some(EncodeError::PayloadType { payload_type: 128 })
        );
    }

    #[test]
    fn encoder_builds_up_to_depth_copies_spread_back_oldest_first() {
        let mut enc = encoder();
        let sent = send_numbered(&mut enc, 8, 3);
        let copies: Vec<usize> = sent.iter().map(|(_, n)| *n).collect();
        // The copy 1 back exists from packet 1, 3 back from 3, 6 back from 6.
        assert_eq!(copies, [0, 1, 1, 2, 2, 2, 3, 3]);
        // Packet 5 (at 4800) has 5 frames behind it: it carries frames 2
        // (3 back) and 4 (1 back), not frame 3.
        assert_eq!(
            sent[5].0,
            encoded(OPUS, &[5], &[block(3 * 960, &[2]), block(960, &[4])])
        );
        // Packet 7 (at 6720) carries frames 1, 4 and 6, not 4, 5 and 6.
        assert_eq!(
            sent[7].0,
            encoded(
                OPUS,
                &[7],
                &[block(6 * 960, &[1]), block(3 * 960, &[4]), block(960, &[6])]
            )
        );
    }

    #[test]
    fn depth_zero_sends_only_the_primary_but_still_remembers() {
        let mut enc = encoder();
        let sent = send(&mut enc, &[&[1], &[2], &[3]], 0);
        assert_eq!(sent[1], (vec![0x6f, 2], 0));
        assert_eq!(sent[2], (vec![0x6f, 3], 0));
        // Switching to depth 2 copies at once what depth 0 remembered: the
        // frames 3 and 1 packets back.
        let mut out = Vec::new();
        assert_eq!(enc.encode(3 * TICKS_20MS, &[4], 2, &mut out), 2);
        assert_eq!(
            out,
            encoded(OPUS, &[4], &[block(3 * 960, &[1]), block(960, &[3])])
        );
    }

    #[test]
    fn depth_is_capped_at_max_depth_and_reaches_history_frames_back() {
        let mut enc = encoder();
        let sent = send_numbered(&mut enc, 10, u8::MAX);
        let copies: Vec<usize> = sent.iter().map(|(_, n)| *n).collect();
        assert_eq!(copies, [0, 1, 1, 2, 2, 2, 3, 3, 4, 4]);
        // Packet 8 still has frame 0, 8 back; packet 9 has forgotten it.
        assert_eq!(
            sent[8].0,
            encoded(
                OPUS,
                &[8],
                &[
                    block(8 * 960, &[0]),
                    block(6 * 960, &[2]),
                    block(3 * 960, &[5]),
                    block(960, &[7]),
                ]
            )
        );
        assert_eq!(
            sent[9].0,
            encoded(
                OPUS,
                &[9],
                &[
                    block(8 * 960, &[1]),
                    block(6 * 960, &[3]),
                    block(3 * 960, &[6]),
                    block(960, &[8]),
                ]
            )
        );
    }

    #[test]
    fn recorded_frames_are_available_as_copies() {
        let mut enc = encoder();
        enc.record(0, &[1]);
        enc.record(TICKS_20MS, &[2]);
        let mut out = Vec::new();
        assert_eq!(enc.encode(2 * TICKS_20MS, &[3], 1, &mut out), 1);
        assert_eq!(out, encoded(OPUS, &[3], &[block(960, &[2])]));
    }

    #[test]
    fn copies_whose_offset_does_not_fit_14_bits_are_skipped() {
        let mut enc = encoder();
        enc.record(0, &[1]);
        enc.record(1, &[9]);
        enc.record(2, &[2]);
        // Frame 1 is 3 back: 16383 ticks after it still fits...
        let mut out = Vec::new();
        assert_eq!(enc.clone().encode(16383, &[3], 2, &mut out), 2);
        assert_eq!(
            parse(&out).unwrap().redundant,
            [block(16383, &[1]), block(16381, &[2])]
        );
        // ...and 16384 after it does not; frame 2, 1 back, still goes.
        out.clear();
        assert_eq!(enc.encode(16384, &[3], 2, &mut out), 1);
        assert_eq!(parse(&out).unwrap().redundant, [block(16382, &[2])]);
    }

    #[test]
    fn copies_from_the_future_or_the_same_instant_are_skipped() {
        let mut enc = encoder();
        enc.record(5000, &[1]);
        enc.record(5000, &[9]);
        enc.record(4000, &[2]);
        let mut out = Vec::new();
        // Frame 1 (3 back) is "after" 4000 (timestamps went backwards);
        // frame 2 (1 back) shares it.
        assert_eq!(enc.encode(4000, &[3], 2, &mut out), 0);
        assert_eq!(out, [0x6f, 3]);
    }

    #[test]
    fn copies_across_the_timestamp_wrap_are_kept() {
        let mut enc = encoder();
        enc.record(u32::MAX - 100, &[1]);
        let mut out = Vec::new();
        assert_eq!(enc.encode(859, &[2], 1, &mut out), 1);
        assert_eq!(parse(&out).unwrap().redundant, [block(960, &[1])]);
    }

    #[test]
    fn empty_and_overlong_frames_are_never_copied() {
        let mut enc = encoder().with_max_payload_len(usize::MAX);
        // 3 back and 1 back: the frames the copies of depth 2 would be.
        enc.record(0, &[7; MAX_BLOCK_LEN + 1]);
        enc.record(TICKS_20MS, &[7; MAX_BLOCK_LEN + 1]);
        enc.record(2 * TICKS_20MS, &[]);
        let mut out = Vec::new();
        assert_eq!(enc.encode(3 * TICKS_20MS, &[3], 2, &mut out), 0);
        assert_eq!(out, [0x6f, 3]);
    }

    #[test]
    fn the_size_limit_drops_copies_that_do_not_fit_nearest_kept() {
        // Six 25-byte frames, then a 40-byte one at depth 3: copies of the
        // frames 1, 3 and 6 back. Primary 40 + 1 = 41; each copy costs 29.
        let f = [0u8; 25];
        let frames: [&[u8]; 7] = [&f, &f, &f, &f, &f, &f, &[1; 40]];
        let offsets = |payload: &[u8]| -> Vec<u16> {
            parse(payload)
                .unwrap()
                .redundant
                .iter()
                .map(|b| b.timestamp_offset)
                .collect()
        };
        // Limit 128: all three fit exactly.
        let sent = send(&mut encoder().with_max_payload_len(128), &frames, 3);
        assert_eq!(sent[6].1, 3);
        assert_eq!(sent[6].0.len(), 128);
        assert_eq!(offsets(&sent[6].0), [6 * 960, 3 * 960, 960]);
        // Limit 127: the farthest copy, 6 back, is the one left out.
        let sent = send(&mut encoder().with_max_payload_len(127), &frames, 3);
        assert_eq!(sent[6].1, 2);
        assert_eq!(sent[6].0.len(), 99);
        assert_eq!(offsets(&sent[6].0), [3 * 960, 960]);
        // Limit 98: only the nearest, 1 back.
        let sent = send(&mut encoder().with_max_payload_len(98), &frames, 3);
        assert_eq!(sent[6].1, 1);
        assert_eq!(offsets(&sent[6].0), [960]);
    }

    #[test]
    fn a_large_copy_that_does_not_fit_lets_an_older_small_one_in() {
        let mut enc = encoder().with_max_payload_len(50);
        enc.record(0, &[1; 10]);
        enc.record(TICKS_20MS, &[5]);
        enc.record(2 * TICKS_20MS, &[2; 60]);
        let mut out = Vec::new();
        // Budget 50 - 21 = 29: the 60-byte frame 1 back does not fit, the
        // 10-byte frame 3 back (cost 14) does. The 1-byte frame 2 back
        // would fit too, but it is not a copy depth 2 sends.
        assert_eq!(enc.encode(3 * TICKS_20MS, &[3; 20], 2, &mut out), 1);
        assert_eq!(parse(&out).unwrap().redundant, [block(3 * 960, &[1; 10])]);
    }

    #[test]
    fn a_primary_over_the_limit_is_still_sent_alone() {
        let mut enc = encoder().with_max_payload_len(10);
        enc.record(0, &[1]);
        let mut out = Vec::new();
        assert_eq!(enc.encode(TICKS_20MS, &[2; 20], 1, &mut out), 0);
        assert_eq!(out.len(), 21);
    }

    #[test]
    fn reset_forgets_history() {
        let mut enc = encoder();
        enc.record(0, &[1]);
        enc.reset();
        let mut out = Vec::new();
        assert_eq!(enc.encode(TICKS_20MS, &[2], 3, &mut out), 0);
    }

    /// Which frames a receiver gets out of `packets` (packet `i` sent at
    /// `i * 960` with frame `[i]`, as [`send_numbered`] does) when the
    /// packets in `lost` never arrive.
    fn recovered(packets: &[Vec<u8>], lost: std::ops::Range<usize>) -> BTreeSet<u32> {
        let mut got = BTreeSet::new();
        for (i, payload) in packets.iter().enumerate() {
            if lost.contains(&i) {
                continue;
            }
            for f in split(i as u32 * TICKS_20MS, payload).unwrap() {
                let index = f.timestamp / TICKS_20MS;
                assert_eq!(f.timestamp % TICKS_20MS, 0);
                assert_eq!(f.data, [index as u8], "frame {index}");
                got.insert(index);
            }
        }
        got
    }

    #[test]
    fn a_burst_of_5_lost_packets_is_recovered_at_depth_3_unlike_with_consecutive_copies() {
        const PACKETS: u8 = 16;
        let spread: Vec<Vec<u8>> = send_numbered(&mut encoder(), PACKETS, 3)
            .into_iter()
            .map(|(payload, _)| payload)
            .collect();
        // The same stream with copies 1, 2 and 3 packets back instead.
        let consecutive: Vec<Vec<u8>> = (0..PACKETS)
            .map(|i| {
                let earlier: Vec<[u8; 1]> = (0..i).map(|j| [j]).collect();
                let blocks: Vec<Block<'_>> = [3u8, 2, 1]
                    .into_iter()
                    .filter(|back| *back <= i)
                    .map(|back| block(u16::from(back) * 960, &earlier[usize::from(i - back)]))
                    .collect();
                encoded(OPUS, &[i], &blocks)
            })
            .collect();
        let all: BTreeSet<u32> = (0..u32::from(PACKETS)).collect();

        // Packets 2 to 6 lost: frame 2's copies in packets 3 and 5 are lost
        // with them; the one in packet 8, 6 back, is not.
        let frames = split(8 * TICKS_20MS, &spread[8]).unwrap();
        assert_eq!(
            (frames[0].timestamp, frames[0].data, frames[0].origin),
            (2 * TICKS_20MS, &[2][..], Origin::Redundant)
        );
        assert_eq!(recovered(&spread, 2..7), all);
        // With consecutive copies, frames 2 and 3 had theirs only in 3 to 6.
        let missing: Vec<u32> = all
            .difference(&recovered(&consecutive, 2..7))
            .copied()
            .collect();
        assert_eq!(missing, [2, 3]);

        // The same wherever the burst falls, even before the encoder has 6
        // frames of history, as long as the stream reaches packet start + 7:
        // the burst's second frame has its other copies (start + 2 and
        // start + 4) inside the burst.
        let last_start = usize::from(PACKETS) - 8;
        for start in 0..=last_start {
            let burst = start..start + 5;
            assert_eq!(recovered(&spread, burst.clone()), all, "burst {burst:?}");
            let missing: Vec<u32> = all
                .difference(&recovered(&consecutive, burst.clone()))
                .copied()
                .collect();
            let first = start as u32;
            assert_eq!(missing, [first, first + 1], "burst {burst:?}");
        }
    }

    #[test]
    fn a_lost_packet_is_rebuilt_from_the_next_one() {
        let mut enc = encoder();
        let sent = send(&mut enc, &[&[1], &[2], &[3]], 1);
        // Packet 1 (frame 2) is lost; packet 2 carries its copy.
        let frames = split(2 * TICKS_20MS, &sent[2].0).unwrap();
        assert_eq!(frames[0].timestamp, TICKS_20MS);
        assert_eq!(frames[0].data, [2]);
    }

    // --- properties ---

    fn any_block() -> impl Strategy<Value = (u8, u16, Vec<u8>)> {
        (
            0..=MAX_PAYLOAD_TYPE,
            0..=MAX_TIMESTAMP_OFFSET,
            vec(any::<u8>(), 0..=MAX_BLOCK_LEN),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parse_never_panics(payload in vec(any::<u8>(), 0..1500)) {
            let _ = parse(&payload);
            let _ = split(0, &payload);
        }

        #[test]
        fn parse_never_panics_on_headers_followed_by_junk(
            headers in vec((any::<u8>(), any::<u16>(), 0u16..1500), 0..40),
            tail in vec(any::<u8>(), 0..200),
        ) {
            // Random bytes rarely chain valid headers; build chains on purpose.
            let mut payload = Vec::new();
            for (b0, off, len) in headers {
                let packed = (u32::from(off) << 10) | u32::from(len & 0x3ff);
                let [_, b1, b2, b3] = packed.to_be_bytes();
                payload.extend_from_slice(&[b0 | FOLLOW, b1, b2, b3]);
            }
            payload.extend_from_slice(&tail);
            if let Ok(red) = parse(&payload) {
                let total: usize = red.redundant.iter().map(|b| 4 + b.data.len()).sum::<usize>()
                    + 1 + red.primary.len();
                prop_assert_eq!(total, payload.len());
            }
        }

        #[test]
        fn encode_then_parse_round_trips(
            primary_pt in 0..=MAX_PAYLOAD_TYPE,
            primary in vec(any::<u8>(), 0..1200),
            blocks in vec(any_block(), 0..=MAX_REDUNDANT_BLOCKS),
        ) {
            let blocks: Vec<Block<'_>> = blocks
                .iter()
                .map(|(pt, off, data)| Block { payload_type: *pt, timestamp_offset: *off, data })
                .collect();
            let mut out = Vec::new();
            encode(primary_pt, &primary, &blocks, &mut out).unwrap();
            let red = parse(&out).unwrap();
            prop_assert_eq!(red.primary_payload_type, primary_pt);
            prop_assert_eq!(red.primary, &primary[..]);
            prop_assert_eq!(red.redundant, blocks);
        }

        #[test]
        fn encoder_output_parses_fits_and_carries_true_copies(
            frames in vec((1u32..2000, vec(any::<u8>(), 0..400), 0u8..6), 1..30),
            start in any::<u32>(),
            max_len in 50usize..1500,
        ) {
            let mut enc = encoder().with_max_payload_len(max_len);
            let mut sent: Vec<(u32, Vec<u8>)> = Vec::new();
            let mut ts = start;
            for (step, frame, depth) in frames {
                ts = ts.wrapping_add(step);
                let mut out = Vec::new();
                let n = enc.encode(ts, &frame, depth, &mut out);
                let depth = usize::from(depth).min(MAX_DEPTH);
                prop_assert!(n <= depth);
                if frame.len() < max_len {
                    prop_assert!(out.len() <= max_len);
                }
                let red = parse(&out).unwrap();
                prop_assert_eq!(red.redundant.len(), n);
                prop_assert_eq!(red.primary, &frame[..]);
                // Every copy is the frame sent a distance in SPREAD[..depth]
                // packets back. Timestamps never repeat here (30 steps of at
                // most 1999 ticks), so a copy's timestamp names its frame.
                let mut distances = Vec::new();
                for b in &red.redundant {
                    let t = ts.wrapping_sub(u32::from(b.timestamp_offset));
                    let at = sent.iter().position(|(st, _)| *st == t);
                    prop_assert!(at.is_some(), "copy at {} was never sent", t);
                    let at = at.unwrap();
                    prop_assert!(!b.data.is_empty());
                    prop_assert_eq!(b.data, &sent[at].1[..]);
                    let distance = sent.len() - at;
                    prop_assert!(SPREAD[..depth].contains(&distance), "{} back", distance);
                    distances.push(distance);
                }
                // And they are exactly the ones nearest first that fit the
                // limit, written oldest first. Offsets all fit 14 bits here
                // (8 back is under 16,000 ticks) and frames are under
                // MAX_BLOCK_LEN, so only emptiness and size rule one out.
                let mut budget = max_len.saturating_sub(1 + frame.len());
                let mut expected = Vec::new();
                for &back in &SPREAD[..depth] {
                    let Some(at) = sent.len().checked_sub(back) else {
                        continue;
                    };
                    let cost = 4 + sent[at].1.len();
                    if !sent[at].1.is_empty() && cost <= budget {
                        budget -= cost;
                        expected.push(back);
                    }
                }
                expected.reverse();
                prop_assert_eq!(distances, expected);
                sent.push((ts, frame));
            }
        }
    }
}
