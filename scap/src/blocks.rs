//! The block types of the `.scap` format (libscap's `scap-int.h` numbering), shared by the
//! reader and the writer: each list block exists in an original version, an `_INT` variant with
//! a different layout, and later versions.

pub(crate) const SHB: u32 = 0x0A0D_0D0A;
pub(crate) const SHB_MAGIC: u32 = 0x1A2B_3C4D;
pub(crate) const MI: u32 = 0x201;
pub(crate) const MI_INT: u32 = 0x8002_ABCD;
pub(crate) const PL_V1: u32 = 0x202;
pub(crate) const PL_V1_INT: u32 = 0x8000_ABCD;
pub(crate) const PL_V2: u32 = 0x207;
pub(crate) const PL_V2_INT: u32 = 0x8013_ABCD;
pub(crate) const PL_V3: u32 = 0x209;
pub(crate) const PL_V3_INT: u32 = 0x8014_ABCD;
pub(crate) const PL_V4: u32 = 0x210;
pub(crate) const PL_V5: u32 = 0x211;
pub(crate) const PL_V6: u32 = 0x212;
pub(crate) const PL_V7: u32 = 0x213;
pub(crate) const PL_V8: u32 = 0x214;
pub(crate) const PL_V9: u32 = 0x215;
pub(crate) const FDL: u32 = 0x203;
pub(crate) const FDL_INT: u32 = 0x8001_ABCD;
pub(crate) const FDL_V2: u32 = 0x218;
pub(crate) const EV: u32 = 0x204;
pub(crate) const EV_INT: u32 = 0x8010_ABCD;
pub(crate) const EV_V2: u32 = 0x216;
pub(crate) const EV_V2_LARGE: u32 = 0x221;
pub(crate) const EVF: u32 = 0x208;
pub(crate) const EVF_V2: u32 = 0x217;
pub(crate) const EVF_V2_LARGE: u32 = 0x222;
pub(crate) const IL: u32 = 0x205;
pub(crate) const IL_INT: u32 = 0x8011_ABCD;
pub(crate) const IL_V2: u32 = 0x219;
pub(crate) const UL: u32 = 0x206;
pub(crate) const UL_INT: u32 = 0x8012_ABCD;
pub(crate) const UL_V2: u32 = 0x220;
