"""``hil calibrate``: fit every device's simulator parameters from a session into a chip file."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="fit every device's simulator parameters from a session into a chip file")
    p.add_argument("file")
    p.add_argument("--out", required=True, help="chip file to write (.yaml)")
    p.add_argument("--base-chip", help="chip file whose material values the calibration starts from")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hil.offline.calibration import calibrate, check_chip_output, write_chip

    check_chip_output(args.out, args.force)  # refused before the fits, not after
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
    print(f"chip file: {path}")
    return 0
