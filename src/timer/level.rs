//! Arithmetic that maps a due time to a level and a slot.
//!
//! Level `L` slots are `64^L` ms wide. An entry lives on the lowest level on
//! which it shares a block with the wheel's current time, so every occupied
//! slot lies strictly after the current one on its level, and the first
//! occupied slot of the lowest occupied level is always the earliest.

pub(super) const SLOT_BITS: u32 = 6;
pub(super) const SLOTS: usize = 1 << SLOT_BITS;
/// Seven levels span 2^42 ms (about 139 years); anything later is overflow.
pub(super) const LEVELS: usize = 7;
pub(super) const SPAN_BITS: u32 = SLOT_BITS * LEVELS as u32;

/// The level for `due` seen from `elapsed`; `>= LEVELS` means overflow.
pub(super) fn level_for(elapsed: u64, due: u64) -> usize {
    // The highest differing bit decides: below it the two share a block.
    // Or-ing in the slot mask sends anything within the current tick block
    // to level 0.
    let differing = (elapsed ^ due) | (SLOTS as u64 - 1);
    let highest = 63 - differing.leading_zeros();
    (highest / SLOT_BITS) as usize
}

pub(super) fn slot_for(time: u64, level: usize) -> usize {
    ((time >> (level as u32 * SLOT_BITS)) & (SLOTS as u64 - 1)) as usize
}

/// When `slot` of `level` begins, within the block that holds `elapsed`.
pub(super) fn slot_start(elapsed: u64, level: usize, slot: usize) -> u64 {
    let block_bits = (level as u32 + 1) * SLOT_BITS;
    let block_start = elapsed & !((1u64 << block_bits) - 1);
    block_start + ((slot as u64) << (level as u32 * SLOT_BITS))
}

/// Start of the 2^42 ms block holding `due`: when an overflow entry can
/// first be placed on the wheel.
pub(super) fn span_start(due: u64) -> u64 {
    due & !((1u64 << SPAN_BITS) - 1)
}
