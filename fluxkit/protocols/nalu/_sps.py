"""Sequence parameter set parsing: picture size, profile/level, chroma format, frame rate and codec string.

Strategy: remove emulation prevention, then walk the syntax of H.264 7.3.2.1.1 / H.265 7.3.2.2.1 with
`BitReader`, reading every element up to the VUI timing information and skipping (but correctly sizing) what
is not needed: scaling lists, POC cycles, short-term reference picture sets, long-term reference pictures.
Every loop count read from the bitstream is checked against the spec's limit first, so garbage cannot make a
parse slow, and every read past the end raises `ParseError`.
"""

from __future__ import annotations

import attrs

from fluxkit.errors import LocalProtocolError, ParseError

from ._annexb import unescape_rbsp
from ._bits import BitReader

__all__ = [
    "SpsInfo",
    "h264_pps_ids",
    "h264_sps_id",
    "h265_pps_ids",
    "h265_sps_id",
    "h265_vps_id",
    "parse_h264_sps",
    "parse_h265_sps",
    "parse_h265_vps_fps",
    "parse_sps",
]


@attrs.frozen(kw_only=True, slots=True)
class SpsInfo:
    """What a sequence parameter set says about the video.

    Attributes:
        codec: "h264" or "hevc".
        width: displayed width in luma samples, after frame cropping (H.264) / the conformance window (H.265).
        height: displayed height in luma samples, after cropping.
        profile_idc: profile_idc (H.264) / general_profile_idc (H.265).
        level_idc: level_idc (H.264: 10 x level) / general_level_idc (H.265: 30 x level).
        chroma_format_idc: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
        bit_depth_luma: bits per luma sample.
        fps: frame rate from the VUI timing information, or None when absent.
        codec_string: the RFC 6381 / ISO/IEC 14496-15 codec string ("avc1.4d401e", "hvc1.1.6.L93.B0").
        sps_id: seq_parameter_set_id.
        bit_depth_chroma: bits per chroma sample.
    """

    codec: str
    width: int
    height: int
    profile_idc: int
    level_idc: int
    chroma_format_idc: int
    bit_depth_luma: int
    fps: float | None
    codec_string: str
    sps_id: int = 0
    bit_depth_chroma: int = 8


# H.264 7.3.2.1.1: profiles whose SPS carries chroma_format_idc, bit depths and scaling matrices.
_H264_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
# (SubWidthC, SubHeightC) per chroma_format_idc (H.264 Table 6-1, H.265 Table 6-1).
_SUB_WH = {0: (1, 1), 1: (2, 2), 2: (2, 1), 3: (1, 1)}


def _rbsp(nal: bytes, header: int, what: str) -> BitReader:
    """A reader over the RBSP after a `header`-byte NAL header."""
    if len(nal) <= header:
        raise ParseError(f"{what}: NAL unit too short ({len(nal)} bytes)", offset=len(nal))
    return BitReader(unescape_rbsp(bytes(nal[header:])), what)


def _fps(num_units_in_tick: int, time_scale: int, divisor: int) -> float | None:
    if num_units_in_tick == 0 or time_scale == 0:
        return None
    return time_scale / (divisor * num_units_in_tick)


# ---------------------------------------------------------------------------------------------------- H.264


def _h264_scaling_list(r: BitReader, size: int) -> None:
    """Skip scaling_list() (H.264 7.3.2.1.1.1): deltas are read until nextScale becomes 0."""
    last = next_scale = 8
    for _ in range(size):
        if next_scale:
            delta = r.se()
            if not -128 <= delta <= 127:
                raise ParseError(f"{r.what}: delta_scale {delta} out of range", offset=None)
            next_scale = (last + delta + 256) % 256
        if next_scale:
            last = next_scale


def _h264_vui_fps(r: BitReader) -> float | None:
    """Read vui_parameters() (H.264 E.1.1) up to timing_info; fps = time_scale / (2 * num_units_in_tick)."""
    if r.flag() and r.u(8) == 255:  # aspect_ratio_info_present_flag, aspect_ratio_idc == Extended_SAR
        r.skip(32)  # sar_width, sar_height
    if r.flag():  # overscan_info_present_flag
        r.skip(1)
    if r.flag():  # video_signal_type_present_flag
        r.skip(4)  # video_format, video_full_range_flag
        if r.flag():  # colour_description_present_flag
            r.skip(24)
    if r.flag():  # chroma_loc_info_present_flag
        r.ue()
        r.ue()
    if not r.flag():  # timing_info_present_flag
        return None
    num_units_in_tick = r.u(32)
    time_scale = r.u(32)
    # E.2.1: one frame is two ticks (field-based timing) for H.264.
    return _fps(num_units_in_tick, time_scale, 2)


def parse_h264_sps(nal: bytes) -> SpsInfo:
    """Parse an H.264 SPS NAL unit (header byte included, emulation prevention still in place).

    Raises:
        ParseError: the NAL unit is not an SPS, is truncated, or holds an out-of-range value.
    """
    nal = bytes(nal)
    if not nal or nal[0] & 0x1F != 7:
        raise ParseError("not an H.264 SPS NAL unit", offset=0)
    r = _rbsp(nal, 1, "H.264 SPS")
    profile_idc = r.u(8)
    constraint_flags = r.u(8)
    level_idc = r.u(8)
    sps_id = r.ue_max(31, "seq_parameter_set_id")
    chroma_format_idc = 1
    separate_colour_plane = False
    bit_depth_luma = bit_depth_chroma = 8
    if profile_idc in _H264_HIGH_PROFILES:
        chroma_format_idc = r.ue_max(3, "chroma_format_idc")
        if chroma_format_idc == 3:
            separate_colour_plane = r.flag()
        bit_depth_luma = 8 + r.ue_max(6, "bit_depth_luma_minus8")
        bit_depth_chroma = 8 + r.ue_max(6, "bit_depth_chroma_minus8")
        r.skip(1)  # qpprime_y_zero_transform_bypass_flag
        if r.flag():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if r.flag():  # seq_scaling_list_present_flag[i]
                    _h264_scaling_list(r, 16 if i < 6 else 64)
    r.ue_max(12, "log2_max_frame_num_minus4")
    poc_type = r.ue_max(2, "pic_order_cnt_type")
    if poc_type == 0:
        r.ue_max(12, "log2_max_pic_order_cnt_lsb_minus4")
    elif poc_type == 1:
        r.skip(1)  # delta_pic_order_always_zero_flag
        r.se()  # offset_for_non_ref_pic
        r.se()  # offset_for_top_to_bottom_field
        for _ in range(r.ue_max(255, "num_ref_frames_in_pic_order_cnt_cycle")):
            r.se()  # offset_for_ref_frame[i]
    r.ue_max(32, "max_num_ref_frames")
    r.skip(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue_max(1 << 16, "pic_width_in_mbs_minus1") + 1
    height_map_units = r.ue_max(1 << 16, "pic_height_in_map_units_minus1") + 1
    frame_mbs_only = r.flag()
    if not frame_mbs_only:
        r.skip(1)  # mb_adaptive_frame_field_flag
    r.skip(1)  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_map_units * 16
    if r.flag():  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        # 7.4.2.1.1 (7-19..7-22): crop units depend on ChromaArrayType and frame_mbs_only_flag.
        if separate_colour_plane or chroma_format_idc == 0:
            crop_x, crop_y = 1, 2 - frame_mbs_only
        else:
            sub_w, sub_h = _SUB_WH[chroma_format_idc]
            crop_x, crop_y = sub_w, sub_h * (2 - frame_mbs_only)
        width -= crop_x * (left + right)
        height -= crop_y * (top + bottom)
        if width <= 0 or height <= 0:
            raise ParseError("H.264 SPS: frame cropping leaves no picture", offset=None)
    fps = _h264_vui_fps(r) if r.flag() else None  # vui_parameters_present_flag
    return SpsInfo(
        codec="h264",
        width=width,
        height=height,
        profile_idc=profile_idc,
        level_idc=level_idc,
        chroma_format_idc=chroma_format_idc,
        bit_depth_luma=bit_depth_luma,
        bit_depth_chroma=bit_depth_chroma,
        fps=fps,
        codec_string=f"avc1.{profile_idc:02x}{constraint_flags:02x}{level_idc:02x}",
        sps_id=sps_id,
    )


def h264_sps_id(nal: bytes) -> int:
    """seq_parameter_set_id of an H.264 SPS (after profile_idc, constraint flags, level_idc)."""
    r = _rbsp(bytes(nal[:16]), 1, "H.264 SPS")
    r.skip(24)
    return r.ue_max(31, "seq_parameter_set_id")


def h264_pps_ids(nal: bytes) -> tuple[int, int]:
    """(pic_parameter_set_id, seq_parameter_set_id) of an H.264 PPS (7.3.2.2)."""
    r = _rbsp(bytes(nal[:16]), 1, "H.264 PPS")
    return r.ue_max(255, "pic_parameter_set_id"), r.ue_max(31, "seq_parameter_set_id")


# ---------------------------------------------------------------------------------------------------- H.265


@attrs.frozen(kw_only=True, slots=True)
class _ProfileTierLevel:
    profile_space: int
    tier: int
    profile_idc: int
    compatibility: int
    constraints: int  # the 48 bits after the compatibility flags
    level_idc: int

    def codec_string(self) -> str:
        """ISO/IEC 14496-15 E.3: hvc1.[A-C]<profile>.<compat, bit-reversed hex>.<L|H><level>[.<bytes>]."""
        space = "" if self.profile_space == 0 else "ABC"[self.profile_space - 1]
        compat = int(f"{self.compatibility:032b}"[::-1], 2)
        parts = [f"hvc1.{space}{self.profile_idc}", f"{compat:X}", f"{'LH'[self.tier]}{self.level_idc}"]
        constraint_bytes = list(self.constraints.to_bytes(6, "big"))
        while constraint_bytes and constraint_bytes[-1] == 0:
            constraint_bytes.pop()
        parts += [f"{b:X}" for b in constraint_bytes]
        return ".".join(parts)


def _h265_profile_tier_level(r: BitReader, max_sub_layers_minus1: int) -> _ProfileTierLevel:
    """profile_tier_level(1, maxNumSubLayersMinus1) (H.265 7.3.3), sub-layer entries skipped."""
    profile_space = r.u(2)
    tier = r.u(1)
    profile_idc = r.u(5)
    compatibility = r.u(32)
    constraints = r.u(48)
    level_idc = r.u(8)
    present = [(r.flag(), r.flag()) for _ in range(max_sub_layers_minus1)]
    if max_sub_layers_minus1 > 0:
        r.skip(2 * (8 - max_sub_layers_minus1))  # reserved_zero_2bits
    for profile_present, level_present in present:
        # sub_layer profile: space 2 + tier 1 + idc 5 + compatibility 32 + 48 flag bits = 88 bits.
        r.skip(88 * profile_present + 8 * level_present)
    return _ProfileTierLevel(
        profile_space=profile_space,
        tier=tier,
        profile_idc=profile_idc,
        compatibility=compatibility,
        constraints=constraints,
        level_idc=level_idc,
    )


def _h265_scaling_list_data(r: BitReader) -> None:
    """Skip scaling_list_data() (H.265 7.3.4)."""
    for size_id in range(4):
        coef_num = min(64, 1 << (4 + (size_id << 1)))
        for _matrix_id in range(0, 6, 3 if size_id == 3 else 1):
            if not r.flag():  # scaling_list_pred_mode_flag
                r.ue_max(5, "scaling_list_pred_matrix_id_delta")
                continue
            if size_id > 1:
                r.se()  # scaling_list_dc_coef_minus8
            for _ in range(coef_num):
                r.se()  # scaling_list_delta_coef


def _h265_st_ref_pic_sets(r: BitReader, count: int) -> None:
    """Skip st_ref_pic_set(0 .. count - 1) (H.265 7.3.7), tracking NumDeltaPocs for inter-RPS prediction."""
    num_delta_pocs: list[int] = []
    for idx in range(count):
        if idx and r.flag():  # inter_ref_pic_set_prediction_flag
            # In an SPS delta_idx_minus1 is absent (it is only sent for the slice header's own set): RefRpsIdx =
            # idx - 1.
            r.skip(1)  # delta_rps_sign
            r.ue_max((1 << 15) - 1, "abs_delta_rps_minus1")
            n = 0
            for _ in range(num_delta_pocs[idx - 1] + 1):
                # use_delta_flag is inferred to be 1 when used_by_curr_pic_flag is 1.
                if r.flag() or r.flag():
                    n += 1
            num_delta_pocs.append(n)
        else:
            negative = r.ue_max(16, "num_negative_pics")
            positive = r.ue_max(16, "num_positive_pics")
            for _ in range(negative + positive):
                r.ue_max((1 << 15) - 1, "delta_poc_minus1")
                r.skip(1)  # used_by_curr_pic_flag
            num_delta_pocs.append(negative + positive)
        if num_delta_pocs[-1] > 32:
            raise ParseError(f"{r.what}: st_ref_pic_set with {num_delta_pocs[-1]} pictures", offset=None)


def _h265_vui_fps(r: BitReader, max_sub_layers_minus1: int) -> float | None:
    """Read vui_parameters() (H.265 E.2.1) up to vui_timing_info; fps = time_scale / num_units_in_tick."""
    del max_sub_layers_minus1  # the HRD parameters that follow the timing are not needed
    if r.flag() and r.u(8) == 255:  # aspect_ratio_info_present_flag, aspect_ratio_idc == Extended_SAR
        r.skip(32)
    if r.flag():  # overscan_info_present_flag
        r.skip(1)
    if r.flag():  # video_signal_type_present_flag
        r.skip(4)
        if r.flag():  # colour_description_present_flag
            r.skip(24)
    if r.flag():  # chroma_loc_info_present_flag
        r.ue()
        r.ue()
    r.skip(3)  # neutral_chroma_indication_flag, field_seq_flag, frame_field_info_present_flag
    if r.flag():  # default_display_window_flag
        for _ in range(4):
            r.ue()
    if not r.flag():  # vui_timing_info_present_flag
        return None
    num_units_in_tick = r.u(32)
    time_scale = r.u(32)
    return _fps(num_units_in_tick, time_scale, 1)


def parse_h265_sps(nal: bytes) -> SpsInfo:
    """Parse an H.265 SPS NAL unit (2-byte header included, emulation prevention still in place).

    Raises:
        ParseError: the NAL unit is not an SPS, is truncated, or holds an out-of-range value.
    """
    nal = bytes(nal)
    if len(nal) < 2 or (nal[0] >> 1) & 0x3F != 33:
        raise ParseError("not an H.265 SPS NAL unit", offset=0)
    r = _rbsp(nal, 2, "H.265 SPS")
    r.skip(4)  # sps_video_parameter_set_id
    max_sub_layers_minus1 = r.u(3)
    if max_sub_layers_minus1 > 6:
        raise ParseError("H.265 SPS: sps_max_sub_layers_minus1 = 7", offset=0)
    r.skip(1)  # sps_temporal_id_nesting_flag
    ptl = _h265_profile_tier_level(r, max_sub_layers_minus1)
    sps_id = r.ue_max(15, "sps_seq_parameter_set_id")
    chroma_format_idc = r.ue_max(3, "chroma_format_idc")
    separate_colour_plane = chroma_format_idc == 3 and r.flag()
    width = r.ue_max(1 << 16, "pic_width_in_luma_samples")
    height = r.ue_max(1 << 16, "pic_height_in_luma_samples")
    if r.flag():  # conformance_window_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        # 7.4.3.2.1: offsets are in chroma sample units (SubWidthC, SubHeightC); 1 when ChromaArrayType is 0.
        sub_w, sub_h = (1, 1) if separate_colour_plane else _SUB_WH[chroma_format_idc]
        width -= sub_w * (left + right)
        height -= sub_h * (top + bottom)
    if width <= 0 or height <= 0:
        raise ParseError(f"H.265 SPS: empty picture {width}x{height}", offset=None)
    bit_depth_luma = 8 + r.ue_max(8, "bit_depth_luma_minus8")
    bit_depth_chroma = 8 + r.ue_max(8, "bit_depth_chroma_minus8")
    log2_max_poc_lsb = 4 + r.ue_max(12, "log2_max_pic_order_cnt_lsb_minus4")
    ordering_all = r.flag()  # sps_sub_layer_ordering_info_present_flag
    for _ in range(max_sub_layers_minus1 + 1 if ordering_all else 1):
        r.ue()  # sps_max_dec_pic_buffering_minus1
        r.ue()  # sps_max_num_reorder_pics
        r.ue()  # sps_max_latency_increase_plus1
    for _ in range(6):
        # log2_min_luma_coding_block_size_minus3, log2_diff_max_min_luma_coding_block_size,
        # log2_min_luma_transform_block_size_minus2, log2_diff_max_min_luma_transform_block_size,
        # max_transform_hierarchy_depth_inter, max_transform_hierarchy_depth_intra
        r.ue()
    if r.flag() and r.flag():  # scaling_list_enabled_flag, sps_scaling_list_data_present_flag
        _h265_scaling_list_data(r)
    r.skip(2)  # amp_enabled_flag, sample_adaptive_offset_enabled_flag
    if r.flag():  # pcm_enabled_flag
        r.skip(8)  # pcm_sample_bit_depth_luma_minus1, pcm_sample_bit_depth_chroma_minus1
        r.ue()  # log2_min_pcm_luma_coding_block_size_minus3
        r.ue()  # log2_diff_max_min_pcm_luma_coding_block_size
        r.skip(1)  # pcm_loop_filter_disabled_flag
    _h265_st_ref_pic_sets(r, r.ue_max(64, "num_short_term_ref_pic_sets"))
    if r.flag():  # long_term_ref_pics_present_flag
        for _ in range(r.ue_max(32, "num_long_term_ref_pics_sps")):
            r.skip(log2_max_poc_lsb + 1)  # lt_ref_pic_poc_lsb_sps, used_by_curr_pic_lt_sps_flag
    r.skip(2)  # sps_temporal_mvp_enabled_flag, strong_intra_smoothing_enabled_flag
    fps = _h265_vui_fps(r, max_sub_layers_minus1) if r.flag() else None  # vui_parameters_present_flag
    return SpsInfo(
        codec="hevc",
        width=width,
        height=height,
        profile_idc=ptl.profile_idc,
        level_idc=ptl.level_idc,
        chroma_format_idc=chroma_format_idc,
        bit_depth_luma=bit_depth_luma,
        bit_depth_chroma=bit_depth_chroma,
        fps=fps,
        codec_string=ptl.codec_string(),
        sps_id=sps_id,
    )


def parse_h265_vps_fps(nal: bytes) -> float | None:
    """Frame rate from an H.265 VPS's vps_timing_info (H.265 7.3.2.1), or None when it has none.

    Raises:
        ParseError: the NAL unit is not a VPS or is truncated.
    """
    nal = bytes(nal)
    if len(nal) < 2 or (nal[0] >> 1) & 0x3F != 32:
        raise ParseError("not an H.265 VPS NAL unit", offset=0)
    r = _rbsp(nal, 2, "H.265 VPS")
    r.skip(4 + 1 + 1 + 6)  # vps_video_parameter_set_id, base_layer flags, vps_max_layers_minus1
    max_sub_layers_minus1 = r.u(3)
    if max_sub_layers_minus1 > 6:
        raise ParseError("H.265 VPS: vps_max_sub_layers_minus1 = 7", offset=0)
    r.skip(1 + 16)  # vps_temporal_id_nesting_flag, vps_reserved_0xffff_16bits
    _h265_profile_tier_level(r, max_sub_layers_minus1)
    ordering_all = r.flag()
    for _ in range(max_sub_layers_minus1 + 1 if ordering_all else 1):
        r.ue()
        r.ue()
        r.ue()
    max_layer_id = r.u(6)
    num_layer_sets = r.ue_max(1023, "vps_num_layer_sets_minus1")
    r.skip(num_layer_sets * (max_layer_id + 1))  # layer_id_included_flag[i][j]
    if not r.flag():  # vps_timing_info_present_flag
        return None
    num_units_in_tick = r.u(32)
    time_scale = r.u(32)
    return _fps(num_units_in_tick, time_scale, 1)


def h265_vps_id(nal: bytes) -> int:
    """vps_video_parameter_set_id of an H.265 VPS (the 4 bits after the NAL header)."""
    if len(nal) < 3:
        raise ParseError("H.265 VPS: truncated", offset=len(nal))
    return nal[2] >> 4


def h265_sps_id(nal: bytes) -> int:
    """sps_seq_parameter_set_id of an H.265 SPS (after its profile_tier_level)."""
    r = _rbsp(bytes(nal[:160]), 2, "H.265 SPS")
    r.skip(4)
    max_sub_layers_minus1 = r.u(3)
    if max_sub_layers_minus1 > 6:
        raise ParseError("H.265 SPS: sps_max_sub_layers_minus1 = 7", offset=0)
    r.skip(1)
    _h265_profile_tier_level(r, max_sub_layers_minus1)
    return r.ue_max(15, "sps_seq_parameter_set_id")


def h265_pps_ids(nal: bytes) -> tuple[int, int]:
    """(pps_pic_parameter_set_id, pps_seq_parameter_set_id) of an H.265 PPS (7.3.2.3.1)."""
    r = _rbsp(bytes(nal[:16]), 2, "H.265 PPS")
    return r.ue_max(63, "pps_pic_parameter_set_id"), r.ue_max(15, "pps_seq_parameter_set_id")


def parse_sps(codec: str, nal: bytes) -> SpsInfo:
    """Parse an SPS of `codec` ("h264" or "hevc"/"h265").

    Raises:
        ParseError: bad SPS. LocalProtocolError: unknown codec.
    """
    if codec == "h264":
        return parse_h264_sps(nal)
    if codec in ("hevc", "h265"):
        return parse_h265_sps(nal)
    raise LocalProtocolError(f"unknown codec {codec!r}: expected 'h264' or 'hevc'")
