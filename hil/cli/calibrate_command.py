"""``hil calibrate``: fit a session into a chip file (every device's simulator parameters) and/or a synapse
model file (the DW synapse model of its programming characterization)."""

from __future__ import annotations

import argparse

from instruments.failures import UserFacingError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="fit a session into a chip file (--out) and/or a synapse model file "
                       "(--synapse-model)")
    p.add_argument("file")
    p.add_argument("--out", help="chip file to write (.yaml): every Hall bar's fitted simulator parameters")
    p.add_argument("--synapse-model", metavar="OUT",
                   help="synapse model file to write (.yaml): the DW synapse model of the session's dw_programming run")
    p.add_argument("--base-chip", help="chip file whose material values and effects the calibration starts from "
                   "(an effect the session has no data for keeps its setting)")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hil.offline.calibration import check_chip_output
    from hil.synapses.synapse_model_file import check_model_output

    if args.out is None and args.synapse_model is None:
        raise UserFacingError("hil calibrate: say what to write: --out CHIP.yaml and/or --synapse-model MODEL.yaml")
    # both refused before the fits, not after
    if args.out is not None:
        check_chip_output(args.out, args.force)
    if args.synapse_model is not None:
        check_model_output(args.synapse_model, args.force)
    if args.synapse_model is not None:
        write_model(args)
    if args.out is not None:
        write_chip_file(args)
    return 0


def write_model(args: argparse.Namespace) -> None:
    from hil.synapses.synapse_model_file import synapse_model, write_synapse_model

    model = synapse_model(args.file)
    path = write_synapse_model(model, args.synapse_model, force=args.force)
    fit = model["fit"]
    for k, (level, sigma) in enumerate(zip(model["levels"], model["sigma"], strict=True)):
        (l_low, l_high), (s_low, s_high) = fit["level_intervals"][k], fit["sigma_intervals"][k]
        print(f"state {k}: level {level:+.4f} [{l_low:+.4f}, {l_high:+.4f}]  sigma {sigma:.4f} "
              f"[{s_low:.4f}, {s_high:.4f}] spacings  ({fit['n'][k]} programmings)")
    print(f"level variation {model['level_variation']:.4f} spacings; {fit['confidence'] * 100:g} % intervals")
    print(f"synapse model file: {path}")


def write_chip_file(args: argparse.Namespace) -> None:
    from hil.offline.calibration import calibrate, write_chip

    chip = calibrate(args.file, base_chip=args.base_chip)
    path = write_chip(chip, args.out, force=args.force)
    errors = chip["calibration"]["standard_errors"]
    for device in chip["devices"]:
        err = errors.get(device["id"], {})
        parts = [f"{device['id']:8}"]
        if "ic0" in device:
            parts.append(f"Ic0 {device['ic0'] * 1e3:.4f} ± {err['ic0'] * 1e3:.4f} mA")
            parts.append(f"Δ {device['delta']:.2f} ± {err['delta']:.2f}")
        if "delta_r_ahe" in device:
            parts.append(f"ΔR_AHE {device['delta_r_ahe']:.4f} ± {err['delta_r_ahe']:.4f} Ω")
        if "r_ch" in device:
            parts.append(f"R_ch {device['r_ch']:.1f} Ω")
        print("  ".join(parts))
    for line in effect_lines(chip["calibration"]["effects"]):
        print(line)
    print(f"chip file: {path}")


def effect_lines(effects: dict) -> list[str]:
    """One line per effect of a calibrated chip's ``calibration.effects``: what was fitted, or why not."""
    lines = []
    for name, entry in effects.items():
        if isinstance(entry, str):
            lines.append(f"{name}: {entry}")
        elif name == "joule_heating":
            lines.append(f"{name}: specific resistance {entry['specific_resistance']:.3g} ± "
                         f"{entry['specific_resistance_err']:.2g} K m²/W; thermal time {entry['time'] * 1e6:.3g} µs "
                         f"({entry['time_note']})")
        elif name == "drift":
            low, high = entry["ic0_walk_interval"]
            lines.append(f"{name}: wear {entry['wear_mean']:.3g} ± {entry['wear_mean_err']:.2g} per 10^6 pulses; "
                         f"walk {entry['ic0_walk']:.2g} per √h [{low:.2g}, {high:.2g}]")
        elif name == "reversal_pinning":
            low, high = entry["probability_interval"]
            lines.append(f"{name}: median probability {entry['probability']:.3g} [{low:.3g}, {high:.3g}], spread "
                         f"{entry['spread']:.2g}")
        elif name == "readout":
            lines.append(f"read noise {entry['read_noise']:.3g} ± {entry['read_noise_err']:.2g} Ω; telegraph noise "
                         f"{entry['telegraph_note']}")
        elif name == "bias_field":
            lines.append(f"{name}: sign {entry['sign']:+d} (from the measured Hall levels)")
    return lines
